import Foundation
import SwitchboardCore

extension PagerDutySimulator {
    /// Serves one REST request the way PagerDuty does.
    func api(method: String, path: String, query: [(name: String, value: String)], headers: [(name: String, value: String)], body: JSONValue?) async
        -> SimulatorReply
    {
        func header(_ name: String) -> String? { headers.first { $0.name.lowercased() == name.lowercased() }?.value }
        let violations = options.validator?.validate(method: method, path: path, query: query, headers: headers, body: body) ?? []
        let (fail, delay, limited) = state.withLock { s -> (Int?, Duration, (limit: Int, remaining: Int, reset: Int)?) in
            s.violations += violations
            var fail: Int?
            if s.failNext > 0 {
                s.failNext -= 1
                fail = s.failStatus
            }
            let now = Date()
            if now.timeIntervalSince(s.window.start) >= 60 { s.window = (now, 0) }
            s.window.count += 1
            let reset = max(1, 60 - Int(now.timeIntervalSince(s.window.start)))
            let remaining = s.rateLimitPerMinute - s.window.count
            return (fail, s.delay, (s.rateLimitPerMinute, remaining, reset))
        }
        if delay > .zero { try? await Task.sleep(for: delay) }
        var reply: SimulatorReply
        if let fail {
            reply = .error(fail, fail == 429 ? "Rate Limit Exceeded" : "Internal Server Error", code: fail == 429 ? 2020 : 2000)
        } else if header("Authorization") != "Token token=\(options.apiKey)" {
            reply = .error(401, "Unauthorized", code: 2006)
        } else if let limited, limited.remaining < 0 {
            reply = .error(429, "Rate Limit Exceeded", code: 2020)
        } else {
            reply = route(method: method, path: path, query: query, from: header("From"), body: body)
        }
        if let limited {
            // An injected 429 stands for a short burst: it says to wait one second.
            let reset = fail == 429 ? 1 : limited.reset
            reply.headers += [
                ("ratelimit-limit", String(limited.limit)), ("ratelimit-remaining", String(fail == 429 ? 0 : max(0, limited.remaining))),
                ("ratelimit-reset", String(reset)),
            ]
        }
        let status = reply.status
        let replyDelay = state.withLock { $0.replyDelay }
        if replyDelay > .zero { try? await Task.sleep(for: replyDelay) }
        state.withLock { $0.requests.append(RecordedRequest(method: method, path: path, query: query, headers: headers, body: body, status: status)) }
        return reply
    }

    func routeAsUser(method: String, path: String, from: String?, body: JSONValue?) -> SimulatorReply {
        route(method: method, path: path, query: [], from: from, body: body)
    }

