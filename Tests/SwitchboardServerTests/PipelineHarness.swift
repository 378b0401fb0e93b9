import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import SwitchboardCore
import SwitchboardPipeline
import SwitchboardServer
import SwitchboardStorage
import SwitchboardTestSupport
import Testing

/// The real application on a real database, with a recording sink and a hand-moved clock; the test drives the
/// workers one step at a time.
struct Harness: Sendable {
    let switchboard: Switchboard
    let sink: RecordingSink
    let clock: ManualClock
    let database: any Database
    let box: SecretBox

    static let start = Instant(iso8601: "2026-11-24T03:00:00Z")!

    static func run(
        _ backend: Backend, rules: String? = nil, configure: @Sendable (inout ServerConfiguration) -> Void = { _ in },
        sink wrap: @Sendable (RecordingSink) -> any OutboundSink = { $0 }, database wrapDatabase: @Sendable (any Database) -> any Database = { $0 },
        _ body: @Sendable (Harness, any TestClientProtocol) async throws -> Void
    ) async throws {
        try await withTestDatabase(backend) { (opened: any Database, _: String) async throws -> Void in
            let db = wrapDatabase(opened)
            var configuration = ServerConfiguration()
            configuration.pipeline.backoff = Backoff(baseSeconds: 1, capSeconds: 60)
            configuration.pipeline.maxAttempts = 3
            configure(&configuration)
            let clock = ManualClock(start)
            let sink = RecordingSink()
            var logger = Logger(label: "test")
            logger.logLevel = .critical
            let box = try SecretBox(encodedKey: SecretBox.generateEncodedKey())
            let switchboard = Switchboard(
                configuration: configuration, dependencies: Dependencies(database: db, sink: wrap(sink), clock: clock, secretBox: box, logger: logger))
            if let rules {
                _ = try await db.transaction { try await RulesStore.save(document: rules, author: "test", comment: nil, now: 0, on: $0) }
            }
            let harness = Harness(switchboard: switchboard, sink: sink, clock: clock, database: db, box: box)
            let app = Application(router: buildRouter(switchboard), logger: logger)
            try await app.test(.router) { client in try await body(harness, client) }
        }
    }

    /// Processes and dispatches until nothing is left to do now.
    func settle() async throws {
        for _ in 0..<50 {
            let processed = try await switchboard.processor.processBatch()
            let dispatched = try await switchboard.dispatcher.dispatchRound()
            if processed == 0 && dispatched == 0 { return }
        }
    }

    /// Runs the processor's and the dispatcher's own loops (instead of the hand-driven steps) while `body` runs, then
    /// stops them; the held actions are let go first, so the dispatcher can stop.
    func withWorkers(releasing held: HeldActions, _ body: () async throws -> Void) async throws {
        let workers = Task {
            switchboard.processor.ready.open()
            switchboard.dispatcher.ready.open()
            await withDiscardingTaskGroup { group in
                group.addTask { try? await switchboard.processor.run() }
                group.addTask { try? await switchboard.dispatcher.run() }
            }
        }
        func stop() async {
            held.release()
            workers.cancel()
            await workers.value
        }
        do {
            try await body()
        } catch {
            await stop()
            throw error
        }
        await stop()
    }

    /// Waits until `condition` holds, checking every few milliseconds (for the workers' own loops).
    func eventually(_ what: String, timeout: Duration = .seconds(60), _ condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while try await !condition() {
            guard ContinuousClock.now < deadline else { throw HarnessTimeout(what: what) }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    func post(_ client: any TestClientProtocol, _ path: String, _ body: String, contentType: String = "application/json", headers: [String: String] = [:])
        async throws -> (status: HTTPResponse.Status, body: JSONValue)
    {
        var fields: HTTPFields = [.contentType: contentType]
        for (k, v) in headers { if let name = HTTPField.Name(k) { fields[name] = v } }
        return try await client.execute(uri: path, method: .post, headers: fields, body: ByteBuffer(string: body)) { response in
            (response.status, (try? JSONParser.parseValue(String(buffer: response.body))) ?? .null)
        }
    }

    func events() async throws -> [InboundEvent] { try await database.read { try await EventStore.list(limit: 1000, on: $0) }.reversed() }
    func jobs() async throws -> [OutboundJob] { try await database.read { try await JobStore.list(limit: 1000, on: $0) } }
    func links() async throws -> [Link] { try await database.read { try await LinkStore.find(on: $0) }.map(\.link) }
    func logs(_ q: LogQuery = LogQuery(limit: 1000)) async throws -> [LogEntry] { try await database.read { try await LogStore.query(q, on: $0) } }
    func setting(_ key: String, _ value: String) async throws {
        try await database.transaction { try await SettingsStore.set(key, value: value, now: 0, on: $0) }
        switchboard.processor.reloadConfiguration()
    }
}

struct HarnessTimeout: Error, CustomStringConvertible {
    var what: String
    var description: String { "timed out waiting until \(what)" }
}

enum Payloads {
    static func caseTrigger(id: String = "5003000000D8cuIAAR", insert: Bool = true, old: [String: String] = [:], new: [String: String]) -> String {
        func record(_ fields: [String: String]) -> JSONValue {
            var o: JSONObject = ["attributes": .object(["type": "Case", "url": .string("/services/data/v67.0/sobjects/Case/\(id)")]), "Id": .string(id)]
            for (k, v) in fields.sorted(by: { $0.key < $1.key }) { o[k] = .string(v) }
            return .object(o)
        }
        let body: JSONObject = [
            "object": "Case", "isInsert": .bool(insert), "old": insert ? .null : .object([id: record(old)]), "new": .object([id: record(new)]),
        ]
        return JSONValue.object(body).serialized()
    }

    static func incident(_ eventType: String, id: String, eventId: String, status: String = "triggered", service: String = "XYZ") -> String {
        let body: JSONValue = .object([
            "event": .object([
                "id": .string(eventId), "event_type": .string(eventType), "resource_type": "incident", "occurred_at": "2026-11-24T03:00:00Z",
                "agent": .null, "client": .null,
                "data": .object([
                    "id": .string(id), "type": "incident", "number": .number(7), "status": .string(status), "title": "Checkout down",
                    "html_url": .string("https://acme.pagerduty.com/incidents/\(id)"), "urgency": "high",
                    "service": .object(["id": "PSVC001", "type": "service_reference", "summary": .string(service)]),
                    "escalation_policy": .object(["id": "PEP0001", "type": "escalation_policy_reference", "summary": "Default"]),
                ]),
            ])
        ])
        return body.serialized()
    }
}

let twoWayRules = """
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
              - { action: createIncident, service: PSVC001, title: { prefix: "Case ", fields: [CaseNumber] } }
              - { action: addResponders, users: [PUSER02] }
          - name: close
            object: Case
            runOn: salesforce
            conditions: [{ field: Status, operator: changes, to: Closed }]
            applyTo: linked
            actions: [{ action: resolve }]
      - name: "PD > SFDC"
        rules:
          - name: follow ack
            object: Case
            runOn: pagerduty
            conditions: [{ field: pagerduty.eventType, operator: equals, value: Acknowledge }]
            applyTo: linked
            actions: [{ action: setField, field: Status, value: Working }]
          - name: close on resolve
            object: Case
            runOn: pagerduty
            conditions: [{ field: pagerduty.eventType, operator: equals, value: Resolve }]
            applyTo: linked
            actions: [{ action: setField, field: Status, value: Closed }]
    """
