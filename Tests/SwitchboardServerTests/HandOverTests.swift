import AsyncHTTPClient
import Foundation
import Synchronization
import SwitchboardCore
import SwitchboardPipeline
import SwitchboardServer
import SwitchboardStorage
import SwitchboardTestSupport
import Testing

/// Jobs the event processor claims for the dispatcher in the transaction that plans them.
enum HandOverScenarios {
    static let pageRules = """
        version: 1
        rulesets:
          - name: page
            rules:
              - name: page on high priority
                object: Case
                runOn: salesforce
                conditions: [{ field: Priority, operator: equals, value: High }]
                applyTo: new
                actions: [{ action: createIncident, service: PSVC001 }]
        """

    static func caseId(_ n: Int) -> String { SalesforceId.normalized("5003000000000\(String(format: "%02d", n))") }

    /// With both workers running, each planned job reaches the sink once, without a claim of the dispatcher's own.
    static func plannedJobsSkipTheirOwnClaim(_ backend: Backend) async throws {
        try await Harness.run(
            backend, rules: pageRules, configure: { $0.pipeline.pollInterval = .seconds(30) }, database: { StallingDatabase($0) }
        ) { h, client in
            let counting = try #require(h.database as? StallingDatabase)
            try await h.withWorkers(releasing: HeldActions { _ in false }) {
                for n in 1...10 {
                    _ = try await h.post(client, "/webhooks/salesforce", Payloads.caseTrigger(id: caseId(n), new: ["Priority": "High", "CaseNumber": "0000\(n)"]))
                    try await h.eventually("case \(n) is paged") { h.sink.snapshot.effects.count == n }
                }
                try await h.eventually("every job is recorded done") { try await h.jobs().allSatisfy { $0.status == "done" } }
            }
            let effects = h.sink.snapshot.effects
            #expect(effects.map(\.action) == Array(repeating: .createIncident, count: 10))
            #expect(effects.map(\.recordId) == (1...10).map { caseId($0) })
            #expect(try await h.jobs().map(\.attempts) == Array(repeating: 1, count: 10))
            #expect(try await h.links().count == 10)
            // The dispatcher's own claims run unsynced; before, it made one per job. One at its start is allowed.
            #expect(counting.unsyncedTransactions <= 2, "the dispatcher claimed \(counting.unsyncedTransactions) times for 10 jobs")
        }
    }

    /// The dispatcher's own claim and the processor's reservations share the limit: a claim under way holds its places.
    static func claimsAndReservationsShareTheLimit(_ backend: Backend) async throws {
        let gate = HeldActions { $0.action == .createIncident }
        try await Harness.run(
            backend, rules: pageRules, configure: { $0.pipeline.dispatchConcurrency = 2 }, sink: { gate.wrapping($0) },
            database: { StallingDatabase($0) }
        ) { h, client in
            let stalling = try #require(h.database as? StallingDatabase)
            stalling.holdUnsynced(true)
            try await h.withWorkers(releasing: gate) {
                try await h.eventually("the dispatcher's first claim is under way") { stalling.unsyncedWaiting == 1 }
                for n in 1...4 {
                    _ = try await h.post(client, "/webhooks/salesforce", Payloads.caseTrigger(id: caseId(n), new: ["Priority": "High", "CaseNumber": "0000\(n)"]))
                }
                try await h.eventually("the four cases are decided") { try await h.events().allSatisfy { $0.status == "processed" } }
                // Before, the claim had counted both places free before it began, the processor took them meanwhile, and
                // the claim then took two more: four actions in hand with a limit of two.
                stalling.holdUnsynced(false)
                try await h.eventually("two incidents are being created") { gate.holding >= 2 }
                try await Task.sleep(for: .milliseconds(200))
                #expect(gate.holding == 2)
                gate.release()
                try await h.eventually("all four cases are paged") { h.sink.snapshot.effects.count == 4 }
                #expect(gate.mostHeldAtOnce == 2)
                try await h.eventually("every job is recorded done") { try await h.jobs().allSatisfy { $0.status == "done" } }
            }
        }
    }

