import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import Synchronization
import SwitchboardCore

/// How the REST client talks to one org.
public struct SalesforceClientConfiguration: Sendable, Hashable {
    /// The REST API version, `62.0` by default; never hard-coded elsewhere.
    public var apiVersion: String
    /// Sent as `Sforce-Call-Options: client=<name>` on every write, so Change Data Capture's `changeOrigin` names
    /// Switchboard and its own changes are not echoed back.
    public var callOptionsClient: String
    /// The deadline of one request.
    public var timeout: TimeAmount
    /// How long a describe result is reused before it is read again.
    public var describeTTL: Duration
    /// How many times a read (GET) is retried after a 5xx or no answer; writes are never retried here.
    public var readRetries: Int
    /// The first wait before a read is retried; it doubles each time.
    public var retryDelay: Duration

    public init(
        apiVersion: String = "62.0", callOptionsClient: String = "switchboard", timeout: TimeAmount = .seconds(30), describeTTL: Duration = .seconds(600),
        readRetries: Int = 2, retryDelay: Duration = .milliseconds(200)
    ) {
        self.apiVersion = apiVersion.hasPrefix("v") ? String(apiVersion.dropFirst()) : apiVersion
        self.callOptionsClient = callOptionsClient
        self.timeout = timeout
        self.describeTTL = describeTTL
        self.readRetries = readRetries
        self.retryDelay = retryDelay
    }
}

/// A typed client of one org's REST API: sObject create/update/get, describe, SOQL with paging, Composite and
/// sObject Collections, limits.
///
/// Every request carries `Authorization: Bearer` and `Accept: application/json`; every write carries
/// `Sforce-Call-Options`. A 401 `INVALID_SESSION_ID` drops the session, gets a new one once and replays the request
/// (the refused request had no effect, so replaying a write is safe). Reads are retried on 5xx and on no answer;
/// writes are not, because the pipeline retries them under their idempotency key. Every response updates the org's
/// ``APIBudget``.
public final class SalesforceClient: Sendable {
    public let configuration: SalesforceClientConfiguration
    /// The org's API allocation as last reported.
    public let budget: APIBudget
    let sessions: any SalesforceSessionProvider
    let http: HTTPClient
    let logger: Logger
    private let describes = Mutex<[String: (at: ContinuousClock.Instant, describe: ObjectDescribe)]>([:])
    private let counters = Mutex<(requests: Int, renewals: Int)>((0, 0))

    /// - Parameters:
    ///   - sessions: the org's session provider (usually a ``SalesforceTokenProvider``).
    ///   - configuration: API version, call options client name, timeouts.
    ///   - budget: the org's API budget (one per org, shared by everything that calls it).
    ///   - httpClient: the HTTP client (the shared one by default).
    public init(
        sessions: any SalesforceSessionProvider, configuration: SalesforceClientConfiguration = .init(), budget: APIBudget = APIBudget(),
        httpClient: HTTPClient = .shared, logger: Logger = Logger(label: "salesforce")
    ) {
        self.sessions = sessions
        self.configuration = configuration
        self.budget = budget
        self.http = httpClient
        self.logger = logger
    }

    /// Requests sent so far (replays and retries included), for status pages and tests.
    public var requestCount: Int { counters.withLock { $0.requests } }

    /// `/services/data/v62.0`.
    public var basePath: String { "/services/data/v\(configuration.apiVersion)" }

    // MARK: Transport

    /// One answer from Salesforce.
    public struct Response: Sendable {
        public var status: Int
        /// The decoded body; `.null` for an empty body (204).
        public var body: JSONValue
        public var headers: [(name: String, value: String)]
    }

