import Foundation
import SwitchboardCore
import SwitchboardSimulators
import SwitchboardTestSupport
import Testing

/// PagerDuty's official OpenAPI document beside the repository; absent in a fresh clone, where requests go unchecked.
enum OfficialDocument {
    static let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("shared/reference/pagerduty/rest-api-openapiv3.json").path
    static let validator: OpenAPIRequestValidator? =
        FileManager.default.fileExists(atPath: path) ? try? OpenAPIRequestValidator(contentsOfFile: path) : nil
}

/// Everything a new user runs, as separate parts that meet only at public boundaries: the `switchboard serve`
/// process, configured with the `switchboard` command line, between a PagerDuty simulator and a Salesforce
/// simulator. People act through the simulators' HTTP controls (a person in PagerDuty or Salesforce); what
/// Switchboard did is read back over HTTP (the simulators' APIs, Switchboard's `/status`) and from the command line.
final class Stack: @unchecked Sendable {
    let backend: Backend
    let dir: TemporaryDirectory
    let pagerDutyURL: String
    let salesforceURL: String
    let salesforceOptions: SalesforceSimulator.Options
    let environment: [String: String]
    private(set) var serve: ServeProcess

    static let apiKey = "simulatorkey0000"
    static let integrationUser = "switchboard@example.com"
    static let secretKey = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

    private init(
        backend: Backend, dir: TemporaryDirectory, pagerDutyURL: String, salesforceURL: String, salesforceOptions: SalesforceSimulator.Options,
        environment: [String: String], serve: ServeProcess
    ) {
        self.backend = backend
        self.dir = dir
        self.pagerDutyURL = pagerDutyURL
        self.salesforceURL = salesforceURL
        self.salesforceOptions = salesforceOptions
        self.environment = environment
        self.serve = serve
    }

    /// Applies `settings`, starts the simulators and `switchboard serve`, connects PagerDuty (and the Salesforce org
    /// unless `connectSalesforce` is false) and imports `rules`, all with the command line; runs `body`;
    /// stops everything. On PostgreSQL without a server configured, the test is cancelled with a loud reason.
    static func run(
        _ backend: Backend, rules: String? = nil, settings: [(String, String)] = [], connectSalesforce: Bool = true,
        salesforce configure: @Sendable (inout SalesforceSimulator.Options) -> Void = { _ in }, _ body: @Sendable (Stack) async throws -> Void
    ) async throws {
        if backend == .postgresql, !TestPostgres.isAvailable { try Test.cancel(Comment(rawValue: TestPostgres.skipReason)) }
        var pdOptions = PagerDutySimulator.Options()
        pdOptions.validator = OfficialDocument.validator
        pdOptions.retryDelay = .milliseconds(20)
        let pagerDuty = PagerDutySimulator(options: pdOptions)
        var sfOptions = SalesforceSimulator.Options()
        sfOptions.triggerObjects.insert("Opportunity")
        configure(&sfOptions)
        let salesforce = SalesforceSimulator(options: sfOptions)
        try await pagerDuty.start()
        try await salesforce.start()
        let dir = try TemporaryDirectory()
        var databaseName: String?
        defer { dir.remove() }
        do {
            let databaseURL: String
            if backend == .postgresql {
                let created = try await TestPostgres.createDatabase()
                (databaseURL, databaseName) = (created.url, created.name)
            } else {
                databaseURL = dir.file("switchboard.sqlite")
            }
            let environment = [
                "SWITCHBOARD_DATABASE_URL": databaseURL, "SWITCHBOARD_SECRET_KEY": secretKey, "SWITCHBOARD_LOG_LEVEL": "warning",
                "SWITCHBOARD_PIPELINE_POLL_MILLISECONDS": "50", "SWITCHBOARD_PIPELINE_BACKOFF_BASE_SECONDS": "0.2",
                "SWITCHBOARD_PIPELINE_BACKOFF_CAP_SECONDS": "1", "SWITCHBOARD_PIPELINE_MAX_ATTEMPTS": "3",
            ]
            // Settings go in before the server starts, so that it starts with them (it re-reads them every few seconds).
            for (key, value) in settings {
                let set = try await runSwitchboard(["settings", "set", key, value], environment: environment)
                try #require(set.status == 0, "settings set \(key) \(value): \(set.output)")
            }
            let serve = try await ServeProcess.start(arguments: [], environment: environment, outputFile: dir.file("serve.log"))
            let stack = Stack(
                backend: backend, dir: dir, pagerDutyURL: pagerDuty.baseURL, salesforceURL: salesforce.baseURL, salesforceOptions: sfOptions,
                environment: environment, serve: serve)
            do {
                try await stack.connectPagerDuty()
                if connectSalesforce { try await stack.connectSalesforce() }
                if let rules { try await stack.importRules(rules) }
                try await body(stack)
                let violations = try await stack.pagerDutyState()["violations"]?.arrayValue ?? []
                #expect(violations.isEmpty, "requests PagerDuty's official document does not allow: \(violations)")
            } catch {
                stack.serve.terminate()
                let logs = try? await runSwitchboard(["logs", "--limit", "40"], environment: environment)
                let dead = try? await runSwitchboard(["deadletters", "list"], environment: environment)
                Issue.record(
                    """
                    switchboard serve's log:
                    \(stack.serve.log.suffix(3000))
                    switchboard logs:
                    \(logs?.output.suffix(6000) ?? "-")
                    switchboard deadletters list:
                    \(dead?.output.suffix(3000) ?? "-")
                    """)
                throw error
            }
            stack.serve.terminate()
        } catch {
            await salesforce.stop()
            await pagerDuty.stop()
            if let databaseName { await TestPostgres.dropDatabase(databaseName) }
            throw error
        }
        await salesforce.stop()
        await pagerDuty.stop()
        if let databaseName { await TestPostgres.dropDatabase(databaseName) }
    }

