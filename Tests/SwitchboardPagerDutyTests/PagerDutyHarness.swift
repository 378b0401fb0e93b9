import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import SwitchboardCore
import SwitchboardPagerDuty
import SwitchboardPipeline
import SwitchboardServer
import SwitchboardSimulators
import SwitchboardStorage
import SwitchboardTestSupport
import Testing

/// PagerDuty's official OpenAPI document, beside the repository; absent in a fresh clone.
enum OfficialDocument {
    static let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("shared/reference/pagerduty/rest-api-openapiv3.json").path
    static var isAvailable: Bool { FileManager.default.fileExists(atPath: path) }
    static let skipReason: Comment = "SKIPPED: ../shared/reference/pagerduty is absent, so requests cannot be checked against PagerDuty's official OpenAPI document"
    /// Loaded once: 2.7 MB.
    static let validator: OpenAPIRequestValidator? = isAvailable ? try? OpenAPIRequestValidator(contentsOfFile: path) : nil
}

/// Switchboard listening on a real port, connected to a PagerDuty simulator that delivers signed webhooks to it.
struct PagerDutyHarness: Sendable {
    let switchboard: Switchboard
    let simulator: PagerDutySimulator
    let salesforce: RecordingSink
    let database: any Database
    let baseURL: String
    let box: SecretBox

    static func run(
        _ backend: Backend = .sqlite, rules: String, configure: @Sendable (inout ServerConfiguration) -> Void = { _ in },
        simulatorOptions: @Sendable (inout PagerDutySimulator.Options) -> Void = { _ in },
        _ body: @Sendable (PagerDutyHarness) async throws -> Void
    ) async throws {
        var options = PagerDutySimulator.Options()
        options.validator = OfficialDocument.validator
        options.retryDelay = .milliseconds(20)
        simulatorOptions(&options)
        let simulator = PagerDutySimulator(options: options)
        try await simulator.start()
        do {
            try await runConnected(backend, rules: rules, configure: configure, simulator: simulator, options: options, body)
        } catch {
            await simulator.stop()
            throw error
        }
        await simulator.stop()
    }

    private static func runConnected(
        _ backend: Backend, rules: String, configure: @Sendable (inout ServerConfiguration) -> Void, simulator: PagerDutySimulator,
        options: PagerDutySimulator.Options, _ body: @Sendable (PagerDutyHarness) async throws -> Void
    ) async throws {
        try await withTestDatabase(backend) { (db: any Database, _: String) async throws -> Void in
            var configuration = ServerConfiguration()
            configuration.pipeline.backoff = Backoff(baseSeconds: 0.05, capSeconds: 0.5)
            configuration.pipeline.maxAttempts = 4
            configuration.pipeline.pollInterval = .milliseconds(20)
            configure(&configuration)
            var logger = Logger(label: "test")
            logger.logLevel = .critical
            let box = try SecretBox(encodedKey: SecretBox.generateEncodedKey())
            let salesforce = RecordingSink()
            let switchboard = Switchboard(
                configuration: configuration,
                dependencies: Dependencies(database: db, salesforceSink: salesforce, secretBox: box, logger: logger))
            _ = try await db.transaction { try await RulesStore.save(document: rules, author: "test", comment: nil, now: 0, on: $0) }
            let app = Application(router: buildRouter(switchboard), configuration: .init(address: .hostname("127.0.0.1", port: 0)), logger: logger)
            try await app.test(.live) { client in
                guard let port = client.port else { throw DatabaseError("the test server has no port") }
                let baseURL = "http://127.0.0.1:\(port)"
                // Connect as `switchboard pagerduty connect` does: subscription for Switchboard's URL, secret stored.
                var connection = PagerDutyConnection(apiKey: options.apiKey, region: .us, baseURL: simulator.baseURL, fromEmail: "switchboard@example.com")
                let client = PagerDutyClient(configuration: connection.configuration)
                let created = try await client.createWebhookSubscription(
                    url: baseURL + "/webhooks/pagerduty", events: PagerDutyConnection.subscribedEvents, filter: ["type": "account_reference"], description: "test")
                connection.subscriptionId = created.id
                connection.webhookSecrets = [created.secret]
                let stored = connection
                try await db.transaction { try await stored.save(box: box, now: 0, on: $0) }
                switchboard.pagerDuty.invalidate()
                let harness = PagerDutyHarness(switchboard: switchboard, simulator: simulator, salesforce: salesforce, database: db, baseURL: baseURL, box: box)
                try await body(harness)
                // Every request Switchboard sent PagerDuty is allowed by the official document.
                #expect(simulator.violations.isEmpty, "\(simulator.violations.map(\.description).joined(separator: "\n"))")
            }
        }
    }

    /// Processes and dispatches until the pipeline and the simulator's deliveries are quiet.
    func settle(timeout: Duration = .seconds(60)) async throws {
        let deadline = ContinuousClock.now + timeout
        var quiet = 0
        while ContinuousClock.now < deadline {
            let processed = try await switchboard.processor.processBatch()
            let dispatched = try await switchboard.dispatcher.dispatchRound()
            if processed == 0 && dispatched == 0 {
                // Webhooks travel asynchronously, and retries wait: settled when nothing is pending and a few rounds
                // in a row were quiet.
                let open = try await database.read { db in
                    let jobs = try await JobStore.counts(on: db)
                    let events = try await EventStore.counts(on: db)
                    return (jobs["pending"] ?? 0) + (jobs["running"] ?? 0) + (events["pending"] ?? 0)
                }
                // A webhook still on its way (slow under the full suite's load) is not quiet.
                quiet = open == 0 && simulator.deliveriesInFlight == 0 ? quiet + 1 : 0
                if quiet >= 5 { return }
                try await Task.sleep(for: .milliseconds(30))
            } else {
                quiet = 0
            }
        }
        Issue.record("the pipeline and the simulator's webhooks did not settle within \(timeout)")
    }

    func postCase(_ fields: [String: String], id: String = "5003000000D8cuIAAR", insert: Bool = true, old: [String: String] = [:]) async throws {
        func record(_ f: [String: String]) -> JSONValue {
            var o: JSONObject = ["attributes": .object(["type": "Case"]), "Id": .string(id)]
            for (k, v) in f.sorted(by: { $0.key < $1.key }) { o[k] = .string(v) }
            return .object(o)
        }
        let body = JSONValue.object(["object": "Case", "isInsert": .bool(insert), "old": insert ? .null : .object([id: record(old)]), "new": .object([id: record(fields)])])
        let r = await HTTP.post(baseURL + "/webhooks/salesforce", body.serialized())
        #expect(r?.status == 202 || r?.status == 200)
    }

    func events() async throws -> [InboundEvent] { try await database.read { try await EventStore.list(limit: 1000, on: $0) }.reversed() }
    func links() async throws -> [Link] { try await database.read { try await LinkStore.find(on: $0) }.map(\.link) }
    func deadLetters() async throws -> [DeadLetter] { try await database.read { try await JobStore.deadLetters(on: $0) } }
}
