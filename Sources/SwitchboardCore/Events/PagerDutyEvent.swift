/// The Event Type values of the rule builder, onto which PagerDuty's webhook v3 event types are mapped.
public enum PagerDutyEventType: String, Sendable, Hashable, CaseIterable, Codable {
    case trigger = "Trigger"
    case acknowledge = "Acknowledge"
    case resolve = "Resolve"
    case assign = "Assign"
    case escalate = "Escalate"
    case custom = "Custom"
    case delegate = "Delegate"

    /// The Event Type of a v3 `event_type`. Events with no counterpart among the seven (notes, priority
    /// changes, responders, status updates, workflows, …) are `Custom`; rules can still tell them apart with
    /// the `pagerduty.eventName` field.
    public init(webhookEventType: String) {
        switch webhookEventType {
        case "incident.triggered", "incident.reopened": self = .trigger
        case "incident.acknowledged": self = .acknowledge
        case "incident.resolved": self = .resolve
        case "incident.reassigned": self = .assign
        case "incident.escalated": self = .escalate
        case "incident.delegated": self = .delegate
        default: self = .custom
        }
    }
}

/// A PagerDuty object reference: `{"id", "type", "summary", "self", "html_url"}`.
public struct PagerDutyReference: Sendable, Hashable {
    public var id: String
    public var type: String?
    public var summary: String?

    public init(id: String, type: String? = nil, summary: String? = nil) {
        self.id = id
        self.type = type
        self.summary = summary
    }

    init?(_ json: JSONValue?) {
        guard let json, let id = json["id"]?.stringValue else { return nil }
        self.init(id: id, type: json["type"]?.stringValue, summary: json["summary"]?.stringValue ?? json["name"]?.stringValue)
    }

    var fieldValue: FieldValue { .reference(id: id, label: summary) }
}

/// What is known of an incident at one moment: from a webhook's `data` or a REST `incident`.
public struct IncidentSnapshot: Sendable, Hashable {
    public var id: String
    public var number: Int?
    public var title: String?
    /// `triggered`, `acknowledged` or `resolved`.
    public var status: String?
    public var urgency: String?
    public var service: PagerDutyReference?
    public var escalationPolicy: PagerDutyReference?
    public var priority: PagerDutyReference?
    public var assignees: [PagerDutyReference]
    public var teams: [PagerDutyReference]
    public var incidentKey: String?
    public var htmlURL: String?
    public var createdAt: Instant?
    public var conferenceURL: String?
    public var conferenceNumber: String?

    public init(id: String, title: String? = nil, status: String? = nil) {
        self.id = id
        self.title = title
        self.status = status
        self.assignees = []
        self.teams = []
    }

    /// Decodes a webhook v3 `data` object of type `incident` or a REST API incident; the two name some
    /// fields differently (`number`/`incident_number`, `assignees`/`assignments[].assignee`).
    public init?(json: JSONValue) {
        guard let id = json["id"]?.stringValue else { return nil }
        self.init(id: id, title: json["title"]?.stringValue ?? json["summary"]?.stringValue, status: json["status"]?.stringValue)
        if case .number(let n)? = json["number"] ?? json["incident_number"] { number = Int(n) }
        urgency = json["urgency"]?.stringValue
        service = PagerDutyReference(json["service"])
        escalationPolicy = PagerDutyReference(json["escalation_policy"])
        priority = PagerDutyReference(json["priority"])
        if let list = json["assignees"]?.arrayValue {
            assignees = list.compactMap { PagerDutyReference($0) }
        } else if let list = json["assignments"]?.arrayValue {
            assignees = list.compactMap { PagerDutyReference($0["assignee"]) }
        }
        teams = (json["teams"]?.arrayValue ?? []).compactMap { PagerDutyReference($0) }
        incidentKey = json["incident_key"]?.stringValue
        htmlURL = json["html_url"]?.stringValue
        createdAt = json["created_at"]?.stringValue.flatMap { Instant(iso8601: $0) }
        if let bridge = json["conference_bridge"] {
            conferenceURL = bridge["conference_url"]?.stringValue
            // Some payloads carry the number as an integer; read it either way.
            switch bridge["conference_number"] {
            case .string(let s)?: conferenceNumber = s
            case .number(let n)?: conferenceNumber = FieldValue.format(number: n)
            default: break
            }
        }
    }
}

