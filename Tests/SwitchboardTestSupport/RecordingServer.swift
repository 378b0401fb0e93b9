import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import Synchronization
import SwitchboardCore
import SwitchboardSimulators

/// An HTTP endpoint on loopback that records the actions a `switchboard serve` process sends to its sink,
/// applying each idempotency key once, as PagerDuty's `incident_key` and real idempotency keys do.
public final class RecordingServer: Sendable {
    public struct State: Sendable {
        /// One body per idempotency key, in the order first seen.
        public var effects: [(key: String, body: JSONValue)] = []
        /// Every POST, repeats included.
        public var deliveries = 0
        /// Answer this many next requests with 503 first.
        public var failNext = 0
        /// Requests that have arrived, answered or not.
        public var arrived = 0
        /// How long each request waits before it is answered.
        var answerAfter: Duration = .zero
        var answers: [String: JSONValue] = [:]
    }

    private let state = Mutex(State())
    private let server: Mutex<LoopbackServer?> = Mutex(nil)
    public let port: Int

    public var url: String { "http://127.0.0.1:\(port)/actions" }
    public var snapshot: State { state.withLock { $0 } }

    public func failNext(_ n: Int) { state.withLock { $0.failNext = n } }

    /// Makes every request wait `delay` before it is recorded and answered, as a slow service does.
    public func answerAfter(_ delay: Duration) { state.withLock { $0.answerAfter = delay } }

    private init(port: Int) {
        self.port = port
    }

    public static func start() async throws -> RecordingServer {
        let box = Mutex<RecordingServer?>(nil)
        let router = Router()
        router.post("actions") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 1 << 20)
            let key = request.headers.first { $0.name.canonicalName == "idempotency-key" }?.value ?? UUID().uuidString
            let json = (try? JSONParser.parseValue(bytes: Array(buffer: body))) ?? .null
            guard let server = box.withLock({ $0 }) else { return Response(status: .serviceUnavailable) }
            let delay = server.state.withLock { s in
                s.arrived += 1
                return s.answerAfter
            }
            if delay > .zero { try await Task.sleep(for: delay) }
            return server.record(key: key, body: json)
        }
        var logger = Logger(label: "recording-server")
        logger.logLevel = .critical
        let loopback = try await LoopbackServer.start(router: router, logger: logger)
        let server = RecordingServer(port: loopback.port)
        server.server.withLock { $0 = loopback }
        box.withLock { $0 = server }
        return server
    }

    func record(key: String, body: JSONValue) -> Response {
        let answer: JSONValue? = state.withLock { s in
            s.deliveries += 1
            if s.failNext > 0 {
                s.failNext -= 1
                return nil
            }
            if let known = s.answers[key] { return known }
            var reply = JSONObject()
            let action = body["action"]?.stringValue
            if action == "createIncident" { reply["incident"] = .string("Q\(s.effects.count + 1)") }
            if action == "createRecord" { reply["record"] = .string(SalesforceId.normalized("500" + String(format: "%012d", s.effects.count + 1))) }
            s.answers[key] = .object(reply)
            s.effects.append((key, body))
            return .object(reply)
        }
        guard let answer else { return Response(status: .serviceUnavailable, headers: [.retryAfter: "0"]) }
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: answer.serialized())))
    }

    public func stop() async {
        await server.withLock { $0 }?.stop()
    }

}
