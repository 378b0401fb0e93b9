import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import SwitchboardCore

extension PagerDutySimulator {
    func incidentReference(_ incident: JSONObject) -> JSONValue {
        let id = incident["id"]?.stringValue ?? ""
        return .object([
            "id": .string(id), "type": "incident_reference", "summary": incident["title"] ?? .null, "self": .string("https://api.pagerduty.com/incidents/\(id)"),
            "html_url": incident["html_url"] ?? .null,
        ])
    }

    /// An incident as webhook data carries it: `number` instead of `incident_number`, `assignees` instead of assignments.
    func webhookData(_ incident: JSONObject) -> JSONValue {
        var data = JSONObject()
        for key in ["id", "type", "self", "html_url", "status", "incident_key", "created_at", "title", "service", "escalation_policy", "teams", "priority", "urgency", "conference_bridge", "resolve_reason"] {
            data[key] = incident[key] ?? .null
        }
        data["type"] = "incident"
        data["number"] = incident["incident_number"] ?? .null
        data["assignees"] = .array((incident["assignments"]?.arrayValue ?? []).compactMap { $0["assignee"] })
        return .object(data)
    }

    func logEntry(_ account: inout PagerDutyAccount, type: String, incident: JSONObject, agent: JSONValue?, summary: String, channel: JSONValue? = nil) -> JSONValue {
        var entry: JSONObject = [
            "id": .string(account.newId("R")), "type": .string(type), "summary": .string(summary), "created_at": .string(Instant(Date()).iso8601),
            "incident": incidentReference(incident),
        ]
        entry["agent"] = agent.map { PagerDutyAccount.reference($0, type: "user_reference", subdomain: account.subdomain, path: "users") } ?? .null
        entry["channel"] = channel ?? .object(["type": "api"])
        return .object(entry)
    }

    /// Records a change of the incident itself: a log entry and a webhook with the incident as data.
    func recordChange(_ incidentId: String, event: String, logType: String, agent: JSONValue?, summary: String) {
        guard
            let incident = state.withLock({ s -> JSONObject? in
                guard let incident = s.account.incidents[incidentId] else { return nil }
                if !logType.isEmpty { s.account.logEntries.append(logEntry(&s.account, type: logType, incident: incident, agent: agent, summary: summary)) }
                return incident
            })
        else { return }
        emit(event, incidentId: incidentId, agent: agent, data: webhookData(incident))
    }

    /// Queues a signed delivery of the event to every subscription that wants it.
    func emit(_ eventType: String, incidentId: String, agent: JSONValue?, data: JSONValue) {
        let targets = state.withLock { s -> [(PagerDutyAccount.Subscription, JSONValue)] in
            guard let incident = s.account.incidents[incidentId] else { return [] }
            let serviceId = incident["service"]?["id"]?.stringValue
            var out: [(PagerDutyAccount.Subscription, JSONValue)] = []
            for id in s.account.subscriptionOrder {
                guard let sub = s.account.subscriptions[id], sub.active, !sub.temporarilyDisabled, sub.events.contains(eventType) else { continue }
                if sub.filterType == "service_reference" && sub.filterId != serviceId { continue }
                let event: JSONValue = .object([
                    "event": .object([
                        "id": .string(s.account.newId("01EV")), "event_type": .string(eventType), "resource_type": "incident",
                        "occurred_at": .string(Instant(Date()).iso8601),
                        "agent": agent.map { PagerDutyAccount.reference($0, type: "user_reference", subdomain: s.account.subdomain, path: "users") } ?? .null,
                        "client": .null, "data": data,
                    ])
                ])
                out.append((sub, event))
            }
            return out
        }
        for (sub, event) in targets { enqueue(event, for: sub.id) }
    }

    /// Each subscription delivers in order, one at a time, like PagerDuty (later webhooks wait behind a failing one).
    private func enqueue(_ event: JSONValue, for subscription: String) {
        let continuation = state.withLock { s -> AsyncStream<JSONValue>.Continuation in
            s.deliveriesInFlight += 1
            if let existing = s.queues[subscription] { return existing }
            let (stream, continuation) = AsyncStream.makeStream(of: JSONValue.self)
            s.queues[subscription] = continuation
            Task { for await next in stream { await self.deliver(next, subscription: subscription) } }
            return continuation
        }
        if case .terminated = continuation.yield(event) { state.withLock { $0.deliveriesInFlight -= 1 } }
    }