    private func route(method: String, path: String, query: [(name: String, value: String)], from: String?, body: JSONValue?) -> SimulatorReply {
        let parts = path.split(separator: "/").map(String.init)
        func q(_ name: String) -> [String] { query.filter { $0.name == name }.map(\.value) }
        switch (method, parts.count, parts.first ?? "") {
        case ("GET", 1, "users"): return list("users", state.withLock { $0.account.users }, query: query, filter: "query")
        case ("GET", 1, "services"): return list("services", state.withLock { $0.account.services }, query: query, filter: "query")
        case ("GET", 1, "escalation_policies"): return list("escalation_policies", state.withLock { $0.account.escalationPolicies }, query: query, filter: "query")
        case ("GET", 1, "priorities"): return list("priorities", state.withLock { $0.account.priorities }, query: query, filter: nil)
        case ("GET", 1, "teams"): return list("teams", state.withLock { $0.account.teams }, query: query, filter: "query")
        case ("GET", 1, "incident_workflows"): return list("incident_workflows", state.withLock { $0.account.workflows }, query: query, filter: "query")
        case ("GET", 1, "business_services"): return list("business_services", state.withLock { $0.account.businessServices }, query: query, filter: nil)
        case ("GET", 2, "automation_actions") where parts[1] == "actions":
            return cursorList("actions", state.withLock { $0.account.automationActions }, query: query)
        case ("GET", 1, "status_dashboards"):
            return SimulatorReply(status: 200, body: .object(["status_dashboards": .array(state.withLock { $0.account.statusDashboards }), "limit": .number(100), "next_cursor": .null]))
        case ("GET", 3, "status_dashboards") where parts[2] == "service_impacts":
            return serviceImpacts()
        case ("POST", 1, "incidents"): return createIncident(body: body, from: from)
        case ("GET", 1, "incidents"): return listIncidents(query: query)
        case ("GET", 2, "incidents"):
            guard let incident = state.withLock({ $0.account.incidents[parts[1]] }) else { return notFound("Incident") }
            return SimulatorReply(status: 200, body: .object(["incident": .object(incident)]))
        case ("PUT", 2, "incidents"): return updateIncident(parts[1], body: body, from: from)
        case ("POST", 3, "incidents") where parts[2] == "notes": return addNote(parts[1], body: body, from: from)
        case ("GET", 3, "incidents") where parts[2] == "notes":
            guard state.withLock({ $0.account.incidents[parts[1]] }) != nil else { return notFound("Incident") }
            return SimulatorReply(status: 200, body: .object(["notes": .array(notes(parts[1]))]))
        case ("POST", 3, "incidents") where parts[2] == "responder_requests": return addResponders(parts[1], body: body, from: from)
        case ("POST", 3, "incidents") where parts[2] == "status_updates": return statusUpdate(parts[1], body: body, from: from)
        case ("PUT", 4, "incidents") where parts[2] == "custom_fields": return customFields(parts[1], body: body)
        case ("POST", 3, "incident_workflows") where parts[2] == "instances": return runWorkflow(parts[1], body: body)
        case ("POST", 4, "automation_actions") where parts[1] == "actions" && parts[3] == "invocations": return invoke(parts[2], body: body)
        case ("GET", 1, "log_entries"): return logEntries(query: query)
        case ("POST", 1, "webhook_subscriptions"): return createSubscription(body: body)
        case ("GET", 1, "webhook_subscriptions"):
            let subs = state.withLock { s in s.account.subscriptionOrder.compactMap { s.account.subscriptions[$0] } }
            return list("webhook_subscriptions", subs.map { subscriptionJSON($0, secret: false) }, query: query, filter: nil)
        case ("GET", 2, "webhook_subscriptions"):
            guard let sub = state.withLock({ $0.account.subscriptions[parts[1]] }) else { return notFound("Webhook subscription") }
            return SimulatorReply(status: 200, body: .object(["webhook_subscription": subscriptionJSON(sub, secret: false)]))
        case ("DELETE", 2, "webhook_subscriptions"):
            let removed = state.withLock { s -> Bool in
                guard s.account.subscriptions.removeValue(forKey: parts[1]) != nil else { return false }
                s.account.subscriptionOrder.removeAll { $0 == parts[1] }
                s.queues.removeValue(forKey: parts[1])?.finish()
                return true
            }
            return removed ? SimulatorReply(status: 204, body: nil) : notFound("Webhook subscription")
        case ("POST", 3, "webhook_subscriptions") where parts[2] == "enable":
            let sub = state.withLock { s -> PagerDutyAccount.Subscription? in
                s.account.subscriptions[parts[1]]?.temporarilyDisabled = false
                s.account.subscriptions[parts[1]]?.active = true
                s.account.subscriptions[parts[1]]?.consecutiveDrops = 0
                return s.account.subscriptions[parts[1]]
            }
            guard let sub else { return notFound("Webhook subscription") }
            return SimulatorReply(status: 200, body: .object(["webhook_subscription": subscriptionJSON(sub, secret: false)]))
        default:
            return .error(404, "Not Found", code: 2100, errors: ["\(method) \(path) is not served by this simulator"])
        }
    }

    func notFound(_ what: String) -> SimulatorReply { .error(404, "Not Found", code: 2100, errors: ["\(what) not found"]) }

