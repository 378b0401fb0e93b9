import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import Synchronization
import SwitchboardCore

/// Where a PagerDuty account lives.
public enum PagerDutyRegion: String, Sendable, CaseIterable {
    case us, eu

    public var baseURL: String {
        switch self {
        case .us: "https://api.pagerduty.com"
        case .eu: "https://api.eu.pagerduty.com"
        }
    }
}

/// How to reach one PagerDuty account.
public struct PagerDutyConfiguration: Sendable {
    public var apiKey: String
    /// `https://api.pagerduty.com`, `https://api.eu.pagerduty.com`, or a simulator's URL.
    public var baseURL: String
    /// The integration user's email, sent as `From` on every write (the actor PagerDuty records).
    public var fromEmail: String
    public var timeout: TimeAmount

    public init(apiKey: String, region: PagerDutyRegion = .us, baseURL: String? = nil, fromEmail: String, timeout: TimeAmount = .seconds(10)) {
        self.apiKey = apiKey
        self.baseURL = (baseURL ?? region.baseURL).trimmingSuffix("/")
        self.fromEmail = fromEmail
        self.timeout = timeout
    }
}

/// A PagerDuty API error: `{"error": {"message", "code", "errors"}}` with the HTTP status.
public struct PagerDutyError: Error, Sendable, CustomStringConvertible {
    public var status: Int
    public var code: Int?
    public var message: String
    public var errors: [String]
    /// Seconds to wait, from `ratelimit-reset` or `Retry-After`.
    public var retryAfter: Double?
    /// True when Switchboard found the problem itself (a name no object has) rather than PagerDuty answering.
    public var isLocal: Bool

    public init(status: Int, code: Int? = nil, message: String, errors: [String] = [], retryAfter: Double? = nil, isLocal: Bool = false) {
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors
        self.retryAfter = retryAfter
        self.isLocal = isLocal
    }

    /// Timeouts (0), 408, 429 and 5xx are worth retrying; 400-level answers are not.
    public var isRetryable: Bool { status == 0 || status == 408 || status == 429 || status >= 500 }

    public var description: String {
        var text = status == 0 || isLocal ? message : "PagerDuty answered \(status)"
        if status != 0 && !isLocal {
            text += ": \(message)"
            if let code { text += " (code \(code))" }
        }
        if !errors.isEmpty { text += ": " + errors.joined(separator: "; ") }
        return text
    }
}

/// PagerDuty's rate-limit headers, as last seen.
public struct PagerDutyRateLimit: Sendable, Hashable {
    public var limit: Int?
    public var remaining: Int?
    public var resetSeconds: Double?
}

/// A typed client of PagerDuty's REST API v2: `Authorization: Token token=…`, the versioned `Accept`, `From` on
/// writes, classic and cursor pagination, errors decoded, rate limits read.
public final class PagerDutyClient: Sendable {
    public let configuration: PagerDutyConfiguration
    let http: HTTPClient
    let logger: Logger
    private let lastRateLimit = Mutex<PagerDutyRateLimit?>(nil)
    private let cache = Mutex<[String: [PagerDutyObject]]>([:])

    public init(configuration: PagerDutyConfiguration, httpClient: HTTPClient = .shared, logger: Logger = Logger(label: "pagerduty")) {
        self.configuration = configuration
        self.http = httpClient
        self.logger = logger
    }

    public var rateLimit: PagerDutyRateLimit? { lastRateLimit.withLock { $0 } }

    // MARK: Transport

    /// Sends one request; returns the decoded body (or `.null` for 204). Reads (GET) that hit 429 or a 5xx are
    /// retried twice, waiting as PagerDuty says (at most 10 s); writes are left to the pipeline's retries.
    public func send(
        _ method: HTTPMethod, _ path: String, query: [(String, String)] = [], body: JSONValue? = nil
    ) async throws(PagerDutyError) -> JSONValue {
        var attempt = 0
        while true {
            do {
                return try await sendOnce(method, path, query: query, body: body)
            } catch {
                attempt += 1
                guard method == .GET, error.isRetryable, attempt <= 2 else { throw error }
                let wait = min(10, error.retryAfter ?? Double(attempt))
                try? await Task.sleep(for: .milliseconds(Int(wait * 1000)))
            }
        }
    }

