import Foundation
import Synchronization
import SwitchboardCore
import SwitchboardPipeline

/// Carries out the rules' PagerDuty actions through the REST API.
public final class PagerDutySink: OutboundSink {
    let client: PagerDutyClient
    private let requesterId = Mutex<String?>(nil)

    public init(client: PagerDutyClient) {
        self.client = client
    }

    public func perform(_ request: ActionRequest) async throws(ActionFailure) -> ActionOutcome {
        do {
            return try await carryOut(request)
        } catch let error as PagerDutyError {
            // Already acknowledged or resolved: the desired state holds, so the action succeeded.
            if error.code == 1001 || error.code == 1002 { return ActionOutcome(detail: error.message) }
            throw error.isRetryable ? .retryable(error.description, retryAfter: error.retryAfter) : .permanent(error.description)
        } catch let failure as ActionFailure {
            throw failure
        } catch {
            throw .retryable("\(error)")
        }
    }

    private func incident(_ request: ActionRequest) throws -> String {
        guard let id = request.incidentId, !id.isEmpty else { throw ActionFailure.permanent("\(request.action.rawValue) has no incident to act on") }
        return id
    }

    private func reference(_ id: String, _ type: String) -> JSONValue { .object(["id": .string(id), "type": .string(type)]) }

    private func carryOut(_ request: ActionRequest) async throws -> ActionOutcome {
        let p = request.parameters
        switch request.action {
        case .createIncident:
            return try await createIncident(request)
        case .acknowledge:
            try await client.updateIncident(try incident(request), ["status": "acknowledged"])
        case .resolve:
            var fields: JSONObject = ["status": "resolved"]
            if let resolution = p["resolution"]?.stringValue, !resolution.isEmpty { fields["resolution"] = .string(resolution) }
            try await client.updateIncident(try incident(request), fields)
        case .setPriority:
            let priority = try await client.resolve(p["priority"]?.stringValue ?? "", as: .priorities)
            try await client.updateIncident(try incident(request), ["priority": reference(priority, "priority_reference")])
        case .setUrgency:
            try await client.updateIncident(try incident(request), ["urgency": p["urgency"] ?? "high"])
        case .reassign:
            if let policy = p["escalationPolicy"]?.stringValue {
                let id = try await client.resolve(policy, as: .escalationPolicies)
                try await client.updateIncident(try incident(request), ["escalation_policy": reference(id, "escalation_policy_reference")])
            } else {
                var assignments: [JSONValue] = []
                for user in p["users"]?.arrayValue?.compactMap(\.stringValue) ?? [] {
                    assignments.append(.object(["assignee": reference(try await client.resolve(user, as: .users), "user_reference")]))
                }
                try await client.updateIncident(try incident(request), ["assignments": .array(assignments)])
            }
        case .addResponders:
            var users: [String] = []
            for u in p["users"]?.arrayValue?.compactMap(\.stringValue) ?? [] { users.append(try await client.resolve(u, as: .users)) }
            var policies: [String] = []
            for e in p["escalationPolicies"]?.arrayValue?.compactMap(\.stringValue) ?? [] {
                policies.append(try await client.resolve(e, as: .escalationPolicies))
            }
            try await client.addResponders(
                try incident(request), requester: try await requester(), users: users, escalationPolicies: policies, message: p["message"]?.stringValue)
        case .runIncidentWorkflow:
            let workflow = try await client.resolve(p["workflow"]?.stringValue ?? "", as: .incidentWorkflows)
            try await client.runIncidentWorkflow(workflow, incidentId: try incident(request))
        case .runAutomationAction:
            let action = try await client.resolve(p["automationAction"]?.stringValue ?? "", as: .automationActions)
            try await client.runAutomationAction(action, incidentId: try incident(request))
        case .setIncidentConference:
            var bridge: JSONObject = ["conference_url": p["conferenceUrl"] ?? ""]
            if let number = p["conferenceNumber"] { bridge["conference_number"] = number }
            try await client.updateIncident(try incident(request), ["conference_bridge": .object(bridge)])
        case .setIncidentDescription:
            // PagerDuty cannot change an incident's body after creation. The closest honest behaviour: the text goes
            // into the incident custom field `description` (when the account has one) and into a note, which everyone
            // on the incident sees.
            let id = try incident(request)
            let text = p["description"]?.stringValue ?? ""
            // Custom field text holds at most 200 characters; the note carries the whole text. An account without the
            // field still gets the note.
            _ = try? await client.setCustomFields(id, [("description", .string(String(text.prefix(200))))])
            try await client.addNote(id, content: "Description (from Salesforce): " + text)
        case .addNote:
            guard let content = p["content"]?.stringValue, !content.isEmpty else { throw ActionFailure.permanent("addNote has no content") }
            try await client.addNote(try incident(request), content: content)
        case .setField, .createRecord, .syncNote:
            throw ActionFailure.permanent("\(request.action.rawValue) is a Salesforce action")
        }
        return ActionOutcome()
    }