    /// Sends a request to the org and returns its answer when the status is 2xx.
    ///
    /// - Parameters:
    ///   - method: the HTTP method.
    ///   - path: a path below ``basePath`` (`sobjects/Case`), or a full path starting `/services/` (a
    ///     `nextRecordsUrl`).
    ///   - query: query parameters, percent-encoded here.
    ///   - body: a JSON body.
    ///   - priority: checked against the budget before anything is sent.
    public func send(
        _ method: HTTPMethod, _ path: String, query: [(String, String)] = [], body: JSONValue? = nil, priority: APIBudget.Priority = .normal
    ) async throws(SalesforceError) -> Response {
        try budget.check(priority)
        let isRead = method == .GET || method == .HEAD
        var attempt = 0
        while true {
            do {
                return try await sendRenewingSession(method, path, query: query, body: body)
            } catch {
                attempt += 1
                guard isRead, attempt <= configuration.readRetries, case .transport = error else { throw error }
                let wait = configuration.retryDelay * (1 << (attempt - 1))
                logger.debug("retrying a Salesforce read", metadata: ["path": "\(path)", "attempt": "\(attempt)", "error": "\(error)"])
                try? await Task.sleep(for: wait)
            }
        }
    }

    private func sendRenewingSession(_ method: HTTPMethod, _ path: String, query: [(String, String)], body: JSONValue?) async throws(SalesforceError)
        -> Response
    {
        let session = try await sessions.session()
        do {
            return try await sendOnce(method, path, query: query, body: body, session: session)
        } catch .api(401, let errors) {
            // The token expired or was revoked: one new session, one replay.
            logger.info("the Salesforce session was refused; renewing it", metadata: ["codes": "\(errors.map(\.code))"])
            counters.withLock { $0.renewals += 1 }
            await sessions.invalidate(session)
            let renewed = try await sessions.session()
            return try await sendOnce(method, path, query: query, body: body, session: renewed)
        }
    }

