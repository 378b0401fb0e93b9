import Foundation
import SwitchboardCore

extension PagerDutySimulator {
    /// The simulator's own endpoints, under `/_simulator` (not part of PagerDuty's API, not checked against it):
    ///
    /// - `GET /_simulator/state`: incidents, subscriptions, deliveries, request count, violations.
    /// - `POST /_simulator/incidents` `{"service", "title", "urgency"?, "user"?}`: a person triggers an incident.
    /// - `POST /_simulator/incidents/{id}/{acknowledge|resolve|note|priority}` `{"user"?, "value"?}`: a person acts.
    /// - `POST /_simulator/fail` `{"count", "status"?}`, `/_simulator/delay` `{"milliseconds", "after"?}` (after: the change is made and its webhook sent, then the answer waits),
    ///   `/_simulator/rate-limit` `{"perMinute"}`: make it misbehave.
    func control(method: String, path: String, body: JSONValue?) async -> SimulatorReply {
        let parts = path.split(separator: "/").map(String.init).dropFirst()
        func number(_ key: String) -> Int? { if case .number(let n)? = body?[key] { Int(n) } else { body?[key]?.stringValue.flatMap { Int($0) } } }
        switch (method, Array(parts)) {
        case ("GET", ["state"]):
            return SimulatorReply(status: 200, body: stateJSON())
        case ("POST", ["incidents"]):
            guard let service = body?["service"]?.stringValue, let title = body?["title"]?.stringValue else {
                return .error(400, "service and title are required", code: 2001)
            }
            guard let incident = triggerIncident(service: service, title: title, urgency: body?["urgency"]?.stringValue ?? "high", user: body?["user"]?.stringValue) else {
                return .error(400, "the incident could not be created", code: 2001)
            }
            return SimulatorReply(status: 201, body: .object(["incident": incident]))
        case ("POST", let p) where p.count == 3 && p[0] == "incidents":
            let reply = act(p[1], p[2], value: body?["value"]?.stringValue ?? body?["content"]?.stringValue, user: body?["user"]?.stringValue)
            return SimulatorReply(status: reply.status, body: reply.body)
        case ("POST", ["fail"]):
            failNext(number("count") ?? 1, status: number("status") ?? 500)
            return SimulatorReply(status: 200, body: .object(["ok": .bool(true)]))
        case ("POST", ["delay"]):
            if body?["after"] == .bool(true) {
                setReplyDelay(.milliseconds(number("milliseconds") ?? 0))
            } else {
                setDelay(.milliseconds(number("milliseconds") ?? 0))
            }
            return SimulatorReply(status: 200, body: .object(["ok": .bool(true)]))
        case ("POST", ["rate-limit"]):
            setRateLimit(perMinute: number("perMinute") ?? 960)
            return SimulatorReply(status: 200, body: .object(["ok": .bool(true)]))
        default:
            return .error(404, "unknown simulator endpoint \(method) \(path)", code: 2100)
        }
    }

    static func deliveryJSON(_ d: Delivery) -> JSONValue {
        var o: JSONObject = ["subscription": .string(d.subscription), "webhookId": .string(d.webhookId), "eventType": .string(d.eventType)]
        o["incident"] = d.incidentId.map(JSONValue.string) ?? .null
        o["status"] = d.status.map { .number(Double($0)) } ?? .null
        o["attempt"] = .number(Double(d.attempt))
        return .object(o)
    }

    func stateJSON() -> JSONValue {
        state.withLock { s in
            .object([
                "incidents": .array(s.account.incidentOrder.compactMap { s.account.incidents[$0].map(JSONValue.object) }),
                "subscriptions": .array(s.account.subscriptionOrder.compactMap { s.account.subscriptions[$0] }.map { subscriptionJSON($0, secret: false) }),
                "deliveries": .array(s.deliveries.map(Self.deliveryJSON)),
                "requests": .number(Double(s.requests.count)),
                "violations": .array(s.violations.map { .string($0.description) }),
            ])
        }
    }
}
