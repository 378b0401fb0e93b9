import Crypto
import Foundation
import Hummingbird
import SwitchboardCore
import SwitchboardPagerDuty
import SwitchboardPipeline
import SwitchboardSalesforce
import SwitchboardStorage

/// `/healthz`, `/readyz`, `/metrics`, `/status`.
struct OperationsRoutes {
    let switchboard: Switchboard

    func register(on router: Router<SwitchboardRequestContext>) {
        router.get("healthz") { _, _ in jsonResponse(.ok, ["status": "ok"]) }
        router.get("readyz") { _, _ in
            do {
                try await withDeadline(.seconds(2)) { try await switchboard.database.ping() }
                return jsonResponse(.ok, ["ready": .bool(true), "database": .string(switchboard.database.displayName)])
            } catch {
                return jsonResponse(.serviceUnavailable, ["ready": .bool(false), "reason": .string("the database does not answer: \(error)")])
            }
        }
        router.get("metrics") { _, _ in
            ProcessMemory.current().record(to: switchboard.registry)
            var buffer: [UInt8] = []
            buffer.reserveCapacity(16_384)
            switchboard.registry.emit(into: &buffer)
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: buffer)))
        }
        router.get("status") { _, _ in
            let (events, jobs, dead, suspensions, version) = try await switchboard.database.read { db in
                (
                    try await EventStore.counts(on: db), try await JobStore.counts(on: db), try await JobStore.deadLetters(limit: 1000, on: db).count,
                    try await HopStore.suspensions(on: db), try await RulesStore.currentVersionNumber(on: db)
                )
            }
            func object(_ d: [String: Int]) -> JSONValue {
                var o = JSONObject()
                for (k, v) in d.sorted(by: { $0.key < $1.key }) { o[k] = .number(Double(v)) }
                return .object(o)
            }
            var orgs: [JSONValue] = []
            let budgets = switchboard.salesforceClients.budgets
            for connection in await switchboard.salesforce.refreshed(olderThan: .zero) {
                var o: JSONObject = [
                    "orgId": .string(connection.orgId), "capture": .string(connection.capture.rawValue),
                    "objects": .array(connection.objects.map(JSONValue.string)), "apiAccess": .bool(connection.hasAPIAccess),
                ]
                if let budget = budgets.first(where: { $0.orgId == connection.orgId })?.budget {
                    o["apiBudget"] = .object([
                        "used": budget.used.map { .number(Double($0)) } ?? .null, "max": budget.max.map { .number(Double($0)) } ?? .null,
                        "exhausted": .bool(budget.exhausted),
                    ])
                }
                orgs.append(.object(o))
            }
            return jsonResponse(
                .ok,
                [
                    "salesforce": .array(orgs),
                    "events": object(events), "jobs": object(jobs), "deadLetters": .number(Double(dead)),
                    "rulesVersion": version.map { .number(Double($0)) } ?? .null,
                    "suspendedRules": .array(
                        suspensions.map { .object(["rule": .string($0.ruleKey), "subject": .string($0.subject), "reason": .string($0.reason)]) }),
                ])
        }
    }
}

/// The webhook endpoints: the raw event is committed durably, then acknowledged.
struct IntakeRoutes {
    let switchboard: Switchboard

    func register(on router: Router<SwitchboardRequestContext>) {
        router.post("webhooks/pagerduty") { request, context in try await pagerDuty(request, context) }
        router.post("webhooks/salesforce") { request, context in try await salesforce(request, context) }
        router.post("webhooks/salesforce/actions") { request, context in try await salesforceActions(request, context) }
    }