    private func sendOnce(_ method: HTTPMethod, _ path: String, query: [(String, String)], body: JSONValue?, session: SalesforceSession)
        async throws(SalesforceError) -> Response
    {
        var url = session.instanceURL.trimmingTrailingSlashes + (path.hasPrefix("/services/") ? path : basePath + "/" + path)
        if !query.isEmpty { url += "?" + query.map { "\(Self.percentEncode($0.0))=\(Self.percentEncode($0.1))" }.joined(separator: "&") }
        var request = HTTPClientRequest(url: url)
        request.method = method
        request.headers.add(name: "Authorization", value: "Bearer \(session.accessToken)")
        request.headers.add(name: "Accept", value: "application/json")
        request.headers.add(name: "User-Agent", value: "Switchboard")
        if method != .GET && method != .HEAD {
            request.headers.add(name: "Sforce-Call-Options", value: "client=\(configuration.callOptionsClient)")
        }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: body.serialized()))
        }
        counters.withLock { $0.requests += 1 }
        let response: HTTPClientResponse
        let bytes: ByteBuffer
        do {
            response = try await http.execute(request, timeout: configuration.timeout)
            bytes = try await response.body.collect(upTo: 64 << 20)
        } catch {
            throw .transport("\(method) \(path) got no answer from \(session.instanceURL): \(error)")
        }
        let status = Int(response.status.code)
        let headers = response.headers.map { (name: $0.name, value: $0.value) }
        budget.record(limitInfo: response.headers.first(name: "Sforce-Limit-Info"), success: (200..<300).contains(status))
        let json: JSONValue
        if bytes.readableBytes == 0 {
            json = .null
        } else if let parsed = try? JSONParser.parseValue(bytes: Array(buffer: bytes)) {
            json = parsed
        } else if (200..<300).contains(status) {
            throw .malformedResponse("\(method) \(path) answered \(status) with a body that is not JSON")
        } else {
            json = .string(String(buffer: bytes).prefixed(500))
        }
        guard (200..<300).contains(status) else {
            let errors = Self.errorItems(json)
            if status == 403, errors.contains(where: { $0.code == "REQUEST_LIMIT_EXCEEDED" }) {
                let after = response.headers.first(name: "Retry-After").flatMap(Double.init)
                let wait = budget.markExhausted(retryAfter: after)
                throw .limitExceeded(message: errors.first { $0.code == "REQUEST_LIMIT_EXCEEDED" }?.message ?? "REQUEST_LIMIT_EXCEEDED", retryAfterSeconds: wait)
            }
            if status >= 500 {
                throw .transport("\(method) \(path) answered \(status): " + errors.map { "\($0.code): \($0.message)" }.joined(separator: "; "))
            }
            throw .api(status: status, errors: errors)
        }
        return Response(status: status, body: json, headers: headers)
    }

    /// Both error formats: the REST array `[{"message","errorCode","fields"}]` and the Collections
    /// `{"statusCode","message","fields"}` (alone or in an array); anything else becomes one item with the text.
    public static func errorItems(_ json: JSONValue) -> [SalesforceError.APIErrorItem] {
        func item(_ v: JSONValue) -> SalesforceError.APIErrorItem? {
            guard case .object(let o) = v else { return nil }
            let code = o["errorCode"]?.stringValue ?? o["statusCode"]?.stringValue ?? o["error"]?.stringValue ?? "UNKNOWN"
            let message = o["message"]?.stringValue ?? o["error_description"]?.stringValue ?? ""
            let fields = o["fields"]?.arrayValue?.compactMap(\.stringValue) ?? []
            return SalesforceError.APIErrorItem(code: code, message: message, fields: fields)
        }
        switch json {
        case .array(let items): return items.compactMap(item)
        case .object: return item(json).map { [$0] } ?? []
        case .string(let text): return [SalesforceError.APIErrorItem(code: "UNKNOWN", message: text)]
        default: return []
        }
    }

    static func percentEncode(_ s: String) -> String {
        // SOQL in `q=` keeps its spaces as %20 and every reserved character escaped.
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return s.addingPercentEncoding(withAllowedCharacters: allowed) ?? s
    }

    static func pathComponent(_ s: String) -> String { percentEncode(s) }

    // MARK: sObjects

    /// Creates a record; returns its 18-character Id.
    public func create(_ object: String, fields: JSONObject, priority: APIBudget.Priority = .normal) async throws(SalesforceError) -> String {
        let reply = try await send(.POST, "sobjects/\(Self.pathComponent(object))/", body: .object(fields), priority: priority)
        guard let id = reply.body["id"]?.stringValue else { throw .malformedResponse("the create answer for \(object) has no id") }
        return SalesforceId.normalized(id)
    }

    /// Updates fields of a record (204, no body).
    public func update(_ object: String, id: String, fields: JSONObject, priority: APIBudget.Priority = .normal) async throws(SalesforceError) {
        _ = try await send(.PATCH, "sobjects/\(Self.pathComponent(object))/\(Self.pathComponent(id))", body: .object(fields), priority: priority)
    }

    /// Reads a record, all fields or the `fields` listed. The `attributes` entry is kept.
    public func get(_ object: String, id: String, fields: [String]? = nil) async throws(SalesforceError) -> JSONObject {
        let query = fields.map { [("fields", $0.joined(separator: ","))] } ?? []
        let reply = try await send(.GET, "sobjects/\(Self.pathComponent(object))/\(Self.pathComponent(id))", query: query)
        guard let record = reply.body.objectValue else { throw .malformedResponse("the record \(object) \(id) is not a JSON object") }
        return record
    }

    // MARK: Describe

    /// An object's describe, cached for `describeTTL`.
    public func describe(_ object: String, refresh: Bool = false) async throws(SalesforceError) -> ObjectDescribe {
        let key = object.lowercased()
        let ttl = configuration.describeTTL
        if !refresh, let hit = describes.withLock({ $0[key] }), ContinuousClock.now - hit.at < ttl { return hit.describe }
        let reply = try await send(.GET, "sobjects/\(Self.pathComponent(object))/describe")
        guard let describe = ObjectDescribe(json: reply.body) else { throw .malformedResponse("the describe of \(object) has no name or fields") }
        describes.withLock { $0[key] = (.now, describe) }
        return describe
    }

    /// An object's describe if it is cached and fresh; never calls Salesforce.
    public func cachedDescribe(_ object: String) -> ObjectDescribe? {
        let ttl = configuration.describeTTL
        guard let hit = describes.withLock({ $0[object.lowercased()] }), ContinuousClock.now - hit.at < ttl else { return nil }
        return hit.describe
    }

    /// Forgets cached describes (all, or one object's).
    public func forgetDescribes(_ object: String? = nil) {
        describes.withLock { cache in
            if let object { cache[object.lowercased()] = nil } else { cache.removeAll() }
        }
    }

    /// Every object of the org (describe global).
    public func describeGlobal() async throws(SalesforceError) -> [GlobalObject] {
        let reply = try await send(.GET, "sobjects")
        return (reply.body["sobjects"]?.arrayValue ?? []).compactMap(GlobalObject.init(json:))
    }

    // MARK: Query

    /// Runs a SOQL query and returns every record, following `nextRecordsUrl` until `done`.
    /// - Parameter maxRecords: stop after this many records (a safety net for unbounded queries).
    public func query(_ soql: String, maxRecords: Int = 100_000) async throws(SalesforceError) -> [JSONObject] {
        var page = try await queryPage(soql)
        var records = page.records
        while let next = page.nextRecordsUrl, !page.done, records.count < maxRecords {
            page = try await queryMore(next)
            records += page.records
        }
        return records
    }

    /// The first page of a SOQL query.
    public func queryPage(_ soql: String) async throws(SalesforceError) -> QueryPage {
        let reply = try await send(.GET, "query", query: [("q", soql)])
        guard let page = QueryPage(json: reply.body) else { throw .malformedResponse("the query answer has no records") }
        return page
    }

    /// The page a `nextRecordsUrl` points at.
    public func queryMore(_ nextRecordsUrl: String) async throws(SalesforceError) -> QueryPage {
        let path = nextRecordsUrl.hasPrefix("/") ? nextRecordsUrl : "/" + nextRecordsUrl
        let reply = try await send(.GET, path)
        guard let page = QueryPage(json: reply.body) else { throw .malformedResponse("the query page \(nextRecordsUrl) has no records") }
        return page
    }

    // MARK: Composite

    /// Sends up to 25 subrequests as one call (Salesforce counts a Composite request as one API call).
    ///
    /// More than 25 are split into several calls when that is safe: not with `allOrNone` (one transaction cannot span
    /// calls) and not when a subrequest refers to another with `@{…}`; those are refused.
    public func composite(_ subrequests: [CompositeSubrequest], allOrNone: Bool, priority: APIBudget.Priority = .normal) async throws(SalesforceError)
        -> [CompositeSubresponse]
    {
        let limit = 25
        if subrequests.count > limit {
            let referencing = subrequests.contains { $0.url.contains("@{") || ($0.body?.serialized().contains("@{") ?? false) }
            if allOrNone || referencing {
                throw .api(
                    status: 400,
                    errors: [
                        .init(
                            code: "TOO_MANY_SUBREQUESTS",
                            message: "a Composite request holds at most 25 subrequests; \(subrequests.count) given, which cannot be split because "
                                + (allOrNone ? "allOrNone needs one transaction" : "subrequests refer to each other"))
                    ])
            }
        }
        var out: [CompositeSubresponse] = []
        var start = 0
        while start < subrequests.count {
            let chunk = Array(subrequests[start..<min(start + limit, subrequests.count)])
            let body: JSONValue = .object([
                "allOrNone": .bool(allOrNone), "compositeRequest": .array(chunk.map { $0.json(basePath: basePath) }),
            ])
            let reply = try await send(.POST, "composite", body: body, priority: priority)
            guard let items = reply.body["compositeResponse"]?.arrayValue else { throw .malformedResponse("the Composite answer has no compositeResponse") }
            out += items.map(CompositeSubresponse.init(json:))
            start += limit
        }
        return out
    }

    // MARK: sObject Collections

    /// Creates records, up to 200 per call (more are sent in several calls); returns one result per record, in order.
    /// - Throws: for `allOrNone` with more than 200 records, which cannot be one transaction.
    public func createCollection(_ records: [CollectionRecord], allOrNone: Bool, priority: APIBudget.Priority = .normal) async throws(SalesforceError)
        -> [SaveResult]
    {
        try await collection(.POST, records, allOrNone: allOrNone, priority: priority)
    }

    /// Updates records (each needs an `id`), up to 200 per call; returns one result per record, in order.
    public func updateCollection(_ records: [CollectionRecord], allOrNone: Bool, priority: APIBudget.Priority = .normal) async throws(SalesforceError)
        -> [SaveResult]
    {
        if let missing = records.firstIndex(where: { $0.id == nil }) {
            throw .api(status: 400, errors: [.init(code: "MISSING_ARGUMENT", message: "record \(missing) of the update has no id", fields: ["id"])])
        }
        return try await collection(.PATCH, records, allOrNone: allOrNone, priority: priority)
    }

    /// The most records one Collections call takes.
    public static let collectionLimit = 200
    /// The most runs of one object type one Collections call takes.
    static let collectionTypeChunks = 10

    private func collection(_ method: HTTPMethod, _ records: [CollectionRecord], allOrNone: Bool, priority: APIBudget.Priority) async throws(SalesforceError)
        -> [SaveResult]
    {
        guard !records.isEmpty else { return [] }
        let calls = Self.collectionCalls(records)
        if allOrNone && calls.count > 1 {
            throw .api(
                status: 400,
                errors: [
                    .init(
                        code: "TOO_MANY_RECORDS",
                        message: "allOrNone needs one Collections call: at most 200 records in at most 10 runs of one type; \(records.count) given")
                ])
        }
        var out: [SaveResult] = []
        for call in calls {
            let body: JSONValue = .object(["allOrNone": .bool(allOrNone), "records": .array(call.map { $0.json(includeId: method == .PATCH) })])
            let reply = try await send(method, "composite/sobjects", body: body, priority: priority)
            guard let items = reply.body.arrayValue, items.count == call.count else {
                throw .malformedResponse("the Collections answer does not hold one result per record")
            }
            out += items.map(SaveResult.init(json:))
        }
        return out
    }

    /// Splits records into Collections calls: at most 200 records, and at most 10 runs of one type, each.
    static func collectionCalls(_ records: [CollectionRecord]) -> [[CollectionRecord]] {
        var calls: [[CollectionRecord]] = []
        var current: [CollectionRecord] = []
        var runs = 0
        for record in records {
            let newRun = current.last.map { $0.object != record.object } ?? true
            if current.count == collectionLimit || (newRun && runs == collectionTypeChunks) {
                calls.append(current)
                current = []
                runs = 0
            }
            if current.last.map({ $0.object != record.object }) ?? true { runs += 1 }
            current.append(record)
        }
        if !current.isEmpty { calls.append(current) }
        return calls
    }

    // MARK: Limits

    /// The org's limits (`GET /limits`), e.g. `DailyApiRequests` with its `Max` and `Remaining`.
    public func limits() async throws(SalesforceError) -> [String: OrgLimit] {
        let reply = try await send(.GET, "limits", priority: .high)
        var out: [String: OrgLimit] = [:]
        for (name, value) in reply.body.objectValue?.entries ?? [] {
            if let max = value["Max"]?.intNumber, let remaining = value["Remaining"]?.intNumber { out[name] = OrgLimit(max: max, remaining: remaining) }
        }
        return out
    }
}

