import Foundation
import SwitchboardCore
import SwitchboardStorage

/// A planned action as stored in the outbox, and back.
enum JobPayload {
    static func encode(_ a: PlannedAction, orgId: String?) -> String {
        var target: JSONObject
        switch a.target {
        case .incident(let id): target = ["kind": "incident", "id": .string(id)]
        case .createdIncident(let object, let record): target = ["kind": "createdIncident", "object": .string(object), "record": .string(record)]
        case .record(let object, let id): target = ["kind": "record", "object": .string(object), "id": .string(id)]
        case .creation: target = ["kind": "creation"]
        }
        let o: JSONObject = [
            "action": .string(a.action.rawValue), "ruleset": .string(a.ruleset), "rule": .string(a.rule), "target": .object(target),
            "sourceObject": .string(a.sourceObject), "sourceId": .string(a.sourceId), "parameters": .object(a.parameters),
            "org": orgId.map(JSONValue.string) ?? .null,
        ]
        return JSONValue.object(o).serialized()
    }

    static func decode(_ text: String) throws -> (action: PlannedAction, orgId: String?) {
        let v = try JSONParser.parseValue(text)
        guard let kind = v["action"]?.stringValue.flatMap(ActionKind.init(rawValue:)), let t = v["target"],
            let sourceObject = v["sourceObject"]?.stringValue, let sourceId = v["sourceId"]?.stringValue
        else { throw DatabaseError("a job's payload is not a planned action") }
        let target: ActionTarget
        switch t["kind"]?.stringValue {
        case "incident": target = .incident(t["id"]?.stringValue ?? "")
        case "createdIncident": target = .createdIncident(object: t["object"]?.stringValue ?? "", recordId: t["record"]?.stringValue ?? "")
        case "record": target = .record(object: t["object"]?.stringValue ?? "", id: t["id"]?.stringValue ?? "")
        default: target = .creation
        }
        let action = PlannedAction(
            action: kind, ruleset: v["ruleset"]?.stringValue ?? "", rule: v["rule"]?.stringValue ?? "", target: target, sourceObject: sourceObject,
            sourceId: sourceId, parameters: v["parameters"]?.objectValue ?? [:])
        return (action, v["org"]?.stringValue)
    }
}

/// Recognises the webhooks and triggers that Switchboard's own writes cause, so they do not fire rules back.
enum EchoGuard {
    /// Salesforce fields that change on every write and say nothing about who made it.
    static let systemFields: Set<String> = [
        "lastmodifieddate", "systemmodstamp", "lastmodifiedbyid", "lastvieweddate", "lastreferenceddate", "lastactivitydate",
    ]

    static let recentWrite = "write"

    static func target(incident: String) -> String { "pd:" + incident }
    static func target(record: String) -> String { "sf:" + SalesforceId.normalized(record) }

    /// The stamps an action on an incident or record that exists already will need, written when the action is
    /// planned: its webhook or trigger post may come back before the job is recorded as done. Empty for actions
    /// whose target is known only once they are done (creations, actions on an incident created earlier).
    static func planned(for action: PlannedAction) -> [(String, String)] {
        switch action.target {
        case .incident, .record:
            let request = ActionRequest(
                idempotencyKey: "", action: action.action, incidentId: action.incidentId, object: action.recordObject, recordId: action.recordId,
                parameters: action.parameters)
            return stamps(for: request, outcome: ActionOutcome())
        case .createdIncident, .creation:
            return []
        }
    }

    /// What a successful action will cause to come back, as (target, fingerprint) pairs.
    static func stamps(for request: ActionRequest, outcome: ActionOutcome) -> [(String, String)] {
        var out: [(String, String)] = []
        func pd(_ names: String...) {
            guard let incident = request.incidentId else { return }
            out += names.map { (target(incident: incident), $0) }
            out.append((target(incident: incident), recentWrite))
        }
        switch request.action {
        case .createIncident:
            if let created = outcome.createdIncidentId {
                out.append((target(incident: created), "incident.triggered"))
                out.append((target(incident: created), recentWrite))
            }
        case .acknowledge: pd("incident.acknowledged")
        case .resolve: pd("incident.resolved")
        case .setPriority: pd("incident.priority_updated")
        case .setUrgency: pd()
        case .reassign:
            if request.parameters["escalationPolicy"] != nil { pd("incident.delegated") } else { pd("incident.reassigned") }
        case .addResponders: pd("incident.responder.added")
        case .runIncidentWorkflow: pd("incident.workflow.started", "incident.workflow.completed")
        case .runAutomationAction: pd("incident.action_invocation.created", "incident.action_invocation.updated", "incident.action_invocation.terminated")
        case .setIncidentConference: pd("incident.conference_bridge.updated")
        case .setIncidentDescription: pd("incident.annotated", "incident.custom_field_values.updated")
        case .addNote: pd("incident.annotated")
        case .syncNote:
            // The comment Switchboard posts must not come back as a new note.
            if let record = outcome.createdRecordId { out.append((target(record: record), "create")) }
        case .setField:
            if let record = request.recordId, let field = request.parameters["field"]?.stringValue {
                out.append((target(record: record), fieldFingerprint(field, request.parameters["value"]?.stringValue ?? "")))
                out.append((target(record: record), recentWrite))
            }
        case .createRecord:
            if let record = outcome.createdRecordId {
                out.append((target(record: record), "create"))
                out.append((target(record: record), recentWrite))
                for (field, value) in request.parameters["fields"]?.objectValue?.entries ?? [] {
                    out.append((target(record: record), fieldFingerprint(field, value.stringValue ?? "")))
                }
            }
        }
        return out
    }

    /// A note's text, as copied between PagerDuty notes and Case Comments: stamped when the copy is planned, so the
    /// copy's own webhook or trigger post is known even when it arrives before the job is recorded as done.
    static func noteFingerprint(_ text: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.trimmingCharacters(in: .whitespacesAndNewlines).utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return "note:" + String(hash, radix: 16)
    }

    /// The note inside a Case Comment Switchboard wrote ("PagerDuty note by Maeve:\n…").
    static func commentNote(_ body: String) -> String {
        guard body.hasPrefix("PagerDuty note by "), let newline = body.firstIndex(of: "\n") else { return body }
        return String(body[body.index(after: newline)...])
    }

    static func fieldFingerprint(_ field: String, _ value: String) -> String {
        field.lowercased() + "=" + value
    }

    /// The fields a Salesforce change changed, with their new values, leaving out system fields.
    static func changedFields(_ change: SalesforceChange) -> [(String, String)] {
        var out: [(String, String)] = []
        for (name, value) in change.new.fields where !systemFields.contains(name.lowercased()) && name != "Id" {
            let old = change.old?[name] ?? .null
            if old != value { out.append((name, value.text)) }
        }
        if let old = change.old {
            for (name, _) in old.fields where change.new.fields[name] == nil && !systemFields.contains(name.lowercased()) {
                out.append((name, ""))
            }
        }
        return out.sorted { $0.0 < $1.0 }
    }
}
