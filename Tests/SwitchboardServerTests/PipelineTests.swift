import Foundation
import Hummingbird
import HummingbirdTesting
import SwitchboardCore
import SwitchboardPipeline
import SwitchboardServer
import SwitchboardStorage
import SwitchboardTestSupport
import Synchronization
import Testing

/// Pipeline scenarios, run on both databases.
enum PipelineScenarios {
    static func intakeAcknowledgesDurablyAndDeduplicates(_ backend: Backend) async throws {
        try await Harness.run(backend) { h, client in
            let body = Payloads.incident("incident.triggered", id: "PINC1", eventId: "E1")
            let first = try await h.post(client, "/webhooks/pagerduty", body)
            #expect(first.status == .accepted)
            // The event is on disk before the 2xx.
            #expect(try await h.events().map(\.externalId) == ["E1"])
            let again = try await h.post(client, "/webhooks/pagerduty", body)
            #expect(again.status == .ok)
            #expect(again.body["status"] == "duplicate")
            // X-Webhook-Id, repeated on PagerDuty's retries, deduplicates too.
            let retried = try await h.post(client, "/webhooks/pagerduty", Payloads.incident("incident.triggered", id: "PINC1", eventId: "E2"), headers: ["X-Webhook-Id": "E1"])
            #expect(retried.status == .ok)
            #expect(try await h.events().count == 1)
            #expect(try await h.events().first?.partitionKey == "pd:PINC1")
            // Every delivery is logged with its raw payload.
            let deliveries = try await h.logs(LogQuery(category: "intake"))
            #expect(deliveries.count == 3)
            #expect(deliveries.contains { $0.payload == body && $0.incidentId == "PINC1" })

            // The same Salesforce delivery twice: its record is counted once as new, once as a duplicate.
            let trigger = Payloads.caseTrigger(id: "500300000000009", new: ["Priority": "Low"])
            #expect(try await h.post(client, "/webhooks/salesforce", trigger).status == .accepted)
            #expect(try await h.post(client, "/webhooks/salesforce", trigger).status == .ok)
            let metrics = try await client.execute(uri: "/metrics", method: .get) { String(buffer: $0.body) }
            func received(_ source: String, duplicate: Bool) -> String? {
                metrics.split(separator: "\n").first {
                    $0.hasPrefix("switchboard_events_received_total{") && $0.contains("source=\"\(source)\"") && $0.contains("duplicate=\"\(duplicate)\"")
                }.flatMap { $0.split(separator: " ").last.map(String.init) }
            }
            #expect(received("pagerduty", duplicate: false) == "1")
            #expect(received("pagerduty", duplicate: true) == "2")
            #expect(received("salesforce", duplicate: false) == "1")
            #expect(received("salesforce", duplicate: true) == "1")
        }
    }

