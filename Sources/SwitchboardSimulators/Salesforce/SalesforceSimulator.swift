import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Synchronization
import SwitchboardCore

/// A Salesforce org on loopback: OAuth (JWT bearer, client credentials, refresh token), the REST API (sObjects,
/// describe, SOQL with paging, Composite, sObject Collections, limits) with Salesforce's error bodies, status codes
/// and API-usage accounting, and change delivery three ways: signed posts like the Switchboard Apex package's
/// triggers, Change Data Capture events over the CometD Streaming API, or nothing (Switchboard polls).
public final class SalesforceSimulator: Sendable {
    public struct Options: Sendable {
        /// The org Id, in 18-character form.
        public var orgId: String
        /// The API versions served (`/services/data/v62.0/...`); any other version is 404 NOT_FOUND.
        public var apiVersions: [String]
        /// The connected app's consumer key (`client_id`, the JWT `iss`).
        public var consumerKey: String
        /// The connected app's consumer secret.
        public var clientSecret: String
        /// The integration user's username (the JWT `sub`, and the "Run As" user of client credentials).
        public var username: String
        /// The RSA public key (or certificate) PEM uploaded to the connected app; nil refuses the JWT flow.
        public var certificatePublicKeyPEM: String?
        /// Refresh tokens the refresh-token flow accepts.
        public var refreshTokens: Set<String>
        /// The daily API request allocation (`DailyApiRequests.Max`).
        public var apiAllocation: Int
        /// Access tokens stop working this long after they were issued (nil: never).
        public var sessionLifetime: Duration?
        /// How record changes are delivered.
        public var capture: CaptureMode
        /// The secret the trigger posts are signed with (Switchboard Settings' Trigger Secret).
        public var triggerSecret: String
        /// The objects with a Switchboard trigger deployed (the package ships Case, CaseComment and Incident).
        public var triggerObjects: Set<String>
        /// The objects selected for Change Data Capture (CaseComment and FeedItem are not CDC entities).
        public var cdcObjects: Set<String>
        /// How long a CometD `/meta/connect` is held when no event is waiting (Salesforce: 110 s).
        public var cometdConnectTimeout: Duration
        /// Attempts per trigger post (the package: 3, re-enqueued after 1 and then 2 minutes).
        public var triggerAttempts: Int
        /// The delay before the second attempt; the third waits twice as long (minutes scaled down).
        public var triggerRetryDelay: Duration
        /// The wait between a write and its post, standing for the Queueable starting after the commit.
        public var triggerDelay: Duration

        public init(
            orgId: String = "00D000000000001EAA", apiVersions: [String] = ["62.0", "63.0", "64.0"], consumerKey: String = "SWITCHBOARD_CONSUMER_KEY",
            clientSecret: String = "switchboard-client-secret", username: String = "integration@example.com", certificatePublicKeyPEM: String? = nil,
            refreshTokens: Set<String> = [], apiAllocation: Int = 100_000, sessionLifetime: Duration? = nil, capture: CaptureMode = .none,
            triggerSecret: String = "test-trigger-secret", triggerObjects: Set<String> = ["Case", "CaseComment", "Incident"],
            cdcObjects: Set<String> = ["Case", "Incident", "Opportunity", "Account", "Contact", "User", "Escalation__c"],
            cometdConnectTimeout: Duration = .seconds(10), triggerAttempts: Int = 3, triggerRetryDelay: Duration = .milliseconds(100),
            triggerDelay: Duration = .milliseconds(10)
        ) {
            self.orgId = orgId
            self.apiVersions = apiVersions
            self.consumerKey = consumerKey
            self.clientSecret = clientSecret
            self.username = username
            self.certificatePublicKeyPEM = certificatePublicKeyPEM
            self.refreshTokens = refreshTokens
            self.apiAllocation = apiAllocation
            self.sessionLifetime = sessionLifetime
            self.capture = capture
            self.triggerSecret = triggerSecret
            self.triggerObjects = triggerObjects
            self.cdcObjects = cdcObjects
            self.cometdConnectTimeout = cometdConnectTimeout
            self.triggerAttempts = triggerAttempts
            self.triggerRetryDelay = triggerRetryDelay
            self.triggerDelay = triggerDelay
        }
    }

    /// How the org tells Switchboard about record changes.
    public enum CaptureMode: Sendable, Hashable {
        /// Nothing is pushed; Switchboard polls (`SystemModstamp`).
        case none
        /// The Apex package's triggers post every insert/update batch, signed, to this full URL.
        case trigger(url: String)
        /// Change Data Capture events on the CometD Streaming API (`/cometd/<version>`).
        case cdc
    }

