import Foundation
import Logging
import SwitchboardCore
import SwitchboardPagerDuty
import SwitchboardPipeline
import SwitchboardServer
import SwitchboardSimulators
import SwitchboardStorage
import SwitchboardTestSupport
import Testing

let pagerDutyRules = """
    version: 1
    rulesets:
      - name: "SFDC > PD"
        rules:
          - name: page
            object: Case
            runOn: salesforce
            conditions: [{ field: Priority, operator: equals, value: High }]
            applyTo: new
            actions:
              - action: createIncident
                service: Customer Support
                urgency: high
                priority: P2
                escalationPolicy: Support On-Call
                title: { prefix: "Case ", fields: [CaseNumber, Subject] }
                conferenceUrl: "https://meet.example.com/{{CaseNumber}}"
          - name: act on incidents
            object: Case
            runOn: salesforce
            conditions: [{ field: Command__c, operator: isNotBlank }]
            applyTo: linked
            actions:
              - { action: acknowledge }
              - { action: setPriority, priority: P1 }
              - { action: setUrgency, urgency: low }
              - { action: reassign, users: [ravi@example.com] }
              - { action: addResponders, users: [Ravi Engineer], escalationPolicies: [Engineering On-Call], message: "Case {{CaseNumber}} needs you" }
              - { action: runIncidentWorkflow, workflow: Major incident response }
              - { action: runAutomationAction, automationAction: Restart checkout pods }
              - { action: setIncidentConference, field: Bridge__c }
              - { action: setIncidentDescription, field: Description }
              - { action: reassign, escalationPolicy: Engineering On-Call }
          - name: close
            object: Case
            runOn: salesforce
            conditions: [{ field: Status, operator: changes, to: Closed }]
            applyTo: linked
            actions: [{ action: resolve, resolution: "Case closed in Salesforce" }]
      - name: "PD > SFDC"
        rules:
          - name: follow ack
            object: Case
            runOn: pagerduty
            conditions: [{ field: pagerduty.eventType, operator: equals, value: Acknowledge }]
            applyTo: linked
            actions: [{ action: setField, field: Status, value: Working }]
          - name: follow resolve
            object: Case
            runOn: pagerduty
            conditions: [{ field: pagerduty.eventType, operator: equals, value: Resolve }]
            applyTo: linked
            actions: [{ action: setField, field: Status, value: Closed }]
          - name: follow priority
            object: Case
            runOn: pagerduty
            conditions: [{ field: pagerduty.priority, operator: changes, to: P1 }]
            applyTo: linked
            actions: [{ action: setField, field: Priority, value: Critical }]
    """

