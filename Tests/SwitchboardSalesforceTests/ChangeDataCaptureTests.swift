import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization
import SwitchboardCore
import SwitchboardSalesforce
import SwitchboardSimulators
import Testing

// MARK: - A small CometD server

/// Speaks just enough Bayeux for the consumer: handshake (setting a browser cookie it then requires), subscribe
/// with replay ids, long-poll connect holding briefly, and scripted faults.
fileprivate final class FakeCometD: Sendable {
    struct Published: Sendable {
        var channel: String
        var replayId: Int64
        var message: JSONValue
    }

    struct Client: Sendable {
        var cookie: String
        /// Channel → the replay id of the last event delivered to this client.
        var cursors: [String: Int64] = [:]
    }

    struct State: Sendable {
        var events: [Published] = []
        var nextReplayId: Int64 = 1000
        /// Replay ids below this have left retention.
        var oldestRetained: Int64 = 1000
        var clients: [String: Client] = [:]
        var clientCounter = 0
        var hold: Duration = .milliseconds(200)
        var released = false
        /// Tokens answered with HTTP 401.
        var revokedTokens: Set<String> = []
        /// Tokens answered with Bayeux `401::Authentication invalid` (and `reconnect: none`).
        var bayeuxExpiredTokens: Set<String> = []
        var refuseNextConnect = false
        // What tests look at.
        var handshakes = 0
        var connectsStarted = 0
        var subscribes: [(channel: String, replay: Int64, successful: Bool)] = []
        var unauthorized = 0
        var cookieMissing = 0
        var tokens: [String] = []
    }

    let state = Mutex(State())

    var handshakes: Int { state.withLock { $0.handshakes } }
    var connectsStarted: Int { state.withLock { $0.connectsStarted } }
    var subscribes: [(channel: String, replay: Int64, successful: Bool)] { state.withLock { $0.subscribes } }
    var successfulSubscribes: Int { state.withLock { $0.subscribes.filter { $0.successful }.count } }
    var unauthorized: Int { state.withLock { $0.unauthorized } }
    var cookieMissing: Int { state.withLock { $0.cookieMissing } }
    var tokens: [String] { state.withLock { $0.tokens } }

    func forgetClients() { state.withLock { $0.clients = [:] } }
    func revoke(_ token: String) { state.withLock { _ = $0.revokedTokens.insert(token) } }
    func expireInBayeux(_ token: String) { state.withLock { _ = $0.bayeuxExpiredTokens.insert(token) } }
    func setHold(_ hold: Duration) { state.withLock { $0.hold = hold } }
    func refuseNextConnectForGood() { state.withLock { $0.refuseNextConnect = true } }
    /// Ends every long poll now and from now on, so the server can stop at once.
    func release() { state.withLock { $0.released = true } }

    /// Publishes a change event and returns its replay id.
    @discardableResult
    func publish(
        _ channel: String = "/data/CaseChangeEvent", entity: String = "Case", recordId: String, changeType: String = "UPDATE",
        fields: JSONObject = [:], nulledFields: [String] = [], origin: String = "com/salesforce/api/rest/62.0;client=someone-else"
    ) -> Int64 {
        state.withLock { s in
            Self.append(to: &s, channel, entity: entity, recordId: recordId, changeType: changeType, fields: fields, nulledFields: nulledFields, origin: origin)
        }
    }

    /// Publishes Case updates at once, so one connect answer carries them all.
    func publishTogether(recordIds: [String]) -> [Int64] {
        state.withLock { s in recordIds.map { Self.append(to: &s, "/data/CaseChangeEvent", entity: "Case", recordId: $0) } }
    }

    private static func append(
        to s: inout State, _ channel: String, entity: String, recordId: String, changeType: String = "UPDATE", fields: JSONObject = [:],
        nulledFields: [String] = [], origin: String = "com/salesforce/api/rest/62.0;client=someone-else"
    ) -> Int64 {
        let id = s.nextReplayId
        s.nextReplayId += 1
        var payload: JSONObject = [:]
        payload["ChangeEventHeader"] = .object([
            "entityName": .string(entity), "recordIds": .array([.string(recordId)]), "changeType": .string(changeType),
            "changedFields": .array(fields.keys.map(JSONValue.string)), "nulledFields": .array(nulledFields.map(JSONValue.string)),
            "diffFields": .array([]), "changeOrigin": .string(origin), "transactionKey": .string("tx-\(id)"), "sequenceNumber": .number(1),
            "commitTimestamp": .number(Double(1_700_000_000_000 + id)), "commitNumber": .number(Double(id)),
            "commitUser": "005000000000001",
        ])
        for (key, value) in fields.entries { payload[key] = value }
        let message: JSONValue = .object([
            "data": .object(["schema": "schema-1", "payload": .object(payload), "event": .object(["replayId": .number(Double(id))])]),
            "channel": .string(channel),
        ])
        s.events.append(Published(channel: channel, replayId: id, message: message))
        return id
    }

    func start() async throws -> LoopbackServer {
        let router = Router(context: BasicRequestContext.self)
        router.post("/cometd/62.0") { request, _ in try await self.respond(request) }
        return try await LoopbackServer.start(router: router, logger: Logger(label: "test.cometd", factory: { _ in SwiftLogNoOpLogHandler() }))
    }

    private func respond(_ request: Request) async throws -> Response {
        let bytes = try await request.body.collect(upTo: 1 << 20)
        let authorization = request.headers[.authorization] ?? ""
        let token = authorization.hasPrefix("Bearer ") ? String(authorization.dropFirst("Bearer ".count)) : ""
        let cookieHeader = request.headers[.cookie] ?? ""
        let revoked = state.withLock { s in
            s.tokens.append(token)
            if s.revokedTokens.contains(token) { s.unauthorized += 1 }
            return s.revokedTokens.contains(token)
        }
        if revoked {
            return reply(status: .unauthorized, [.object(["errorCode": "INVALID_SESSION_ID", "message": "Session expired or invalid"])])
        }
        guard case .array(let messages)? = try? JSONParser.parseValue(bytes: Array(buffer: bytes)) else {
            return reply(status: .badRequest, [])
        }
        var out: [JSONValue] = []
        var setCookies: [String] = []
        for message in messages {
            let id = message["id"] ?? .null
            let clientId = message["clientId"]?.stringValue ?? ""
            switch message["channel"]?.stringValue {
            case "/meta/handshake":
                out.append(handshake(id: id, token: token, setCookies: &setCookies))
            case "/meta/subscribe":
                guard let answer = checkCookie(clientId, cookieHeader, "/meta/subscribe", id) else { return reply(status: .badRequest, []) }
                out.append(answer ?? subscribe(message, id: id))
            case "/meta/connect":
                guard let answer = checkCookie(clientId, cookieHeader, "/meta/connect", id) else { return reply(status: .badRequest, []) }
                if let answer { out.append(answer) } else { out += await connect(clientId, id: id, token: token) }
            default:
                out.append(.object(["channel": message["channel"] ?? .null, "successful": .bool(false), "error": "400::unsupported"]))
            }
        }
        return reply(status: .ok, out, setCookies: setCookies)
    }

    private func reply(status: HTTPResponse.Status, _ messages: [JSONValue], setCookies: [String] = []) -> Response {
        var fields = HTTPFields()
        fields[.contentType] = "application/json"
        for cookie in setCookies { fields.append(HTTPField(name: .setCookie, value: cookie)) }
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(string: JSONValue.array(messages).serialized())))
    }

    private func advice() -> JSONValue {
        let ms = state.withLock { $0.hold.components.seconds * 1000 + $0.hold.components.attoseconds / 1_000_000_000_000_000 }
        return .object(["reconnect": "retry", "interval": .number(0), "timeout": .number(Double(ms))])
    }

    private func handshake(id: JSONValue, token: String, setCookies: inout [String]) -> JSONValue {
        let advice = advice()
        return state.withLock { s in
            s.handshakes += 1
            if s.bayeuxExpiredTokens.contains(token) {
                return .object([
                    "channel": "/meta/handshake", "id": id, "successful": .bool(false), "error": "403::Handshake denied",
                    "ext": .object(["sfdc": .object(["failureReason": "401::Authentication invalid"])]), "advice": .object(["reconnect": "none"]),
                ])
            }
            s.clientCounter += 1
            let clientId = "client-\(s.clientCounter)"
            let cookie = "browser-\(s.clientCounter)"
            s.clients[clientId] = Client(cookie: cookie)
            setCookies = ["BAYEUX_BROWSER=\(cookie); Path=/; HttpOnly", "affinity=node-1; Path=/"]
            return .object([
                "channel": "/meta/handshake", "id": id, "successful": .bool(true), "clientId": .string(clientId), "version": "1.0",
                "supportedConnectionTypes": .array(["long-polling"]), "advice": advice, "ext": .object(["replay": .bool(true)]),
            ])
        }
    }

    /// nil: refuse the whole request (the cookie the handshake set is missing); .some(nil): go on.
    private func checkCookie(_ clientId: String, _ header: String, _ channel: String, _ id: JSONValue) -> JSONValue?? {
        state.withLock { s in
            guard let client = s.clients[clientId] else {
                return .some(.object([
                    "channel": .string(channel), "id": id, "successful": .bool(false), "error": "403::Unknown client",
                    "advice": .object(["reconnect": "handshake", "interval": .number(0)]),
                ]))
            }
            let sent = header.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
            guard sent.contains("BAYEUX_BROWSER=\(client.cookie)"), sent.contains("affinity=node-1") else {
                s.cookieMissing += 1
                return nil
            }
            return .some(nil)
        }
    }

    private func subscribe(_ message: JSONValue, id: JSONValue) -> JSONValue {
        let channel = message["subscription"]?.stringValue ?? ""
        let clientId = message["clientId"]?.stringValue ?? ""
        let replay: Int64 = if case .number(let n)? = message["ext"]?["replay"]?[channel] { Int64(n) } else { -99 }
        return state.withLock { s in
            if replay >= 0, replay < s.oldestRetained {
                s.subscribes.append((channel, replay, false))
                return .object([
                    "channel": "/meta/subscribe", "id": id, "subscription": .string(channel), "successful": .bool(false),
                    "error": .string("400::The replayId {\(replay)} you provided was invalid; give a retained id, -2 (all retained) or -1 (new only)."),
                ])
            }
            guard replay >= -2 else {
                s.subscribes.append((channel, replay, false))
                return .object(["channel": "/meta/subscribe", "id": id, "successful": .bool(false), "error": "400::no replay id"])
            }
            let latest = s.events.last?.replayId ?? (s.oldestRetained - 1)
            s.clients[clientId]?.cursors[channel] = replay == -1 ? latest : replay == -2 ? s.oldestRetained - 1 : replay
            s.subscribes.append((channel, replay, true))
            return .object(["channel": "/meta/subscribe", "id": id, "subscription": .string(channel), "successful": .bool(true), "clientId": .string(clientId)])
        }
    }

    private func connect(_ clientId: String, id: JSONValue, token: String) async -> [JSONValue] {
        let advice = advice()
        let (hold, early) = state.withLock { s -> (Duration, JSONValue?) in
            s.connectsStarted += 1
            if s.bayeuxExpiredTokens.contains(token) {
                return (.zero, .object([
                    "channel": "/meta/connect", "id": id, "successful": .bool(false), "error": "401::Authentication invalid",
                    "advice": .object(["reconnect": "none"]),
                ]))
            }
            if s.refuseNextConnect {
                s.refuseNextConnect = false
                return (.zero, .object([
                    "channel": "/meta/connect", "id": id, "successful": .bool(false), "error": "403::Organization stream limit reached",
                    "advice": .object(["reconnect": "none"]),
                ]))
            }
            return (s.hold, nil)
        }
        if let early { return [early] }
        let deadline = ContinuousClock.now + hold
        while true {
            let result: [JSONValue]? = state.withLock { s in
                guard var client = s.clients[clientId] else {
                    return [.object([
                        "channel": "/meta/connect", "id": id, "successful": .bool(false), "error": "403::Unknown client",
                        "advice": .object(["reconnect": "handshake", "interval": .number(0)]),
                    ])]
                }
                let pending = s.events.filter { event in client.cursors[event.channel].map { event.replayId > $0 } ?? false }
                guard !pending.isEmpty || s.released || ContinuousClock.now >= deadline else { return nil }
                for event in pending { client.cursors[event.channel] = event.replayId }
                s.clients[clientId] = client
                return pending.map(\.message) + [.object(["channel": "/meta/connect", "id": id, "successful": .bool(true), "clientId": .string(clientId), "advice": advice])]
            }
            if let result { return result }
            try? await Task.sleep(for: .milliseconds(10))
        }
    }
}

