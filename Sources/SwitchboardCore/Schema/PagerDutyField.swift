/// The PagerDuty fields a condition or template can read. The first nine are the rule builder's; the rest
/// are Switchboard's additions.
public enum PagerDutyField: String, Sendable, Hashable, CaseIterable {
    case eventType = "pagerduty.eventType"
    case title = "pagerduty.title"
    case status = "pagerduty.status"
    case service = "pagerduty.service"
    case serviceName = "pagerduty.serviceName"
    case escalationPolicy = "pagerduty.escalationPolicy"
    case escalationPolicyName = "pagerduty.escalationPolicyName"
    case priority = "pagerduty.priority"
    case urgency = "pagerduty.urgency"
    // Additions beyond the rule builder of the original integration.
    case id = "pagerduty.id"
    case number = "pagerduty.number"
    case htmlUrl = "pagerduty.htmlUrl"
    case eventName = "pagerduty.eventName"
    case createdAt = "pagerduty.createdAt"
    case occurredAt = "pagerduty.occurredAt"
    case assignees = "pagerduty.assignees"
    case teams = "pagerduty.teams"
    case incidentKey = "pagerduty.incidentKey"
    case note = "pagerduty.note"
    case agent = "pagerduty.agent"
    case conferenceUrl = "pagerduty.conferenceUrl"

    /// The nine fields of the original rule builder.
    public static let seedFields: [PagerDutyField] = [
        .eventType, .title, .status, .service, .serviceName, .escalationPolicy, .escalationPolicyName, .priority, .urgency,
    ]

    public var label: String {
        switch self {
        case .eventType: "Event Type"
        case .title: "Incident Title"
        case .status: "Incident Status"
        case .service: "PagerDuty Service"
        case .serviceName: "PagerDuty Service Name"
        case .escalationPolicy: "PagerDuty Escalation Policy"
        case .escalationPolicyName: "Escalation Policy Name"
        case .priority: "PagerDuty Incident Priority"
        case .urgency: "Urgency"
        case .id: "Incident ID"
        case .number: "Incident Number"
        case .htmlUrl: "Incident URL"
        case .eventName: "Webhook Event Name"
        case .createdAt: "Incident Created"
        case .occurredAt: "Event Time"
        case .assignees: "Assignees"
        case .teams: "Teams"
        case .incidentKey: "Incident Key"
        case .note: "Note"
        case .agent: "Changed By"
        case .conferenceUrl: "Conference Bridge URL"
        }
    }

    public var type: FieldType {
        switch self {
        case .eventType, .status, .urgency: .picklist
        case .service, .escalationPolicy, .priority: .reference
        case .number: .number
        case .createdAt, .occurredAt: .dateTime
        default: .text
        }
    }

    /// The values a condition may compare with, where the set is fixed.
    public var allowedValues: [String]? {
        switch self {
        case .eventType: PagerDutyEventType.allCases.map(\.rawValue)
        case .status: ["Triggered", "Acknowledged", "Resolved"]
        case .urgency: ["high", "low"]
        default: nil
        }
    }

    /// True for fields that describe the incident (as opposed to the event), so `changes` can compare
    /// them with the previous snapshot.
    var isIncidentAttribute: Bool {
        switch self {
        case .eventType, .eventName, .occurredAt, .note, .agent: false
        default: true
        }
    }

    /// The field's value for an event, reading the incident from `snapshot`.
    public func value(of event: PagerDutyEvent, snapshot: IncidentSnapshot?) -> FieldValue {
        switch self {
        case .eventType: return .picklist([event.eventType.rawValue])
        case .eventName: return .text(event.eventName)
        case .occurredAt: return event.occurredAt.map(FieldValue.dateTime) ?? .null
        case .note: return event.noteContent.map(FieldValue.text) ?? .null
        case .agent: return event.agent.map { .text($0.summary ?? $0.id) } ?? .null
        default: break
        }
        guard let s = snapshot else { return .null }
        switch self {
        case .title: return s.title.map(FieldValue.text) ?? .null
        case .status: return s.status.map { .picklist([$0.prefix(1).uppercased() + $0.dropFirst()]) } ?? .null
        case .service: return s.service?.fieldValue ?? .null
        case .serviceName: return s.service?.summary.map(FieldValue.text) ?? .null
        case .escalationPolicy: return s.escalationPolicy?.fieldValue ?? .null
        case .escalationPolicyName: return s.escalationPolicy?.summary.map(FieldValue.text) ?? .null
        case .priority: return s.priority?.fieldValue ?? .null
        case .urgency: return s.urgency.map { .picklist([$0]) } ?? .null
        case .id: return .text(s.id)
        case .number: return s.number.map { .number(Double($0)) } ?? .null
        case .htmlUrl: return s.htmlURL.map(FieldValue.text) ?? .null
        case .createdAt: return s.createdAt.map(FieldValue.dateTime) ?? .null
        case .assignees: return s.assignees.isEmpty ? .null : .text(s.assignees.map { $0.summary ?? $0.id }.joined(separator: ", "))
        case .teams: return s.teams.isEmpty ? .null : .text(s.teams.map { $0.summary ?? $0.id }.joined(separator: ", "))
        case .incidentKey: return s.incidentKey.map(FieldValue.text) ?? .null
        case .conferenceUrl: return s.conferenceURL.map(FieldValue.text) ?? .null
        case .eventType, .eventName, .occurredAt, .note, .agent: return .null
        }
    }

    /// Which fields an event type is known to change, for `changes` when no earlier snapshot is kept.
    func isChanged(by eventName: String) -> Bool {
        switch eventName {
        case "incident.acknowledged", "incident.unacknowledged", "incident.resolved", "incident.reopened":
            self == .status
        case "incident.priority_updated": self == .priority
        case "incident.reassigned", "incident.escalated": self == .assignees
        case "incident.delegated": self == .escalationPolicy || self == .escalationPolicyName || self == .assignees
        case "incident.service_updated": self == .service || self == .serviceName
        case "incident.conference_bridge.updated": self == .conferenceUrl
        default: false
        }
    }
}