@Suite("PagerDuty connector against the simulator", .serialized)
struct PagerDutyConnectorTests {
    @Test("Each PagerDuty action, end to end: rule → dispatch → simulator → signed webhook back → no echo")
    func everyAction() async throws {
        try await PagerDutyHarness.run(rules: pagerDutyRules) { h in
            try await h.postCase(["Priority": "High", "CaseNumber": "00001026", "Subject": "Checkout down", "Description": "Cart fails"])
            try await h.settle()
            let incidents = h.simulator.incidents
            #expect(incidents.count == 1)
            let incident = try #require(incidents.first)
            let id = try #require(incident["id"]?.stringValue)
            #expect(incident["title"] == "Case 00001026 Checkout down")
            #expect(incident["urgency"] == "high")
            #expect(incident["priority"]?["summary"] == "P2")
            #expect(incident["escalation_policy"]?["id"] == "PEP0001")
            #expect(incident["body"]?["details"] == "Cart fails")
            #expect(incident["incident_key"] == "sf:5003000000D8cuIAAR")
            #expect(incident["conference_bridge"]?["conference_url"] == "https://meet.example.com/00001026")
            #expect(try await h.links() == [Link(incidentId: id, object: "Case", recordId: "5003000000D8cuIAAR")])
            // PagerDuty's webhook for the incident Switchboard created came back signed and was recognised.
            #expect(try await h.events().contains { $0.source == .pagerduty && $0.status == "echo" })

            // One update of the case runs every other incident action.
            try await h.postCase(["Command__c": "go", "Bridge__c": "https://zoom.example.com/j/42", "Description": "Root cause: bad deploy", "CaseNumber": "00001026"], insert: false, old: [:])
            try await h.settle()
            let after = try #require(h.simulator.incident(id))
            #expect(after["status"] == "acknowledged")
            #expect(after["priority"]?["summary"] == "P1")
            #expect(after["urgency"] == "low")
            #expect(after["escalation_policy"]?["id"] == "PEP0002")
            #expect(after["conference_bridge"]?["conference_url"] == "https://zoom.example.com/j/42")
            #expect(h.simulator.notes(id).contains { $0["content"]?.stringValue?.contains("Root cause: bad deploy") == true })
            let responderRequest = h.simulator.requests.first { $0.path.hasSuffix("/responder_requests") }
            #expect(responderRequest?.body?["requester_id"] == "PUSER01")
            #expect(responderRequest?.body?["responder_request_targets"]?.arrayValue?.count == 2)
            #expect(h.simulator.requests.contains { $0.path == "/incident_workflows/PWF0001/instances" && $0.status == 201 })
            #expect(h.simulator.requests.contains { $0.path == "/automation_actions/actions/PAA0001/invocations" && $0.status == 201 })
            // Every write carried From; the priority/ack webhooks were echoes: the PD > SFDC rules did not fire on them.
            #expect(h.simulator.requests.filter { $0.method != "GET" }.allSatisfy { r in r.headers.contains { $0.name.lowercased() == "from" && $0.value == "switchboard@example.com" } })
            #expect(h.salesforce.snapshot.effects.isEmpty, "\(h.salesforce.snapshot.effects.map(\.action))")
            let dead = try await h.deadLetters()
            #expect(dead.isEmpty, "\(dead.map(\.error))")

            // A person resolves in PagerDuty: the case follows. Closing the case again resolves nothing twice.
            h.simulator.act(id, "resolve", user: "maeve@example.com")
            try await h.settle()
            #expect(h.salesforce.snapshot.effects.map(\.parameters["value"]) == [.string("Closed")])
            try await h.postCase(["Status": "Closed"], insert: false, old: ["Status": "Working"])
            try await h.settle()
            #expect(try await h.deadLetters().isEmpty, "resolving a resolved incident (1001) counts as success")
        }
    }

    @Test("A person's acknowledgement and priority change in PagerDuty reach the linked case")
    func peopleInPagerDuty() async throws {
        try await PagerDutyHarness.run(rules: pagerDutyRules) { h in
            try await h.postCase(["Priority": "High", "CaseNumber": "7"])
            try await h.settle()
            let id = try #require(h.simulator.incidents.first?["id"]?.stringValue)
            h.simulator.act(id, "acknowledge", user: "maeve@example.com")
            h.simulator.act(id, "priority", value: "P1", user: "maeve@example.com")
            h.simulator.act(id, "note", value: "Looking into it", user: "maeve@example.com")
            try await h.settle()
            let values = h.salesforce.snapshot.effects.map { $0.parameters["value"]?.stringValue ?? "" }
            #expect(values == ["Working", "Critical"])
            #expect(h.salesforce.snapshot.effects.allSatisfy { $0.recordId == "5003000000D8cuIAAR" })
            let notes = try await h.events().filter { $0.payload.contains("incident.annotated") }
            #expect(notes.count == 1)
        }
    }