// MARK: - Test doubles

fileprivate struct HandlerFailure: Error {}

fileprivate actor TestSessions: SalesforceSessionProvider {
    let instanceURL: String
    private(set) var generation = 1
    private(set) var invalidations = 0

    init(instanceURL: String) { self.instanceURL = instanceURL }

    func session() throws(SalesforceError) -> SalesforceSession {
        SalesforceSession(accessToken: "token-\(generation)", instanceURL: instanceURL, orgId: "00D000000000001AAA")
    }

    func invalidate(_ session: SalesforceSession) {
        invalidations += 1
        if session.accessToken == "token-\(generation)" { generation += 1 }
    }
}

fileprivate actor RecordingStore: ReplayIdStore {
    private var ids: [String: Int64]
    private(set) var saves: [Int64] = []

    init(_ ids: [String: Int64] = [:]) { self.ids = ids }

    func replayId(channel: String) -> Int64? { ids[channel] }
    func save(replayId: Int64, channel: String) {
        ids[channel] = replayId
        saves.append(replayId)
    }
    func current(_ channel: String) -> Int64? { ids[channel] }
}

/// Records what `handle` saw; can fail the first attempt of chosen records.
fileprivate actor Recorder {
    private(set) var events: [ChangeEvent] = []
    private(set) var attempts: [Int64: Int] = [:]
    /// What the store held for the event's channel while `handle` ran.
    private(set) var storedDuringHandle: [Int64: Int64] = [:]
    private var failing: Set<String> = []
    private(set) var tooOld: [(channel: String, subscribesSoFar: Int)] = []

    func failFirstAttempt(ofRecord id: String) { failing.insert(SalesforceId.normalized(id)) }

    func handle(_ event: ChangeEvent, store: RecordingStore) async throws {
        attempts[event.replayId, default: 0] += 1
        storedDuringHandle[event.replayId] = await store.current(event.channel) ?? -100
        if let id = event.recordIds.first, failing.remove(id) != nil { throw HandlerFailure() }
        events.append(event)
    }

    func noteTooOld(_ channel: String, subscribesSoFar: Int) { tooOld.append((channel, subscribesSoFar)) }
    var replayIds: [Int64] { events.map(\.replayId) }
}