    private func readJSON(_ request: Request, limit: Int, source: String) async throws -> (ByteBuffer, JSONValue) {
        let contentType = request.headers[.contentType]?.lowercased() ?? ""
        guard contentType.hasPrefix("application/json") else {
            try await logRejection(source, "refused a delivery with content type \"\(contentType)\"; expected application/json", payload: nil)
            throw IntakeError(.unsupportedMediaType, "send the body as application/json")
        }
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: limit)
        } catch {
            try await logRejection(source, "refused a delivery larger than \(limit) bytes", payload: nil)
            throw IntakeError(.contentTooLarge, "the body is larger than \(limit) bytes")
        }
        do {
            return (body, try JSONParser.parseValue(bytes: Array(buffer: body)))
        } catch {
            try await logRejection(source, "refused malformed JSON: \(error)", payload: String(buffer: body))
            throw IntakeError(.badRequest, "the body is not valid JSON: \(error)")
        }
    }

    private func logRejection(_ source: String, _ message: String, payload: String?) async throws {
        guard let entry = switchboard.log.entry(.error, "intake", "\(source): \(message)", payload: payload.map { String($0.prefix(65_536)) }) else { return }
        _ = try? await switchboard.intake.accept([], logs: [entry])
    }

    private func pagerDuty(_ request: Request, _ context: SwitchboardRequestContext) async throws -> Response {
        let started = ContinuousClock.now
        let (body, json) = try await readJSON(request, limit: switchboard.configuration.pagerDutyMaxBodyBytes, source: "PagerDuty")
        // With a subscription connected (or secrets configured), only signed deliveries are accepted.
        var secrets = await switchboard.pagerDuty.webhookSecrets()
        var verdict = WebhookSignature.verify(body: Array(buffer: body), header: request.header("X-PagerDuty-Signature"), secrets: secrets)
        if verdict != .valid {
            // The subscription may have been created moments ago, with a secret this process has not read yet.
            let fresh = await switchboard.pagerDuty.refreshed()
            let freshSecrets = switchboard.configuration.pagerDutyWebhookSecrets + (fresh.connection?.webhookSecrets ?? [])
            if freshSecrets != secrets {
                secrets = freshSecrets
                verdict = WebhookSignature.verify(body: Array(buffer: body), header: request.header("X-PagerDuty-Signature"), secrets: secrets)
            }
        }
        if !secrets.isEmpty {
            switch verdict {
            case .valid: break
            case .missing:
                try await logRejection("PagerDuty", "refused an unsigned delivery (no X-PagerDuty-Signature v1 entry)", payload: String(buffer: body))
                throw IntakeError(.badRequest, "missing X-PagerDuty-Signature")
            case .mismatch:
                try await logRejection("PagerDuty", "refused a delivery whose signature matches no secret", payload: String(buffer: body))
                throw IntakeError(.forbidden, "the signature does not match")
            }
        }
        guard let eventId = request.header("X-Webhook-Id") ?? json["event"]?["id"]?.stringValue,
            let eventType = json["event"]?["event_type"]?.stringValue
        else {
            try await logRejection("PagerDuty", "refused a body that is not a webhook v3 event", payload: String(buffer: body))
            throw IntakeError(.badRequest, "expected a PagerDuty webhook v3 body: {\"event\": {\"id\", \"event_type\", …}}")
        }
        let incident = PagerDutyIntake.incidentId(of: json)
        let partition = "pd:" + (incident ?? json["event"]?["data"]?["id"]?.stringValue ?? eventId)
        let payload = String(buffer: body)
        // The entry shows the stored event's payload rather than a second copy of it.
        let entry = switchboard.log.entry(.info, "intake", "PagerDuty delivery \(eventType) \(eventId)", incidentId: incident)
        let outcome = try await accept(
            [NewInboundEvent(source: .pagerduty, externalId: eventId, partitionKey: partition, payload: payload)], logs: entry.map { [$0] } ?? [],
            logsReferToEvent: true)
        switchboard.metrics.recordIntake(nanoseconds: (ContinuousClock.now - started).nanosecondsValue)
        switch outcome[0] {
        case .accepted(let id):
            switchboard.metrics.recordReceived(source: "pagerduty", duplicate: false)
            return jsonResponse(.accepted, ["status": "accepted", "id": .number(Double(id))])
        case .duplicate:
            switchboard.metrics.recordReceived(source: "pagerduty", duplicate: true)
            return jsonResponse(.ok, ["status": "duplicate"])
        }
    }

    private func salesforce(_ request: Request, _ context: SwitchboardRequestContext) async throws -> Response {
        let started = ContinuousClock.now
        let (body, json) = try await readJSON(request, limit: switchboard.configuration.salesforceMaxBodyBytes, source: "Salesforce")
        let org = try await authenticateSalesforce(request, body: body, json: json, required: false)
        let changes: [SalesforceChange]
        do {
            changes = try SalesforceTriggerPayload.decode(json).map { change in
                var change = change
                if change.orgId == nil { change.orgId = org }
                return change
            }
        } catch {
            try await logRejection("Salesforce", "refused a trigger payload: \(error)", payload: String(buffer: body))
            throw IntakeError(.badRequest, "\(error)")
        }
        // One event per record, in the order of the batch; a redelivered batch has the same ids.
        let delivery = request.header("Idempotency-Key")
            ?? SHA256.hash(data: Array(buffer: body)).hexString
        let newMap = (json["new"] ?? json["newMap"]).flatMap(Self.map) ?? JSONObject()
        let oldMap = (json["old"] ?? json["oldMap"]).flatMap(Self.map)
        var events: [NewInboundEvent] = []
        for change in changes {
            let key = newMap.keys.first { SalesforceId.same($0, change.recordId) } ?? change.recordId
            var single: JSONObject = ["object": .string(change.object), "isInsert": .bool(change.isInsert)]
            single["old"] = oldMap.flatMap { old in old.entries.first { SalesforceId.same($0.key, change.recordId) }.map { JSONValue.object([$0.key: $0.value]) } } ?? .null
            single["new"] = .object([key: newMap[key] ?? .null])
            if let org = change.orgId { single["orgId"] = .string(org) }
            events.append(
                NewInboundEvent(
                    source: .salesforce, externalId: "\(delivery)#\(change.recordId)", partitionKey: "sf:\(change.object):\(change.recordId)",
                    payload: JSONValue.object(single).serialized()))
        }
        let entry = switchboard.log.entry(
            .info, "intake", "Salesforce delivery: \(changes.count) \(changes.first?.object ?? "") change\(changes.count == 1 ? "" : "s")",
            recordId: changes.count == 1 ? changes.first?.recordId : nil, payload: String(buffer: body))
        let outcomes = try await accept(events, logs: entry.map { [$0] } ?? [])
        switchboard.metrics.recordIntake(nanoseconds: (ContinuousClock.now - started).nanosecondsValue)
        var ids: [JSONValue] = []
        var duplicates = 0
        for o in outcomes {
            switch o {
            case .accepted(let id): ids.append(.number(Double(id)))
            case .duplicate: duplicates += 1
            }
        }
        switchboard.metrics.recordReceived(source: "salesforce", duplicate: false, count: ids.count)
        switchboard.metrics.recordReceived(source: "salesforce", duplicate: true, count: duplicates)
        return jsonResponse(ids.isEmpty ? .ok : .accepted, ["accepted": .number(Double(ids.count)), "duplicates": .number(Double(duplicates)), "ids": .array(ids)])
    }

    /// The Flow action's requests: validated, then put in the outbox with the record's other jobs.
    private func salesforceActions(_ request: Request, _ context: SwitchboardRequestContext) async throws -> Response {
        let (body, json) = try await readJSON(request, limit: switchboard.configuration.salesforceMaxBodyBytes, source: "Salesforce actions")
        // Actions reach PagerDuty, so they are never taken unsigned.
        let org = try await authenticateSalesforce(request, body: body, json: json, required: true)
        let decoded: (orgId: String?, requests: [RequestedActions.Request])
        do {
            decoded = try RequestedActions.decode(json)
        } catch {
            try await logRejection("Salesforce actions", "refused: \(error)", payload: String(buffer: body))
            throw IntakeError(.badRequest, "\(error)")
        }
        let delivery = SHA256.hash(data: Array(buffer: body)).hexString
        let now = switchboard.clock.millis
        let requests = decoded.requests
        let entry = switchboard.log.entry(
            .info, "intake", "Salesforce Flow action: \(requests.map(\.action.rawValue).joined(separator: ", "))",
            recordId: requests.count == 1 ? requests.first?.recordId : nil, payload: String(buffer: body))
        let maxAttempts = switchboard.configuration.pipeline.maxAttempts
        let created: Int
        do {
            created = try await switchboard.database.transaction { db in
                let n = try await RequestedActions.enqueue(
                    requests, orgId: org ?? decoded.orgId, deliveryKey: delivery, maxAttempts: maxAttempts, now: now, on: db)
                if let entry { try await LogStore.write([entry], on: db) }
                return n
            }
        } catch {
            switchboard.logger.error("could not store Flow actions; answering 503", metadata: ["error": "\(error)"])
            throw IntakeError(.serviceUnavailable, "the actions could not be stored; retry later")
        }
        switchboard.dispatcher.wake()
        return jsonResponse(.accepted, ["accepted": .number(Double(requests.count)), "new": .number(Double(created))])
    }

    /// Checks the package's signature against the org's trigger secrets and returns the org. Trigger posts are
    /// checked once any org has a trigger secret (before that, a fresh install accepts them, as PagerDuty's intake
    /// does without a subscription); `required` posts are always checked.
    private func authenticateSalesforce(_ request: Request, body: ByteBuffer, json: JSONValue, required: Bool) async throws -> String? {
        do {
            return try await authenticateSalesforce(request, body: body, json: json, required: required, connections: await switchboard.salesforce.all(), log: false)
        } catch {
            // The org may have been connected (or its secret rotated) moments ago: read the connections again once.
            return try await authenticateSalesforce(
                request, body: body, json: json, required: required, connections: await switchboard.salesforce.refreshed(), log: true)
        }
    }

    private func authenticateSalesforce(
        _ request: Request, body: ByteBuffer, json: JSONValue, required: Bool, connections: [SalesforceConnection], log: Bool
    ) async throws -> String? {
        let bodyOrg = json["orgId"]?.stringValue
        let org = request.header(TriggerSignature.orgHeader) ?? bodyOrg
        let anySecrets = connections.contains { !$0.triggerSecrets.isEmpty }
        let payload = String(buffer: body)
        func refuse(_ refusal: TriggerSignature.Refusal) async throws -> Never {
            if log { try await logRejection("Salesforce", "refused a post from org \(org ?? "unknown"): \(refusal)", payload: payload) }
            throw IntakeError(HTTPResponse.Status(code: refusal.status), refusal.description)
        }
        // A post that names an org nobody connected (or one since disconnected) is not trusted.
        if let org, !connections.contains(where: { SalesforceId.same($0.orgId, org) }) { try await refuse(.unknownOrg(org)) }
        guard anySecrets || required else { return org.map(SalesforceId.normalized) }
        guard let org, SalesforceId.isValid(org) else { try await refuse(.missing(header: TriggerSignature.orgHeader)) }
        if let bodyOrg, !SalesforceId.same(bodyOrg, org) { try await refuse(.unknownOrg("\(org) (the body says \(bodyOrg))")) }
        guard let connection = connections.first(where: { SalesforceId.same($0.orgId, org) }), !connection.triggerSecrets.isEmpty else {
            try await refuse(.unknownOrg(org))
        }
        do {
            try TriggerSignature.verify(
                body: Array(buffer: body), timestamp: request.header(TriggerSignature.timestampHeader),
                signature: request.header(TriggerSignature.signatureHeader), secrets: connection.triggerSecrets,
                now: switchboard.clock.millis / 1000)
        } catch {
            try await refuse(error)
        }
        return connection.orgId
    }

    private static func map(_ value: JSONValue) -> JSONObject? {
        if let o = value.objectValue { return o }
        if let s = value.stringValue { return (try? JSONParser.parseValue(s))?.objectValue }
        return nil
    }

    /// Commits, or answers 503 so the sender retries: nothing is acknowledged that is not on disk.
    private func accept(_ events: [NewInboundEvent], logs: [LogEntry], logsReferToEvent: Bool = false) async throws -> [IntakeOutcome] {
        do {
            return try await switchboard.intake.accept(events, logs: logs, logsReferToEvent: logsReferToEvent)
        } catch {
            switchboard.logger.error("intake could not commit; answering 503", metadata: ["error": "\(error)"])
            throw IntakeError(.serviceUnavailable, "the event could not be stored; retry later")
        }
    }
}

/// An intake refusal with a JSON body.
struct IntakeError: HTTPResponseError {
    let status: HTTPResponse.Status
    let message: String

    init(_ status: HTTPResponse.Status, _ message: String) {
        self.status = status
        self.message = message
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        var response = jsonResponse(status, ["error": .object(["message": .string(message)])])
        if status == .serviceUnavailable { response.headers[.retryAfter] = "5" }
        return response
    }
}

extension Duration {
    var nanosecondsValue: Int64 { components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000 }
}

extension Request {
    /// A header's value by name, case-insensitively.
    func header(_ name: String) -> String? {
        headers.first { $0.name.canonicalName == name.lowercased() }?.value
    }
}