    @Test("A note added in PagerDuty goes to the linked case's feed and comments, as the object mappings say")
    func noteSync() async throws {
        try await PagerDutyHarness.run(rules: pagerDutyRules) { h in
            try await h.postCase(["Priority": "High", "CaseNumber": "11"])
            try await h.settle()
            let id = try #require(h.simulator.incidents.first?["id"]?.stringValue)
            // Off by default.
            h.simulator.act(id, "note", value: "not synced", user: "maeve@example.com")
            try await h.settle()
            #expect(h.salesforce.snapshot.effects.isEmpty)
            try await h.database.transaction { db in
                try await SettingsStore.set("mapping.notesToFeed", value: "true", now: 0, on: db)
                try await SettingsStore.set("mapping.notesToComment", value: "true", now: 0, on: db)
            }
            h.switchboard.processor.reloadConfiguration()
            h.simulator.act(id, "note", value: "Rolled back the deploy", user: "maeve@example.com")
            try await h.settle()
            let notes = h.salesforce.snapshot.effects.filter { $0.action == .syncNote }
            #expect(notes.count == 1)
            #expect(notes.first?.recordId == "5003000000D8cuIAAR")
            #expect(notes.first?.parameters["content"] == "Rolled back the deploy")
            #expect(notes.first?.parameters["feed"] == .bool(true))
            #expect(notes.first?.parameters["comment"] == .bool(true))
            #expect(notes.first?.parameters["author"] == "Maeve Oncall")

            // A long note PagerDuty delivered trimmed is read back in full before it is copied.
            let long = String(repeating: "Detailed timeline. ", count: 40)
            h.simulator.act(id, "note", value: long, user: "maeve@example.com")
            try await h.settle()
            let noteId = try #require(h.simulator.notes(id).last?["id"]?.stringValue)
            let secret = try #require(await h.switchboard.pagerDuty.webhookSecrets().first)
            let body = JSONValue.object([
                "event": .object([
                    "id": "E-trimmed", "event_type": "incident.annotated", "resource_type": "incident", "occurred_at": "2026-11-24T03:00:00Z",
                    "agent": .object(["id": "PUSER02", "type": "user_reference", "summary": "Maeve Oncall"]),
                    "data": .object([
                        "type": "incident_note", "id": .string(noteId), "content": .string(String(long.prefix(50))), "trimmed": .bool(true),
                        "incident": .object(["id": .string(id), "type": "incident_reference"]),
                    ]),
                ])
            ]).serialized()
            #expect(await HTTP.post(h.baseURL + "/webhooks/pagerduty", body, headers: ["X-PagerDuty-Signature": WebhookSignature.sign(body: Array(body.utf8), secret: secret)])?.status == 202)
            try await h.settle()
            let copied = h.salesforce.snapshot.effects.filter { $0.action == .syncNote }.last
            #expect(copied?.parameters["content"] == .string(long))
        }
    }

    @Test("Failures: 5xx and 429 are retried (ratelimit-reset honoured), 400 is not")
    func retries() async throws {
        try await PagerDutyHarness.run(rules: pagerDutyRules) { h in
            h.simulator.failNext(2, status: 500)
            try await h.postCase(["Priority": "High", "CaseNumber": "1"])
            try await h.settle()
            #expect(h.simulator.incidents.count == 1)
            #expect(try await h.deadLetters().isEmpty)

            h.simulator.failNext(1, status: 429)
            try await h.postCase(["Priority": "High", "CaseNumber": "2"], id: "5003000000D8cuJAAR")
            try await h.settle()
            let jobs = try await h.database.read { try await JobStore.list(on: $0) }
            let retried = try #require(jobs.last { $0.action == "createIncident" })
            #expect(retried.status == "done")
            #expect(retried.attempts == 2)
            // The second attempt waited for ratelimit-reset (1 s here).
            #expect(retried.updatedAt - retried.createdAt >= 1000)
            #expect(h.simulator.incidents.count == 2)

            // A create the API refuses (unknown service) is not retried: one attempt, then a dead letter with the reason.
            let badRules = pagerDutyRules.replacingOccurrences(of: "service: Customer Support", with: "service: PNOSUCH1")
            _ = try await h.database.transaction { try await RulesStore.save(document: badRules, author: "t", comment: nil, now: 1, on: $0) }
            h.switchboard.processor.reloadConfiguration()
            try await h.postCase(["Priority": "High", "CaseNumber": "3"], id: "5003000000D8cuKAAR")
            try await h.settle()
            let dead = try await h.deadLetters()
            #expect(dead.count == 1)
            #expect(dead.first?.attempts == 1)
            #expect(dead.first?.error.contains("PagerDuty answered 400") == true)
            // A name no service has is caught before calling, with a message saying so.
            let unknownName = pagerDutyRules.replacingOccurrences(of: "service: Customer Support", with: "service: No Such Service")
            _ = try await h.database.transaction { try await RulesStore.save(document: unknownName, author: "t", comment: nil, now: 2, on: $0) }
            h.switchboard.processor.reloadConfiguration()
            try await h.postCase(["Priority": "High", "CaseNumber": "4"], id: "5003000000D8cuLAAR")
            try await h.settle()
            #expect(try await h.deadLetters().first?.error == "no service named \"No Such Service\" in the PagerDuty account")
        }
    }

