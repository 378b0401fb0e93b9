import AsyncHTTPClient
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization
import SwitchboardCore

/// A PagerDuty account on loopback: the REST endpoints Switchboard uses, with PagerDuty's status codes, wrapping,
/// pagination and errors, signed v3 webhooks for every change (API-made ones included, as PagerDuty does), rate
/// limits, and switches to make it fail, slow down or drop deliveries. Every request is checked against the
/// official OpenAPI document when one is given.
public final class PagerDutySimulator: Sendable {
    public struct Options: Sendable {
        /// The API key requests must carry (`Authorization: Token token=…`).
        public var apiKey = "simulatorkey0000"
        /// Requests per minute before answering 429 (PagerDuty allows 960).
        public var rateLimitPerMinute = 960
        /// The official document, to check every request against; nil skips the check.
        public var validator: OpenAPIRequestValidator?
        /// How long a delivery may take before it counts as failed (PagerDuty: 5 s).
        public var webhookTimeout: TimeAmount = .seconds(5)
        /// Attempts per delivery before it is dropped (PagerDuty retries for up to 48 h; a simulator cannot wait).
        public var deliveryAttempts = 3
        public var retryDelay: Duration = .milliseconds(200)

        public init() {}
    }

    /// One request received, for the tests' sweeps.
    public struct RecordedRequest: Sendable {
        public var method: String
        public var path: String
        public var query: [(name: String, value: String)]
        public var headers: [(name: String, value: String)]
        public var body: JSONValue?
        public var status: Int
    }

    /// One webhook delivery attempt.
    public struct Delivery: Sendable {
        public var subscription: String
        public var webhookId: String
        public var eventType: String
        public var incidentId: String?
        public var status: Int?
        public var attempt: Int
    }

    struct State: Sendable {
        var account = PagerDutyAccount.seeded()
        var requests: [RecordedRequest] = []
        var violations: [OpenAPIViolation] = []
        var deliveries: [Delivery] = []
        var failNext = 0
        var failStatus = 500
        var delay: Duration = .zero
        /// Held after a write is made (and its webhook sent) and before the answer: a slow way back.
        var replyDelay: Duration = .zero
        var window = (start: Date(), count: 0)
        var rateLimitPerMinute: Int
        var queues: [String: AsyncStream<JSONValue>.Continuation] = [:]
        /// Webhooks queued and not yet answered, retried to the end, or dropped.
        var deliveriesInFlight = 0
    }

    let options: Options
    let state: Mutex<State>
    let http: HTTPClient
    let logger: Logger
    private let running = Mutex<LoopbackServer?>(nil)

    public init(options: Options = Options(), httpClient: HTTPClient = .shared) {
        self.options = options
        self.state = Mutex(State(rateLimitPerMinute: options.rateLimitPerMinute))
        self.http = httpClient
        var logger = Logger(label: "pagerduty-simulator")
        logger.logLevel = .critical
        self.logger = logger
    }

    // MARK: Lifecycle

    /// Starts serving on `host:port` (0: a free port); returns the port.
    @discardableResult
    public func start(host: String = "127.0.0.1", port: Int = 0) async throws -> Int {
        let router = Router()
        router.add(middleware: SimulatorResponder(simulator: self))
        let server = try await LoopbackServer.start(
            router: router, host: host, port: port, serverName: "PagerDuty simulator", logger: logger)
        running.withLock { $0 = server }
        return server.port
    }

    public var port: Int { running.withLock { $0?.port ?? 0 } }
    public var baseURL: String { "http://127.0.0.1:\(port)" }

    public func stop() async {
        let server = running.withLock { $0 }
        state.withLock { s in
            for q in s.queues.values { q.finish() }
            s.queues = [:]
        }
        await server?.stop()
    }

    // MARK: What tests look at

    public var requests: [RecordedRequest] { state.withLock { $0.requests } }
    public var violations: [OpenAPIViolation] { state.withLock { $0.violations } }
    public var deliveries: [Delivery] { state.withLock { $0.deliveries } }
    /// Webhooks on their way: queued, being sent or waiting to be retried. Zero means every event emitted so far has
    /// been delivered or given up.
    public var deliveriesInFlight: Int { state.withLock { $0.deliveriesInFlight } }

    public func incident(_ id: String) -> JSONValue? { state.withLock { $0.account.incidents[id].map(JSONValue.object) } }
    public var incidents: [JSONValue] { state.withLock { s in s.account.incidentOrder.compactMap { s.account.incidents[$0].map(JSONValue.object) } } }
    public func notes(_ incidentId: String) -> [JSONValue] { state.withLock { $0.account.notes[incidentId] ?? [] } }
    public func subscription(_ id: String) -> (active: Bool, temporarilyDisabled: Bool, secret: String)? {
        state.withLock { s in s.account.subscriptions[id].map { ($0.active, $0.temporarilyDisabled, $0.secret) } }
    }

    /// The next `count` API requests are answered with `status` (500: a PagerDuty outage).
    public func failNext(_ count: Int, status: Int = 500) { state.withLock { ($0.failNext, $0.failStatus) = (count, status) } }
    public func setDelay(_ delay: Duration) { state.withLock { $0.delay = delay } }
    /// Answers `delay` late, after the change is made and its webhook is on its way.
    public func setReplyDelay(_ delay: Duration) { state.withLock { $0.replyDelay = delay } }
    public func setRateLimit(perMinute: Int) { state.withLock { ($0.rateLimitPerMinute, $0.window) = (perMinute, (Date(), 0)) } }
}

/// Answers every request: control endpoints under `/_simulator`, the REST API otherwise.
struct SimulatorResponder<Context: RequestContext>: RouterMiddleware {
    let simulator: PagerDutySimulator

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let path = request.uri.path
        let query = request.uri.queryParameters.map { (name: String($0.key), value: String($0.value)) }
        let headers = request.headers.map { (name: $0.name.canonicalName, value: $0.value) }
        let bytes = try await request.body.collect(upTo: 4 << 20)
        let body: JSONValue? = bytes.readableBytes == 0 ? nil : (try? JSONParser.parseValue(bytes: Array(buffer: bytes))) ?? .string(String(buffer: bytes))
        let reply: SimulatorReply
        if path.hasPrefix("/_simulator") {
            reply = await simulator.control(method: request.method.rawValue, path: path, body: body)
        } else {
            reply = await simulator.api(method: request.method.rawValue, path: path, query: query, headers: headers, body: body)
        }
        var fields = HTTPFields()
        fields[.contentType] = "application/json"
        for (name, value) in reply.headers { if let n = HTTPField.Name(name) { fields[n] = value } }
        let text = reply.body.map { $0.serialized() } ?? ""
        return Response(status: .init(code: reply.status), headers: fields, body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}

struct SimulatorReply: Sendable {
    var status: Int
    var body: JSONValue?
    var headers: [(String, String)] = []

    static func error(_ status: Int, _ message: String, code: Int, errors: [String] = []) -> SimulatorReply {
        SimulatorReply(status: status, body: .object(["error": .object(["message": .string(message), "code": .number(Double(code)), "errors": .array(errors.map(JSONValue.string))])]))
    }
}