    /// Classic pagination: `limit`, `offset`, `more`, `total`; `query` filters by name.
    private func list(_ key: String, _ items: [JSONValue], query: [(name: String, value: String)], filter: String?) -> SimulatorReply {
        func q(_ name: String) -> String? { query.first { $0.name == name }?.value }
        var all = items
        if let filter, let text = q(filter)?.lowercased(), !text.isEmpty {
            all = all.filter { ($0["name"]?.stringValue ?? "").lowercased().contains(text) || ($0["email"]?.stringValue ?? "").lowercased().contains(text) }
        }
        let limit = min(100, max(1, Int(q("limit") ?? "25") ?? 25))
        let offset = max(0, Int(q("offset") ?? "0") ?? 0)
        if offset + limit > 10_000 { return .error(400, "Invalid Input Provided", code: 2001, errors: ["Offset must be less than 10000."]) }
        let page = Array(all.dropFirst(offset).prefix(limit))
        return SimulatorReply(
            status: 200,
            body: .object([
                key: .array(page), "limit": .number(Double(limit)), "offset": .number(Double(offset)), "more": .bool(offset + page.count < all.count),
                "total": q("total") == "true" ? .number(Double(all.count)) : .null,
            ]))
    }

    /// Cursor pagination: `limit`, `cursor`, `next_cursor`.
    private func cursorList(_ key: String, _ items: [JSONValue], query: [(name: String, value: String)]) -> SimulatorReply {
        let limit = min(100, max(1, Int(query.first { $0.name == "limit" }?.value ?? "100") ?? 100))
        let start = Int(query.first { $0.name == "cursor" }?.value ?? "0") ?? 0
        let page = Array(items.dropFirst(start).prefix(limit))
        let next: JSONValue = start + page.count < items.count ? .string(String(start + page.count)) : .null
        return SimulatorReply(status: 200, body: .object([key: .array(page), "limit": .number(Double(limit)), "next_cursor": next]))
    }

    // MARK: Incidents

    private func user(byEmail email: String?) -> JSONValue? {
        state.withLock { s in s.account.users.first { $0["email"]?.stringValue?.lowercased() == email?.lowercased() } }
    }