    static func badInputIsRefusedAndLogged(_ backend: Backend) async throws {
        try await Harness.run(backend) { h, client in
            #expect(try await h.post(client, "/webhooks/pagerduty", "{not json").status == .badRequest)
            // A NUL byte, which PostgreSQL refuses in text: still refused and logged.
            #expect(try await h.post(client, "/webhooks/pagerduty", "{\u{0}}").status == .badRequest)
            #expect(try await h.post(client, "/webhooks/pagerduty", "{}", contentType: "text/plain").status == .unsupportedMediaType)
            #expect(try await h.post(client, "/webhooks/pagerduty", "{\"hello\": 1}").status == .badRequest)
            let huge = "{\"event\": {\"id\": \"x\", \"pad\": \"" + String(repeating: "a", count: 10 * 1024 * 1024) + "\"}}"
            #expect(try await h.post(client, "/webhooks/pagerduty", huge).status == .contentTooLarge)
            #expect(try await h.post(client, "/webhooks/salesforce", huge).status == .contentTooLarge)
            let bad = try await h.post(client, "/webhooks/salesforce", #"{"object": "Case", "isInsert": true, "new": {"500": 7}}"#)
            #expect(bad.status == .badRequest)
            #expect(bad.body["error"]?["message"]?.stringValue?.contains("record object") == true)
            #expect(try await h.events().isEmpty)
            let errors = try await h.logs(LogQuery(minimumLevel: .error))
            #expect(errors.count == 7)
            #expect(errors.contains { $0.payload == "{not json" })
            #expect(errors.contains { $0.payload == "{\u{FFFD}}" })
        }
    }

    static func salesforceBatchFansOutInOrder(_ backend: Backend) async throws {
        try await Harness.run(backend) { h, client in
            var map = JSONObject()
            let ids = (1...3).map { SalesforceId.normalized("50030000000000\($0)") }
            for id in ids.reversed() {
                map[id] = .object(["attributes": .object(["type": "Case"]), "Id": .string(id), "Priority": "High"])
            }
            let body = JSONValue.object(["object": "Case", "isInsert": .bool(true), "old": .null, "new": .object(map)]).serialized()
            let r = try await h.post(client, "/webhooks/salesforce", body)
            #expect(r.status == .accepted)
            #expect(r.body["accepted"] == .number(3))
            #expect(try await h.events().map(\.partitionKey) == ids.reversed().map { "sf:Case:\($0)" })
            #expect(try await h.post(client, "/webhooks/salesforce", body).body["duplicates"] == .number(3))
        }
    }

    static func twoWayFlowWithLinksAndNoEchoes(_ backend: Backend) async throws {
        try await Harness.run(backend, rules: twoWayRules) { h, client in
            let caseId = "5003000000D8cuIAAR"
            _ = try await h.post(client, "/webhooks/salesforce", Payloads.caseTrigger(new: ["Priority": "High", "CaseNumber": "00001026", "Status": "New"]))
            try await h.settle()
            var effects = h.sink.snapshot.effects
            #expect(effects.map(\.action) == [.createIncident, .addResponders])
            #expect(effects[0].parameters["title"] == "Case 00001026")
            // The responders go to the incident just created, found through the new link.
            #expect(effects[1].incidentId == "Q1")
            #expect(try await h.links() == [Link(incidentId: "Q1", object: "Case", recordId: caseId)])

            // PagerDuty's webhook for the incident Switchboard created is its own echo: no rules fire.
            _ = try await h.post(client, "/webhooks/pagerduty", Payloads.incident("incident.triggered", id: "Q1", eventId: "W1"))
            // On-call acknowledges in PagerDuty: the case follows.
            _ = try await h.post(client, "/webhooks/pagerduty", Payloads.incident("incident.acknowledged", id: "Q1", eventId: "W2", status: "acknowledged"))
            try await h.settle()
            effects = h.sink.snapshot.effects
            #expect(effects.count == 3)
            #expect(effects[2].action == .setField)
            #expect(effects[2].recordId == caseId)
            #expect(effects[2].parameters["value"] == "Working")
            let statuses = try await h.events().map(\.status)
            #expect(statuses == ["processed", "echo", "processed"])

            // Salesforce's trigger for that very update comes back: an echo too.
            _ = try await h.post(
                client, "/webhooks/salesforce",
                Payloads.caseTrigger(insert: false, old: ["Status": "New", "Priority": "High"], new: ["Status": "Working", "Priority": "High", "LastModifiedDate": "2026-11-24T03:00:01.000+0000"]))
            try await h.settle()
            #expect(try await h.events().last?.status == "echo")
            #expect(h.sink.snapshot.effects.count == 3)

            // An agent closes the case: the incident resolves; PagerDuty's resolve webhook then echoes.
            _ = try await h.post(client, "/webhooks/salesforce", Payloads.caseTrigger(insert: false, old: ["Status": "Working"], new: ["Status": "Closed"]))
            try await h.settle()
            #expect(h.sink.snapshot.effects.last?.action == .resolve)
            _ = try await h.post(client, "/webhooks/pagerduty", Payloads.incident("incident.resolved", id: "Q1", eventId: "W3", status: "resolved"))
            try await h.settle()
            #expect(try await h.events().last?.status == "echo")
            #expect(h.sink.snapshot.effects.count == 4)
        }
    }

    static func retriesHonourRetryAfterThenDeadLetter(_ backend: Backend) async throws {
        try await Harness.run(backend, rules: twoWayRules) { h, client in
            h.sink.failNext([.retryable("429 Too Many Requests", retryAfter: 30), .retryable("503")])
            _ = try await h.post(client, "/webhooks/salesforce", Payloads.caseTrigger(new: ["Priority": "High"]))
            try await h.settle()
            var job = try #require(try await h.jobs().first)
            #expect(job.status == "pending")
            #expect(job.attempts == 1)
            #expect(job.runAfter >= Harness.start.millisecondsSince1970 + 30_000)
            // Not due yet: nothing happens.
            h.clock.advance(by: 29_000)
            try await h.settle()
            #expect(h.sink.snapshot.deliveries == 1)
            h.clock.advance(by: 2_000)
            try await h.settle()
            job = try #require(try await h.jobs().first)
            #expect(job.attempts == 2)
            #expect(job.lastError == "503")
            h.clock.advance(by: 60_000)
            try await h.settle()
            #expect(try await h.jobs().map(\.status) == ["done", "done"])
            #expect(h.sink.snapshot.effects.map(\.action) == [.createIncident, .addResponders])

            // A permanent failure goes straight to the dead letters, with the reason; retrying it works.
            h.sink.failNext([.permanent("400 Invalid Input Provided: service not found")])
            _ = try await h.post(
                client, "/webhooks/salesforce", Payloads.caseTrigger(id: "5003000000D8cuJAAR", new: ["Priority": "High"]))
            try await h.settle()
            let dead = try await h.database.read { try await JobStore.deadLetters(on: $0) }
            // The responders job behind it cannot act on an incident that was never created: it dies too, saying why.
            #expect(dead.map(\.action) == ["addResponders", "createIncident"])
            let create = try #require(dead.last)
            #expect(create.error.contains("service not found"))
            #expect(create.attempts == 1)
            #expect(dead[0].error.contains("no incident was created"))
            // Retrying the creation brings the responders back with it.
            _ = try await h.database.transaction { try await JobStore.retryDead(jobId: create.jobId, now: h.clock.millis, on: $0) }
            try await h.settle()
            #expect(try await h.database.read { try await JobStore.deadLetters(on: $0) }.isEmpty)
            #expect(h.sink.snapshot.effects.filter { $0.action == .createIncident }.count == 2)
            #expect(h.sink.snapshot.effects.filter { $0.action == .addResponders }.count == 2)
        }
    }

    static func replaysNeverCreateTwice(_ backend: Backend) async throws {
        try await Harness.run(backend, rules: twoWayRules) { h, client in
            _ = try await h.post(client, "/webhooks/salesforce", Payloads.caseTrigger(new: ["Priority": "High"]))
            try await h.settle()
            // The job runs again (a crash after the call, a manual replay): the link check stops a second incident.
            let job = try #require(try await h.jobs().first { $0.action == "createIncident" })
            try await h.database.transaction {
                try await $0.raw("UPDATE outbound_jobs SET status = 'pending', attempts = 0 WHERE id = \(bind: job.id)").run()
            }
            try await h.settle()
            #expect(h.sink.snapshot.effects.filter { $0.action == .createIncident }.count == 1)
            #expect(try await h.logs(LogQuery(category: "dispatch")).contains { $0.message.contains("already linked to incident Q1") })
            // The same change delivered again with another delivery id: the rule sees the link and does not create.
            _ = try await h.post(client, "/webhooks/salesforce", Payloads.caseTrigger(new: ["Priority": "High"]), headers: ["Idempotency-Key": "again"])
            try await h.settle()
            #expect(h.sink.snapshot.effects.filter { $0.action == .createIncident }.count == 1)
        }
    }

    static func loopingRuleIsSuspended(_ backend: Backend) async throws {
        // A rule that writes a fresh value every time defeats echo fingerprints; the hop limit stops it.
        let rules = """
            rulesets:
              - name: loop
                rules:
                  - name: stamp the incident title
                    object: Case
                    runOn: pagerduty
                    conditions: [{ field: pagerduty.eventType, operator: equals, value: Custom }]
                    applyTo: linked
                    actions: [{ action: setField, field: Subject, value: "{{pagerduty.title}} {{pagerduty.occurredAt}}" }]
                  - name: bump priority
                    object: Case
                    runOn: salesforce
                    conditions: [{ field: Subject, operator: changes }]
                    applyTo: linked
                    actions: [{ action: setPriority, priority: P1 }]
            """
        try await Harness.run(backend, rules: rules, configure: { $0.pipeline.hopLimit = 3 }) { h, client in
            let caseId = "5003000000D8cuIAAR"
            _ = try await h.database.transaction { try await LinkStore.add(Link(incidentId: "Q1", object: "Case", recordId: caseId), now: 0, on: $0) }
            for round in 0..<8 {
                // PagerDuty reports a change, Switchboard writes the case, Salesforce reports the case changed with a
                // value no fingerprint matches (another automation rewrote it), Switchboard writes PagerDuty...
                _ = try await h.post(client, "/webhooks/pagerduty", Payloads.incident("incident.priority_updated", id: "Q1", eventId: "P\(round)"))
                try await h.settle()
                _ = try await h.post(
                    client, "/webhooks/salesforce",
                    Payloads.caseTrigger(insert: false, old: ["Subject": "s\(round)"], new: ["Subject": "changed elsewhere \(round)"]))
                try await h.settle()
            }
            let suspensions = try await h.database.read { try await HopStore.suspensions(on: $0) }
            #expect(!suspensions.isEmpty)
            #expect(suspensions.allSatisfy { $0.reason.contains("loop") })
            #expect(h.sink.snapshot.effects.count < 16)
            #expect(try await h.logs(LogQuery(category: "loop")).first?.message.contains("suspended") == true)
            // Shown by the status endpoint.
            let status = try await client.execute(uri: "/status", method: .get) { try JSONParser.parseValue(String(buffer: $0.body)) }
            #expect(status["suspendedRules"]?.arrayValue?.isEmpty == false)
        }
    }

    static func engineOffAndLogLevels(_ backend: Backend) async throws {
        try await Harness.run(backend, rules: twoWayRules) { h, client in
            try await h.setting("engine.enabled", "false")
            _ = try await h.post(client, "/webhooks/salesforce", Payloads.caseTrigger(new: ["Priority": "High"]))
            try await h.settle()
            #expect(try await h.events().first?.status == "ignored")
            #expect(h.sink.snapshot.effects.isEmpty)

            // Levels apply when writing: at Error, deliveries are not logged, errors are.
            h.clock.advance(by: 1000)
            h.switchboard.log.update(.init(level: .error, retentionDays: 7))
            _ = try await h.post(client, "/webhooks/pagerduty", Payloads.incident("incident.triggered", id: "P9", eventId: "L1"))
            _ = try await h.post(client, "/webhooks/pagerduty", "{broken")
            let recent = try await h.logs(LogQuery(since: h.clock.millis))
            #expect(recent.map(\.level) == [.error])

            // Retention deletes what is older than the interval: log entries, and the decided events with them.
            try await h.settle()
            h.clock.advance(by: 8 * 86_400_000)
            let purged = try await h.switchboard.retention.purge()
            #expect(purged?.logEntries ?? 0 > 0)
            #expect(purged?.events == 2)
            #expect(try await h.logs().allSatisfy { $0.category == "retention" || $0.at >= h.clock.millis - 7 * 86_400_000 })
            #expect(try await h.events().isEmpty)
        }
    }

    /// The dispatcher's own loop claims jobs as they come: a slow action holds up only the later jobs of its own
    /// incident or record, never those of others (no round waits for its slowest job).
    static func slowActionHoldsUpOnlyItsOwnPartition(_ backend: Backend) async throws {
        let held = SalesforceId.normalized("500300000000001")
        let gate = HeldActions { $0.action == .createIncident && $0.recordId == held }
        try await Harness.run(backend, rules: twoWayRules, sink: { gate.wrapping($0) }) { h, client in
            try await h.withWorkers(releasing: gate) {
                _ = try await h.post(client, "/webhooks/salesforce", Payloads.caseTrigger(id: held, new: ["Priority": "High", "CaseNumber": "00000001"]))
                try await h.eventually("the first case's incident is being created") { gate.holding == 1 }

                let other = SalesforceId.normalized("500300000000002")
                _ = try await h.post(client, "/webhooks/salesforce", Payloads.caseTrigger(id: other, new: ["Priority": "High", "CaseNumber": "00000002"]))
                try await h.eventually("the second case is paged while the first waits") { h.sink.snapshot.effects.count == 2 }
                var effects = h.sink.snapshot.effects
                #expect(effects.map(\.recordId) == [other, other])
                #expect(effects.map(\.action) == [.createIncident, .addResponders])
                // The first case's responders wait for its incident, however long it takes.
                try await Task.sleep(for: .milliseconds(200))
                #expect(h.sink.snapshot.effects.count == 2)

                gate.release()
                try await h.eventually("the first case is done") { h.sink.snapshot.effects.count == 4 }
                effects = h.sink.snapshot.effects
                #expect(effects[2].recordId == held && effects[2].action == .createIncident)
                #expect(effects[3].action == .addResponders && effects[3].incidentId == "Q3")
                try await h.eventually("every job is recorded done") { try await h.jobs().allSatisfy { $0.status == "done" } }
            }
        }
    }

    /// However many jobs are due, no more than `pipeline.concurrency` are in hand at once (the far side's rate limits).
    static func dispatchConcurrencyIsALimit(_ backend: Backend) async throws {
        let gate = HeldActions { $0.action == .createIncident }
        try await Harness.run(backend, rules: twoWayRules, configure: { $0.pipeline.dispatchConcurrency = 2 }, sink: { gate.wrapping($0) }) { h, client in
            try await h.withWorkers(releasing: gate) {
                for n in 1...5 {
                    let id = SalesforceId.normalized("50030000000000\(n)")
                    _ = try await h.post(client, "/webhooks/salesforce", Payloads.caseTrigger(id: id, new: ["Priority": "High", "CaseNumber": "0000000\(n)"]))
                }
                try await h.eventually("two incidents are being created") { gate.holding == 2 }
                try await Task.sleep(for: .milliseconds(200))
                #expect(gate.holding == 2)
                #expect(try await h.jobs().filter { $0.status == "running" }.count == 2)
                gate.release()
                try await h.eventually("all five cases are paged") { h.sink.snapshot.effects.count == 10 }
                #expect(gate.mostHeldAtOnce == 2)
                try await h.eventually("every job is recorded done") { try await h.jobs().allSatisfy { $0.status == "done" } }
            }
        }
    }

    static func operationsEndpoints(_ backend: Backend) async throws {
        try await Harness.run(backend) { h, client in
            #expect(try await client.execute(uri: "/healthz", method: .get) { $0.status } == .ok)
            #expect(try await client.execute(uri: "/readyz", method: .get) { $0.status } == .ok)
            _ = try await h.post(client, "/webhooks/pagerduty", Payloads.incident("incident.triggered", id: "P1", eventId: "M1"))
            let metrics = try await client.execute(uri: "/metrics", method: .get) { String(buffer: $0.body) }
            #expect(metrics.contains("switchboard_events_received_total"))
            #expect(metrics.contains("switchboard_intake_duration_seconds"))
            #if os(Linux)
                #expect(metrics.contains("process_resident_memory_bytes"))
                #expect(metrics.contains("switchboard_heap_in_use_bytes"))
            #endif
        }
    }

    /// One processing transaction takes a whole intake group: with fewer, a burst of deliveries that fills the
    /// intake's groups outruns the processor, and the backlog grows for as long as the burst lasts.
    static func aFullIntakeGroupIsDecidedInOneBatch(_ backend: Backend) async throws {
        try await Harness.run(backend) { h, _ in
            let events = (0..<IntakeWriter.defaultMaximumBatch).map { n in
                NewInboundEvent(
                    source: .pagerduty, externalId: "B\(n)", partitionKey: "pd:PB\(n)",
                    payload: Payloads.incident("incident.triggered", id: "PB\(n)", eventId: "B\(n)"))
            }
            let outcomes = try await h.switchboard.intake.accept(events)
            #expect(outcomes.allSatisfy { if case .accepted = $0 { true } else { false } })
            #expect(try await h.switchboard.processor.processBatch() == events.count)
            let statuses = Set(try await h.events().map(\.status))
            #expect(!statuses.contains("pending"), "left pending: \(statuses)")
            #expect(try await h.switchboard.processor.processBatch() == 0)
        }
    }
}

@Suite("Pipeline on SQLite")
struct SQLitePipelineTests {
    @Test func intakeAcknowledgesDurablyAndDeduplicates() async throws { try await PipelineScenarios.intakeAcknowledgesDurablyAndDeduplicates(.sqlite) }
    @Test func badInputIsRefusedAndLogged() async throws { try await PipelineScenarios.badInputIsRefusedAndLogged(.sqlite) }
    @Test func salesforceBatchFansOutInOrder() async throws { try await PipelineScenarios.salesforceBatchFansOutInOrder(.sqlite) }
    @Test func twoWayFlowWithLinksAndNoEchoes() async throws { try await PipelineScenarios.twoWayFlowWithLinksAndNoEchoes(.sqlite) }
    @Test func retriesHonourRetryAfterThenDeadLetter() async throws { try await PipelineScenarios.retriesHonourRetryAfterThenDeadLetter(.sqlite) }
    @Test func replaysNeverCreateTwice() async throws { try await PipelineScenarios.replaysNeverCreateTwice(.sqlite) }
    @Test func loopingRuleIsSuspended() async throws { try await PipelineScenarios.loopingRuleIsSuspended(.sqlite) }
    @Test func engineOffAndLogLevels() async throws { try await PipelineScenarios.engineOffAndLogLevels(.sqlite) }
    @Test func operationsEndpoints() async throws { try await PipelineScenarios.operationsEndpoints(.sqlite) }
    @Test func slowActionHoldsUpOnlyItsOwnPartition() async throws { try await PipelineScenarios.slowActionHoldsUpOnlyItsOwnPartition(.sqlite) }
    @Test func dispatchConcurrencyIsALimit() async throws { try await PipelineScenarios.dispatchConcurrencyIsALimit(.sqlite) }
    @Test func aFullIntakeGroupIsDecidedInOneBatch() async throws { try await PipelineScenarios.aFullIntakeGroupIsDecidedInOneBatch(.sqlite) }
}

@Suite("Pipeline on PostgreSQL", .enabled(if: TestPostgres.isAvailable, Comment(rawValue: TestPostgres.skipReason)))
struct PostgreSQLPipelineTests {
    @Test func intakeAcknowledgesDurablyAndDeduplicates() async throws { try await PipelineScenarios.intakeAcknowledgesDurablyAndDeduplicates(.postgresql) }
    @Test func badInputIsRefusedAndLogged() async throws { try await PipelineScenarios.badInputIsRefusedAndLogged(.postgresql) }
    @Test func salesforceBatchFansOutInOrder() async throws { try await PipelineScenarios.salesforceBatchFansOutInOrder(.postgresql) }
    @Test func twoWayFlowWithLinksAndNoEchoes() async throws { try await PipelineScenarios.twoWayFlowWithLinksAndNoEchoes(.postgresql) }
    @Test func retriesHonourRetryAfterThenDeadLetter() async throws { try await PipelineScenarios.retriesHonourRetryAfterThenDeadLetter(.postgresql) }
    @Test func replaysNeverCreateTwice() async throws { try await PipelineScenarios.replaysNeverCreateTwice(.postgresql) }
    @Test func loopingRuleIsSuspended() async throws { try await PipelineScenarios.loopingRuleIsSuspended(.postgresql) }
    @Test func engineOffAndLogLevels() async throws { try await PipelineScenarios.engineOffAndLogLevels(.postgresql) }
    @Test func operationsEndpoints() async throws { try await PipelineScenarios.operationsEndpoints(.postgresql) }
    @Test func slowActionHoldsUpOnlyItsOwnPartition() async throws { try await PipelineScenarios.slowActionHoldsUpOnlyItsOwnPartition(.postgresql) }
    @Test func dispatchConcurrencyIsALimit() async throws { try await PipelineScenarios.dispatchConcurrencyIsALimit(.postgresql) }
    @Test func aFullIntakeGroupIsDecidedInOneBatch() async throws { try await PipelineScenarios.aFullIntakeGroupIsDecidedInOneBatch(.postgresql) }
}

/// A sink that holds the actions matching a test until the test releases them, counting how many wait.
final class HeldActions: Sendable {
    private struct State {
        var released = false
        var waiters: [CheckedContinuation<Void, Never>] = []
        var mostAtOnce = 0
    }

    private let matches: @Sendable (ActionRequest) -> Bool
    private let state = Mutex(State())

    init(_ matches: @escaping @Sendable (ActionRequest) -> Bool) { self.matches = matches }

    var holding: Int { state.withLock { $0.waiters.count } }
    var mostHeldAtOnce: Int { state.withLock { $0.mostAtOnce } }

    /// Lets every held action go on, and the ones to come.
    func release() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.released = true
            defer { s.waiters = [] }
            return s.waiters
        }
        for w in waiters { w.resume() }
    }

    func wrapping(_ inner: RecordingSink) -> any OutboundSink {
        Sink(gate: self, inner: inner)
    }

    private struct Sink: OutboundSink {
        let gate: HeldActions
        let inner: RecordingSink

        func perform(_ request: ActionRequest) async throws(ActionFailure) -> ActionOutcome {
            if gate.matches(request) {
                await withCheckedContinuation { c in
                    let passNow = gate.state.withLock { s -> Bool in
                        if s.released { return true }
                        s.waiters.append(c)
                        s.mostAtOnce = max(s.mostAtOnce, s.waiters.count)
                        return false
                    }
                    if passNow { c.resume() }
                }
            }
            return try await inner.perform(request)
        }
    }
}