    /// A reservation made before shutdown holds the dispatcher until its jobs are handed over and carried out.
    static func handedJobsFinishAfterShutdownBegins(_ backend: Backend) async throws {
        try await Harness.run(backend, rules: pageRules, configure: { $0.pipeline.pollInterval = .seconds(30) }) { h, client in
            let dispatcher = h.switchboard.dispatcher
            dispatcher.ready.open()
            let stopped = Flag()
            let running = Task {
                try await dispatcher.run()
                stopped.set()
            }
            var places = 0
            try await h.eventually("the dispatcher takes reservations") {
                places = dispatcher.reservePlaces(upTo: 1)
                return places == 1
            }
            running.cancel()
            try await h.eventually("the dispatcher stops taking reservations") {
                let more = dispatcher.reservePlaces(upTo: 1)
                if more > 0 { dispatcher.handOver([], reserved: more) }
                return more == 0
            }
            // Shutdown has begun: the processor's next batch gets no place and leaves its job pending.
            _ = try await h.post(client, "/webhooks/salesforce", Payloads.caseTrigger(id: caseId(1), new: ["Priority": "High", "CaseNumber": "00001"]))
            #expect(try await h.switchboard.processor.processBatch() == 1)
            #expect(try await h.jobs().map(\.status) == ["pending"])
            try await Task.sleep(for: .milliseconds(200))
            #expect(!stopped.isSet, "the dispatcher waits for the reservation it gave")

            // The reservation is used as the processor uses it: a claim under the dispatcher's name, then the hand-over.
            let now = h.clock.millis
            let worker = h.switchboard.configuration.instanceId
            let limit = places
            let claimed = try await h.database.transaction { db in
                try await JobStore.claim(worker: worker, limit: limit, now: now, leaseUntil: now + 60_000, dialect: h.database.dialect, on: db)
            }
            #expect(claimed.count == 1)
            dispatcher.handOver(claimed, reserved: places)
            try await running.value
            #expect(h.sink.snapshot.effects.map(\.recordId) == [caseId(1)])
        }
    }

    /// On shutdown, an action under way at a slow service finishes and its result is recorded: before, the loop's own
    /// jobs ran in the cancelled group, the HTTP call was cut off, and the job waited for its lease to run out.
    static func callsUnderWayFinishOnShutdown(_ backend: Backend) async throws {
        let service = try await RecordingServer.start()
        defer { Task { await service.stop() } }
        service.answerAfter(.milliseconds(500))
        try await Harness.run(
            backend, rules: pageRules, configure: { $0.pipeline.pollInterval = .seconds(30) },
            sink: { _ in HTTPSink(url: service.url, client: HTTPClient.shared) }
        ) { h, client in
            // Decided while the dispatcher is not running: the job is left for the dispatcher's own claim.
            _ = try await h.post(client, "/webhooks/salesforce", Payloads.caseTrigger(id: caseId(1), new: ["Priority": "High", "CaseNumber": "00001"]))
            #expect(try await h.switchboard.processor.processBatch() == 1)
            #expect(try await h.jobs().map(\.status) == ["pending"])

            let dispatcher = h.switchboard.dispatcher
            dispatcher.ready.open()
            let running = Task { try await dispatcher.run() }
            try await h.eventually("the action reaches the slow service") { service.snapshot.arrived == 1 }
            running.cancel()
            try await running.value
            #expect(service.snapshot.effects.count == 1)
            let jobs = try await h.jobs()
            #expect(jobs.map(\.status) == ["done"], "the job was cut off: \(jobs)")
            #expect(jobs.map(\.attempts) == [1])
            #expect(try await h.links().map(\.incidentId) == ["Q1"])
        }
    }
}

/// Set once, read from anywhere.
final class Flag: Sendable {
    private let value = Mutex(false)
    func set() { value.withLock { $0 = true } }
    var isSet: Bool { value.withLock { $0 } }
}

@Suite("Jobs handed over in the planning transaction, on SQLite")
struct SQLiteHandOverTests {
    @Test func plannedJobsSkipTheirOwnClaim() async throws { try await HandOverScenarios.plannedJobsSkipTheirOwnClaim(.sqlite) }
    @Test func handedJobsFinishAfterShutdownBegins() async throws { try await HandOverScenarios.handedJobsFinishAfterShutdownBegins(.sqlite) }
    @Test func claimsAndReservationsShareTheLimit() async throws { try await HandOverScenarios.claimsAndReservationsShareTheLimit(.sqlite) }
    @Test func callsUnderWayFinishOnShutdown() async throws { try await HandOverScenarios.callsUnderWayFinishOnShutdown(.sqlite) }
}

@Suite("Jobs handed over in the planning transaction, on PostgreSQL", .enabled(if: TestPostgres.isAvailable, Comment(rawValue: TestPostgres.skipReason)))
struct PostgreSQLHandOverTests {
    @Test func plannedJobsSkipTheirOwnClaim() async throws { try await HandOverScenarios.plannedJobsSkipTheirOwnClaim(.postgresql) }
    @Test func handedJobsFinishAfterShutdownBegins() async throws { try await HandOverScenarios.handedJobsFinishAfterShutdownBegins(.postgresql) }
    @Test func claimsAndReservationsShareTheLimit() async throws { try await HandOverScenarios.claimsAndReservationsShareTheLimit(.postgresql) }
    @Test func callsUnderWayFinishOnShutdown() async throws { try await HandOverScenarios.callsUnderWayFinishOnShutdown(.postgresql) }
}