    private func createIncident(body: JSONValue?, from: String?) -> SimulatorReply {
        guard let requester = user(byEmail: from) else {
            return .error(400, "Invalid Input Provided", code: 2001, errors: ["A valid user email must be given in the From header"])
        }
        guard let i = body?["incident"]?.objectValue, let title = i["title"]?.stringValue, !title.isEmpty, let serviceId = i["service"]?["id"]?.stringValue else {
            return .error(400, "Invalid Input Provided", code: 2001, errors: ["Incident must have a title and a service."])
        }
        if title.count > 1024 { return .error(400, "Invalid Input Provided", code: 2001, errors: ["Title is too long (maximum is 1024 characters)"]) }
        let result = state.withLock { s -> Result<JSONObject, SimulatorError> in
            guard let service = s.account.find(s.account.services, serviceId) else { return .failure(.init(400, "Service not found", 2001)) }
            if let key = i["incident_key"]?.stringValue,
                s.account.incidents.values.contains(where: {
                    $0["incident_key"]?.stringValue == key && $0["service"]?["id"]?.stringValue == serviceId && $0["status"]?.stringValue != "resolved"
                })
            {
                return .failure(.init(400, "Open incident with matching dedup key already exists on this service", 2001))
            }
            var policyId = service["escalation_policy"]?["id"]?.stringValue ?? "PEP0001"
            if let ep = i["escalation_policy"]?["id"]?.stringValue {
                guard s.account.find(s.account.escalationPolicies, ep) != nil else { return .failure(.init(400, "Escalation Policy Not Found", 1014)) }
                policyId = ep
            }
            var assigneeId: String?
            if let a = i["assignments"]?.arrayValue?.first?["assignee"]?["id"]?.stringValue { assigneeId = a }
            if assigneeId == nil, let policy = s.account.find(s.account.escalationPolicies, policyId) {
                assigneeId = policy["escalation_rules"]?.arrayValue?.first?["targets"]?.arrayValue?.first?["id"]?.stringValue
            }
            var priority: JSONValue = .null
            if let pid = i["priority"]?["id"]?.stringValue {
                guard let p = s.account.find(s.account.priorities, pid) else { return .failure(.init(400, "Invalid priority", 1020)) }
                priority = PagerDutyAccount.reference(p, type: "priority_reference", subdomain: s.account.subdomain, path: "priorities")
            }
            let id = "Q" + s.account.newId("SIM")
            let now = Instant(Date()).iso8601
            var incident: JSONObject = [
                "id": .string(id), "type": "incident", "summary": .string(title), "title": .string(title),
                "self": .string("https://api.pagerduty.com/incidents/\(id)"), "html_url": .string("https://\(s.account.subdomain).pagerduty.com/incidents/\(id)"),
                "incident_number": .number(Double(s.account.nextNumber)), "status": "triggered", "urgency": i["urgency"] ?? "high",
                "created_at": .string(now), "updated_at": .string(now), "last_status_change_at": .string(now),
                "incident_key": i["incident_key"] ?? .string(UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()),
                "service": PagerDutyAccount.reference(service, type: "service_reference", subdomain: s.account.subdomain, path: "services"),
                "priority": priority, "teams": .array([]), "acknowledgements": .array([]), "resolve_reason": .null,
                "conference_bridge": i["conference_bridge"] ?? .null,
            ]
            if let policy = s.account.find(s.account.escalationPolicies, policyId) {
                incident["escalation_policy"] = PagerDutyAccount.reference(policy, type: "escalation_policy_reference", subdomain: s.account.subdomain, path: "escalation_policies")
            }
            if let assigneeId, let u = s.account.find(s.account.users, assigneeId) {
                incident["assignments"] = .array([.object(["at": .string(now), "assignee": PagerDutyAccount.reference(u, type: "user_reference", subdomain: s.account.subdomain, path: "users")])])
            } else {
                incident["assignments"] = .array([])
            }
            if let details = i["body"]?["details"] { incident["body"] = .object(["type": "incident_body", "details": details]) }
            s.account.nextNumber += 1
            s.account.incidents[id] = incident
            s.account.incidentOrder.append(id)
            return .success(incident)
        }
        switch result {
        case .failure(let e): return .error(e.status, e.message, code: e.code)
        case .success(let incident):
            let id = incident["id"]?.stringValue ?? ""
            recordChange(id, event: "incident.triggered", logType: "trigger_log_entry", agent: requester, summary: "Triggered through the API")
            return SimulatorReply(status: 201, body: .object(["incident": .object(incident)]))
        }
    }

    private func listIncidents(query: [(name: String, value: String)]) -> SimulatorReply {
        let statuses = query.filter { $0.name == "statuses[]" }.map(\.value)
        let services = query.filter { $0.name == "service_ids[]" }.map(\.value)
        let key = query.first { $0.name == "incident_key" }?.value
        let all = incidents.filter { i in
            (statuses.isEmpty || statuses.contains(i["status"]?.stringValue ?? ""))
                && (services.isEmpty || services.contains(i["service"]?["id"]?.stringValue ?? ""))
                && (key == nil || i["incident_key"]?.stringValue == key)
        }
        return list("incidents", all, query: query, filter: nil)
    }