    private func sendOnce(_ method: HTTPMethod, _ path: String, query: [(String, String)], body: JSONValue?) async throws(PagerDutyError) -> JSONValue {
        var url = configuration.baseURL + path
        if !query.isEmpty { url += "?" + query.map { "\(Self.encode($0.0))=\(Self.encode($0.1))" }.joined(separator: "&") }
        var request = HTTPClientRequest(url: url)
        request.method = method
        request.headers.add(name: "Authorization", value: "Token token=\(configuration.apiKey)")
        request.headers.add(name: "Accept", value: "application/vnd.pagerduty+json;version=2")
        request.headers.add(name: "User-Agent", value: "Switchboard")
        // The official document marks Content-Type required on every operation, reads included.
        request.headers.add(name: "Content-Type", value: "application/json")
        if method != .GET { request.headers.add(name: "From", value: configuration.fromEmail) }
        if let body { request.body = .bytes(ByteBuffer(string: body.serialized())) }
        let response: HTTPClientResponse
        let bytes: ByteBuffer
        do {
            response = try await http.execute(request, timeout: configuration.timeout)
            bytes = try await response.body.collect(upTo: 16 << 20)
        } catch {
            throw PagerDutyError(status: 0, message: "PagerDuty at \(configuration.baseURL) did not answer \(method) \(path): \(error)")
        }
        let headers = response.headers
        let limits = PagerDutyRateLimit(
            limit: headers.first(name: "ratelimit-limit").flatMap { Int($0) }, remaining: headers.first(name: "ratelimit-remaining").flatMap { Int($0) },
            resetSeconds: headers.first(name: "ratelimit-reset").flatMap { Double($0) })
        if limits.limit != nil || limits.remaining != nil { lastRateLimit.withLock { $0 = limits } }
        let status = Int(response.status.code)
        let json = bytes.readableBytes == 0 ? JSONValue.null : (try? JSONParser.parseValue(bytes: Array(buffer: bytes))) ?? .string(String(buffer: bytes))
        guard (200..<300).contains(status) else {
            let error = json["error"]
            var code: Int?
            if case .number(let n)? = error?["code"] { code = Int(n) }
            // ratelimit-reset says when the rate window reopens: a wait only for a 429.
            let retryAfter = status == 429 ? (limits.resetSeconds ?? headers.first(name: "Retry-After").flatMap { Double($0) }) : headers.first(name: "Retry-After").flatMap { Double($0) }
            throw PagerDutyError(
                status: status, code: code, message: error?["message"]?.stringValue ?? json.stringValue ?? HTTPResponseStatus(statusCode: status).reasonPhrase,
                errors: (error?["errors"]?.arrayValue ?? []).compactMap(\.stringValue), retryAfter: status == 429 ? (retryAfter ?? 1) : retryAfter)
        }
        return json
    }

    static func encode(_ s: String) -> String {
        s.addingPercentEncoding(withAllowedCharacters: .urlQueryValueAllowed) ?? s
    }

    // MARK: Pagination

    /// Every item of a classic-paginated list (`limit`/`offset`/`more`), up to PagerDuty's 10,000 offset limit.
    public func listAll(_ path: String, key: String, query: [(String, String)] = []) async throws(PagerDutyError) -> [JSONValue] {
        var items: [JSONValue] = []
        var offset = 0
        let limit = 100
        while true {
            let page = try await send(.GET, path, query: query + [("limit", String(limit)), ("offset", String(offset))])
            items += page[key]?.arrayValue ?? []
            guard page["more"] == .bool(true), offset + 2 * limit <= 10_000 else { return items }
            offset += limit
        }
    }