    @Test("Webhook intake: signatures checked, deliveries deduplicated, oversize refused")
    func intakeSecurity() async throws {
        try await PagerDutyHarness.run(rules: pagerDutyRules) { h in
            let secret = try #require(await h.switchboard.pagerDuty.webhookSecrets().first)
            let body = #"{"event":{"id":"E-sec-1","event_type":"incident.triggered","resource_type":"incident","occurred_at":"2026-11-24T03:00:00Z","data":{"id":"PX1","type":"incident","title":"t","status":"triggered"}}}"#
            let url = h.baseURL + "/webhooks/pagerduty"
            #expect(await HTTP.post(url, body)?.status == 400)
            #expect(await HTTP.post(url, body, headers: ["X-PagerDuty-Signature": "v1=" + String(repeating: "0", count: 64)])?.status == 403)
            #expect(await HTTP.post(url, body, headers: ["X-PagerDuty-Signature": WebhookSignature.sign(body: Array(body.utf8), secret: "wrong")])?.status == 403)
            let signed = WebhookSignature.sign(body: Array(body.utf8), secret: secret)
            #expect(await HTTP.post(url, body + " ", headers: ["X-PagerDuty-Signature": signed])?.status == 403)
            // Rotation: one of several entries matches.
            let rotating = WebhookSignature.sign(body: Array(body.utf8), secret: "old-secret") + "," + signed
            #expect(await HTTP.post(url, body, headers: ["X-PagerDuty-Signature": rotating, "X-Webhook-Id": "W1"])?.status == 202)
            // PagerDuty redelivers with the same X-Webhook-Id: acknowledged, not stored twice.
            #expect(await HTTP.post(url, body, headers: ["X-PagerDuty-Signature": signed, "X-Webhook-Id": "W1"])?.status == 200)
            let big = #"{"event":{"id":"E-big","event_type":"incident.annotated","pad":""# + String(repeating: "x", count: 300 * 1024) + #""}}"#
            #expect(await HTTP.post(url, big, headers: ["X-PagerDuty-Signature": WebhookSignature.sign(body: Array(big.utf8), secret: secret)])?.status == 413)
            let refusals = try await h.database.read { try await LogStore.query(LogQuery(minimumLevel: .error, category: "intake"), on: $0) }
            #expect(refusals.count == 5)
            #expect(refusals.contains { $0.message.contains("unsigned") })
            #expect(refusals.contains { $0.message.contains("matches no secret") })
        }
    }

    @Test("Unknown event types are logged and ignored")
    func unknownEvents() async throws {
        try await PagerDutyHarness.run(rules: pagerDutyRules) { h in
            let secret = try #require(await h.switchboard.pagerDuty.webhookSecrets().first)
            let body = #"{"event":{"id":"E-new","event_type":"incident.something_new","resource_type":"incident","occurred_at":"2026-11-24T03:00:00Z","data":{"id":"PX1","type":"incident"}}}"#
            #expect(await HTTP.post(h.baseURL + "/webhooks/pagerduty", body, headers: ["X-PagerDuty-Signature": WebhookSignature.sign(body: Array(body.utf8), secret: secret)])?.status == 202)
            try await h.settle()
            let event = try #require(try await h.events().first)
            #expect(event.status == "ignored")
            #expect(event.outcome?.contains("unknown PagerDuty event type incident.something_new") == true)
        }
    }