// MARK: - Value types

/// One entry of `/limits`.
public struct OrgLimit: Sendable, Hashable {
    public var max: Int
    public var remaining: Int
}

/// One page of a SOQL result.
public struct QueryPage: Sendable, Hashable {
    public var totalSize: Int
    public var done: Bool
    public var nextRecordsUrl: String?
    public var records: [JSONObject]

    init?(json: JSONValue) {
        guard let records = json["records"]?.arrayValue else { return nil }
        self.totalSize = json["totalSize"]?.intNumber ?? records.count
        self.done = json["done"] != .bool(false)
        self.nextRecordsUrl = json["nextRecordsUrl"]?.stringValue
        self.records = records.compactMap(\.objectValue)
    }
}

/// A record for an sObject Collections call.
public struct CollectionRecord: Sendable, Hashable {
    /// The object's API name (`attributes.type`).
    public var object: String
    /// The record's Id, for updates.
    public var id: String?
    public var fields: JSONObject

    public init(object: String, id: String? = nil, fields: JSONObject) {
        self.object = object
        self.id = id
        self.fields = fields
    }

    func json(includeId: Bool) -> JSONValue {
        var o: JSONObject = ["attributes": .object(["type": .string(object)])]
        if includeId, let id { o["id"] = .string(id) }
        for (k, v) in fields.entries where k != "attributes" && !(includeId && k.lowercased() == "id") { o[k] = v }
        return .object(o)
    }
}