/// A decoded PagerDuty webhook v3 delivery: `{"event": {"id", "event_type", "resource_type", "occurred_at",
/// "agent", "client", "data"}}`.
public struct PagerDutyEvent: Sendable, Hashable {
    public var id: String
    /// The v3 event type, e.g. `incident.acknowledged`.
    public var eventName: String
    public var resourceType: String
    public var occurredAt: Instant?
    public var agent: PagerDutyReference?
    /// The incident the event is about, as the event describes it (merged with the last snapshot for
    /// events whose data is not the incident itself, such as notes).
    public var incident: IncidentSnapshot?
    /// The incident before this event, when known; `changes` conditions compare against it.
    public var previous: IncidentSnapshot?
    /// The note text of an `incident.annotated` event.
    public var noteContent: String?
    /// True when PagerDuty shortened the note or status update; fetch it through REST.
    public var trimmed: Bool
    public var data: JSONValue

    /// The webhook v3 event types PagerDuty documents; others (early-access ones) are logged and ignored.
    public static let knownEventTypes: Set<String> = [
        "incident.triggered", "incident.acknowledged", "incident.unacknowledged", "incident.resolved", "incident.reopened", "incident.reassigned",
        "incident.escalated", "incident.delegated", "incident.priority_updated", "incident.service_updated", "incident.incident_type.changed",
        "incident.annotated", "incident.conference_bridge.updated", "incident.custom_field_values.updated", "incident.responder.added",
        "incident.responder.replied", "incident.status_update_published", "incident.role.assigned", "incident.task.created",
        "incident.task.updated", "incident.task.completed", "incident.action_invocation.created", "incident.action_invocation.updated",
        "incident.action_invocation.terminated", "incident.workflow.started", "incident.workflow.completed", "service.created",
        "service.updated", "service.deleted", "service.custom_field_values.updated", "pagey.ping",
    ]

    /// True for event types PagerDuty documents.
    public var isKnownType: Bool { Self.knownEventTypes.contains(eventName) }

    /// The rule builder's Event Type.
    public var eventType: PagerDutyEventType { PagerDutyEventType(webhookEventType: eventName) }

    /// True only for the incident's creation.
    public var isIncidentCreated: Bool { eventName == "incident.triggered" }

    public var incidentId: String? { incident?.id }

    /// Decodes a webhook body. `previous` is the last snapshot Switchboard kept of the incident.
    public init(webhook body: JSONValue, previous: IncidentSnapshot? = nil) throws(DocumentError) {
        guard let event = body["event"], event.objectValue != nil else {
            throw DocumentError("a PagerDuty webhook v3 body is {\"event\": {...}}; `event` is missing")
        }
        guard let id = event["id"]?.stringValue, !id.isEmpty else { throw DocumentError("event.id is missing") }
        guard let name = event["event_type"]?.stringValue, !name.isEmpty else { throw DocumentError("event.event_type is missing") }
        self.id = id
        self.eventName = name
        self.resourceType = event["resource_type"]?.stringValue ?? ""
        self.occurredAt = event["occurred_at"]?.stringValue.flatMap { Instant(iso8601: $0) }
        if let text = event["occurred_at"]?.stringValue, occurredAt == nil {
            throw DocumentError("event.occurred_at \"\(text)\" is not an ISO 8601 date-time")
        }
        self.agent = PagerDutyReference(event["agent"])
        self.data = event["data"] ?? .null
        self.trimmed = data["trimmed"] == .bool(true)
        self.noteContent = data["type"]?.stringValue == "incident_note" ? data["content"]?.stringValue : nil

        let previousOfSame = previous
        if data["type"]?.stringValue == "incident", let snapshot = IncidentSnapshot(json: data) {
            self.incident = snapshot
            self.previous = previousOfSame?.id == snapshot.id ? previousOfSame : nil
        } else if let ref = PagerDutyReference(data["incident"] ?? data["incident_role_assignments"]?.arrayValue?.first?["incident"]) {
            // Notes, responders, bridges…: the incident itself did not change; carry the last snapshot.
            if var known = previousOfSame, known.id == ref.id {
                if known.title == nil { known.title = ref.summary }
                self.incident = known
                self.previous = known
            } else {
                self.incident = IncidentSnapshot(id: ref.id, title: ref.summary)
                self.previous = nil
            }
        } else {
            self.incident = nil
            self.previous = nil
        }
    }
}
