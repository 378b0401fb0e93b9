import Foundation
import SQLKit
import SwitchboardCore
import SwitchboardStorage

/// Actions asked for directly rather than planned by rules: the Salesforce package's Flow action ("Run Switchboard
/// action"). They go into the same outbox as planned actions, in the same order as the record's other jobs, so
/// retries, dead letters and idempotency are the same.
public enum RequestedActions {
    /// One requested action on a record.
    public struct Request: Sendable, Hashable {
        public var action: ActionKind
        public var object: String
        public var recordId: String
        public var parameters: JSONObject

        public init(action: ActionKind, object: String, recordId: String, parameters: JSONObject) {
            self.action = action
            self.object = object
            self.recordId = SalesforceId.normalized(recordId)
            self.parameters = parameters
        }
    }

    /// The PagerDuty actions a Flow may ask for (Salesforce-side actions are the Flow's own business).
    public static let allowed: [ActionKind] = [
        .createIncident, .acknowledge, .resolve, .setPriority, .setUrgency, .runIncidentWorkflow, .runAutomationAction, .reassign, .addResponders,
    ]

    /// Standard objects by Id key prefix, for requests that leave `object` out.
    static let keyPrefixes = ["500": "Case", "00a": "CaseComment", "006": "Opportunity", "001": "Account", "003": "Contact"]

    /// Reads `{"orgId": "00D…", "requests": [{"action", "object"?, "recordId", "parameters"?}]}`, naming every bad
    /// request by its position.
    public static func decode(_ body: JSONValue) throws(DocumentError) -> (orgId: String?, requests: [Request]) {
        guard let list = body["requests"]?.arrayValue else {
            throw DocumentError("expected {\"orgId\": \"00D…\", \"requests\": [{\"action\", \"recordId\", \"parameters\"}]}")
        }
        guard list.count <= 200 else { throw DocumentError("at most 200 requests a call; got \(list.count)") }
        var problems: [String] = []
        var requests: [Request] = []
        for (index, item) in list.enumerated() {
            let at = "requests[\(index)]"
            guard let name = item["action"]?.stringValue else {
                problems.append("\(at): `action` is missing")
                continue
            }
            guard let action = ActionKind(rawValue: name), allowed.contains(action) else {
                problems.append("\(at): unknown action \"\(name)\"; expected one of \(allowed.map(\.rawValue).joined(separator: ", "))")
                continue
            }
            guard let rawId = item["recordId"]?.stringValue, SalesforceId.isValid(rawId) else {
                problems.append("\(at): `recordId` must be a 15- or 18-character Salesforce Id")
                continue
            }
            let parameters = item["parameters"]?.objectValue ?? [:]
            let known = Set(action.parameters.map(\.name))
            if let unknown = parameters.keys.first(where: { !known.contains($0) }) {
                problems.append("\(at): \(name) takes no parameter \"\(unknown)\"; it takes \(known.sorted().joined(separator: ", "))")
                continue
            }
            if let missing = action.parameters.first(where: { $0.required && (parameters[$0.name] ?? .null).isNull }) {
                problems.append("\(at): \(name) needs the parameter \"\(missing.name)\"")
                continue
            }
            guard let object = item["object"]?.stringValue ?? keyPrefixes[String(rawId.prefix(3))] else {
                problems.append("\(at): `object` is missing and the Id's prefix does not name a standard object")
                continue
            }
            requests.append(Request(action: action, object: object, recordId: rawId, parameters: parameters))
        }
        guard problems.isEmpty else { throw DocumentError(problems.joined(separator: "; ")) }
        return (body["orgId"]?.stringValue, requests)
    }

    /// Puts the requests in the outbox in one transaction. `deliveryKey` identifies the post, so a redelivered post
    /// enqueues nothing twice. Returns how many jobs are new.
    public static func enqueue(
        _ requests: [Request], orgId: String?, deliveryKey: String, maxAttempts: Int, now: Int64, on db: any SQLDatabase
    ) async throws -> Int {
        let jobs = requests.enumerated().map { index, request in
            // createIncident makes the incident and links it to the record; the others act on the record's incident.
            let target: ActionTarget = request.action == .createIncident ? .creation : .createdIncident(object: request.object, recordId: request.recordId)
            let planned = PlannedAction(
                action: request.action, ruleset: "flow", rule: "Run Switchboard action", target: target, sourceObject: request.object,
                sourceId: request.recordId, parameters: request.parameters)
            return NewOutboundJob(
                idempotencyKey: "flow-\(deliveryKey)-\(index)", eventId: nil, partitionKey: "sf:\(request.object):\(request.recordId)",
                action: request.action.rawValue, ruleset: "flow", rule: "Run Switchboard action", payload: JobPayload.encode(planned, orgId: orgId),
                receivedAt: now)
        }
        return try await JobStore.enqueue(jobs, maxAttempts: maxAttempts, now: now, on: db)
    }
}
