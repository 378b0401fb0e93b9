import AsyncHTTPClient
import Crypto
import Foundation
import Hummingbird
import Logging
import NIOCore
import Synchronization
import SwitchboardCore
import SwitchboardSimulators
import Testing

/// Switchboard's `/webhooks/salesforce` stand-in: records each post and answers with scripted statuses.
final class TriggerReceiver: Sendable {
    struct Post: Sendable {
        var headers: [String: String]
        var body: String
    }

    let posts = Mutex<[Post]>([])
    /// Statuses to answer, first to last; 200 once empty.
    let script = Mutex<[Int]>([])
    private let server = Mutex<LoopbackServer?>(nil)

    static func start() async throws -> TriggerReceiver {
        let receiver = TriggerReceiver()
        let router = Router()
        router.post("/webhooks/salesforce") { request, _ -> Response in
            let bytes = try await request.body.collect(upTo: 16 << 20)
            var headers: [String: String] = [:]
            for field in request.headers { headers[field.name.canonicalName.lowercased()] = field.value }
            receiver.posts.withLock { $0.append(Post(headers: headers, body: String(buffer: bytes))) }
            let status = receiver.script.withLock { $0.isEmpty ? 200 : $0.removeFirst() }
            return Response(status: .init(code: status))
        }
        var logger = Logger(label: "trigger-receiver")
        logger.logLevel = .critical
        let server = try await LoopbackServer.start(router: router, logger: logger)
        receiver.server.withLock { $0 = server }
        return receiver
    }

    var url: String { "http://127.0.0.1:\(server.withLock { $0?.port ?? 0 })/webhooks/salesforce" }

    func stop() async { await server.withLock { $0 }?.stop() }

    /// Waits until `count` posts arrived (or 5 s passed).
    func waitFor(_ count: Int) async -> [Post] {
        for _ in 0..<250 {
            let current = posts.withLock { $0 }
            if current.count >= count { return current }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return posts.withLock { $0 }
    }
}

func hmacHex(_ secret: String, _ message: String) -> String {
    HMAC<SHA256>.authenticationCode(for: Array(message.utf8), using: SymmetricKey(data: Array(secret.utf8))).map { String(format: "%02x", $0) }
        .joined()
}

@Suite("Salesforce simulator: trigger posts")
struct SalesforceSimulatorTriggerTests {
    @Test("the signature matches the package's test vector")
    func vector() {
        let body = #"{"object":"Case","isInsert":true,"old":null,"new":{},"orgId":"00D000000000001AAA"}"#
        let expected = "1383467b61bf2fe5edcc6734362a57f945ed12763215f2c8cb72ee4bbacbca2f"
        #expect(hmacHex("test-trigger-secret", "1700000000." + body) == expected)
        #expect(SalesforceSimulator.triggerSignature(secret: "test-trigger-secret", timestamp: "1700000000", body: body) == expected)
    }