    var switchboardURL: String { serve.baseURL }

    // MARK: the command line

    /// Runs `switchboard …` against this stack's database; fails the test unless it exits 0. Returns its output.
    @discardableResult
    func cli(_ arguments: String..., sourceLocation: SourceLocation = #_sourceLocation) async throws -> String {
        try await cli(arguments, sourceLocation: sourceLocation)
    }

    @discardableResult
    func cli(_ arguments: [String], sourceLocation: SourceLocation = #_sourceLocation) async throws -> String {
        let result = try await runSwitchboard(arguments, environment: environment)
        try #require(result.status == 0, "switchboard \(arguments.joined(separator: " ")) exited \(result.status): \(result.output)", sourceLocation: sourceLocation)
        return result.output
    }

    /// Runs `switchboard …` and returns the exit status and output, whatever they are.
    func cliResult(_ arguments: String...) async throws -> (status: Int32, output: String) {
        try await runSwitchboard(arguments, environment: environment)
    }

    /// Runs a `--json` command and parses what it printed.
    func cliJSON(_ arguments: String...) async throws -> JSONValue {
        try JSONParser.parseValue(try await cli(arguments + ["--json"]))
    }

    func connectPagerDuty() async throws {
        try await cli(
            "pagerduty", "connect", "--api-key", Self.apiKey, "--from", Self.integrationUser, "--public-url", switchboardURL, "--base-url",
            pagerDutyURL)
    }

    func connectSalesforce() async throws {
        try await cli(
            "salesforce", "connect", "--login-url", salesforceURL, "--auth", "client-credentials", "--consumer-key", salesforceOptions.consumerKey,
            "--client-secret", salesforceOptions.clientSecret, "--trigger-secret", salesforceOptions.triggerSecret, "--capture", "trigger",
            "--objects", "Case,CaseComment,Incident,Opportunity")
        // The admin installs the package's triggers, which post to Switchboard.
        try await salesforceControl("POST", "capture", ["mode": "trigger", "url": .string(switchboardURL + "/webhooks/salesforce")])
    }

    /// Stores a new rules version with `switchboard rules import`.
    func importRules(_ yaml: String) async throws {
        let file = dir.file("rules-\(UUID().uuidString.prefix(8)).yaml")
        try yaml.write(toFile: file, atomically: true, encoding: .utf8)
        try await cli("rules", "import", file, "--comment", "end-to-end scenario")
        // A running server re-reads its rules at most once a second.
        try await Task.sleep(for: .milliseconds(1100))
    }