    @Test("A subscription PagerDuty disabled is detected, re-enabled and backfilled; nothing is lost")
    func disabledSubscription() async throws {
        try await PagerDutyHarness.run(rules: pagerDutyRules) { h in
            try await h.postCase(["Priority": "High", "CaseNumber": "9"])
            try await h.settle()
            let id = try #require(h.simulator.incidents.first?["id"]?.stringValue)
            let subscription = try #require(try await h.database.read { try await PagerDutyConnection.load(box: h.box, on: $0) }?.subscriptionId)
            // Switchboard refuses deliveries for a while (a bad secret after a botched rotation): PagerDuty drops three
            // deliveries and disables the subscription; what happens meanwhile is not delivered.
            let original = try #require(try await h.database.read { try await PagerDutyConnection.load(box: h.box, on: $0) })
            var broken = original
            broken.webhookSecrets = ["not-the-secret"]
            let brokenCopy = broken
            try await h.database.transaction { try await brokenCopy.save(box: h.box, now: 1, on: $0) }
            h.switchboard.pagerDuty.invalidate()
            h.simulator.act(id, "note", value: "first", user: "maeve@example.com")
            h.simulator.act(id, "note", value: "second", user: "maeve@example.com")
            h.simulator.act(id, "note", value: "third", user: "maeve@example.com")
            try await h.settle()
            #expect(h.simulator.subscription(subscription)?.temporarilyDisabled == true)
            h.simulator.act(id, "acknowledge", user: "maeve@example.com")
            try await h.settle()
            #expect(h.salesforce.snapshot.effects.isEmpty)
            // Fixed; upkeep notices, re-enables and backfills from the log entries.
            try await h.database.transaction { try await original.save(box: h.box, now: 2, on: $0) }
            h.switchboard.pagerDuty.invalidate()
            let outcome = try await h.switchboard.upkeep.check()
            guard case .reenabled(let backfilled) = outcome else { Issue.record("not re-enabled: \(outcome)"); return }
            #expect(backfilled >= 4)
            #expect(h.simulator.subscription(subscription)?.temporarilyDisabled == false)
            try await h.settle()
            // The acknowledgement reached the case after all.
            #expect(h.salesforce.snapshot.effects.map(\.parameters["value"]) == [.string("Working")])
            #expect(try await h.switchboard.upkeep.check() == .healthy)
        }
    }