    /// One request the simulator answered (OAuth, REST, CometD; not the `/_simulator` controls).
    public struct RecordedRequest: Sendable {
        public var method: String
        /// The path with its query string.
        public var path: String
        public var headers: [(name: String, value: String)]
        public var body: [UInt8]
        public var status: Int

        /// The first value of a header, by case-insensitive name.
        public func header(_ name: String) -> String? { headers.first { $0.name.lowercased() == name.lowercased() }?.value }
    }

    /// One attempt to post a trigger batch to Switchboard.
    public struct TriggerPost: Sendable {
        public var object: String
        public var isInsert: Bool
        /// The 18-character Ids in the batch, in order.
        public var recordIds: [String]
        public var url: String
        /// The exact body sent.
        public var body: String
        public var headers: [(name: String, value: String)]
        /// The HTTP status Switchboard answered; nil when the request failed (refused connection, timeout).
        public var status: Int?
        /// 1 for the first attempt.
        public var attempt: Int
    }

    /// A write refused the way Salesforce refuses it (`errorCode`, `message`, `fields`).
    public struct WriteError: Error, Sendable, CustomStringConvertible {
        public var status: Int
        public var errorCode: String
        public var message: String
        public var fields: [String]

        public var description: String { "\(errorCode): \(message)" + (fields.isEmpty ? "" : " \(fields)") }

        /// The REST error body: a JSON array with one error.
        var body: JSONValue {
            var o: JSONObject = ["message": .string(message), "errorCode": .string(errorCode)]
            if !fields.isEmpty
                || [
                    "REQUIRED_FIELD_MISSING", "FIELD_CUSTOM_VALIDATION_EXCEPTION", "STRING_TOO_LONG", "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                    "INVALID_FIELD_FOR_INSERT_UPDATE", "MALFORMED_ID", "FIELD_INTEGRITY_EXCEPTION", "INVALID_CROSS_REFERENCE_KEY",
                ].contains(errorCode)
            {
                o["fields"] = .array(fields.map(JSONValue.string))
            }
            return .array([.object(o)])
        }

        /// The SaveResult error of sObject Collections, which says `statusCode`.
        var collectionError: JSONValue {
            .object(["statusCode": .string(errorCode), "message": .string(message), "fields": .array(fields.map(JSONValue.string))])
        }
    }

    struct Token: Sendable {
        var userId: String
        var issuedAt: Int64
        var revoked = false
    }

    struct State: Sendable {
        var org: SalesforceOrg
        var tokens: [String: Token] = [:]
        var apiUsed = 0
        var apiMax: Int
        var requests: [RecordedRequest] = []
        var triggerPosts: [TriggerPost] = []
        var capture: CaptureMode
        var clockOffsetMs: Int64 = 0
        var cursors: [String: QueryCursor] = [:]
        var cursorOrder: [String] = []
        var cursorCounter = 0
        var stream = StreamingState()
        var triggerQueues: [String: AsyncStream<TriggerBatch>.Continuation] = [:]
        var stopping = false
    }

    let options: Options
    let state: Mutex<State>
    let http: HTTPClient
    let logger: Logger
    /// The seeded users: the integration user first, then two agents.
    let integrationUser: String
    let agentUser: String
    private let running = Mutex<LoopbackServer?>(nil)

    /// A simulator with a seeded org: three users (the integration user and two agents), one Account and one Contact.
    public init(options: Options = Options(), httpClient: HTTPClient = .shared) {
        self.options = options
        var org = SalesforceOrg()
        org.pod = SalesforceOrg.pod(for: options.orgId)
        let seedStamp = Int64(Date().timeIntervalSince1970 * 1000)
        let users = [
            ("Integration", "User", options.username, "integ"), ("Support Agent", "One", "agent.one@example.com", "agent1"),
            ("Support Agent", "Two", "agent.two@example.com", "agent2"),
        ]
        var userIds: [String] = []
        for (first, last, email, alias) in users {
            userIds.append(
                org.seed(
                    "User",
                    [
                        "Username": .string(email), "FirstName": .string(first), "LastName": .string(last), "Email": .string(email),
                        "Alias": .string(alias), "IsActive": .bool(true), "Name": .string("\(first) \(last)"),
                    ], at: seedStamp))
        }
        let owner = userIds[0]
        let account = org.seed("Account", ["Name": "Example Account", "Industry": "Technology", "OwnerId": .string(owner)], at: seedStamp)
        org.seed(
            "Contact",
            [
                "AccountId": .string(account), "FirstName": "Sample", "LastName": "Customer", "Name": "Sample Customer",
                "Email": "customer@example.com", "OwnerId": .string(owner),
            ], at: seedStamp)
        for id in userIds { org.setCreator(object: "User", id: id, user: owner) }
        self.integrationUser = owner
        self.agentUser = userIds[1]
        self.state = Mutex(State(org: org, apiMax: options.apiAllocation, capture: options.capture))
        self.http = httpClient
        var logger = Logger(label: "salesforce-simulator")
        logger.logLevel = .critical
        self.logger = logger
    }