    private func createIncident(_ request: ActionRequest) async throws -> ActionOutcome {
        let p = request.parameters
        let service = try await client.resolve(p["service"]?.stringValue ?? "", as: .services)
        var incident: JSONObject = [
            "type": "incident", "title": p["title"] ?? .string("\(request.object ?? "Record") \(request.recordId ?? "")"),
            "service": reference(service, "service_reference"),
        ]
        if let urgency = p["urgency"] { incident["urgency"] = urgency }
        if let priority = p["priority"]?.stringValue {
            incident["priority"] = reference(try await client.resolve(priority, as: .priorities), "priority_reference")
        }
        if let policy = p["escalationPolicy"]?.stringValue {
            incident["escalation_policy"] = reference(try await client.resolve(policy, as: .escalationPolicies), "escalation_policy_reference")
        } else if let assignee = p["assignee"]?.stringValue {
            incident["assignments"] = .array([.object(["assignee": reference(try await client.resolve(assignee, as: .users), "user_reference")])])
        }
        if let description = p["description"]?.stringValue, !description.isEmpty {
            incident["body"] = .object(["type": "incident_body", "details": .string(description)])
        }
        var bridge = JSONObject()
        if let url = p["conferenceUrl"]?.stringValue, !url.isEmpty { bridge["conference_url"] = .string(url) }
        if let number = p["conferenceNumber"]?.stringValue, !number.isEmpty { bridge["conference_number"] = .string(number) }
        if !bridge.isEmpty { incident["conference_bridge"] = .object(bridge) }
        let key = p["incidentKey"]?.stringValue ?? request.idempotencyKey
        incident["incident_key"] = .string(key)
        do {
            let created = try await client.createIncident(incident)
            guard let id = created["id"]?.stringValue else { throw ActionFailure.retryable("PagerDuty created an incident but returned no id") }
            return ActionOutcome(createdIncidentId: id, detail: created["html_url"]?.stringValue)
        } catch let error as PagerDutyError where error.status == 400 {
            // The incident_key is taken by an open incident on the service: an earlier attempt created it.
            if let existing = try? await client.incidents(incidentKey: key, statuses: ["triggered", "acknowledged"]).first?["id"]?.stringValue {
                return ActionOutcome(createdIncidentId: existing, detail: "incident \(existing) already open for key \(key)")
            }
            throw error
        }
    }

    /// The integration user's id, found by the `From` email (responder requests name their requester).
    private func requester() async throws -> String {
        if let id = requesterId.withLock({ $0 }) { return id }
        let id = try await client.resolve(client.configuration.fromEmail, as: .users)
        requesterId.withLock { $0 = id }
        return id
    }
}

/// PagerDuty may shorten a long note in its webhook (`trimmed: true`); before a note is copied to Salesforce, the
/// whole text is read back through the REST API.
public final class FullNoteSink: OutboundSink {
    let wrapped: any OutboundSink
    let connections: PagerDutyConnections

    public init(wrapping sink: any OutboundSink, connections: PagerDutyConnections) {
        self.wrapped = sink
        self.connections = connections
    }

    public func perform(_ request: ActionRequest) async throws(ActionFailure) -> ActionOutcome {
        guard request.action == .syncNote, request.parameters["trimmed"] == .bool(true), let incident = request.incidentId,
            let noteId = request.parameters["noteId"]?.stringValue
        else { return try await wrapped.perform(request) }
        guard let client = await connections.current().client else {
            throw .retryable("the note was shortened by PagerDuty and PagerDuty is not connected to read it in full")
        }
        var full = request
        do {
            if let note = try await client.notes(incident).first(where: { $0["id"]?.stringValue == noteId }), let content = note["content"] {
                full.parameters["content"] = content
                full.parameters["trimmed"] = nil
            }
        } catch {
            throw error.isRetryable ? .retryable(error.description, retryAfter: error.retryAfter) : .permanent(error.description)
        }
        return try await wrapped.perform(full)
    }
}