    func links() async throws -> [JSONValue] { try await cliJSON("links", "list").arrayValue ?? [] }

    func links(record: String) async throws -> [JSONValue] { try await cliJSON("links", "list", "--record", record).arrayValue ?? [] }

    func logs(_ filters: String...) async throws -> [JSONValue] {
        try JSONParser.parseValue(try await cli(["logs", "--limit", "1000"] + filters + ["--json"])).arrayValue ?? []
    }

    func deadLetters() async throws -> [JSONValue] { try await cliJSON("deadletters", "list").arrayValue ?? [] }

    /// Stops `switchboard serve` and starts it again on the same database.
    func restart() async throws {
        serve.terminate()
        serve = try await ServeProcess.start(arguments: [], environment: environment, outputFile: dir.file("serve-\(UUID().uuidString.prefix(4)).log"))
    }

    // MARK: a person in PagerDuty

    /// Triggers an incident as a person would; returns its id.
    func trigger(service: String, title: String, urgency: String = "high", user: String = "maeve@example.com") async throws -> String {
        let reply = try await pagerDutyControl("POST", "incidents", ["service": .string(service), "title": .string(title), "urgency": .string(urgency), "user": .string(user)])
        return try #require(reply["incident"]?["id"]?.stringValue, "\(reply)")
    }

    /// acknowledge, resolve, priority (value P1…), note (value the text), as a person.
    func act(_ incident: String, _ action: String, _ value: String? = nil, user: String = "maeve@example.com") async throws {
        var body: JSONObject = ["user": .string(user)]
        if let value { body["value"] = .string(value) }
        _ = try await pagerDutyControl("POST", "incidents/\(incident)/\(action)", body)
    }

