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

    /// True when the action's target exists when it is planned (an incident or a record), so the processor writes
    /// its `predictable` stamps then: its webhook or trigger post may come back before the job is recorded as done.
    static func isStampedWhenPlanned(_ action: PlannedAction) -> Bool {
        switch action.target {
        case .incident, .record: true
        case .createdIncident, .creation: false
        }
    }

    /// The stamps written when an action is planned (see `isStampedWhenPlanned`).
    static func planned(for action: PlannedAction) -> [(String, String)] {
        guard isStampedWhenPlanned(action) else { return [] }
        return predictable(action.action, incidentId: action.incidentId, recordId: action.recordId, parameters: action.parameters)
    }

    /// The stamps written when an action is done: what it created, and what it caused if that was not stamped when
    /// it was planned.
    static func stamps(for request: ActionRequest, outcome: ActionOutcome) -> [(String, String)] {
        let known =
            request.stampedWhenPlanned
            ? [] : predictable(request.action, incidentId: request.incidentId, recordId: request.recordId, parameters: request.parameters)
        return known + created(request, outcome: outcome)
    }

    /// What an action on an existing incident or record will cause to come back, as (target, fingerprint) pairs.
    static func predictable(_ action: ActionKind, incidentId: String?, recordId: String?, parameters: JSONObject) -> [(String, String)] {
        var out: [(String, String)] = []
        func pd(_ names: String...) {
            guard let incident = incidentId else { return }
            out += names.map { (target(incident: incident), $0) }
            out.append((target(incident: incident), recentWrite))
        }
        switch action {
        case .createIncident, .createRecord: break
        case .acknowledge: pd("incident.acknowledged")
        case .resolve: pd("incident.resolved")
        case .setPriority: pd("incident.priority_updated")
        case .setUrgency: pd()
        case .reassign:
            if parameters["escalationPolicy"] != nil { pd("incident.delegated") } else { pd("incident.reassigned") }
        case .addResponders: pd("incident.responder.added")
        case .runIncidentWorkflow: pd("incident.workflow.started", "incident.workflow.completed")
        case .runAutomationAction: pd("incident.action_invocation.created", "incident.action_invocation.updated", "incident.action_invocation.terminated")
        case .setIncidentConference: pd("incident.conference_bridge.updated")
        case .setIncidentDescription: pd("incident.annotated", "incident.custom_field_values.updated")
        case .addNote:
            // The note, known by its text: a person's note arriving meanwhile is not mistaken for it.
            if let content = parameters["content"]?.stringValue { pd(noteFingerprint(content)) }
        case .syncNote:
            // The Case Comment, known by its text on the case it goes to.
            if parameters["comment"] == .bool(true), let record = recordId, let content = parameters["content"]?.stringValue {
                out.append((target(record: record), noteFingerprint(content)))
            }
        case .setField:
            if let record = recordId, let field = parameters["field"]?.stringValue {
                out.append((target(record: record), fieldFingerprint(field, parameters["value"]?.stringValue ?? "")))
                out.append((target(record: record), recentWrite))
            }
        }
        return out
    }

    /// What an action's creations will cause to come back; known once it is done.
    static func created(_ request: ActionRequest, outcome: ActionOutcome) -> [(String, String)] {
        var out: [(String, String)] = []
        switch request.action {
        case .createIncident:
            if let created = outcome.createdIncidentId {
                out.append((target(incident: created), "incident.triggered"))
                out.append((target(incident: created), recentWrite))
            }
        case .syncNote:
            // The comment Switchboard posts must not come back as a new note.
            if let record = outcome.createdRecordId { out.append((target(record: record), "create")) }
        case .createRecord:
            if let record = outcome.createdRecordId {
                out.append((target(record: record), "create"))
                out.append((target(record: record), recentWrite))
                for (field, value) in request.parameters["fields"]?.objectValue?.entries ?? [] {
                    out.append((target(record: record), fieldFingerprint(field, value.stringValue ?? "")))
                }
            }
        default: break
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
