import Foundation
import Logging
import Synchronization
import SwitchboardCore
import SwitchboardStorage
import SwitchboardTestSupport
import Testing

/// Whole processes, killed with SIGKILL at random points: nothing accepted is lost, no action takes effect twice.
/// State the test, its sender and its killer share.
final class Shared: Sendable {
    let servers = Mutex<[Int: ServeProcess]>([:])
    let acknowledged = Mutex(0)
}

enum FaultScenarios {
    static let rules = """
        version: 1
        rulesets:
          - name: crash test
            rules:
              - name: page on high priority
                object: Case
                runOn: salesforce
                conditions: [{ field: Priority, operator: equals, value: High }]
                applyTo: new
                actions:
                  - { action: createIncident, service: PSVC001, title: { prefix: "Case ", fields: [CaseNumber] } }
                  - { action: addResponders, users: [PUSER02], message: "Case {{CaseNumber}}" }
              - name: open a case for XYZ
                object: Case
                runOn: pagerduty
                conditions: [{ field: pagerduty.serviceName, operator: equals, value: XYZ }]
                applyTo: new
                actions:
                  - { action: createRecord, fields: { Subject: "{{pagerduty.title}}", Origin: PagerDuty, Status: New } }
        """

    struct Run {
        let caseCount: Int
        let incidentCount: Int
        let instances: Int
        let kills: Int
        /// Kill one instance for good instead of restarting it.
        let killForGood: Bool
    }

    static func caseBody(_ i: Int) -> String {
        let id = SalesforceId.normalized("500300000" + String(format: "%06d", i))
        let record: JSONValue = .object([
            "attributes": .object(["type": "Case"]), "Id": .string(id), "Priority": "High", "CaseNumber": .string(String(format: "%08d", i)),
        ])
        return JSONValue.object(["object": "Case", "isInsert": .bool(true), "old": .null, "new": .object([id: record])]).serialized()
    }

    static func incidentBody(_ i: Int) -> String {
        JSONValue.object([
            "event": .object([
                "id": .string("crash-\(i)"), "event_type": "incident.triggered", "resource_type": "incident", "occurred_at": "2026-11-24T03:00:00Z",
                "data": .object([
                    "id": .string("PX\(i)"), "type": "incident", "status": "triggered", "title": .string("Outage \(i)"),
                    "service": .object(["id": "PSVC9", "type": "service_reference", "summary": "XYZ"]),
                ]),
            ])
        ]).serialized()
    }