    /// A person's change through PagerDuty's REST API (urgency, escalation policy, title…).
    func updateIncident(_ incident: String, _ fields: JSONObject, user: String = "maeve@example.com") async throws {
        var object = fields
        object["type"] = "incident_reference"
        let reply = try #require(
            await HTTP.send(
                "PUT", pagerDutyURL + "/incidents/\(incident)", json: JSONValue.object(["incident": .object(object)]).serialized(),
                headers: ["Authorization": "Token token=\(Self.apiKey)", "From": user, "Accept": "application/vnd.pagerduty+json;version=2"]))
        try #require(reply.status == 200, "PUT /incidents/\(incident): \(reply.status) \(reply.body)")
    }

    func incident(_ id: String) async throws -> JSONValue {
        let reply = try #require(
            await HTTP.send(
                "GET", pagerDutyURL + "/incidents/\(id)", headers: ["Authorization": "Token token=\(Self.apiKey)", "Accept": "application/vnd.pagerduty+json;version=2"]))
        try #require(reply.status == 200, "GET /incidents/\(id): \(reply.status) \(reply.body)")
        return try JSONParser.parseValue(reply.body)["incident"] ?? .null
    }

    func notes(_ incident: String) async throws -> [String] {
        let reply = try #require(
            await HTTP.send(
                "GET", pagerDutyURL + "/incidents/\(incident)/notes",
                headers: ["Authorization": "Token token=\(Self.apiKey)", "Accept": "application/vnd.pagerduty+json;version=2"]))
        return (try JSONParser.parseValue(reply.body)["notes"]?.arrayValue ?? []).compactMap { $0["content"]?.stringValue }
    }

    /// The simulator's whole account: incidents, subscriptions, deliveries, requests checked against the document.
    func pagerDutyState() async throws -> JSONValue {
        let reply = try #require(await HTTP.get(pagerDutyURL + "/_simulator/state"))
        return try JSONParser.parseValue(reply.body)
    }

    func incidents() async throws -> [JSONValue] { try await pagerDutyState()["incidents"]?.arrayValue ?? [] }

    /// The incidents whose title contains `text`.
    func incidents(titled text: String) async throws -> [JSONValue] {
        try await incidents().filter { $0["title"]?.stringValue?.contains(text) == true }
    }

    @discardableResult
    private func pagerDutyControl(_ method: String, _ path: String, _ body: JSONObject) async throws -> JSONValue {
        let reply = try #require(await HTTP.send(method, pagerDutyURL + "/_simulator/" + path, json: JSONValue.object(body).serialized()))
        try #require((200..<300).contains(reply.status), "\(method) /_simulator/\(path): \(reply.status) \(reply.body)")
        return reply.body.isEmpty ? .null : try JSONParser.parseValue(reply.body)
    }

    // MARK: a person in Salesforce

    /// Creates a record in the org as a person would (the triggers fire); returns its 18-character Id.
    func create(_ object: String, _ fields: JSONObject) async throws -> String {
        let reply = try await salesforceControl("POST", "records/\(object)", fields)
        return try #require(reply["id"]?.stringValue, "\(reply)")
    }

    func update(_ object: String, _ id: String, _ fields: JSONObject) async throws {
        try await salesforceControl("PATCH", "records/\(object)/\(id)", fields)
    }

    func record(_ object: String, _ id: String) async throws -> JSONValue? {
        guard let reply = await HTTP.get(salesforceURL + "/_simulator/records/\(object)/\(id)"), reply.status == 200 else { return nil }
        return try JSONParser.parseValue(reply.body)
    }

    func records(_ object: String) async throws -> [JSONValue] {
        let reply = try #require(await HTTP.get(salesforceURL + "/_simulator/records/\(object)"))
        let json = try JSONParser.parseValue(reply.body)
        return json.arrayValue ?? json["records"]?.arrayValue ?? []
    }

    /// Records of `object` whose `field` refers to `id` (either Id length).
    func children(_ object: String, of id: String, field: String = "ParentId") async throws -> [JSONValue] {
        try await records(object).filter { $0[field]?.stringValue.map { SalesforceId.same($0, id) } == true }
    }

    @discardableResult
    func salesforceControl(_ method: String, _ path: String, _ body: JSONObject? = nil) async throws -> JSONValue {
        let reply = try #require(await HTTP.send(method, salesforceURL + "/_simulator/" + path, json: body.map { JSONValue.object($0).serialized() }))
        try #require((200..<300).contains(reply.status), "\(method) /_simulator/\(path): \(reply.status) \(reply.body)")
        return reply.body.isEmpty ? .null : try JSONParser.parseValue(reply.body)
    }

    // MARK: waiting

    /// Waits until `condition` holds; fails the test naming `what` when it does not within `seconds`.
    func eventually(_ what: String, seconds: Double = 60, sourceLocation: SourceLocation = #_sourceLocation, _ condition: () async throws -> Bool) async throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try await condition() { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("\(what) did not happen within \(Int(seconds)) s", sourceLocation: sourceLocation)
        throw StackError.timedOut(what)
    }

    /// Waits until nothing is in flight anywhere: every trigger post and webhook delivered, every event processed,
    /// every job finished; twice in a row, since one finished job may cause another delivery. Used before asserting
    /// that something did *not* happen.
    func settle(seconds: Double = 60, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        var quietChecks = 0
        try await eventually("everything to settle", seconds: seconds, sourceLocation: sourceLocation) {
            let posts = try JSONParser.parseValue(try #require(await HTTP.get(salesforceURL + "/_simulator/trigger-posts")).body).arrayValue ?? []
            let deliveries = try await pagerDutyState()["deliveries"]?.arrayValue ?? []
            let status = try JSONParser.parseValue(try #require(await HTTP.get(switchboardURL + "/status")).body)
            func count(_ kind: String, _ state: String) -> Double {
                if case .number(let n)? = status[kind]?[state] { return n }
                return 0
            }
            let quiet =
                posts.allSatisfy { $0["status"] != .null } && deliveries.allSatisfy { $0["status"] != .null }
                && count("events", "pending") == 0 && count("jobs", "pending") == 0 && count("jobs", "running") == 0
            quietChecks = quiet ? quietChecks + 1 : 0
            if quiet && quietChecks < 3 { try await Task.sleep(for: .milliseconds(150)) }
            return quietChecks >= 3
        }
    }
}

enum StackError: Error, CustomStringConvertible {
    case timedOut(String)

    var description: String {
        switch self {
        case .timedOut(let what): "\(what) did not happen in time"
        }
    }
}
