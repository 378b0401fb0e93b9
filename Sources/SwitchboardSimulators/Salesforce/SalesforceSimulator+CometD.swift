import Crypto
import Foundation
import SwitchboardCore

/// One retained change event.
struct StoredEvent: Sendable {
    var replayId: Int64
    var entity: String
    var commitMs: Int64
    /// `{"schema", "payload", "event": {"replayId"}}`.
    var data: JSONObject
}

/// A Bayeux client between handshake and disconnect.
struct CometClient: Sendable {
    var userId: String
    /// Channel → the last replay id delivered (or the position subscribed at).
    var subscriptions: [String: Int64] = [:]
    /// Replay positions sent with the handshake, used when a subscribe carries none.
    var handshakeReplay: [String: Int64] = [:]
    var lastSeen = Date()
}

/// The Streaming API's side: the event bus (72 h retention) and the connected clients.
struct StreamingState: Sendable {
    var events: [StoredEvent] = []
    var nextReplayId: Int64 = 1
    /// The highest replay id dropped by retention: older positions can no longer be resumed from.
    var expiredUpTo: Int64 = 0
    var commitNumber: Int64 = 11_000_000_000
    var clients: [String: CometClient] = [:]
}

extension SalesforceSimulator {
    static let retentionMs: Int64 = 72 * 3_600_000

    /// `/data/CaseChangeEvent`; custom objects drop `__c` for `__ChangeEvent`.
    static func changeChannel(_ object: String) -> String {
        object.hasSuffix("__c") ? "/data/\(object.dropLast(3))__ChangeEvent" : "/data/\(object)ChangeEvent"
    }