    @Test("The signature test vector from PagerDuty's reference", .enabled(if: SharedVector.isAvailable, SharedVector.skipReason))
    func signatureVector() throws {
        let vector = try JSONParser.parseValue(try String(contentsOfFile: SharedVector.path, encoding: .utf8))
        let body = Array(try #require(vector["raw_body"]?.stringValue).utf8)
        let secret = try #require(vector["secret"]?.stringValue)
        #expect(WebhookSignature.verify(body: body, header: vector["valid_header"]?.stringValue, secrets: [secret]) == .valid)
        #expect(WebhookSignature.verify(body: body, header: vector["mismatch_header"]?.stringValue, secrets: [secret]) == .mismatch)
        #expect(WebhookSignature.verify(body: body, header: vector["rotation_header_example_one_valid"]?.stringValue, secrets: [secret]) == .valid)
        #expect(WebhookSignature.verify(body: body, header: vector["valid_header"]?.stringValue, secrets: ["other", secret]) == .valid)
        #expect(WebhookSignature.verify(body: body + [0x20], header: vector["valid_header"]?.stringValue, secrets: [secret]) == .mismatch)
        #expect(WebhookSignature.verify(body: body, header: nil, secrets: [secret]) == .missing)
        #expect(WebhookSignature.verify(body: body, header: "v0=abc", secrets: [secret]) == .missing)
        #expect(WebhookSignature.sign(body: body, secret: secret) == vector["valid_header"]?.stringValue)
    }

    @Test("Every picker and read goes through pagination and is allowed by the official document", .enabled(if: OfficialDocument.isAvailable, OfficialDocument.skipReason))
    func pickersSweep() async throws {
        try await PagerDutyHarness.run(rules: pagerDutyRules) { h in
            let client = PagerDutyClient(configuration: PagerDutyConfiguration(apiKey: "simulatorkey0000", baseURL: h.simulator.baseURL, fromEmail: "switchboard@example.com"))
            for kind in PagerDutyObject.Kind.allCases {
                #expect(try await !client.objects(kind).isEmpty, "\(kind)")
            }
            #expect(try await client.resolve("P3", as: .priorities) == "PPRI003")
            #expect(try await client.resolve("maeve@example.com", as: .users) == "PUSER02")
            #expect(try await client.serviceImpacts(dashboard: "PSD0001").count == 2)
            let created = try await client.createIncident(["type": "incident", "title": "sweep", "service": .object(["id": "PSVC001", "type": "service_reference"])])
            let id = try #require(created["id"]?.stringValue)
            try await client.addNote(id, content: "n")
            #expect(try await client.notes(id).count == 1)
            try await client.postStatusUpdate(id, message: "We are on it")
            try await client.setCustomFields(id, [("description", .string("x"))])
            #expect(try await !client.logEntries(since: "2020-01-01T00:00:00Z").isEmpty)
            #expect(try await client.incidents(statuses: ["triggered"]).count >= 1)
            await #expect(throws: PagerDutyError.self) { try await client.createIncident(["type": "incident", "title": "dup", "incident_key": .string(created["incident_key"]?.stringValue ?? ""), "service": .object(["id": "PSVC001", "type": "service_reference"])]) }
            // Ten requests were made: none broke the document.
            #expect(h.simulator.requests.count > 10)
        }
    }
}

enum SharedVector {
    static let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("shared/reference/pagerduty/webhook-v3-signature-test-vector.json").path
    static var isAvailable: Bool { FileManager.default.fileExists(atPath: path) }
    static let skipReason: Comment = "SKIPPED: ../shared/reference/pagerduty is absent (a fresh clone); the signature test vector lives there"
}

@Suite("PagerDuty client")
struct PagerDutyClientTests {
    @Test("A slow PagerDuty times out as a retryable failure; a refused key is not retryable")
    func timeoutsAndAuth() async throws {
        let simulator = PagerDutySimulator()
        try await simulator.start()
        simulator.setDelay(.milliseconds(800))
        let slow = PagerDutyClient(
            configuration: PagerDutyConfiguration(apiKey: "simulatorkey0000", baseURL: simulator.baseURL, fromEmail: "switchboard@example.com", timeout: .milliseconds(200)))
        do {
            _ = try await slow.incident("Q1")
            Issue.record("no timeout")
        } catch {
            #expect(error.status == 0)
            #expect(error.isRetryable)
        }
        simulator.setDelay(.zero)
        let refused = PagerDutyClient(configuration: PagerDutyConfiguration(apiKey: "nope", baseURL: simulator.baseURL, fromEmail: "switchboard@example.com"))
        do {
            try await refused.checkKey()
            Issue.record("accepted a wrong key")
        } catch {
            #expect(error.status == 401)
            #expect(!error.isRetryable)
        }
        // Past the per-minute allowance PagerDuty answers 429 with its rate-limit headers.
        simulator.setRateLimit(perMinute: 3)
        let client = PagerDutyClient(configuration: PagerDutyConfiguration(apiKey: "simulatorkey0000", baseURL: simulator.baseURL, fromEmail: "switchboard@example.com"))
        var limited: PagerDutyError?
        for _ in 0..<5 {
            do { _ = try await client.createIncident(["type": "incident", "title": "x", "service": .object(["id": "PSVC001", "type": "service_reference"])]) } catch {
                limited = error
                break
            }
        }
        #expect(limited?.status == 429)
        #expect(limited?.code == 2020)
        #expect((limited?.retryAfter ?? 0) > 0)
        #expect(client.rateLimit?.remaining == 0)
        await simulator.stop()
    }
}

@Suite("PagerDuty connection of a running server")
struct PagerDutyConnectionsTests {
    @Test("A database that stops answering: the connection read gives up within its deadline and keeps the last secrets", .timeLimit(.minutes(1)))
    func stalledDatabaseKeepsSecrets() async throws {
        var connection = PagerDutyConnection(apiKey: "simulatorkey0000", region: .us, baseURL: nil, fromEmail: "switchboard@example.com")
        connection.webhookSecrets = ["stored-secret"]
        let stored = connection
        try await StallingDatabase.withFilled({ box, db in try await stored.save(box: box, now: 0, on: db) }) { stalling, box, logger in
            let connections = PagerDutyConnections(database: stalling, box: box, logger: logger)
            #expect(await connections.webhookSecrets() == ["stored-secret"])

            // Deliveries wait for this read: it must give up well before PagerDuty's 5 s, and forgetting the secrets
            // would let unsigned deliveries in.
            stalling.stall(true)
            connections.invalidate()
            let started = ContinuousClock.now
            #expect(await connections.webhookSecrets() == ["stored-secret"])
            #expect(await connections.current().client != nil)
            #expect(ContinuousClock.now - started < .seconds(10))
            stalling.stall(false)
        }
    }
}