    @Test("one signed post per trigger batch, for API and UI writes, with old and new maps")
    func posts() async throws {
        let receiver = try await TriggerReceiver.start()
        var options = SalesforceSimulator.Options()
        options.capture = .trigger(url: receiver.url)
        do {
            try await withSalesforce(options) { simulator, client in
                let created = try await client.api(
                    "POST", "sobjects/Case/", #"{"Subject":"Checkout down"}"#, headers: [("Sforce-Call-Options", "client=switchboard")])
                let id = try #require(created.json?["id"]?.stringValue)
                let first = try #require(await receiver.waitFor(1).first)
                #expect(first.headers["content-type"] == "application/json")
                #expect(first.headers["x-switchboard-org"] == "00D000000000001EAA")
                let timestamp = try #require(first.headers["x-switchboard-timestamp"])
                #expect(abs((Int(timestamp) ?? 0) - Int(Date().timeIntervalSince1970)) < 60)
                #expect(first.headers["x-switchboard-signature"] == "v1=" + hmacHex("test-trigger-secret", timestamp + "." + first.body))
                let body = try JSONParser.parseValue(first.body)
                #expect(body.objectValue?.keys == ["object", "isInsert", "old", "new", "orgId"])
                #expect(body["object"]?.stringValue == "Case" && body["isInsert"] == .bool(true) && body["old"] == .null)
                let record = try #require(body["new"]?[id])
                #expect(record["attributes"]?["type"]?.stringValue == "Case")
                #expect(record["attributes"]?["url"]?.stringValue == "/services/data/v62.0/sobjects/Case/\(id)")
                #expect(record["Id"]?.stringValue == id && record["Subject"]?.stringValue == "Checkout down")
                #expect(record["Description"] == nil, "null fields are left out, as JSON.serialize does")
                #expect(
                    record["CreatedDate"]?.stringValue?.hasSuffix(".000+0000") == true
                        || record["CreatedDate"]?.stringValue?.hasSuffix("+0000") == true)

                // A person edits the case: an update batch with both maps.
                try simulator.update("Case", id, ["Status": "Working"])
                let second = try #require(await receiver.waitFor(2).last)
                let update = try JSONParser.parseValue(second.body)
                #expect(update["isInsert"] == .bool(false))
                #expect(update["old"]?[id]?["Status"]?.stringValue == "New")
                #expect(update["new"]?[id]?["Status"]?.stringValue == "Working")

                // 200 records in one Collections call: one post holding all of them.
                let many = (0..<200).map { #"{"attributes":{"type":"Case"},"Subject":"bulk \#($0)"}"# }.joined(separator: ",")
                #expect(try await client.api("POST", "composite/sobjects", #"{"records":[\#(many)]}"#).status == 200)
                let third = try #require(await receiver.waitFor(3).last)
                #expect(try JSONParser.parseValue(third.body)["new"]?.objectValue?.count == 200)

                // Objects without a Switchboard trigger post nothing.
                _ = try await client.api("POST", "sobjects/Account/", #"{"Name":"No trigger"}"#)
                try await Task.sleep(for: .milliseconds(100))
                #expect(receiver.posts.withLock { $0.count } == 3)
                #expect(simulator.triggerPosts.count == 3 && simulator.triggerPosts.allSatisfy { $0.status == 200 && $0.attempt == 1 })
                #expect(simulator.triggerPosts[2].recordIds.count == 200)
            }
        } catch {
            await receiver.stop()
            throw error
        }
        await receiver.stop()
    }

    /// Waits until the simulator has recorded `count` posts with their answers (a fixed pause failed on a busy machine).
    static func recorded(_ count: Int, _ simulator: SalesforceSimulator) async throws {
        for _ in 0..<200 where !(simulator.triggerPosts.count >= count && simulator.triggerPosts.allSatisfy { $0.status != nil }) {
            try await Task.sleep(for: .milliseconds(25))
        }
        // Posts that should not come must have had time not to come.
        try await Task.sleep(for: .milliseconds(100))
    }

    @Test("429 and 5xx are retried (3 attempts in all); other 4xx are not")
    func retries() async throws {
        let receiver = try await TriggerReceiver.start()
        var options = SalesforceSimulator.Options()
        options.capture = .trigger(url: receiver.url)
        options.triggerRetryDelay = .milliseconds(20)
        do {
            try await withSalesforce(options) { simulator, _ in
                receiver.script.withLock { $0 = [503, 429, 503] }
                try simulator.create("Case", ["Subject": "retried"])
                _ = await receiver.waitFor(3)
                try await Self.recorded(3, simulator)
                #expect(simulator.triggerPosts.map(\.status) == [503, 429, 503])
                #expect(simulator.triggerPosts.map(\.attempt) == [1, 2, 3])
                receiver.script.withLock { $0 = [500, 200] }
                try simulator.create("Case", ["Subject": "second try works"])
                _ = await receiver.waitFor(5)
                receiver.script.withLock { $0 = [401] }
                try simulator.create("Case", ["Subject": "bad signature"])
                _ = await receiver.waitFor(6)
                try await Self.recorded(6, simulator)
                #expect(simulator.triggerPosts.map(\.status) == [503, 429, 503, 500, 200, 401])
            }
        } catch {
            await receiver.stop()
            throw error
        }
        await receiver.stop()
    }
}

@Suite("Salesforce simulator: Change Data Capture over CometD")
struct SalesforceSimulatorCometDTests {
    struct Bayeux {
        let client: SalesforceClient
        let path = "/cometd/64.0"

        func send(_ messages: String) async throws -> [JSONValue] {
            let answer = try await client.send("POST", path, body: messages)
            return answer.json?.arrayValue ?? []
        }

        func handshake() async throws -> String {
            let reply = try await send(#"[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["long-polling"],"id":"1"}]"#)
            return reply.first?["clientId"]?.stringValue ?? ""
        }

        func subscribe(_ clientId: String, _ channel: String, replay: Int64) async throws -> JSONValue? {
            try await send(
                #"[{"channel":"/meta/subscribe","clientId":"\#(clientId)","subscription":"\#(channel)","id":"2","ext":{"replay":{"\#(channel)":\#(replay)}}}]"#
            ).first
        }

        func connect(_ clientId: String) async throws -> [JSONValue] {
            try await send(#"[{"channel":"/meta/connect","clientId":"\#(clientId)","connectionType":"long-polling","id":"3"}]"#)
        }
    }

    static func header(_ event: JSONValue) -> JSONValue? { event["data"]?["payload"]?["ChangeEventHeader"] }

    @Test("handshake, subscribe, connect: CREATE and UPDATE events with changed fields and origin")
    func events() async throws {
        var options = SalesforceSimulator.Options(capture: .cdc)
        options.cometdConnectTimeout = .milliseconds(300)
        try await withSalesforce(options) { simulator, client in
            let bayeux = Bayeux(client: client)
            let handshake = try await bayeux.send(
                #"[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["long-polling"],"id":"1"}]"#)
            #expect(handshake.first?["successful"] == .bool(true))
            #expect(handshake.first?["supportedConnectionTypes"] == .array(["long-polling"]))
            let clientId = try #require(handshake.first?["clientId"]?.stringValue)
            let subscribed = try await bayeux.subscribe(clientId, "/data/CaseChangeEvent", replay: -1)
            #expect(subscribed?["successful"] == .bool(true) && subscribed?["subscription"]?.stringValue == "/data/CaseChangeEvent")

            // Nothing yet: the connect is held, then answered.
            let start = ContinuousClock.now
            let idle = try await bayeux.connect(clientId)
            #expect(ContinuousClock.now - start >= .milliseconds(250))
            #expect(idle.count == 1 && idle.first?["successful"] == .bool(true) && idle.first?["advice"]?["reconnect"]?.stringValue == "retry")

            let used = simulator.apiCallsUsed
            let callOptions = [("Sforce-Call-Options", "client=switchboard")]
            let id = try #require(
                try await client.api("POST", "sobjects/Case/", #"{"Subject":"Checkout down"}"#, headers: callOptions).json?["id"]?.stringValue)
            #expect(
                try await client.api("PATCH", "sobjects/Case/\(id)", #"{"Status":"Working","Description":"looking"}"#, headers: callOptions).status
                    == 204)
            let delivered = try await bayeux.connect(clientId)
            let events = delivered.filter { $0["channel"]?.stringValue == "/data/CaseChangeEvent" }
            #expect(events.count == 2)
            #expect(delivered.last?["channel"]?.stringValue == "/meta/connect")
            let create = try #require(events.first)
            let createHeader = try #require(Self.header(create))
            #expect(createHeader["changeType"]?.stringValue == "CREATE" && createHeader["recordIds"] == .array([.string(id)]))
            #expect(createHeader["entityName"]?.stringValue == "Case")
            #expect(create["data"]?["payload"]?["Subject"]?.stringValue == "Checkout down")
            #expect(create["data"]?["payload"]?["SystemModstamp"] == nil && create["data"]?["payload"]?["Id"] == nil)
            let update = try #require(events.last)
            let header = try #require(Self.header(update))
            #expect(header["changeType"]?.stringValue == "UPDATE")
            let changed = Set(header["changedFields"]?.arrayValue?.compactMap(\.stringValue) ?? [])
            #expect(changed == ["Status", "Description", "LastModifiedDate"])
            #expect(header["changeOrigin"]?.stringValue == "com/salesforce/api/rest/64.0;client=switchboard")
            #expect(header["commitUser"]?.stringValue == simulator.integrationUserId)
            #expect(update["data"]?["payload"]?["Status"]?.stringValue == "Working")
            #expect(update["data"]?["payload"]?["Subject"] == nil && update["data"]?["payload"]?["SystemModstamp"] == nil)
            #expect(update["data"]?["payload"]?["LastModifiedDate"]?.stringValue?.hasSuffix("Z") == true)
            let firstReplay = try #require(create["data"]?["event"]?["replayId"].flatMap { if case .number(let n) = $0 { Int64(n) } else { nil } })
            let secondReplay = try #require(update["data"]?["event"]?["replayId"].flatMap { if case .number(let n) = $0 { Int64(n) } else { nil } })
            #expect(secondReplay > firstReplay)

            // A person's edit in the UI has an empty origin and the agent as commit user.
            try simulator.update("Case", id, ["Priority": "High"])
            let ui = try await bayeux.connect(clientId).first { $0["channel"]?.stringValue == "/data/CaseChangeEvent" }
            #expect(ui.flatMap(Self.header)?["changeOrigin"]?.stringValue == "")
            #expect(ui.flatMap(Self.header)?["commitUser"]?.stringValue == simulator.agentUserId)
            #expect(simulator.apiCallsUsed == used + 2, "handshake and connect are not REST calls")

            // Reconnect after the stored id: only what came after it.
            _ = try await bayeux.send(#"[{"channel":"/meta/disconnect","clientId":"\#(clientId)","id":"9"}]"#)
            let gone = try await bayeux.connect(clientId)
            #expect(gone.first?["error"]?.stringValue == "403::Unknown client")
            #expect(gone.first?["advice"]?["reconnect"]?.stringValue == "handshake")
            let again = try await bayeux.handshake()
            #expect(try await bayeux.subscribe(again, "/data/CaseChangeEvent", replay: firstReplay)?["successful"] == .bool(true))
            let replayed = try await bayeux.connect(again).filter { $0["channel"]?.stringValue == "/data/CaseChangeEvent" }
            #expect(replayed.count == 2)
            #expect(replayed.first.flatMap(Self.header)?["changeType"]?.stringValue == "UPDATE")
            #expect(replayed.first?["data"]?["event"]?["replayId"] == .number(Double(secondReplay)))

            // -2 replays everything retained, on the all-changes channel too.
            let all = try await bayeux.handshake()
            #expect(try await bayeux.subscribe(all, "/data/ChangeEvents", replay: -2)?["successful"] == .bool(true))
            #expect(try await bayeux.connect(all).filter { $0["channel"]?.stringValue == "/data/ChangeEvents" }.count == 3)
            let comments = try await bayeux.subscribe(all, "/data/CaseCommentChangeEvent", replay: -1)
            #expect(comments?["successful"] == .bool(false))
        }
    }

    @Test("a replay id past the 72-hour retention is refused; sessions are checked")
    func retention() async throws {
        var options = SalesforceSimulator.Options(capture: .cdc)
        options.cometdConnectTimeout = .milliseconds(100)
        try await withSalesforce(options) { simulator, client in
            let bayeux = Bayeux(client: client)
            let clientId = try await bayeux.handshake()
            #expect(try await bayeux.subscribe(clientId, "/data/CaseChangeEvent", replay: -1)?["successful"] == .bool(true))
            try simulator.create("Case", ["Subject": "old news"])
            let old = try await bayeux.connect(clientId).first { $0["channel"]?.stringValue == "/data/CaseChangeEvent" }
            let replay = try #require(old?["data"]?["event"]?["replayId"].flatMap { if case .number(let n) = $0 { Int64(n) } else { nil } })
            simulator.advanceClock(by: .seconds(73 * 3600))
            let fresh = try await client.loggedIn()
            let next = Bayeux(client: fresh)
            let reconnect = try await next.handshake()
            let refused = try await next.subscribe(reconnect, "/data/CaseChangeEvent", replay: replay)
            #expect(refused?["successful"] == .bool(false))
            #expect(refused?["subscription"]?.stringValue == "/data/CaseChangeEvent")
            #expect(
                refused?["error"]?.stringValue
                    == "400::The replayId {\(replay)} you provided was invalid.  Please provide a valid ID, -2 to replay all events, or -1 to replay only new events."
            )
            #expect(try await next.subscribe(reconnect, "/data/CaseChangeEvent", replay: -2)?["successful"] == .bool(true))
            #expect(try await next.connect(reconnect).filter { $0["channel"]?.stringValue == "/data/CaseChangeEvent" }.isEmpty)

            simulator.expireSessions()
            let denied = try await fresh.send("POST", "/cometd/64.0", body: #"[{"channel":"/meta/handshake","version":"1.0","id":"1"}]"#)
            #expect(denied.status == 401 && denied.json?.arrayValue?.first?["successful"] == .bool(false))
        }
    }
}

@Suite("Salesforce simulator: /_simulator controls over HTTP")
struct SalesforceSimulatorControlTests {
    @Test("create, update, list, usage, allocation, capture and session expiry")
    func controls() async throws {
        try await withSalesforce { simulator, client in
            var plain = client
            plain.token = nil
            let created = try await plain.send("POST", "/_simulator/records/Case", body: #"{"Subject":"from the CLI"}"#)
            #expect(created.status == 201)
            let id = try #require(created.json?["id"]?.stringValue)
            #expect(try await plain.send("PATCH", "/_simulator/records/Case/\(id)", body: #"{"Status":"Escalated"}"#).status == 204)
            let invalid = try await plain.send("PATCH", "/_simulator/records/Case/\(id)", body: #"{"Status":"Closed","Subject":" "}"#)
            #expect(invalid.status == 400 && invalid.json?.arrayValue?.first?["errorCode"]?.stringValue == "FIELD_CUSTOM_VALIDATION_EXCEPTION")
            let listed = try await plain.send("GET", "/_simulator/records/Case")
            #expect(listed.json?.arrayValue?.first?["Status"]?.stringValue == "Escalated")
            _ = try await client.api("GET", "limits")
            #expect(try await plain.send("GET", "/_simulator/usage").json?["apiCallsUsed"] == .number(1))
            #expect(try await plain.send("POST", "/_simulator/allocation", body: #"{"max":1}"#).status == 200)
            #expect(try await client.api("GET", "limits").status == 403)
            #expect(try await plain.send("POST", "/_simulator/capture", body: #"{"mode":"cdc"}"#).status == 200)
            #expect(try await plain.send("POST", "/_simulator/capture", body: #"{"mode":"sideways"}"#).status == 400)
            #expect(try await plain.send("POST", "/_simulator/expire-sessions").status == 200)
            #expect(try await client.api("GET", "limits").status == 401)
            #expect(simulator.records("Case").count == 1)
            #expect(!simulator.requests.contains { $0.path.hasPrefix("/_simulator") })
        }
    }
}