    private func deliver(_ event: JSONValue, subscription: String) async {
        defer { state.withLock { $0.deliveriesInFlight -= 1 } }
        guard let sub = state.withLock({ $0.account.subscriptions[subscription] }), sub.active, !sub.temporarilyDisabled else { return }
        let body = event.serialized()
        let bytes = Array(body.utf8)
        let signature = "v1=" + HMAC<SHA256>.authenticationCode(for: bytes, using: SymmetricKey(data: Array(sub.secret.utf8))).hexString
        let webhookId = UUID().uuidString.lowercased()
        var dropped = false
        for attempt in 1...max(1, options.deliveryAttempts) {
            var request = HTTPClientRequest(url: sub.url)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.headers.add(name: "User-Agent", value: "PagerDuty-Webhook/V3.0")
            request.headers.add(name: "X-PagerDuty-Signature", value: signature)
            request.headers.add(name: "X-Webhook-Id", value: webhookId)
            request.headers.add(name: "X-Webhook-Subscription", value: sub.id)
            request.body = .bytes(ByteBuffer(bytes: bytes))
            var status: Int?
            do {
                let response = try await http.execute(request, timeout: options.webhookTimeout)
                _ = try? await response.body.collect(upTo: 1 << 20)
                status = Int(response.status.code)
            } catch {
                status = nil
            }
            state.withLock {
                $0.deliveries.append(
                    Delivery(
                        subscription: sub.id, webhookId: webhookId, eventType: event["event"]?["event_type"]?.stringValue ?? "",
                        incidentId: event["event"]?["data"]?["id"]?.stringValue ?? event["event"]?["data"]?["incident"]?["id"]?.stringValue, status: status, attempt: attempt))
            }
            if let status, (200..<300).contains(status) {
                state.withLock { $0.account.subscriptions[sub.id]?.consecutiveDrops = 0 }
                return
            }
            // Timeouts, 5xx and 429 are retried; any other answer drops the delivery at once.
            if let status, status != 429, !(500..<600).contains(status) {
                dropped = true
                break
            }
            if attempt < options.deliveryAttempts { try? await Task.sleep(for: options.retryDelay * attempt) }
            dropped = attempt == options.deliveryAttempts
        }
        if dropped {
            state.withLock { s in
                s.account.subscriptions[sub.id]?.consecutiveDrops += 1
                // Three consecutive drops disable the subscription; what happens meanwhile is discarded.
                if (s.account.subscriptions[sub.id]?.consecutiveDrops ?? 0) >= 3 { s.account.subscriptions[sub.id]?.temporarilyDisabled = true }
            }
        }
    }

    // MARK: People acting in PagerDuty (the control API and the tests)

    private func person(_ email: String?) -> JSONValue? {
        state.withLock { s in s.account.users.first { $0["email"]?.stringValue?.lowercased() == (email ?? "maeve@example.com").lowercased() } }
    }

    /// A user triggers an incident in PagerDuty's web app.
    @discardableResult
    public func triggerIncident(service: String, title: String, urgency: String = "high", user: String? = nil) -> JSONValue? {
        let serviceId = state.withLock { s in s.account.services.first { $0["id"]?.stringValue == service || $0["name"]?.stringValue == service }?["id"]?.stringValue } ?? service
        let body: JSONValue = .object(["incident": .object(["type": "incident", "title": .string(title), "urgency": .string(urgency), "service": .object(["id": .string(serviceId), "type": "service_reference"])])])
        let reply = apiLikeUser(method: "POST", path: "/incidents", body: body, user: user)
        return reply.body?["incident"]
    }

    /// A user acknowledges, resolves or reprioritises an incident, or adds a note, in the web app.
    @discardableResult
    public func act(_ incidentId: String, _ action: String, value: String? = nil, user: String? = nil) -> SimulatorReplyView {
        let reply: SimulatorReply
        switch action {
        case "acknowledge": reply = apiLikeUser(method: "PUT", path: "/incidents/\(incidentId)", body: .object(["incident": .object(["type": "incident_reference", "status": "acknowledged"])]), user: user)
        case "resolve": reply = apiLikeUser(method: "PUT", path: "/incidents/\(incidentId)", body: .object(["incident": .object(["type": "incident_reference", "status": "resolved"])]), user: user)
        case "priority":
            let pid = state.withLock { s in s.account.priorities.first { $0["name"]?.stringValue == value || $0["id"]?.stringValue == value }?["id"]?.stringValue } ?? (value ?? "")
            reply = apiLikeUser(method: "PUT", path: "/incidents/\(incidentId)", body: .object(["incident": .object(["type": "incident_reference", "priority": .object(["id": .string(pid), "type": "priority_reference"])])]), user: user)
        case "note": reply = addNoteAs(incidentId, content: value ?? "", agent: person(user) ?? .null)
        default: reply = .error(400, "unknown action \(action)", code: 2001)
        }
        return SimulatorReplyView(status: reply.status, body: reply.body)
    }

    /// Runs an API operation as a person using the web app: same effects, not recorded as an API request.
    private func apiLikeUser(method: String, path: String, body: JSONValue, user: String?) -> SimulatorReply {
        let email = person(user)?["email"]?.stringValue
        return routeAsUser(method: method, path: path, from: email, body: body)
    }
}

/// A reply, as tests and the control API see it.
public struct SimulatorReplyView: Sendable {
    public var status: Int
    public var body: JSONValue?
}