/// One record's outcome in a Collections call: `{id, success, errors[{statusCode, message, fields}]}`.
public struct SaveResult: Sendable, Hashable {
    public var id: String?
    public var success: Bool
    public var errors: [SalesforceError.APIErrorItem]

    public init(id: String?, success: Bool, errors: [SalesforceError.APIErrorItem] = []) {
        self.id = id
        self.success = success
        self.errors = errors
    }

    init(json: JSONValue) {
        self.id = json["id"]?.stringValue.map(SalesforceId.normalized)
        self.success = json["success"] == .bool(true)
        self.errors = SalesforceClient.errorItems(json["errors"] ?? .array([]))
    }
}

/// One subrequest of a Composite call.
public struct CompositeSubrequest: Sendable, Hashable {
    public var method: String
    /// A path below the versioned base (`sobjects/Case/…`) or a full `/services/data/…` path; may use `@{ref.id}`.
    public var url: String
    public var referenceId: String
    public var body: JSONValue?

    public init(method: String, url: String, referenceId: String, body: JSONValue? = nil) {
        self.method = method
        self.url = url
        self.referenceId = referenceId
        self.body = body
    }

    func json(basePath: String) -> JSONValue {
        var o: JSONObject = [
            "method": .string(method), "url": .string(url.hasPrefix("/services/") ? url : basePath + "/" + url), "referenceId": .string(referenceId),
        ]
        if let body { o["body"] = body }
        return .object(o)
    }
}