// MARK: - Harness

fileprivate struct CDCHarness {
    let fake = FakeCometD()
    let server: LoopbackServer
    let http: HTTPClient
    let sessions: TestSessions
    static let logger: Logger = {
        var logger = Logger(label: "test.cdc")
        logger.logLevel = ProcessInfo.processInfo.environment["CDC_TEST_LOG"] == nil ? .critical : .debug
        return logger
    }()

    init() async throws {
        server = try await fake.start()
        http = HTTPClient(eventLoopGroupProvider: .singleton)
        sessions = TestSessions(instanceURL: "http://127.0.0.1:\(server.port)/")
    }

    func consumer(
        store: RecordingStore, recorder: Recorder, channels: [String] = ["/data/CaseChangeEvent"],
        initialReplay: ChangeDataCaptureConsumer.InitialReplay = .newEvents
    ) -> ChangeDataCaptureConsumer {
        let fake = fake
        // Handshakes and subscribes get room for a loaded machine: one that timed out would start an extra handshake,
        // and the tests count them.
        return ChangeDataCaptureConsumer(
            configuration: .init(
                apiVersion: "62.0", channels: channels, ownClient: "switchboard", connectTimeout: .seconds(5), requestTimeout: .seconds(15),
                reconnectDelay: .milliseconds(20), maxReconnectDelay: .milliseconds(200), initialReplay: initialReplay),
            sessions: sessions, replayIds: store, httpClient: http, logger: Self.logger,
            onReplayTooOld: { channel in await recorder.noteTooOld(channel, subscribesSoFar: fake.subscribes.count) },
            handle: { event in try await recorder.handle(event, store: store) })
    }

    func stop() async {
        fake.release()
        await server.stop()
        try? await http.shutdown()
    }
}