    private func updateIncident(_ id: String, body: JSONValue?, from: String?) -> SimulatorReply {
        guard let agent = user(byEmail: from) else {
            return .error(400, "Invalid Input Provided", code: 2001, errors: ["A valid user email must be given in the From header"])
        }
        guard let fields = body?["incident"]?.objectValue else { return .error(400, "Invalid Input Provided", code: 2001) }
        var changes: [(event: String, log: String, summary: String)] = []
        let result = state.withLock { s -> Result<JSONObject, SimulatorError> in
            guard var incident = s.account.incidents[id] else { return .failure(.init(404, "Incident Not Found", 2100)) }
            let current = incident["status"]?.stringValue ?? "triggered"
            let now = Instant(Date()).iso8601
            if let status = fields["status"]?.stringValue {
                switch (current, status) {
                case ("resolved", "resolved"): return .failure(.init(400, "Incident Already Resolved", 1001))
                case ("acknowledged", "acknowledged"): return .failure(.init(400, "Incident Already Acknowledged", 1002))
                case (_, "acknowledged"):
                    changes.append((current == "resolved" ? "incident.reopened" : "incident.acknowledged", "acknowledge_log_entry", "Acknowledged"))
                case (_, "resolved"): changes.append(("incident.resolved", "resolve_log_entry", fields["resolution"]?.stringValue ?? "Resolved"))
                case ("resolved", "triggered"): changes.append(("incident.reopened", "reopen_log_entry", "Reopened"))
                case (_, "triggered"): changes.append(("incident.unacknowledged", "unacknowledge_log_entry", "Unacknowledged"))
                default: return .failure(.init(400, "Invalid Status", 1003))
                }
                incident["status"] = .string(status)
                incident["last_status_change_at"] = .string(now)
                if status == "resolved" { incident["resolved_at"] = .string(now) }
            }
            if let priority = fields["priority"] {
                let pid = priority["id"]?.stringValue
                let name = priority.stringValue
                guard let p = s.account.priorities.first(where: { $0["id"]?.stringValue == pid || ($0["name"]?.stringValue == name && name != nil) }) else {
                    return .failure(.init(400, "Invalid priority", 1020))
                }
                incident["priority"] = PagerDutyAccount.reference(p, type: "priority_reference", subdomain: s.account.subdomain, path: "priorities")
                changes.append(("incident.priority_updated", "priority_change_log_entry", "Priority changed"))
            }
            if let urgency = fields["urgency"]?.stringValue {
                guard ["high", "low"].contains(urgency) else { return .failure(.init(400, "Invalid Input Provided", 2001)) }
                incident["urgency"] = .string(urgency)
            }
            if let title = fields["title"] { incident["title"] = title }
            if let bridge = fields["conference_bridge"] {
                incident["conference_bridge"] = bridge
                changes.append(("incident.conference_bridge.updated", "", ""))
            }
            if let ep = fields["escalation_policy"]?["id"]?.stringValue {
                guard let policy = s.account.find(s.account.escalationPolicies, ep) else { return .failure(.init(400, "Escalation Policy Not Found", 1014)) }
                incident["escalation_policy"] = PagerDutyAccount.reference(policy, type: "escalation_policy_reference", subdomain: s.account.subdomain, path: "escalation_policies")
                changes.append(("incident.delegated", "delegate_log_entry", "Delegated"))
            }
            if let assignments = fields["assignments"]?.arrayValue {
                var out: [JSONValue] = []
                for a in assignments {
                    guard let uid = a["assignee"]?["id"]?.stringValue, let u = s.account.find(s.account.users, uid) else {
                        return .failure(.init(400, "Invalid Input Provided", 2001))
                    }
                    out.append(.object(["at": .string(now), "assignee": PagerDutyAccount.reference(u, type: "user_reference", subdomain: s.account.subdomain, path: "users")]))
                }
                incident["assignments"] = .array(out)
                changes.append(("incident.reassigned", "assign_log_entry", "Reassigned"))
            }
            if let level = fields["escalation_level"], level != .null { changes.append(("incident.escalated", "escalate_log_entry", "Escalated")) }
            incident["updated_at"] = .string(now)
            s.account.incidents[id] = incident
            return .success(incident)
        }
        switch result {
        case .failure(let e): return .error(e.status, e.message, code: e.code)
        case .success(let incident):
            for change in changes {
                if change.event == "incident.conference_bridge.updated" {
                    let bridge = incident["conference_bridge"] ?? .null
                    var numbers: [JSONValue] = []
                    if let n = bridge["conference_number"]?.stringValue { numbers.append(.object(["label": "", "number": .string(n)])) }
                    emit(
                        "incident.conference_bridge.updated", incidentId: id, agent: agent,
                        data: .object([
                            "type": "incident_conference_bridge", "conference_url": bridge["conference_url"] ?? .null, "conference_numbers": .array(numbers),
                            "incident": incidentReference(incident),
                        ]))
                } else {
                    recordChange(id, event: change.event, logType: change.log, agent: agent, summary: change.summary)
                }
            }
            return SimulatorReply(status: 200, body: .object(["incident": .object(incident)]))
        }
    }

