import Foundation
import Testing

@testable import SwitchboardCore

/// The reference data beside the repository (`../shared/reference`): real payloads, test vectors and the
/// official OpenAPI document. Absent in a user's fresh clone; tests that need it say so when skipped.
enum SharedReference {
    static let directory: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("shared/reference")

    static var isAvailable: Bool { FileManager.default.fileExists(atPath: directory.path) }

    static let skipReason: Comment = "SKIPPED: ../shared/reference is absent (a fresh clone); these tests read PagerDuty's and Salesforce's real payloads from it"

    static func text(_ relativePath: String) throws -> String {
        try String(contentsOf: directory.appendingPathComponent(relativePath), encoding: .utf8)
    }
}

enum Repository {
    static let root: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func text(_ relativePath: String) throws -> String {
        try String(contentsOf: root.appendingPathComponent(relativePath), encoding: .utf8)
    }
}

/// Loads rules from YAML, failing the test with every diagnostic if they do not validate.
func rules(_ yaml: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> RulesDocument {
    do {
        return try RulesLoader().load(yaml, format: .yaml)
    } catch {
        Issue.record("rules did not validate: \(error)", sourceLocation: sourceLocation)
        throw error
    }
}

/// The diagnostics of a rules file that must not validate.
func problems(_ yaml: String, format: RulesLoader.Format = .yaml, sourceLocation: SourceLocation = #_sourceLocation) -> [Diagnostic] {
    do {
        _ = try RulesLoader().load(yaml, format: format)
        Issue.record("rules validated but should not have", sourceLocation: sourceLocation)
        return []
    } catch {
        return error.diagnostics
    }
}

let caseId = "5003000000D8cuIAAR"
let t0 = Instant(iso8601: "2026-11-24T15:00:00Z")!

func caseRecord(_ fields: [String: FieldValue], id: String = caseId, object: String = "Case") -> SalesforceRecord {
    var all = fields
    all["Id"] = .reference(id: id, label: nil)
    return SalesforceRecord(object: object, id: id, fields: all)
}

func inserted(_ fields: [String: FieldValue], object: String = "Case", id: String = caseId) -> RuleEvent {
    .salesforce(SalesforceChange(object: object, isInsert: true, old: nil, new: caseRecord(fields, id: id, object: object)))
}

func updated(from old: [String: FieldValue], to new: [String: FieldValue], object: String = "Case", id: String = caseId) -> RuleEvent {
    .salesforce(SalesforceChange(object: object, isInsert: false, old: caseRecord(old, id: id, object: object), new: caseRecord(new, id: id, object: object)))
}

/// A webhook body for an incident event, shaped like PagerDuty's documented examples.
func webhook(
    _ eventType: String, incident: String = "PINC001", status: String = "triggered", title: String = "Checkout is down",
    service: (id: String, name: String) = ("PSVC001", "XYZ"), policy: (id: String, name: String) = ("PEP0001", "Default"),
    priority: (id: String, name: String)? = ("PPRI001", "P1"), urgency: String = "high", occurredAt: String = "2026-11-24T15:00:00Z",
    data: JSONValue? = nil
) -> JSONValue {
    var incidentData: JSONObject = [
        "id": .string(incident), "type": "incident", "number": .number(42), "status": .string(status), "title": .string(title),
        "html_url": .string("https://acme.pagerduty.com/incidents/\(incident)"), "created_at": "2026-11-24T14:00:00Z",
        "service": .object(["id": .string(service.id), "type": "service_reference", "summary": .string(service.name)]),
        "escalation_policy": .object(["id": .string(policy.id), "type": "escalation_policy_reference", "summary": .string(policy.name)]),
        "assignees": .array([.object(["id": "PUSER01", "type": "user_reference", "summary": "Maeve"])]),
        "urgency": .string(urgency), "incident_key": "sf:5003000000D8cuIAAR",
    ]
    if let priority {
        incidentData["priority"] = .object(["id": .string(priority.id), "type": "priority_reference", "summary": .string(priority.name)])
    }
    return .object([
        "event": .object([
            "id": .string("EV-\(eventType)-\(incident)"), "event_type": .string(eventType), "resource_type": "incident",
            "occurred_at": .string(occurredAt), "agent": .null, "client": .null, "data": data ?? .object(incidentData),
        ])
    ])
}

func pdEvent(_ body: JSONValue, previous: IncidentSnapshot? = nil) throws -> RuleEvent {
    .pagerDuty(try PagerDutyEvent(webhook: body, previous: previous))
}

extension Evaluation {
    func rule(_ name: String) -> RuleVerdict? { rules.first { $0.rule == name } }
}