fileprivate struct TimedOut: Error {}

/// Polls `condition` until it holds, failing the test after `timeout`.
fileprivate func eventually(_ what: String, timeout: Duration = .seconds(60), _ condition: () async -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if await condition() { return }
        try await Task.sleep(for: .milliseconds(10))
    }
    Issue.record("timed out waiting until \(what)")
    throw TimedOut()
}

// MARK: - Tests

@Suite("Change Data Capture consumer")
struct ChangeDataCaptureTests {
    @Test("A CometD change event is read into a ChangeEvent; own writes and gaps are recognised")
    func parsing() throws {
        let text = #"""
            {"data":{"schema":"s1","payload":{"ChangeEventHeader":{"entityName":"Case","recordIds":["500000000000001"],
             "changeType":"UPDATE","changedFields":["Status","LastModifiedDate"],"changeOrigin":"com/salesforce/api/rest/62.0;client=switchboard",
             "transactionKey":"0001","sequenceNumber":2,"commitTimestamp":1569407548000,"commitNumber":105,"commitUser":"005000000000001",
             "nulledFields":["Priority"],"diffFields":[]},"Status":"Escalated","LastModifiedDate":"2019-09-25T10:32:28Z"},
             "event":{"replayId":103773372}},"channel":"/data/CaseChangeEvent"}
            """#
        let event = try ChangeEvent(message: JSONParser.parseValue(text))
        #expect(event.channel == "/data/CaseChangeEvent")
        #expect(event.entityName == "Case")
        #expect(event.recordIds == ["500000000000001AAA"])
        #expect(event.changeType == "UPDATE")
        #expect(event.changedFields == ["Status", "LastModifiedDate"])
        #expect(event.nulledFields == ["Priority"])
        #expect(event.fields.keys == ["Status", "LastModifiedDate"], "the header is not among the fields")
        #expect(event.fields["Status"] == "Escalated")
        #expect(event.commitUser == "005000000000001AAA")
        #expect(event.commitTimestamp == 1_569_407_548_000)
        #expect(event.transactionKey == "0001")
        #expect(event.sequenceNumber == 2)
        #expect(event.replayId == 103_773_372)
        #expect(event.dedupeKey == "cdc:/data/CaseChangeEvent:103773372")
        #expect(event.isOwnWrite(client: "switchboard"))
        #expect(!event.isOwnWrite(client: "switch"))
        #expect(!event.isGap)

        var other = event
        other.changeOrigin = "com/salesforce/api/rest/62.0;client=switchboard2"
        #expect(!other.isOwnWrite(client: "switchboard"), "the whole client name must match")
        other.changeOrigin = ""
        #expect(!other.isOwnWrite(client: "switchboard"))
        other.changeType = "GAP_OVERFLOW"
        #expect(other.isGap)

        #expect(throws: SalesforceError.self) { try ChangeEvent(message: JSONParser.parseValue(#"{"channel":"/data/CaseChangeEvent","data":{"payload":{}}}"#)) }
    }

    @Test("Events arrive in order with their fields; a replay id is saved only after handle returns; cookies go back")
    func deliversInOrder() async throws {
        let h = try await CDCHarness()
        let store = RecordingStore()
        let recorder = Recorder()
        // Two events before the consumer starts: -2 (all retained) must bring them.
        let e1 = h.fake.publish(recordId: "500000000000001", fields: ["Status": "New", "Subject": "Printer on fire"])
        let e2 = h.fake.publish("/data/AccountChangeEvent", entity: "Account", recordId: "001000000000001", changeType: "CREATE", fields: ["Name": "Acme"])
        let consumer = h.consumer(store: store, recorder: recorder, channels: ["/data/CaseChangeEvent", "/data/AccountChangeEvent"], initialReplay: .allRetained)
        let task = Task { try await consumer.run() }
        try await eventually("the first two are handled") { await recorder.events.count == 2 }
        let e3 = h.fake.publish(
            recordId: "500000000000001", fields: ["Status": "Escalated"], nulledFields: ["Priority"],
            origin: "com/salesforce/api/rest/62.0;client=switchboard")
        let e4 = h.fake.publish(recordId: "500000000000002", changeType: "GAP_UPDATE")
        try await eventually("all four are handled") { await recorder.events.count == 4 }
        task.cancel()
        try await task.value

        let events = await recorder.events
        #expect(events.map(\.replayId) == [e1, e2, e3, e4])
        #expect(events.map(\.channel) == ["/data/CaseChangeEvent", "/data/AccountChangeEvent", "/data/CaseChangeEvent", "/data/CaseChangeEvent"])
        #expect(events[0].recordIds == ["500000000000001AAA"])
        #expect(events[0].fields == ["Status": "New", "Subject": "Printer on fire"])
        #expect(events[0].changedFields == ["Status", "Subject"])
        #expect(!events[0].isOwnWrite(client: "switchboard"))
        #expect(events[1].entityName == "Account" && events[1].changeType == "CREATE")
        #expect(events[2].nulledFields == ["Priority"] && events[2].isOwnWrite(client: "switchboard"))
        #expect(events[3].isGap)
        #expect(events[2].commitTimestamp == 1_700_000_000_000 + e3)
        // At-least-once bookkeeping: while handle ran, the store still held the previous event of that channel.
        let during = await recorder.storedDuringHandle
        #expect(during[e1] == -100 && during[e2] == -100 && during[e3] == e1 && during[e4] == e3)
        #expect(await store.saves == [e1, e2, e3, e4])
        #expect(await store.current("/data/CaseChangeEvent") == e4)
        #expect(await store.current("/data/AccountChangeEvent") == e2)
        #expect(h.fake.subscribes.map { $0.replay } == [-2, -2])
        #expect(h.fake.cookieMissing == 0, "the handshake's cookies are sent back")
        #expect(Set(h.fake.tokens) == ["token-1"])
        #expect(h.fake.handshakes == 1)
        await h.stop()
    }

    @Test("A new consumer with the same store resumes after the stored replay id, without duplicates")
    func resumesAfterRestart() async throws {
        let h = try await CDCHarness()
        let store = RecordingStore()
        let first = Recorder()
        let a = Task { [consumer = h.consumer(store: store, recorder: first)] in try await consumer.run() }
        try await eventually("subscribed") { h.fake.successfulSubscribes == 1 }
        let e1 = h.fake.publish(recordId: "500000000000001")
        let e2 = h.fake.publish(recordId: "500000000000002")
        try await eventually("two handled") { await first.events.count == 2 }
        a.cancel()
        try await a.value
        // Published while nobody listens.
        let e3 = h.fake.publish(recordId: "500000000000003")
        let e4 = h.fake.publish(recordId: "500000000000004")

        let second = Recorder()
        let b = Task { [consumer = h.consumer(store: store, recorder: second)] in try await consumer.run() }
        try await eventually("the missed two handled") { await second.events.count == 2 }
        let e5 = h.fake.publish(recordId: "500000000000005")
        try await eventually("the new one handled") { await second.events.count == 3 }
        b.cancel()
        try await b.value

        #expect(await first.replayIds == [e1, e2])
        #expect(await second.replayIds == [e3, e4, e5])
        #expect(h.fake.subscribes.map { $0.replay } == [-1, e2])
        #expect(await store.current("/data/CaseChangeEvent") == e5)
        await h.stop()
    }

    @Test("403::Unknown client leads to a new handshake and a resubscription from the last replay id")
    func rehandshakesOnUnknownClient() async throws {
        let h = try await CDCHarness()
        let store = RecordingStore()
        let recorder = Recorder()
        let task = Task { [consumer = h.consumer(store: store, recorder: recorder)] in try await consumer.run() }
        try await eventually("subscribed") { h.fake.successfulSubscribes == 1 }
        let e1 = h.fake.publish(recordId: "500000000000001")
        try await eventually("first handled") { await recorder.events.count == 1 }
        h.fake.forgetClients()
        let e2 = h.fake.publish(recordId: "500000000000002")
        try await eventually("second handled") { await recorder.events.count == 2 }
        task.cancel()
        try await task.value

        #expect(await recorder.replayIds == [e1, e2])
        #expect(h.fake.handshakes == 2)
        #expect(h.fake.subscribes.map { $0.replay } == [-1, e1])
        #expect(h.fake.cookieMissing == 0, "the second handshake's cookie replaced the first")
        #expect(await h.sessions.invalidations == 0)
        await h.stop()
    }

    @Test("HTTP 401 and Bayeux 401::Authentication invalid renew the session and carry on")
    func renewsSessionOnUnauthorized() async throws {
        let h = try await CDCHarness()
        let store = RecordingStore()
        let recorder = Recorder()
        let task = Task { [consumer = h.consumer(store: store, recorder: recorder)] in try await consumer.run() }
        try await eventually("subscribed") { h.fake.successfulSubscribes == 1 }
        let e1 = h.fake.publish(recordId: "500000000000001")
        try await eventually("first handled") { await recorder.events.count == 1 }

        h.fake.revoke("token-1")
        try await eventually("renewed to token-2") { h.fake.successfulSubscribes == 2 }
        let e2 = h.fake.publish(recordId: "500000000000002")
        try await eventually("second handled") { await recorder.events.count == 2 }

        // Salesforce's own way: the connect reply says 401:: with reconnect none; a new token still fixes it.
        h.fake.expireInBayeux("token-2")
        try await eventually("renewed to token-3") { h.fake.successfulSubscribes == 3 }
        let e3 = h.fake.publish(recordId: "500000000000003")
        try await eventually("third handled") { await recorder.events.count == 3 }
        task.cancel()
        try await task.value

        #expect(await recorder.replayIds == [e1, e2, e3])
        #expect(await h.sessions.invalidations == 2)
        #expect(h.fake.unauthorized == 1)
        #expect(h.fake.tokens.last == "token-3")
        #expect(h.fake.subscribes.map { $0.replay } == [-1, e1, e2])
        #expect(h.fake.cookieMissing == 0)
        await h.stop()
    }

    @Test("A replay id past retention calls onReplayTooOld, then the consumer takes new events")
    func replayTooOld() async throws {
        let h = try await CDCHarness()
        let store = RecordingStore(["/data/CaseChangeEvent": 5])
        let recorder = Recorder()
        let task = Task { [consumer = h.consumer(store: store, recorder: recorder)] in try await consumer.run() }
        try await eventually("subscribed with -1") { h.fake.successfulSubscribes == 1 }
        let e1 = h.fake.publish(recordId: "500000000000001")
        try await eventually("new event handled") { await recorder.events.count == 1 }
        task.cancel()
        try await task.value

        let tooOld = await recorder.tooOld
        #expect(tooOld.map { $0.channel } == ["/data/CaseChangeEvent"])
        #expect(tooOld.first?.subscribesSoFar == 1, "the callback runs before the -1 subscription")
        #expect(h.fake.subscribes.map { $0.replay } == [5, -1])
        #expect(h.fake.subscribes.map { $0.successful } == [false, true])
        #expect(await recorder.replayIds == [e1])
        #expect(await store.current("/data/CaseChangeEvent") == e1)
        await h.stop()
    }

    @Test("When handle throws, the event is not skipped: it and those after it come again, in order")
    func handlerFailureRedelivers() async throws {
        let h = try await CDCHarness()
        let store = RecordingStore()
        let recorder = Recorder()
        await recorder.failFirstAttempt(ofRecord: "500000000000002")
        let task = Task { [consumer = h.consumer(store: store, recorder: recorder)] in try await consumer.run() }
        try await eventually("subscribed") { h.fake.successfulSubscribes == 1 }
        // Published together, so they come in one connect answer.
        let ids = h.fake.publishTogether(recordIds: ["500000000000001", "500000000000002", "500000000000003"])
        try await eventually("all three handled") { await recorder.events.count == 3 }
        task.cancel()
        try await task.value

        #expect(await recorder.replayIds == ids)
        let attempts = await recorder.attempts
        #expect(attempts[ids[0]] == 1 && attempts[ids[1]] == 2 && attempts[ids[2]] == 1, "the one after the failure waited its turn")
        #expect(await store.saves == ids)
        #expect(h.fake.handshakes == 2)
        #expect(h.fake.subscribes.map { $0.replay } == [-1, ids[0]])
        await h.stop()
    }

    @Test("advice reconnect none (not an auth failure) stops the consumer with an error")
    func reconnectNoneStops() async throws {
        let h = try await CDCHarness()
        let consumer = h.consumer(store: RecordingStore(), recorder: Recorder())
        h.fake.refuseNextConnectForGood()
        await #expect(throws: ChangeDataCaptureError.self) { try await consumer.run() }
        await h.stop()
    }

    @Test("Cancellation ends run promptly, in the middle of a long poll")
    func cancellationIsPrompt() async throws {
        let h = try await CDCHarness()
        h.fake.setHold(.seconds(30))
        let task = Task { [consumer = h.consumer(store: RecordingStore(), recorder: Recorder())] in try await consumer.run() }
        try await eventually("in a long poll") { h.fake.connectsStarted == 1 }
        try await Task.sleep(for: .milliseconds(50))
        let start = ContinuousClock.now
        task.cancel()
        try await task.value
        // Well inside the 30-second poll, with room for a loaded machine.
        #expect(ContinuousClock.now - start < .seconds(10))
        await h.stop()
    }

    @Test("A graceful shutdown of its service group ends run")
    func gracefulShutdown() async throws {
        let h = try await CDCHarness()
        h.fake.setHold(.seconds(30))
        let consumer = h.consumer(store: RecordingStore(), recorder: Recorder())
        let group = ServiceGroup(configuration: .init(services: [consumer], logger: CDCHarness.logger))
        let task = Task { try await group.run() }
        try await eventually("in a long poll") { h.fake.connectsStarted == 1 }
        let start = ContinuousClock.now
        await group.triggerGracefulShutdown()
        try await task.value
        // Well inside the 30-second poll, with room for a loaded machine.
        #expect(ContinuousClock.now - start < .seconds(10))
        await h.stop()
    }
}