    static func run(_ backend: Backend, _ plan: Run) async throws {
        let recorder = try await RecordingServer.start()
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let databaseURL: String
        var pgName: String?
        switch backend {
        case .sqlite: databaseURL = dir.file("switchboard.sqlite")
        case .postgresql:
            let created = try await TestPostgres.createDatabase()
            databaseURL = created.url
            pgName = created.name
        }
        let env = [
            "SWITCHBOARD_DATABASE_URL": databaseURL, "SWITCHBOARD_SINK_URL": recorder.url, "SWITCHBOARD_PIPELINE_LEASE_SECONDS": "2",
            "SWITCHBOARD_PIPELINE_BACKOFF_BASE_SECONDS": "0.05", "SWITCHBOARD_PIPELINE_BACKOFF_CAP_SECONDS": "0.5",
            "SWITCHBOARD_PIPELINE_POLL_MILLISECONDS": "50", "SWITCHBOARD_LOG_LEVEL": "warning",
        ]
        let rulesFile = dir.file("rules.yaml")
        try rules.write(toFile: rulesFile, atomically: true, encoding: .utf8)
        let imported = try await runSwitchboard(["rules", "import", rulesFile], environment: env)
        #expect(imported.status == 0, "\(imported.output)")

        // The processes, and the ports senders may use.
        let shared = Shared()
        var logIndex = 0
        func launch(_ slot: Int) async throws {
            logIndex += 1
            let serve = try await ServeProcess.start(arguments: ["--instance-id", "i\(slot)-\(logIndex)"], environment: env, outputFile: dir.file("serve-\(logIndex).log"))
            shared.servers.withLock { $0[slot] = serve }
        }
        for slot in 0..<plan.instances { try await launch(slot) }

        // Senders: each event is retried until it is acknowledged, as PagerDuty and the Apex launcher do.
        let bodies: [(path: String, body: String)] =
            (0..<plan.caseCount).map { ("/webhooks/salesforce", caseBody($0)) } + (0..<plan.incidentCount).map { ("/webhooks/pagerduty", incidentBody($0)) }
        let sender = Task { [shared] in
            for (n, item) in bodies.enumerated() {
                while true {
                    let ports = shared.servers.withLock { $0.values.filter { $0.process.isRunning }.map(\.port) }
                    if let port = ports.isEmpty ? nil : ports[n % ports.count],
                        let response = await HTTP.post("http://127.0.0.1:\(port)\(item.path)", item.body, timeout: .seconds(5)), (200..<300).contains(response.status)
                    {
                        shared.acknowledged.withLock { $0 += 1 }
                        break
                    }
                    try await Task.sleep(for: .milliseconds(30))
                }
            }
        }
        // The killer: SIGKILL at random moments; restart unless the plan keeps one down.
        var killsWhileSending = 0
        for k in 0..<plan.kills {
            try await Task.sleep(for: .milliseconds(Int.random(in: 150...700)))
            if shared.acknowledged.withLock({ $0 }) < bodies.count { killsWhileSending += 1 }
            let slot = k % plan.instances
            shared.servers.withLock { $0[slot] }?.kill9()
            if plan.killForGood && k == 0 {
                shared.servers.withLock { _ = $0.removeValue(forKey: slot) }
            } else {
                try await launch(slot)
            }
        }
        try await sender.value
        #expect(shared.acknowledged.withLock { $0 } == bodies.count)

        // Wait until every event is decided and every job finished.
        let deadline = Date().addingTimeInterval(120)
        var status: JSONValue = .null
        while Date() < deadline {
            let port = shared.servers.withLock { $0.values.first { $0.process.isRunning }?.port } ?? 0
            if let r = await HTTP.get("http://127.0.0.1:\(port)/status"), let s = try? JSONParser.parseValue(r.body) {
                status = s
                let pendingEvents = s["events"]?["pending"] ?? .number(0)
                let openJobs = [s["jobs"]?["pending"], s["jobs"]?["running"]].compactMap { $0 }.filter { $0 != .number(0) }
                if pendingEvents == .number(0), openJobs.isEmpty, s["events"]?["processed"] == .number(Double(bodies.count)) { break }
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        let logs = shared.servers.withLock { $0.values.map(\.log) }.joined(separator: "\n")
        for serve in shared.servers.withLock({ Array($0.values) }) { serve.terminate() }

        // Nothing lost: every event processed, every job done, none dead.
        #expect(status["events"]?["processed"] == .number(Double(bodies.count)), "\(status.serialized()) \(logs.suffix(3000))")
        #expect(status["jobs"]?["done"] == .number(Double(plan.caseCount * 2 + plan.incidentCount)), "\(status.serialized())")
        #expect(status["deadLetters"] == .number(0))

        // Nothing twice: one effect per key, one incident per case, one case per incident, responders on the right incident.
        let effects = recorder.snapshot.effects
        let creates = effects.filter { $0.body["action"] == "createIncident" }
        let responders = effects.filter { $0.body["action"] == "addResponders" }
        let records = effects.filter { $0.body["action"] == "createRecord" }
        #expect(creates.count == plan.caseCount)
        #expect(Set(creates.compactMap { $0.body["record"]?.stringValue }).count == plan.caseCount)
        #expect(records.count == plan.incidentCount)
        #expect(Set(records.compactMap { $0.body["incident"]?.stringValue }).count == plan.incidentCount)
        #expect(responders.count == plan.caseCount)
        var incidentOfCase: [String: String] = [:]
        for (i, c) in creates.enumerated() { incidentOfCase[c.body["record"]?.stringValue ?? ""] = "Q\(effects.firstIndex { $0.key == c.key }.map { $0 + 1 } ?? i)" }
        for r in responders {
            let record = r.body["record"]?.stringValue ?? ""
            #expect(r.body["incident"]?.stringValue == incidentOfCase[record], "responders for \(record) went to \(r.body["incident"] ?? .null)")
        }
        // Links: one per creation, none doubled.
        var logger = Logger(label: "check")
        logger.logLevel = .critical
        let links = try await withDatabase(url: databaseURL, logger: logger) { db in try await db.read { try await LinkStore.find(limit: 100_000, on: $0) } }
        #expect(links.count == plan.caseCount + plan.incidentCount)
        #expect(recorder.snapshot.deliveries >= effects.count)
        #expect(killsWhileSending >= 1, "every kill came after the last event was acknowledged; the test proved nothing")
        print("crash test (\(backend)): \(bodies.count) events, \(plan.kills) kills (\(killsWhileSending) while events were arriving), \(effects.count) effects, \(recorder.snapshot.deliveries) deliveries to the sink")
        await recorder.stop()
        if let pgName { await TestPostgres.dropDatabase(pgName) }
    }
}

@Suite("Crash safety", .serialized)
struct FaultInjectionTests {
    @Test("SQLite: SIGKILL at random points, many times; nothing lost, nothing twice")
    func sqliteKills() async throws {
        try await FaultScenarios.run(.sqlite, .init(caseCount: 150, incidentCount: 50, instances: 1, kills: 8, killForGood: false))
    }

    @Test(
        "PostgreSQL: SIGKILL at random points, many times; nothing lost, nothing twice",
        .enabled(if: TestPostgres.isAvailable, Comment(rawValue: TestPostgres.skipReason)))
    func postgresKills() async throws {
        try await FaultScenarios.run(.postgresql, .init(caseCount: 150, incidentCount: 50, instances: 1, kills: 8, killForGood: false))
    }

    @Test(
        "PostgreSQL: three serve processes share the work; one killed mid-run; all done exactly once",
        .enabled(if: TestPostgres.isAvailable, Comment(rawValue: TestPostgres.skipReason)))
    func threeInstances() async throws {
        try await FaultScenarios.run(.postgresql, .init(caseCount: 90, incidentCount: 30, instances: 3, kills: 1, killForGood: true))
    }
}