    // MARK: Lifecycle

    /// Starts serving on `host:port` (0: a free port); returns the port.
    @discardableResult
    public func start(host: String = "127.0.0.1", port: Int = 0) async throws -> Int {
        let router = Router()
        router.add(middleware: SalesforceResponder(simulator: self))
        state.withLock { $0.stopping = false }
        let server = try await LoopbackServer.start(router: router, host: host, port: port, serverName: "Salesforce simulator", logger: logger)
        running.withLock { $0 = server }
        return server.port
    }

    /// Releases held CometD polls, ends the trigger queues and stops the server.
    public func stop() async {
        let server = running.withLock { $0 }
        state.withLock { s in
            s.stopping = true
            for q in s.triggerQueues.values { q.finish() }
            s.triggerQueues = [:]
        }
        await server?.stop()
    }

    /// The bound port (0 before `start`).
    public var port: Int { running.withLock { $0?.port ?? 0 } }
    /// Both the login host and the `instance_url`.
    public var baseURL: String { "http://127.0.0.1:\(port)" }

    // MARK: What tests look at

    /// A record by 15- or 18-character Id, with every field (unset ones null).
    public func record(_ object: String, _ id: String) -> JSONObject? {
        guard let id = SalesforceOrg.canonicalId(id) else { return nil }
        return state.withLock { s in s.org.type(object).flatMap { s.org.records[$0.name]?[id] } }
    }

    /// Every record of an object, in creation order.
    public func records(_ object: String) -> [JSONObject] {
        state.withLock { s in
            guard let type = s.org.type(object) else { return [] }
            return (s.org.order[type.name] ?? []).compactMap { s.org.records[type.name]?[$0] }
        }
    }

    /// API calls counted toward the daily allocation.
    public var apiCallsUsed: Int { state.withLock { $0.apiUsed } }
    public var requests: [RecordedRequest] { state.withLock { $0.requests } }
    public var triggerPosts: [TriggerPost] { state.withLock { $0.triggerPosts } }
    /// The integration user's Id (the JWT/client-credentials user, and `commitUser` of API writes).
    public var integrationUserId: String { integrationUser }
    /// The agent the test controls act as (like a person in the Salesforce UI).
    public var agentUserId: String { agentUser }

    // MARK: What tests do (a person in the Salesforce UI: not API calls, not counted, empty change origin)

    /// Creates a record as an agent would in the UI, with the same validation as the API; returns the 18-char Id.
    @discardableResult
    public func create(_ object: String, _ fields: JSONObject) throws -> String {
        let result = state.withLock { s -> (Result<String, WriteError>, [TriggerBatch]) in
            guard let type = s.org.type(object) else { return (.failure(Self.notFound()), []) }
            var txn = Transaction(userId: agentUser, origin: "", version: currentVersion)
            let result = insert(&s, type: type, input: fields, txn: &txn, statement: 0)
            return (result, commit(&s, txn))
        }
        enqueue(result.1)
        return try result.0.get()
    }

    /// Updates a record as an agent would in the UI.
    public func update(_ object: String, _ id: String, _ fields: JSONObject) throws {
        let result = state.withLock { s -> (Result<Void, WriteError>, [TriggerBatch]) in
            guard let type = s.org.type(object) else { return (.failure(Self.notFound()), []) }
            guard let canonical = SalesforceOrg.canonicalId(id) else { return (.failure(Self.malformedId(type, id)), []) }
            var txn = Transaction(userId: agentUser, origin: "", version: currentVersion)
            let result = modify(&s, type: type, id: canonical, input: fields, txn: &txn, statement: 0)
            return (result, commit(&s, txn))
        }
        enqueue(result.1)
        try result.0.get()
    }

    /// Every access token issued so far now gets 401 INVALID_SESSION_ID.
    public func expireSessions() {
        state.withLock { s in for key in s.tokens.keys { s.tokens[key]?.revoked = true } }
    }