    private func addNote(_ id: String, body: JSONValue?, from: String?) -> SimulatorReply {
        guard let agent = user(byEmail: from) else { return .error(400, "Invalid Input Provided", code: 2001, errors: ["A valid From header is required"]) }
        guard let content = body?["note"]?["content"]?.stringValue, !content.isEmpty else { return .error(400, "Invalid Input Provided", code: 2001) }
        return addNoteAs(id, content: content, agent: agent)
    }

    func addNoteAs(_ id: String, content: String, agent: JSONValue) -> SimulatorReply {
        let note = state.withLock { s -> JSONValue? in
            guard let incident = s.account.incidents[id] else { return nil }
            let noteId = s.account.newId("PN")
            let note: JSONValue = .object([
                "id": .string(noteId), "user": PagerDutyAccount.reference(agent, type: "user_reference", subdomain: s.account.subdomain, path: "users"),
                "channel": .object(["summary": "The PagerDuty website or APIs"]), "content": .string(content), "created_at": .string(Instant(Date()).iso8601),
            ])
            s.account.notes[id, default: []].append(note)
            s.account.logEntries.append(
                logEntry(&s.account, type: "annotate_log_entry", incident: incident, agent: agent, summary: content, channel: .object(["type": "note", "summary": .string(content)])))
            return note
        }
        guard let note, let incident = state.withLock({ $0.account.incidents[id] }) else { return notFound("Incident") }
        emit(
            "incident.annotated", incidentId: id, agent: agent,
            data: .object(["type": "incident_note", "id": note["id"] ?? .null, "content": .string(content), "trimmed": .bool(false), "incident": incidentReference(incident)]))
        return SimulatorReply(status: 200, body: .object(["note": note]))
    }

    private func addResponders(_ id: String, body: JSONValue?, from: String?) -> SimulatorReply {
        guard let incident = state.withLock({ $0.account.incidents[id] }) else { return notFound("Incident") }
        guard let requester = body?["requester_id"]?.stringValue, let targets = body?["responder_request_targets"]?.arrayValue, !targets.isEmpty else {
            return .error(400, "Invalid Input Provided", code: 2001)
        }
        let agent = state.withLock { s in s.account.find(s.account.users, requester) } ?? user(byEmail: from) ?? .null
        var out: [JSONValue] = []
        for t in targets {
            let target = t["responder_request_target"] ?? t
            guard let tid = target["id"]?.stringValue else { return .error(400, "Invalid Input Provided", code: 2001) }
            out.append(.object(["responder_request_target": .object(["id": .string(tid), "type": target["type"] ?? "user_reference", "incidents_responders": .array([])])]))
            let isPolicy = target["type"]?.stringValue == "escalation_policy_reference"
            let responder = state.withLock { s in isPolicy ? s.account.find(s.account.escalationPolicies, tid) : s.account.find(s.account.users, tid) }
            emit(
                "incident.responder.added", incidentId: id, agent: agent,
                data: .object([
                    "type": "incident_responder", "incident": incidentReference(incident), "message": body?["message"] ?? .null, "state": "pending",
                    isPolicy ? "escalation_policy" : "user": responder.map { .object(["id": $0["id"] ?? .null, "summary": $0["name"] ?? .null, "type": isPolicy ? "escalation_policy_reference" : "user_reference"]) } ?? .null,
                ]))
        }
        state.withLock { s in s.account.logEntries.append(logEntry(&s.account, type: "responder_request_log_entry", incident: incident, agent: agent, summary: "Requested responders")) }
        return SimulatorReply(
            status: 200,
            body: .object([
                "responder_request": .object([
                    "incident": incidentReference(incident), "requester": agent, "requested_at": .string(Instant(Date()).iso8601), "message": body?["message"] ?? .null,
                    "responder_request_targets": .array(out),
                ])
            ]))
    }