/// One subrequest's answer in a Composite call (the call itself answers 200 even when a subrequest fails).
public struct CompositeSubresponse: Sendable, Hashable {
    public var referenceId: String
    public var status: Int
    public var body: JSONValue

    /// The subrequest's errors when it failed.
    public var errors: [SalesforceError.APIErrorItem] { (200..<300).contains(status) ? [] : SalesforceClient.errorItems(body) }

    init(json: JSONValue) {
        self.referenceId = json["referenceId"]?.stringValue ?? ""
        self.status = json["httpStatusCode"]?.intNumber ?? 0
        self.body = json["body"] ?? .null
    }
}

/// One object in describe global.
public struct GlobalObject: Sendable, Hashable {
    public var name: String
    public var label: String
    public var keyPrefix: String?
    public var custom: Bool
    public var createable: Bool
    public var updateable: Bool
    public var queryable: Bool

    init?(json: JSONValue) {
        guard let name = json["name"]?.stringValue else { return nil }
        self.name = name
        self.label = json["label"]?.stringValue ?? name
        self.keyPrefix = json["keyPrefix"]?.stringValue
        self.custom = json["custom"] == .bool(true)
        self.createable = json["createable"] == .bool(true)
        self.updateable = json["updateable"] == .bool(true)
        self.queryable = json["queryable"] != .bool(false)
    }
}

/// An object's describe, typed: what the sink checks writes against and what the poller selects.
public struct ObjectDescribe: Sendable, Hashable {
    public var name: String
    public var label: String
    public var keyPrefix: String?
    public var createable: Bool
    public var updateable: Bool
    public var queryable: Bool
    public var fields: [Field]
    private var index: [String: Int]

    /// One field.
    public struct Field: Sendable, Hashable {
        public var name: String
        public var label: String
        /// `id`, `string`, `textarea`, `picklist`, `multipicklist`, `boolean`, `datetime`, `reference`, …
        public var type: String
        public var length: Int?
        public var createable: Bool
        public var updateable: Bool
        public var nillable: Bool
        public var defaultedOnCreate: Bool
        /// True when only the listed picklist values are accepted.
        public var restrictedPicklist: Bool
        public var picklistValues: [PicklistValue]
        public var referenceTo: [String]
        public var relationshipName: String?