    /// Every item of a cursor-paginated list (`limit`/`cursor`/`next_cursor`).
    public func listAllByCursor(_ path: String, key: String, query: [(String, String)] = []) async throws(PagerDutyError) -> [JSONValue] {
        var items: [JSONValue] = []
        var cursor: String?
        repeat {
            var q = query + [("limit", "100")]
            if let cursor { q.append(("cursor", cursor)) }
            let page = try await send(.GET, path, query: q)
            items += page[key]?.arrayValue ?? []
            cursor = page["next_cursor"]?.stringValue
        } while cursor != nil && items.count < 100_000
        return items
    }

    // MARK: Pickers

    /// Named objects of a kind, for pickers and for resolving names to ids (cached for the client's life).
    public func objects(_ kind: PagerDutyObject.Kind, refresh: Bool = false) async throws(PagerDutyError) -> [PagerDutyObject] {
        if !refresh, let cached = cache.withLock({ $0[kind.rawValue] }) { return cached }
        let items: [JSONValue]
        switch kind {
        case .automationActions: items = try await listAllByCursor(kind.path, key: kind.listKey)
        case .statusDashboards: items = try await send(.GET, kind.path)[kind.listKey]?.arrayValue ?? []
        default: items = try await listAll(kind.path, key: kind.listKey)
        }
        let objects = items.compactMap { PagerDutyObject(json: $0, kind: kind) }
        cache.withLock { $0[kind.rawValue] = objects }
        return objects
    }

    /// Resolves an id or a name (case-insensitive; users also by email) to an id.
    public func resolve(_ idOrName: String, as kind: PagerDutyObject.Kind) async throws(PagerDutyError) -> String {
        if let hit = try await objects(kind).first(where: { $0.matches(idOrName) }) { return hit.id }
        // Not in the list: perhaps the cache is stale.
        if let hit = try await objects(kind, refresh: true).first(where: { $0.matches(idOrName) }) { return hit.id }
        if PagerDutyObject.looksLikeId(idOrName) { return idOrName }
        throw PagerDutyError(status: 404, message: "no \(kind.noun) named \"\(idOrName)\" in the PagerDuty account", isLocal: true)
    }

    /// The impacts of the business services on a status dashboard (the 200 most impacted).
    public func serviceImpacts(dashboard: String) async throws(PagerDutyError) -> [JSONValue] {
        try await send(.GET, "/status_dashboards/\(dashboard)/service_impacts", query: [("additional_fields[]", "services.highest_impacting_priority")])["services"]?
            .arrayValue ?? []
    }

    // MARK: Incidents

    /// Creates an incident. `body` is the `incident` object as PagerDuty takes it.
    public func createIncident(_ incident: JSONObject) async throws(PagerDutyError) -> JSONValue {
        let reply = try await send(.POST, "/incidents", body: .object(["incident": .object(incident)]))
        return reply["incident"] ?? .null
    }

    public func incident(_ id: String) async throws(PagerDutyError) -> JSONValue {
        try await send(.GET, "/incidents/\(id)")["incident"] ?? .null
    }

    /// Open or recent incidents, filtered.
    public func incidents(incidentKey: String? = nil, statuses: [String] = [], since: String? = nil, until: String? = nil) async throws(PagerDutyError)
        -> [JSONValue]
    {
        var q: [(String, String)] = []
        if let incidentKey { q.append(("incident_key", incidentKey)) }
        for s in statuses { q.append(("statuses[]", s)) }
        if let since { q.append(("since", since)) }
        if let until { q.append(("until", until)) }
        if since == nil && incidentKey != nil { q.append(("date_range", "all")) }
        return try await listAll("/incidents", key: "incidents", query: q)
    }

    /// Changes fields of an incident (status, priority, urgency, assignments, escalation policy, conference bridge…).
    @discardableResult
    public func updateIncident(_ id: String, _ fields: JSONObject) async throws(PagerDutyError) -> JSONValue {
        var incident = fields
        incident["type"] = "incident_reference"
        return try await send(.PUT, "/incidents/\(id)", body: .object(["incident": .object(incident)]))["incident"] ?? .null
    }