    /// A stable, opaque schema id per entity, like the Avro schema fingerprint Salesforce sends.
    static func schemaId(_ object: String) -> String {
        let digest = SHA256.hash(data: Array("schema:\(object)".utf8))
        return String(Data(digest).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").prefix(22))
    }

    func pruneEvents(_ s: inout State) {
        let cutoff = Self.nowMs(s) - Self.retentionMs
        while let first = s.stream.events.first, first.commitMs < cutoff {
            s.stream.expiredUpTo = max(s.stream.expiredUpTo, first.replayId)
            s.stream.events.removeFirst()
        }
    }

    /// Turns committed changes into change events: CREATE with every non-null field, UPDATE with the changed ones.
    func publishChangeEvents(_ s: inout State, _ txn: Transaction) {
        pruneEvents(&s)
        s.stream.commitNumber += 1
        var sequence = 0
        for change in txn.changes where options.cdcObjects.contains(change.object) {
            guard let type = s.org.type(change.object) else { continue }
            sequence += 1
            let stamp = change.new["SystemModstamp"]?.stringValue.flatMap(SalesforceOrg.parseDateTime) ?? Self.nowMs(s)
            var body = JSONObject()
            var changed: [String] = []
            var nulled: [String] = []
            func eventValue(_ field: SalesforceField, _ value: JSONValue) -> JSONValue {
                if field.type == "datetime", let text = value.stringValue, let ms = SalesforceOrg.parseDateTime(text) {
                    return .string(SalesforceOrg.formatDateTime(ms, zulu: true))
                }
                return value
            }
            // The body never carries Id (it is in recordIds), IsDeleted or SystemModstamp.
            let skipped: Set<String> = ["Id", "IsDeleted", "SystemModstamp"]
            for field in type.fields where !skipped.contains(field.name) {
                let new = change.new[field.name] ?? .null
                if change.isInsert {
                    if new != .null { body[field.name] = eventValue(field, new) }
                } else if new != (change.old?[field.name] ?? .null) {
                    changed.append(field.name)
                    if new == .null { nulled.append(field.name) }
                    body[field.name] = eventValue(field, new)
                }
            }
            let header: JSONObject = [
                "entityName": .string(type.name), "recordIds": .array([.string(change.id)]),
                "changeType": .string(change.isInsert ? "CREATE" : "UPDATE"),
                "changeOrigin": .string(txn.origin), "transactionKey": .string(txn.key), "sequenceNumber": .number(Double(sequence)),
                "commitTimestamp": .number(Double(stamp)), "commitNumber": .number(Double(s.stream.commitNumber)), "commitUser": .string(txn.userId),
                "nulledFields": .array(nulled.map(JSONValue.string)), "diffFields": .array([]),
                "changedFields": .array(changed.map(JSONValue.string)),
            ]
            var payload: JSONObject = ["ChangeEventHeader": .object(header)]
            for (k, v) in body.entries { payload[k] = v }
            let replayId = s.stream.nextReplayId
            s.stream.nextReplayId += 1
            let data: JSONObject = [
                "schema": .string(Self.schemaId(type.name)), "payload": .object(payload), "event": .object(["replayId": .number(Double(replayId))]),
            ]
            s.stream.events.append(StoredEvent(replayId: replayId, entity: type.name, commitMs: stamp, data: data))
        }
    }

    /// The entity a channel carries, "*" for `/data/ChangeEvents`; nil for a channel that does not exist.
    func entity(ofChannel channel: String) -> String? {
        if channel == "/data/ChangeEvents" { return "*" }
        return options.cdcObjects.first { Self.changeChannel($0) == channel }
    }

    /// `POST /cometd/<version>`: Bayeux over HTTP long-polling.
    func cometd(method: String, path: String, headers: [(name: String, value: String)], body: [UInt8]) async -> SalesforceReply {
        let parts = path.split(separator: "/").map(String.init)
        guard parts.count >= 2, options.apiVersions.contains(parts[1]), (Double(parts[1]) ?? 0) >= 37 else {
            return .errors(404, "NOT_FOUND", "The requested resource does not exist")
        }
        guard method == "POST" else {
            return SalesforceReply(status: 400, body: .array([.object(["successful": .bool(false), "error": "400::POST required"])]))
        }
        let messages: [JSONObject]
        switch try? JSONParser.parseValue(bytes: body) {
        case .array(let items)?: messages = items.compactMap(\.objectValue)
        case .object(let one)?: messages = [one]
        default: return SalesforceReply(status: 400, body: .array([.object(["successful": .bool(false), "error": "400::Bad JSON"])]))
        }
        let user = state.withLock { authenticate(headers, $0) }
        guard let user else {
            // The Streaming API checks the session on every request; the client must log in and handshake again.
            return SalesforceReply(
                status: 401,
                body: .array(
                    messages.map { m in
                        var o: JSONObject = [
                            "channel": m["channel"] ?? .null, "successful": .bool(false), "error": "401::Authentication invalid",
                            "advice": .object(["reconnect": "none"]),
                        ]
                        if let id = m["id"] { o["id"] = id }
                        return .object(o)
                    }))
        }
        var replies: [JSONValue] = []
        for message in messages {
            replies += await bayeux(message, user: user)
        }
        return SalesforceReply(status: 200, body: .array(replies))
    }

    private var connectTimeoutMs: Int64 {
        let d = options.cometdConnectTimeout.components
        return d.seconds * 1000 + d.attoseconds / 1_000_000_000_000_000
    }

    private func advice() -> JSONValue { .object(["interval": .number(0), "timeout": .number(Double(connectTimeoutMs)), "reconnect": "retry"]) }

    private func reply(_ message: JSONObject, _ fields: JSONObject) -> JSONObject {
        var o: JSONObject = ["channel": message["channel"] ?? .null]
        if let id = message["id"] { o["id"] = id }
        if let client = message["clientId"] { o["clientId"] = client }
        for (k, v) in fields.entries { o[k] = v }
        return o
    }

    private static func replayMap(_ value: JSONValue?) -> [String: Int64] {
        var out: [String: Int64] = [:]
        for (channel, v) in value?["replay"]?.objectValue?.entries ?? [] {
            if case .number(let n) = v { out[channel] = Int64(n) } else if let n = v.stringValue.flatMap({ Int64($0) }) { out[channel] = n }
        }
        return out
    }

    /// One Bayeux message; `/meta/connect` may wait for events.
    private func bayeux(_ message: JSONObject, user: String) async -> [JSONValue] {
        let channel = message["channel"]?.stringValue ?? ""
        let clientId = message["clientId"]?.stringValue ?? ""
        let unknownClient: [JSONValue] = [
            .object(
                reply(
                    message,
                    [
                        "successful": .bool(false), "error": "403::Unknown client",
                        "advice": .object(["reconnect": "handshake", "interval": .number(0)]),
                    ]))
        ]
        switch channel {
        case "/meta/handshake":
            let id = state.withLock { s -> String in
                // Clients that stopped polling are forgotten, as the server does after about 40 s.
                let idle = 40 + Double(connectTimeoutMs) / 1000
                s.stream.clients = s.stream.clients.filter { Date().timeIntervalSince($0.value.lastSeen) < idle }
                let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789")
                var random = SystemRandomNumberGenerator()
                let id = String((0..<32).map { _ in alphabet[Int(random.next(upperBound: UInt64(alphabet.count)))] })
                s.stream.clients[id] = CometClient(userId: user, handshakeReplay: Self.replayMap(message["ext"]))
                return id
            }
            return [
                .object(
                    reply(
                        message,
                        [
                            "version": "1.0", "minimumVersion": "1.0", "clientId": .string(id), "supportedConnectionTypes": .array(["long-polling"]),
                            "successful": .bool(true), "ext": .object(["replay": .bool(true), "payload.format": .bool(true)]), "advice": advice(),
                        ]))
            ]
        case "/meta/subscribe", "/meta/unsubscribe":
            let subscription = message["subscription"]?.stringValue ?? ""
            let answer = state.withLock { s -> JSONObject? in
                guard var client = s.stream.clients[clientId] else { return nil }
                client.lastSeen = Date()
                defer { s.stream.clients[clientId] = client }
                if channel == "/meta/unsubscribe" {
                    client.subscriptions[subscription] = nil
                    return ["subscription": .string(subscription), "successful": .bool(true)]
                }
                guard entity(ofChannel: subscription) != nil else {
                    return [
                        "subscription": .string(subscription), "successful": .bool(false),
                        "error": .string("400::The channel you requested to subscribe to does not exist {\(subscription)}"),
                    ]
                }
                pruneEvents(&s)
                let requested = Self.replayMap(message["ext"])[subscription] ?? client.handshakeReplay[subscription] ?? -1
                let position: Int64
                switch requested {
                case -1: position = s.stream.nextReplayId - 1
                case -2: position = s.stream.expiredUpTo
                default:
                    // A position whose event has left the 72-hour window cannot be resumed from.
                    guard requested >= 0, requested > s.stream.expiredUpTo else {
                        return [
                            "subscription": .string(subscription), "successful": .bool(false),
                            "error": .string(
                                "400::The replayId {\(requested)} you provided was invalid.  Please provide a valid ID, -2 to replay all events, or -1 to replay only new events."
                            ),
                        ]
                    }
                    position = requested
                }
                client.subscriptions[subscription] = position
                return ["subscription": .string(subscription), "successful": .bool(true)]
            }
            guard let answer else { return unknownClient }
            return [.object(reply(message, answer))]
        case "/meta/connect":
            guard state.withLock({ $0.stream.clients[clientId] != nil }) else { return unknownClient }
            let deadline = ContinuousClock.now + options.cometdConnectTimeout
            var events: [JSONValue] = []
            while true {
                let (found, gone, stopping) = state.withLock { s -> ([JSONValue], Bool, Bool) in
                    guard var client = s.stream.clients[clientId] else { return ([], true, s.stopping) }
                    pruneEvents(&s)
                    var out: [(Int64, JSONValue)] = []
                    for (subscribed, position) in client.subscriptions {
                        guard let wanted = entity(ofChannel: subscribed) else { continue }
                        var last = position
                        for event in s.stream.events where event.replayId > position && (wanted == "*" || wanted == event.entity) {
                            out.append((event.replayId, .object(["channel": .string(subscribed), "data": .object(event.data)])))
                            last = event.replayId
                        }
                        client.subscriptions[subscribed] = last
                    }
                    client.lastSeen = Date()
                    s.stream.clients[clientId] = client
                    return (out.sorted { $0.0 < $1.0 }.map(\.1), false, s.stopping)
                }
                events = found
                if gone { return unknownClient }
                if !events.isEmpty || stopping || ContinuousClock.now >= deadline { break }
                try? await Task.sleep(for: .milliseconds(20))
            }
            return events + [.object(reply(message, ["successful": .bool(true), "advice": advice()]))]
        case "/meta/disconnect":
            let known = state.withLock { $0.stream.clients.removeValue(forKey: clientId) != nil }
            guard known else { return unknownClient }
            return [.object(reply(message, ["successful": .bool(true)]))]
        default:
            return [.object(reply(message, ["successful": .bool(false), "error": .string("403::Publishing to \(channel) is not allowed")]))]
        }
    }
}
