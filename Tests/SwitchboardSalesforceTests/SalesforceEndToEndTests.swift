import AsyncHTTPClient
import CryptoExtras
import Foundation
import Hummingbird
import Logging
import Synchronization
import ServiceLifecycle
import SwitchboardCore
import SwitchboardPagerDuty
import SwitchboardPipeline
import SwitchboardSalesforce
import SwitchboardServer
import SwitchboardSimulators
import SwitchboardStorage
import SwitchboardTestSupport
import Testing

/// Switchboard serving on a real port, with its real connectors, between a Salesforce simulator and a PagerDuty
/// simulator: everything crosses HTTP.
struct EndToEnd: Sendable {
    let switchboard: Switchboard
    let salesforce: SalesforceSimulator
    let pagerDuty: PagerDutySimulator
    let database: any Database
    let baseURL: String
    let orgId: String
    let box: SecretBox
    /// Stops Switchboard and starts a new process-like instance on the same database (another port). `database` and
    /// `switchboard` are the first instance's: closed after a restart.
    let restart: @Sendable () async throws -> Void
    /// Stops Switchboard (work in flight finishes); `restart` brings it back.
    let stop: @Sendable () async -> Void

    static let rules = """
        version: 1
        rulesets:
          - name: "Cases page on-call"
            rules:
              - name: page on high priority
                object: Case
                runOn: salesforce
                conditions: [{ field: Priority, operator: equals, value: High }]
                applyTo: new
                actions:
                  - { action: createIncident, service: PSVC001, title: { prefix: "Case: ", fields: [Subject] } }
          - name: "Incidents update cases"
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

    static let key = Result { try _RSA.Signing.PrivateKey(keySize: .bits2048) }

    static func run(
        _ backend: Backend = .sqlite, capture: CaptureMode, rules: String = rules,
        salesforceOptions: @Sendable (inout SalesforceSimulator.Options) -> Void = { _ in },
        configure: @Sendable (inout ServerConfiguration) -> Void = { _ in },
        _ body: @Sendable (EndToEnd) async throws -> Void
    ) async throws {
        let key = try Self.key.get()
        var sfOptions = SalesforceSimulator.Options()
        sfOptions.certificatePublicKeyPEM = key.publicKey.pemRepresentation
        sfOptions.cometdConnectTimeout = .seconds(2)
        sfOptions.capture = capture == .cdc ? .cdc : .none
        salesforceOptions(&sfOptions)
        let sf = sfOptions
        let salesforce = SalesforceSimulator(options: sf)
        var pdOptions = PagerDutySimulator.Options()
        pdOptions.retryDelay = .milliseconds(20)
        let pdKey = pdOptions.apiKey
        let pagerDuty = PagerDutySimulator(options: pdOptions)
        try await salesforce.start()
        try await pagerDuty.start()
        defer { Task { await salesforce.stop(); await pagerDuty.stop() } }
        try await withTestDatabase(backend) { (db: any Database, url: String) async throws -> Void in
            var quiet = Logger(label: "e2e")
            quiet.logLevel = .critical
            let logger = quiet
            let box = try SecretBox(encodedKey: SecretBox.generateEncodedKey())
            try await Migrations.migrate(db, now: 0)
            let org = sf.orgId
            var connection = SalesforceConnection(
                orgId: org, loginURL: salesforce.baseURL, auth: .jwt, consumerKey: sf.consumerKey, username: sf.username,
                capture: capture, objects: ["Case"], pollSeconds: 1, triggerSecrets: [sf.triggerSecret])
            connection.privateKeyPEM = key.pemRepresentation
            let stored = connection
            try await db.transaction { sql in
                try await stored.save(box: box, now: 0, on: sql)
                _ = try await RulesStore.save(document: rules, author: "test", comment: nil, now: 0, on: sql)
            }
            var configuration = ServerConfiguration()
            configuration.port = 0
            configuration.pipeline.backoff = Backoff(baseSeconds: 0.05, capSeconds: 0.5)
            configuration.pipeline.maxAttempts = 4
            configuration.pipeline.pollInterval = .milliseconds(20)
            configuration.salesforceCaptureReconcile = .milliseconds(200)
            configure(&configuration)
            let dependencies = Dependencies(database: db, secretBox: box, logger: logger)
            let settings = configuration
            let server = RunningServer()
            let switchboard = try await server.start(configuration: settings, dependencies: dependencies, logger: logger)
            let baseURL = server.baseURL
            do {
                // PagerDuty connected as `switchboard pagerduty connect` does.
                var pd = PagerDutyConnection(apiKey: pdKey, region: .us, baseURL: pagerDuty.baseURL, fromEmail: "switchboard@example.com")
                let created = try await PagerDutyClient(configuration: pd.configuration).createWebhookSubscription(
                    url: baseURL + "/webhooks/pagerduty", events: PagerDutyConnection.subscribedEvents, filter: ["type": "account_reference"],
                    description: "e2e")
                pd.subscriptionId = created.id
                pd.webhookSecrets = [created.secret]
                let pdStored = pd
                try await db.transaction { try await pdStored.save(box: box, now: 0, on: $0) }
                switchboard.pagerDuty.invalidate()
                switchboard.salesforce.invalidate()
                if capture == .trigger { salesforce.setCapture(.trigger(url: baseURL + "/webhooks/salesforce")) }
                let harness = EndToEnd(
                    switchboard: switchboard, salesforce: salesforce, pagerDuty: pagerDuty, database: db, baseURL: baseURL, orgId: org, box: box,
                    restart: { [server] in
                        await server.stop()
                        // A stopped server has closed its database, as a process would: the new one opens its own.
                        let reopened = try await openDatabase(url: url, logger: logger)
                        let next = Dependencies(database: reopened, secretBox: box, logger: logger)
                        _ = try await server.start(configuration: settings, dependencies: next, logger: logger)
                    },
                    stop: { [server] in await server.stop() })
                try await harness.captureStarted(capture)
                try await body(harness)
            } catch {
                await server.stop()
                throw error
            }
            await server.stop()
        }
    }

    /// CDC and polling report only changes after they start: wait for the subscription or the first poll.
    func captureStarted(_ capture: CaptureMode) async throws {
        switch capture {
        case .trigger: return
        case .cdc:
            try await eventually("the CDC subscription") {
                salesforce.requests.contains { $0.path.hasPrefix("/cometd/") && String(decoding: $0.body, as: UTF8.self).contains("/meta/subscribe") }
            }
        case .polling:
            let org = orgId
            try await eventually("the first poll") {
                (try? await database.read { try await CaptureState.get(orgId: org, "poll.Case", on: $0) }) != nil
            }
        }
    }

    func eventually(_ what: String, timeout: Duration = .seconds(60), _ condition: @Sendable () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try await condition() { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("timed out waiting for \(what)")
        throw CancellationError()
    }

    func links() async throws -> [Link] { try await database.read { try await LinkStore.find(on: $0) }.map(\.link) }
    func deadLetters() async throws -> [DeadLetter] { try await database.read { try await JobStore.deadLetters(on: $0) } }
}

/// The application serving in its own service group, stopped by graceful shutdown.
final class RunningServer: Sendable {
    private let current = Mutex<(group: ServiceGroup, task: Task<Void, any Error>, port: Int)?>(nil)

    var baseURL: String { "http://127.0.0.1:\(current.withLock { $0?.port ?? 0 })" }

    func start(configuration: ServerConfiguration, dependencies: Dependencies, logger: Logger) async throws -> Switchboard {
        let switchboard = Switchboard(configuration: configuration, dependencies: dependencies)
        let (ports, portContinuation) = AsyncStream.makeStream(of: Int.self)
        let app = try await buildApplication(switchboard, dependencies: dependencies, onServerRunning: { portContinuation.yield($0) })
        let group = ServiceGroup(configuration: .init(services: [app], logger: logger))
        let task = Task { try await group.run() }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { throw CancellationError() }
        current.withLock { $0 = (group, task, port) }
        return switchboard
    }

    func stop() async {
        guard let running = current.withLock({ c in defer { c = nil }; return c }) else { return }
        await running.group.triggerGracefulShutdown()
        _ = try? await running.task.value
    }
}

@Suite("Salesforce connector end to end, through both simulators")
struct SalesforceEndToEndTests {
    /// A case created in Salesforce pages on-call; on-call acknowledges and resolves; the case follows and closes.
    static func roundTrip(_ e: EndToEnd) async throws {
        let caseId = try e.salesforce.create("Case", ["Subject": "Checkout down", "Priority": "High", "Status": "New", "Origin": "Web"])
        try await e.eventually("the incident for the case") { !(try await e.links()).isEmpty }
        let link = try #require(try await e.links().first)
        #expect(SalesforceId.same(link.recordId, caseId))
        let incident = try #require(e.pagerDuty.incident(link.incidentId))
        #expect(incident["title"]?.stringValue == "Case: Checkout down")

        _ = e.pagerDuty.act(link.incidentId, "acknowledge")
        try await e.eventually("the case to follow the acknowledgement") { e.salesforce.record("Case", caseId)?["Status"]?.stringValue == "Working" }
        _ = e.pagerDuty.act(link.incidentId, "resolve")
        try await e.eventually("the case to close") { e.salesforce.record("Case", caseId)?["Status"]?.stringValue == "Closed" }
        #expect(e.salesforce.record("Case", caseId)?["IsClosed"] == .bool(true))

        // Every write Switchboard made carried its call options, and its own changes coming back fired nothing.
        let writes = e.salesforce.requests.filter { ["POST", "PATCH"].contains($0.method) && $0.path.hasPrefix("/services/data/") }
        #expect(!writes.isEmpty)
        #expect(writes.allSatisfy { $0.header("Sforce-Call-Options") == "client=switchboard" })
        try await Task.sleep(for: .milliseconds(500))
        #expect(e.pagerDuty.incidents.count == 1)
        #expect(try await e.deadLetters().isEmpty)
    }

    @Test("Trigger posts: case → incident → acknowledged → resolved → case closed")
    func triggerRoundTrip() async throws {
        try await EndToEnd.run(capture: .trigger) { e in
            try await Self.roundTrip(e)
            #expect(e.salesforce.triggerPosts.allSatisfy { $0.status == 202 || $0.status == 200 }, "every signed post was taken")
        }
    }

    @Test("Change Data Capture: the same round trip with no Apex in the org")
    func cdcRoundTrip() async throws {
        try await EndToEnd.run(capture: .cdc) { e in try await Self.roundTrip(e) }
    }

    @Test("Polling: the same round trip with no setup in the org")
    func pollingRoundTrip() async throws {
        try await EndToEnd.run(capture: .polling) { e in try await Self.roundTrip(e) }
    }

    @Test("CDC after a restart: events published while Switchboard was down are replayed from the stored replay id, once")
    func cdcReplayAfterRestart() async throws {
        try await EndToEnd.run(capture: .cdc) { e in
            _ = try e.salesforce.create("Case", ["Subject": "Before the restart", "Priority": "High", "Status": "New"])
            try await e.eventually("the first incident") { e.pagerDuty.incidents.count == 1 }
            let org = e.orgId
            try await e.eventually("the replay id stored") {
                (try? await e.database.read { try await CaptureState.get(orgId: org, "replay./data/CaseChangeEvent", on: $0) }) != nil
            }
            await e.stop()
            // While Switchboard is down, Salesforce keeps the events (72 hours).
            _ = try e.salesforce.create("Case", ["Subject": "During the restart", "Priority": "High", "Status": "New"])
            try await e.restart()
            try await e.eventually("the missed case's incident") { e.pagerDuty.incidents.count == 2 }
            try await Task.sleep(for: .milliseconds(500))
            let titles = e.pagerDuty.incidents.compactMap { $0["title"]?.stringValue }.sorted()
            #expect(titles == ["Case: Before the restart", "Case: During the restart"], "each case paged once")
        }
    }

    @Test("On PostgreSQL: the trigger round trip", .enabled(if: TestPostgres.isAvailable, Comment(rawValue: TestPostgres.skipReason)))
    func triggerRoundTripOnPostgres() async throws {
        try await EndToEnd.run(.postgresql, capture: .trigger) { e in try await Self.roundTrip(e) }
    }
}

@Suite("Salesforce connector end to end: sessions, validation errors, batches")
struct SalesforceEndToEndFailureTests {
    @Test("Sessions expiring mid-run are renewed once and the write replayed; nothing is lost")
    func sessionExpiry() async throws {
        try await EndToEnd.run(capture: .trigger) { e in
            let caseId = try e.salesforce.create("Case", ["Subject": "Login broken", "Priority": "High", "Status": "New"])
            try await e.eventually("the incident") { !(try await e.links()).isEmpty }
            let incident = try #require(try await e.links().first?.incidentId)
            _ = e.pagerDuty.act(incident, "acknowledge")
            try await e.eventually("the first write") { e.salesforce.record("Case", caseId)?["Status"]?.stringValue == "Working" }
            let tokensBefore = e.salesforce.requests.filter { $0.path == "/services/oauth2/token" }.count
            e.salesforce.expireSessions()
            _ = e.pagerDuty.act(incident, "resolve")
            try await e.eventually("the write after expiry") { e.salesforce.record("Case", caseId)?["Status"]?.stringValue == "Closed" }
            let refused = e.salesforce.requests.filter { $0.status == 401 && $0.path.hasPrefix("/services/data/") }
            #expect(!refused.isEmpty, "the expired session was used and refused")
            #expect(e.salesforce.requests.filter { $0.path == "/services/oauth2/token" }.count == tokensBefore + 1, "renewed once")
            #expect(try await e.deadLetters().isEmpty)
        }
    }

    @Test("The org's API allocation spent: work waits without using up attempts, and resumes when there is room; nothing is lost")
    func allocationExhausted() async throws {
        try await EndToEnd.run(capture: .trigger, configure: { $0.salesforceLimitWaitSeconds = 0.2 }) { e in
            let caseId = try e.salesforce.create("Case", ["Subject": "Search slow", "Priority": "High", "Status": "New"])
            try await e.eventually("the incident") { !(try await e.links()).isEmpty }
            let incident = try #require(try await e.links().first?.incidentId)
            e.salesforce.setAPIAllocation(e.salesforce.apiCallsUsed)
            _ = e.pagerDuty.act(incident, "acknowledge")
            try await e.eventually("Salesforce refusing for the limit") {
                e.salesforce.requests.filter { $0.status == 403 }.count >= 5
            }
            #expect(e.salesforce.record("Case", caseId)?["Status"]?.stringValue == "New")
            #expect(try await e.deadLetters().isEmpty, "waiting for budget is not a failure")
            e.salesforce.setAPIAllocation(100_000)
            try await e.eventually("the write once there is room") { e.salesforce.record("Case", caseId)?["Status"]?.stringValue == "Working" }
            #expect(try await e.deadLetters().isEmpty)
        }
    }

    @Test("An on-call note lands in the Case Feed and as a Case Comment, once, and does not come back as a note")
    func noteSync() async throws {
        try await EndToEnd.run(capture: .trigger) { e in
            try await e.database.transaction { db in
                try await SettingsStore.set("mapping.notesToFeed", value: "true", now: 0, on: db)
                try await SettingsStore.set("mapping.notesToComment", value: "true", now: 0, on: db)
            }
            e.switchboard.processor.reloadConfiguration()
            let caseId = try e.salesforce.create("Case", ["Subject": "Invoices missing", "Priority": "High", "Status": "New"])
            try await e.eventually("the incident") { !(try await e.links()).isEmpty }
            let incident = try #require(try await e.links().first?.incidentId)
            _ = e.pagerDuty.act(incident, "note", value: "Rolled back the 14:02 deploy; watching error rates.", user: "maeve@example.com")
            try await e.eventually("the feed post and the comment") {
                !e.salesforce.records("FeedItem").isEmpty && !e.salesforce.records("CaseComment").isEmpty
            }
            try await Task.sleep(for: .milliseconds(500))
            let feed = e.salesforce.records("FeedItem")
            let comments = e.salesforce.records("CaseComment")
            #expect(feed.count == 1 && comments.count == 1)
            #expect(feed.first?["ParentId"]?.stringValue.map { SalesforceId.same($0, caseId) } == true)
            #expect(feed.first?["Body"]?.stringValue?.contains("Rolled back the 14:02 deploy") == true)
            #expect(comments.first?["CommentBody"]?.stringValue?.contains("Rolled back the 14:02 deploy") == true)
            #expect(e.pagerDuty.notes(incident).count == 1, "the comment's trigger post did not become a PagerDuty note")
            #expect(try await e.deadLetters().isEmpty)
        }
    }

    @Test("Two Salesforce orgs on one PagerDuty account: each case pages, and each closes in its own org")
    func twoOrgs() async throws {
        try await EndToEnd.run(capture: .trigger) { e in
            var options = SalesforceSimulator.Options()
            options.orgId = "00D000000000002EAA"
            options.triggerSecret = "second-org-secret"
            let second = SalesforceSimulator(options: options)
            try await second.start()
            var connection = SalesforceConnection(
                orgId: options.orgId, loginURL: second.baseURL, auth: .clientCredentials, consumerKey: options.consumerKey, capture: .trigger,
                objects: ["Case"], triggerSecrets: [options.triggerSecret])
            connection.clientSecret = options.clientSecret
            let stored = connection
            try await e.database.transaction { try await stored.save(box: e.box, now: 0, on: $0) }
            e.switchboard.salesforce.invalidate()
            second.setCapture(.trigger(url: e.baseURL + "/webhooks/salesforce"))

            let firstCase = try e.salesforce.create("Case", ["Subject": "Org one down", "Priority": "High", "Status": "New"])
            let secondCase = try second.create("Case", ["Subject": "Org two down", "Priority": "High", "Status": "New"])
            #expect(!SalesforceId.same(firstCase, secondCase))
            try await e.eventually("both incidents") { (try await e.links()).count == 2 }
            let links = try await e.links()
            let firstLink = try #require(links.first { SalesforceId.same($0.recordId, firstCase) })
            let secondLink = try #require(links.first { SalesforceId.same($0.recordId, secondCase) })
            #expect(firstLink.orgId == e.orgId)
            #expect(secondLink.orgId == options.orgId)
            _ = e.pagerDuty.act(secondLink.incidentId, "resolve")
            _ = e.pagerDuty.act(firstLink.incidentId, "resolve")
            try await e.eventually("each case closed in its own org") {
                e.salesforce.record("Case", firstCase)?["Status"]?.stringValue == "Closed"
                    && second.record("Case", secondCase)?["Status"]?.stringValue == "Closed"
            }
            #expect(second.record("Case", firstCase) == nil && e.salesforce.record("Case", secondCase) == nil)
            #expect(try await e.deadLetters().isEmpty)
            await second.stop()
        }
    }

    /// The Incident object instead of Case, and another standard object through the generic trigger template.
    static let otherObjects: [(object: String, fields: JSONObject, condition: String, closeField: String, closed: String)] = [
        ("Incident", ["Subject": "VPN down", "Priority": "Critical", "Status": "New"], "{ field: Priority, operator: equals, value: Critical }", "Status", "Resolved"),
        ("Opportunity", ["Name": "Renewal ACME", "StageName": "Negotiation/Review", "CloseDate": "2026-12-31"],
         "{ field: StageName, operator: equals, value: Negotiation/Review }", "StageName", "Closed Won"),
    ]

    @Test("The Incident object instead of Case, and another object through the generic trigger", arguments: [0, 1])
    func otherObject(_ index: Int) async throws {
        let spec = Self.otherObjects[index]
        let rules = """
            version: 1
            rulesets:
              - name: "\(spec.object) pages"
                rules:
                  - name: page
                    object: \(spec.object)
                    runOn: salesforce
                    conditions: [\(spec.condition)]
                    applyTo: new
                    actions: [{ action: createIncident, service: PSVC001 }]
                  - name: close on resolve
                    object: \(spec.object)
                    runOn: pagerduty
                    conditions: [{ field: pagerduty.eventType, operator: equals, value: Resolve }]
                    applyTo: linked
                    actions: [{ action: setField, field: \(spec.closeField), value: "\(spec.closed)" }]
            """
        try await EndToEnd.run(capture: .trigger, rules: rules, salesforceOptions: { $0.triggerObjects.insert("Opportunity") }) { e in
            let id = try e.salesforce.create(spec.object, spec.fields)
            try await e.eventually("the incident for the \(spec.object)") { !(try await e.links()).isEmpty }
            let link = try #require(try await e.links().first)
            #expect(link.object == spec.object)
            #expect(SalesforceId.same(link.recordId, id))
            _ = e.pagerDuty.act(link.incidentId, "resolve")
            try await e.eventually("the \(spec.object) closed") { e.salesforce.record(spec.object, id)?[spec.closeField]?.stringValue == spec.closed }
            #expect(try await e.deadLetters().isEmpty)
        }
    }

    @Test("A field the object does not have is refused before any call, naming it")
    func unknownFieldIsDeadLettered() async throws {
        let rules = EndToEnd.rules.replacingOccurrences(of: "field: Status, value: Working", with: "field: Escalation_Level__c, value: Two")
        try await EndToEnd.run(capture: .trigger, rules: rules) { e in
            _ = try e.salesforce.create("Case", ["Subject": "Export broken", "Priority": "High", "Status": "New"])
            try await e.eventually("the incident") { !(try await e.links()).isEmpty }
            let incident = try #require(try await e.links().first?.incidentId)
            let writesBefore = e.salesforce.requests.filter { $0.method == "PATCH" }.count
            _ = e.pagerDuty.act(incident, "acknowledge")
            try await e.eventually("the dead letter") { !(try await e.deadLetters()).isEmpty }
            let dead = try #require(try await e.deadLetters().first)
            #expect(dead.error.contains("Escalation_Level__c"))
            #expect(dead.error.contains("Case"))
            #expect(e.salesforce.requests.filter { $0.method == "PATCH" }.count == writesBefore, "nothing was sent")
        }
    }

    @Test("A validation error from Salesforce dead-letters the job with Salesforce's message")
    func validationErrorIsDeadLettered() async throws {
        try await EndToEnd.run(capture: .trigger) { e in
            // The org's validation rule: a closed case needs a Subject.
            let caseId = try e.salesforce.create("Case", ["Priority": "High", "Status": "New", "Description": "no subject"])
            try await e.eventually("the incident") { !(try await e.links()).isEmpty }
            let incident = try #require(try await e.links().first?.incidentId)
            _ = e.pagerDuty.act(incident, "resolve")
            try await e.eventually("the dead letter") { !(try await e.deadLetters()).isEmpty }
            let dead = try #require(try await e.deadLetters().first)
            #expect(dead.action == "setField")
            #expect(dead.error.contains("FIELD_CUSTOM_VALIDATION_EXCEPTION"))
            #expect(dead.error.contains("Closed cases need a Subject"))
            #expect(dead.attempts == 1, "a validation error is not retried")
            #expect(e.salesforce.record("Case", caseId)?["Status"]?.stringValue == "New")
        }
    }

    @Test("A trigger batch of 200 records arrives as one signed post and becomes 200 events, in order")
    func triggerBatchOf200() async throws {
        try await EndToEnd.run(capture: .trigger) { e in
            // A data load: one Collections call of 200 cases fires the trigger once.
            let provider = try SalesforceTokenProvider(
                flow: .clientCredentials(clientId: SalesforceSimulator.Options().consumerKey, clientSecret: SalesforceSimulator.Options().clientSecret),
                loginURL: e.salesforce.baseURL)
            let loader = SalesforceClient(sessions: provider, configuration: .init(callOptionsClient: "dataloader"))
            let records = (0..<200).map { CollectionRecord(object: "Case", fields: ["Subject": .string("Imported \($0)"), "Priority": "Low"]) }
            let results = try await loader.createCollection(records, allOrNone: true)
            #expect(results.count == 200 && results.allSatisfy(\.success))
            try await e.eventually("the batch's events") {
                let counts = try await e.database.read { try await EventStore.counts(on: $0) }
                return counts.values.reduce(0, +) == 200
            }
            // The simulator notes a post once Switchboard has answered it.
            try await e.eventually("the post's answer") { e.salesforce.triggerPosts.contains { $0.status != nil } }
            let posts = e.salesforce.triggerPosts
            #expect(posts.count == 1)
            #expect(posts.first?.status == 202)
            #expect(posts.first?.recordIds.count == 200)
            let events = try await e.database.read { try await EventStore.list(source: .salesforce, limit: 500, on: $0) }.reversed()
            let order = events.compactMap { event in results.firstIndex { $0.id.map { event.payload.contains($0) } ?? false } }
            #expect(order == Array(0..<200), "one event per record, in the batch's order")
        }
    }
}

@Suite("Salesforce API calls for note sync")
struct NoteSyncCallCountTests {
    /// Syncs `notes` notes spread over `cases` cases (Case Feed and Case Comment each) through the sink, 64 at a
    /// time as the dispatcher runs them, and returns the API calls the simulator counted.
    static func calls(batching: Bool, notes: Int = 1_000, cases: Int = 50) async throws -> Int {
        let simulator = SalesforceSimulator()
        try await simulator.start()
        do {
            let options = SalesforceSimulator.Options()
            var caseIds: [String] = []
            for i in 0..<cases { caseIds.append(try simulator.create("Case", ["Subject": .string("Case \(i)")])) }
            let provider = SalesforceTokenProvider(
                flow: .clientCredentials(clientId: options.consumerKey, clientSecret: options.clientSecret), loginURL: simulator.baseURL)
            let client = SalesforceClient(sessions: provider)
            _ = try await client.describe("CaseComment")
            _ = try await client.describe("FeedItem")
            let sink = SalesforceSink(client: client, configuration: .init(batching: batching))
            let before = simulator.apiCallsUsed
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<notes {
                    if i >= 64 { try await group.next() }
                    let request = ActionRequest(
                        idempotencyKey: "note-\(i)", action: .syncNote, ruleset: nil, rule: nil, incidentId: "PINC\(i % cases)", object: "Case",
                        recordId: caseIds[i % cases], orgId: options.orgId,
                        parameters: ["content": .string("On-call note \(i): still investigating"), "feed": .bool(true), "comment": .bool(true)])
                    group.addTask { _ = try await sink.perform(request) }
                }
                try await group.waitForAll()
            }
            let used = simulator.apiCallsUsed - before
            #expect(simulator.records("CaseComment").count == notes)
            #expect(simulator.records("FeedItem").count == notes)
            await simulator.stop()
            return used
        } catch {
            await simulator.stop()
            throw error
        }
    }

    @Test("1,000 notes onto 50 cases: batched into Collections calls, at least 20× fewer calls than one per note")
    func noteSyncCallCount() async throws {
        let unbatched = try await Self.calls(batching: false)
        let batched = try await Self.calls(batching: true)
        print("Salesforce API calls for 1,000 notes on 50 cases (Feed + Comment): unbatched \(unbatched), batched \(batched)")
        #expect(unbatched >= 2_000)
        #expect(batched * 20 <= 1_000, "batched: \(batched) calls")
    }
}