    @discardableResult
    public func addNote(_ incidentId: String, content: String) async throws(PagerDutyError) -> JSONValue {
        try await send(.POST, "/incidents/\(incidentId)/notes", body: .object(["note": .object(["content": .string(content)])]))["note"] ?? .null
    }

    public func notes(_ incidentId: String) async throws(PagerDutyError) -> [JSONValue] {
        try await send(.GET, "/incidents/\(incidentId)/notes")["notes"]?.arrayValue ?? []
    }

    /// Requests responders, in the wrapped `responder_request_target` form PagerDuty's own example uses.
    @discardableResult
    public func addResponders(_ incidentId: String, requester: String, users: [String], escalationPolicies: [String], message: String?)
        async throws(PagerDutyError) -> JSONValue
    {
        let targets: [JSONValue] =
            users.map { .object(["responder_request_target": .object(["id": .string($0), "type": "user_reference"])]) }
            + escalationPolicies.map { .object(["responder_request_target": .object(["id": .string($0), "type": "escalation_policy_reference"])]) }
        var body: JSONObject = ["requester_id": .string(requester), "responder_request_targets": .array(targets)]
        body["message"] = .string(message ?? "Please help with this incident.")
        return try await send(.POST, "/incidents/\(incidentId)/responder_requests", body: .object(body))["responder_request"] ?? .null
    }

    @discardableResult
    public func postStatusUpdate(_ incidentId: String, message: String) async throws(PagerDutyError) -> JSONValue {
        try await send(.POST, "/incidents/\(incidentId)/status_updates", body: .object(["message": .string(message)]))["status_update"] ?? .null
    }

    @discardableResult
    public func setCustomFields(_ incidentId: String, _ values: [(name: String, value: JSONValue)]) async throws(PagerDutyError) -> JSONValue {
        let fields = values.map { JSONValue.object(["name": .string($0.name), "value": $0.value]) }
        return try await send(.PUT, "/incidents/\(incidentId)/custom_fields/values", body: .object(["custom_fields": .array(fields)]))
    }

    @discardableResult
    public func runIncidentWorkflow(_ workflowId: String, incidentId: String) async throws(PagerDutyError) -> JSONValue {
        try await send(
            .POST, "/incident_workflows/\(workflowId)/instances",
            body: .object(["incident_workflow_instance": .object(["incident": .object(["id": .string(incidentId), "type": "incident_reference"])])]))
    }

    @discardableResult
    public func runAutomationAction(_ actionId: String, incidentId: String) async throws(PagerDutyError) -> JSONValue {
        try await send(
            .POST, "/automation_actions/actions/\(actionId)/invocations",
            body: .object(["invocation": .object(["metadata": .object(["incident_id": .string(incidentId)])])]))
    }

    /// Log entries since a time, with their incidents, oldest first (for backfilling missed webhooks).
    public func logEntries(since: String, until: String? = nil) async throws(PagerDutyError) -> [JSONValue] {
        var q: [(String, String)] = [("since", since), ("include[]", "incidents"), ("is_overview", "false")]
        if let until { q.append(("until", until)) }
        return try await listAll("/log_entries", key: "log_entries", query: q).reversed()
    }

    // MARK: Webhook subscriptions

    /// Creates a v3 subscription; returns its id and signing secret (PagerDuty shows the secret only now).
    public func createWebhookSubscription(url: String, events: [String], filter: JSONObject, description: String) async throws(PagerDutyError)
        -> (id: String, secret: String)
    {
        let body: JSONValue = .object([
            "webhook_subscription": .object([
                "type": "webhook_subscription", "description": .string(description),
                "delivery_method": .object(["type": "http_delivery_method", "url": .string(url)]),
                "events": .array(events.map(JSONValue.string)), "filter": .object(filter), "active": .bool(true),
            ])
        ])
        let reply = try await send(.POST, "/webhook_subscriptions", body: body)
        guard let sub = reply["webhook_subscription"], let id = sub["id"]?.stringValue, let secret = sub["delivery_method"]?["secret"]?.stringValue
        else { throw PagerDutyError(status: 502, message: "PagerDuty's answer to the subscription has no id or secret") }
        return (id, secret)
    }