    private func statusUpdate(_ id: String, body: JSONValue?, from: String?) -> SimulatorReply {
        guard let incident = state.withLock({ $0.account.incidents[id] }) else { return notFound("Incident") }
        guard let message = body?["message"]?.stringValue else { return .error(400, "Invalid Input Provided", code: 2001) }
        let agent = user(byEmail: from) ?? .null
        let update: JSONValue = .object(["id": .string(state.withLock { $0.account.newId("PSU") }), "message": .string(message), "created_at": .string(Instant(Date()).iso8601), "sender": agent])
        emit("incident.status_update_published", incidentId: id, agent: agent, data: .object(["type": "incident_status_update", "id": update["id"] ?? .null, "message": .string(message), "trimmed": .bool(false), "incident": incidentReference(incident)]))
        return SimulatorReply(status: 200, body: .object(["status_update": update]))
    }

    private func customFields(_ id: String, body: JSONValue?) -> SimulatorReply {
        guard let incident = state.withLock({ $0.account.incidents[id] }) else { return notFound("Incident") }
        let fields = body?["custom_fields"]?.arrayValue ?? []
        state.withLock { $0.account.customFields[id] = fields }
        emit("incident.custom_field_values.updated", incidentId: id, agent: nil, data: .object(["type": "incident_field_values", "custom_fields": .array(fields), "changed_custom_fields": .array(fields), "incident": incidentReference(incident)]))
        return SimulatorReply(status: 201, body: .object(["custom_fields": .array(fields)]))
    }

    private func runWorkflow(_ workflowId: String, body: JSONValue?) -> SimulatorReply {
        guard state.withLock({ s in s.account.find(s.account.workflows, workflowId) }) != nil else { return notFound("Incident workflow") }
        guard let incidentId = body?["incident_workflow_instance"]?["incident"]?["id"]?.stringValue, let incident = state.withLock({ $0.account.incidents[incidentId] }) else {
            return .error(400, "Invalid Input Provided", code: 2001)
        }
        let instance = state.withLock { $0.account.newId("PWI") }
        let data: JSONValue = .object(["type": "incident_workflow_instance", "id": .string(instance), "incident": incidentReference(incident), "incident_workflow": .object(["id": .string(workflowId), "type": "incident_workflow_reference"])])
        emit("incident.workflow.started", incidentId: incidentId, agent: nil, data: data)
        emit("incident.workflow.completed", incidentId: incidentId, agent: nil, data: data)
        return SimulatorReply(status: 201, body: .object(["incident_workflow_instance": .object(["id": .string(instance), "type": "incident_workflow_instance", "incident": incidentReference(incident)])]))
    }

    private func invoke(_ actionId: String, body: JSONValue?) -> SimulatorReply {
        guard let action = state.withLock({ s in s.account.find(s.account.automationActions, actionId) }) else { return notFound("Automation action") }
        guard let incidentId = body?["invocation"]?["metadata"]?["incident_id"]?.stringValue, let incident = state.withLock({ $0.account.incidents[incidentId] }) else {
            return .error(400, "Invalid Input Provided", code: 2001)
        }
        let id = state.withLock { $0.account.newId("PIN") }
        let invocation: JSONValue = .object([
            "id": .string(id), "type": "invocation", "action_id": .string(actionId), "state": "queued", "action_snapshot": .object(["name": action["name"] ?? .null]),
            "metadata": .object(["incident": .object(["id": .string(incidentId), "type": "incident_reference"])]),
            "timing": .array([.object(["state": "queued", "timestamp": .string(Instant(Date()).iso8601)])]),
        ])
        emit("incident.action_invocation.created", incidentId: incidentId, agent: nil, data: .object(["type": "incident_action_invocation", "id": .string(id), "incident": incidentReference(incident), "action": .object(["id": .string(actionId), "type": "action_reference"]), "state": "queued"]))
        return SimulatorReply(status: 201, body: .object(["invocation": invocation]))
    }