    /// Sets `DailyApiRequests.Max`.
    public func setAPIAllocation(_ max: Int) { state.withLock { $0.apiMax = max } }
    /// Starts a new 24-hour window: nothing used.
    public func resetAPIUsage() { state.withLock { $0.apiUsed = 0 } }
    /// Switches how changes are delivered, from the next write on.
    public func setCapture(_ mode: CaptureMode) { state.withLock { $0.capture = mode } }
    /// Moves the simulator's clock forward (record timestamps, session lifetimes, CDC retention).
    public func advanceClock(by duration: Duration) {
        let ms = duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
        state.withLock { $0.clockOffsetMs += ms }
    }

    // MARK: Shared helpers

    /// The version the simulator writes into URLs it makes up itself (trigger records: the package's 62.0).
    var currentVersion: String { options.apiVersions.first ?? "62.0" }
    var latestVersion: String { options.apiVersions.last ?? "62.0" }

    static func nowMs(_ s: State) -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) + s.clockOffsetMs }

    static func notFound() -> WriteError {
        WriteError(status: 404, errorCode: "NOT_FOUND", message: "The requested resource does not exist", fields: [])
    }

    static func malformedId(_ type: SalesforceObjectType, _ id: String) -> WriteError {
        WriteError(status: 400, errorCode: "MALFORMED_ID", message: "\(type.label) ID: id value of incorrect type: \(id)", fields: ["Id"])
    }

    func enqueue(_ batches: [TriggerBatch]) {
        for batch in batches { enqueueTrigger(batch) }
    }
}

/// Answers every request: the controls under `/_simulator`, OAuth, REST, CometD.
struct SalesforceResponder<Context: RequestContext>: RouterMiddleware {
    let simulator: SalesforceSimulator

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let path = request.uri.path
        let fullPath = request.uri.description
        let query = SalesforceSimulator.parseQuery(request.uri.query ?? "")
        let headers = request.headers.map { (name: $0.name.canonicalName, value: $0.value) }
        let bytes = Array(buffer: try await request.body.collect(upTo: 32 << 20))
        let method = request.method.rawValue
        let reply: SalesforceReply
        if path.hasPrefix("/_simulator") {
            reply = simulator.control(method: method, path: path, body: bytes)
        } else {
            if path == "/services/oauth2/token" {
                reply = await simulator.oauth(method: method, headers: headers, body: bytes)
            } else if path.hasPrefix("/services/data") {
                reply = simulator.rest(method: method, path: path, query: query, headers: headers, body: bytes)
            } else if path.hasPrefix("/cometd/") {
                reply = await simulator.cometd(method: method, path: path, headers: headers, body: bytes)
            } else {
                reply = .errors(404, "NOT_FOUND", "The requested resource does not exist")
            }
            let status = reply.status
            simulator.state.withLock { $0.requests.append(.init(method: method, path: fullPath, headers: headers, body: bytes, status: status)) }
        }
        var fields = HTTPFields()
        if reply.body != nil { fields[.contentType] = "application/json;charset=UTF-8" }
        for (name, value) in reply.headers { if let n = HTTPField.Name(name) { fields[n] = value } }
        let text = reply.body.map { $0.serialized() } ?? ""
        return Response(status: .init(code: reply.status), headers: fields, body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}

struct SalesforceReply: Sendable {
    var status: Int
    var body: JSONValue?
    var headers: [(String, String)] = []

    /// Salesforce's REST error body: an array of `{message, errorCode}`.
    static func errors(_ status: Int, _ code: String, _ message: String) -> SalesforceReply {
        SalesforceReply(status: status, body: .array([.object(["message": .string(message), "errorCode": .string(code)])]))
    }

    static func error(_ e: SalesforceSimulator.WriteError) -> SalesforceReply { SalesforceReply(status: e.status, body: e.body) }
}

extension SalesforceSimulator {
    /// `a=1&b=x+y` with percent-decoding (`+` is a space, as in forms and Salesforce's query URLs).
    static func parseQuery(_ text: String) -> [(name: String, value: String)] {
        text.split(separator: "&", omittingEmptySubsequences: true).map { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ s: Substring) -> String {
                let spaced = s.replacingOccurrences(of: "+", with: " ")
                return spaced.removingPercentEncoding ?? spaced
            }
            return (decode(parts[0]), parts.count > 1 ? decode(parts[1]) : "")
        }
    }

    static func header(_ headers: [(name: String, value: String)], _ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }

    static func number(_ value: JSONValue?) -> Int? {
        switch value {
        case .number(let n)?: Int(exactly: n.rounded())
        case .string(let s)?: Int(s)
        default: nil
        }
    }
}