    public func webhookSubscription(_ id: String) async throws(PagerDutyError) -> JSONValue {
        try await send(.GET, "/webhook_subscriptions/\(id)")["webhook_subscription"] ?? .null
    }

    public func deleteWebhookSubscription(_ id: String) async throws(PagerDutyError) {
        _ = try await send(.DELETE, "/webhook_subscriptions/\(id)")
    }

    public func enableWebhookSubscription(_ id: String) async throws(PagerDutyError) {
        _ = try await send(.POST, "/webhook_subscriptions/\(id)/enable")
    }

    /// Checks the key by reading one user; returns the account's users count on the page.
    public func checkKey() async throws(PagerDutyError) {
        _ = try await send(.GET, "/users", query: [("limit", "1")])
    }
}

/// Something a rule or console can pick by name: a service, an escalation policy, a priority, a user…
public struct PagerDutyObject: Sendable, Hashable {
    public enum Kind: String, Sendable, CaseIterable {
        case services, escalationPolicies, priorities, users, teams, incidentWorkflows, automationActions, businessServices, statusDashboards

        var path: String {
            switch self {
            case .services: "/services"
            case .escalationPolicies: "/escalation_policies"
            case .priorities: "/priorities"
            case .users: "/users"
            case .teams: "/teams"
            case .incidentWorkflows: "/incident_workflows"
            case .automationActions: "/automation_actions/actions"
            case .businessServices: "/business_services"
            case .statusDashboards: "/status_dashboards"
            }
        }

        var listKey: String {
            switch self {
            case .services: "services"
            case .escalationPolicies: "escalation_policies"
            case .priorities: "priorities"
            case .users: "users"
            case .teams: "teams"
            case .incidentWorkflows: "incident_workflows"
            case .automationActions: "actions"
            case .businessServices: "business_services"
            case .statusDashboards: "status_dashboards"
            }
        }

        var noun: String {
            switch self {
            case .services: "service"
            case .escalationPolicies: "escalation policy"
            case .priorities: "priority"
            case .users: "user"
            case .teams: "team"
            case .incidentWorkflows: "incident workflow"
            case .automationActions: "automation action"
            case .businessServices: "business service"
            case .statusDashboards: "status dashboard"
            }
        }
    }

    public var kind: Kind
    public var id: String
    public var name: String
    public var email: String?

    init?(json: JSONValue, kind: Kind) {
        guard let id = json["id"]?.stringValue else { return nil }
        self.kind = kind
        self.id = id
        self.name = json["name"]?.stringValue ?? json["summary"]?.stringValue ?? id
        self.email = json["email"]?.stringValue
    }

    func matches(_ text: String) -> Bool {
        id == text || name.lowercased() == text.lowercased() || email?.lowercased() == text.lowercased()
    }

    /// PagerDuty ids are short runs of capitals and digits, like `PXYZ123` or `Q1ABCDEFGH`.
    static func looksLikeId(_ s: String) -> Bool {
        (5...20).contains(s.count) && s.allSatisfy { ($0.isUppercase || $0.isNumber) && $0.isASCII } && s.contains { $0.isNumber }
    }
}

extension String {
    func trimmingSuffix(_ suffix: String) -> String {
        var s = self
        while s.hasSuffix(suffix) { s.removeLast(suffix.count) }
        return s
    }
}

extension CharacterSet {
    static let urlQueryValueAllowed: CharacterSet = {
        var set = CharacterSet.urlQueryAllowed
        set.remove(charactersIn: "&=+?/")
        return set
    }()
}