        /// Must be given to create a record: createable, not nillable, not defaulted (booleans default to false).
        public var requiredOnCreate: Bool { createable && !nillable && !defaultedOnCreate && type != "boolean" }

        /// The active picklist values.
        public var activeValues: [String] { picklistValues.filter(\.active).map(\.value) }
    }

    /// One picklist entry.
    public struct PicklistValue: Sendable, Hashable {
        public var value: String
        public var label: String
        public var active: Bool
        public var defaultValue: Bool
    }

    /// Decodes a `GET /sobjects/{name}/describe` body.
    public init?(json: JSONValue) {
        guard let name = json["name"]?.stringValue, let fieldList = json["fields"]?.arrayValue else { return nil }
        self.name = name
        self.label = json["label"]?.stringValue ?? name
        self.keyPrefix = json["keyPrefix"]?.stringValue
        self.createable = json["createable"] != .bool(false)
        self.updateable = json["updateable"] != .bool(false)
        self.queryable = json["queryable"] != .bool(false)
        var fields: [Field] = []
        for item in fieldList {
            guard let fieldName = item["name"]?.stringValue, let type = item["type"]?.stringValue else { continue }
            func flag(_ key: String, _ fallback: Bool) -> Bool {
                if case .bool(let b) = item[key] { return b }
                return fallback
            }
            let values = (item["picklistValues"]?.arrayValue ?? []).compactMap { v -> PicklistValue? in
                guard let value = v["value"]?.stringValue else { return nil }
                return PicklistValue(
                    value: value, label: v["label"]?.stringValue ?? value, active: v["active"] != .bool(false), defaultValue: v["defaultValue"] == .bool(true))
            }
            fields.append(
                Field(
                    name: fieldName, label: item["label"]?.stringValue ?? fieldName, type: type, length: item["length"]?.intNumber,
                    createable: flag("createable", false), updateable: flag("updateable", false), nillable: flag("nillable", true),
                    defaultedOnCreate: flag("defaultedOnCreate", false), restrictedPicklist: flag("restrictedPicklist", false), picklistValues: values,
                    referenceTo: item["referenceTo"]?.arrayValue?.compactMap(\.stringValue) ?? [], relationshipName: item["relationshipName"]?.stringValue))
        }
        self.fields = fields
        var index: [String: Int] = [:]
        for (i, f) in fields.enumerated() { index[f.name.lowercased()] = i }
        self.index = index
    }

    /// The field with this API name, matched case-insensitively as Salesforce does.
    public func field(named name: String) -> Field? {
        index[name.lowercased()].map { fields[$0] }
    }

    /// The fields a create must set.
    public var requiredOnCreate: [Field] { fields.filter(\.requiredOnCreate) }

    /// The describe as the rule engine's schema.
    public var schema: ObjectSchema {
        ObjectSchema(
            name: name,
            fields: fields.map {
                FieldDescription(
                    name: $0.name, label: $0.label, salesforceType: $0.type, createable: $0.createable, updateable: $0.updateable, nillable: $0.nillable,
                    defaultedOnCreate: $0.defaultedOnCreate, picklistValues: $0.activeValues, length: $0.length)
            }, isFromDescribe: true)
    }
}

/// Salesforce date-times: `2013-05-20T20:49:32.000+0000` from the API, `…Z` in events, `+00:00` in SOQL.
public enum SalesforceDateTime {
    /// Parses any of the three offset forms, with or without fractional seconds.
    public static func parse(_ text: String) -> Instant? { Instant(iso8601: text) }

    /// A SOQL date-time literal (`2026-01-01T00:00:00Z`, unquoted), to the second (rounded down).
    public static func soqlLiteral(_ instant: Instant) -> String {
        let seconds = Instant(millisecondsSince1970: instant.millisecondsSince1970 - ((instant.millisecondsSince1970 % 1000) + 1000) % 1000)
        return seconds.iso8601
    }
}

extension JSONValue {
    /// A JSON number as an Int.
    var intNumber: Int? {
        if case .number(let n) = self, n.isFinite { return Int(n) }
        return nil
    }
}