    private func serviceImpacts() -> SimulatorReply {
        let services = state.withLock { s -> [JSONValue] in
            s.account.businessServices.map { bs in
                let id = bs["id"]?.stringValue ?? ""
                let impacted = !(s.account.impacts[id] ?? []).filter { s.account.incidents[$0]?["status"]?.stringValue != "resolved" }.isEmpty
                return .object(["id": .string(id), "name": bs["name"] ?? .null, "type": "business_service", "status": impacted ? "impacted" : "not_impacted", "additional_fields": .object(["highest_impacting_priority": .null])])
            }
        }
        return SimulatorReply(status: 200, body: .object(["services": .array(services), "limit": .number(200), "more": .bool(false), "additional_fields": .object(["total_impacted_count": .number(Double(services.filter { $0["status"] == "impacted" }.count))])]))
    }

    private func logEntries(query: [(name: String, value: String)]) -> SimulatorReply {
        let since = query.first { $0.name == "since" }.flatMap { Instant(iso8601: $0.value) }
        let until = query.first { $0.name == "until" }.flatMap { Instant(iso8601: $0.value) }
        let entries = state.withLock { $0.account.logEntries }.filter { e in
            guard let at = e["created_at"]?.stringValue.flatMap({ Instant(iso8601: $0) }) else { return true }
            return (since.map { at >= $0 } ?? true) && (until.map { at < $0 } ?? true)
        }
        // PagerDuty lists log entries newest first.
        return list("log_entries", entries.reversed(), query: query, filter: nil)
    }

    // MARK: Webhook subscriptions

    private func createSubscription(body: JSONValue?) -> SimulatorReply {
        guard let w = body?["webhook_subscription"], let url = w["delivery_method"]?["url"]?.stringValue,
            let events = w["events"]?.arrayValue?.compactMap(\.stringValue), !events.isEmpty, let filterType = w["filter"]?["type"]?.stringValue
        else { return .error(400, "Invalid Input Provided", code: 2001, errors: ["delivery_method.url, events and filter are required"]) }
        if filterType != "account_reference" && w["filter"]?["id"]?.stringValue == nil {
            return .error(400, "Invalid Input Provided", code: 2001, errors: ["filter.id is required for \(filterType)"])
        }
        let sub = state.withLock { s -> PagerDutyAccount.Subscription in
            let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
            let secret = String((0..<48).map { _ in alphabet.randomElement() ?? Character("A") })
            let sub = PagerDutyAccount.Subscription(
                id: s.account.newId("PWS"), url: url, events: events, filterType: filterType, filterId: w["filter"]?["id"]?.stringValue, secret: secret,
                description: w["description"]?.stringValue ?? "")
            s.account.subscriptions[sub.id] = sub
            s.account.subscriptionOrder.append(sub.id)
            return sub
        }
        return SimulatorReply(status: 200, body: .object(["webhook_subscription": subscriptionJSON(sub, secret: true)]))
    }

    func subscriptionJSON(_ s: PagerDutyAccount.Subscription, secret: Bool) -> JSONValue {
        var filter: JSONObject = ["type": .string(s.filterType)]
        if let id = s.filterId { filter["id"] = .string(id) }
        return .object([
            "id": .string(s.id), "type": "webhook_subscription", "active": .bool(s.active), "description": .string(s.description),
            "delivery_method": .object([
                "id": .string("PDM" + s.id.dropFirst(3)), "type": "http_delivery_method", "url": .string(s.url), "secret": secret ? .string(s.secret) : .null,
                "temporarily_disabled": .bool(s.temporarilyDisabled), "custom_headers": .array([]),
            ]),
            "events": .array(s.events.map(JSONValue.string)), "filter": .object(filter),
        ])
    }
}

struct SimulatorError: Error {
    var status: Int
    var message: String
    var code: Int

    init(_ status: Int, _ message: String, _ code: Int) {
        self.status = status
        self.message = message
        self.code = code
    }
}
