// The Bayeux conversation behind ChangeDataCaptureConsumer: handshake, subscribe with replay ids, the long-poll
// connect loop, and the way back after every kind of failure.
import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import SwitchboardCore

/// Why a conversation with the server ended; `ChangeDataCaptureRun.run` decides how to go on.
enum BayeuxFailure: Error {
    /// The server forgot our client (`403::Unknown client`) or advised a new handshake.
    case rehandshake(String)
    /// The token was refused (HTTP 401, or a Bayeux `401::` error).
    case unauthorized(String)
    /// `advice.reconnect` was `none`: the server will not take us back.
    case refused(channel: String, error: String)
    /// No answer, an unexpected status or body, a refused subscription: back off and start over.
    case transport(String)
    /// No session could be had (the token request failed).
    case session(SalesforceError)
    /// `handle`, the replay id store or `onReplayTooOld` failed: back off and resubscribe from the last saved id.
    case processing(String)
}

/// The server's standing `advice`, kept across replies that leave it out. `reconnect` is read per reply instead: a
/// stale `handshake` must not outlive the handshake it asked for.
struct BayeuxAdvice {
    /// How long to wait before the next connect.
    var interval: Duration = .zero
    /// How long the server holds a long poll.
    var timeout: Duration?

    mutating func update(_ advice: JSONValue?) {
        // Capped, so a wild value cannot park the consumer for days.
        if case .number(let n)? = advice?["interval"], n >= 0 { interval = .milliseconds(Int64(min(n, 600_000))) }
        if case .number(let n)? = advice?["timeout"], n >= 0 { timeout = .milliseconds(Int64(min(n, 3_600_000))) }
    }
}

/// One `run()` of a consumer and its mutable state; only that one task touches it.
final class ChangeDataCaptureRun {
    private let consumer: ChangeDataCaptureConsumer
    private var configuration: ChangeDataCaptureConsumer.Configuration { consumer.configuration }
    private var logger: Logger
    private var session: SalesforceSession?
    private var clientId: String?
    /// Cookies the server set (`BAYEUX_BROWSER`, load-balancer affinity…), sent back on every request.
    private var cookies: [(name: String, value: String)] = []
    private var messageCounter = 0
    private var advice = BayeuxAdvice()
    /// The replay id each channel subscribes with: the last processed one, or -1/-2. Nil until read from the store.
    private var positions: [String: Int64]?
    /// Failures since the last connect whose events were all processed; drives the backoff.
    private var failures = 0

    init(consumer: ChangeDataCaptureConsumer) {
        self.consumer = consumer
        self.logger = consumer.logger
        logger[metadataKey: "cdc.channels"] = "\(consumer.configuration.channels.joined(separator: ","))"
    }

    /// Converses until cancelled, starting over after each failure with a wait that never lets it spin.
    func run() async throws {
        while !Task.isCancelled {
            do {
                try await converse()
            } catch let failure as BayeuxFailure {
                if Task.isCancelled { return }
                if case .refused(let channel, let error) = failure {
                    logger.error("Salesforce advised not to reconnect; change capture stops", metadata: ["channel": "\(channel)", "error": "\(error)"])
                    throw ChangeDataCaptureError.reconnectRefused(channel: channel, error: error)
                }
                failures += 1
                let delay = await recover(from: failure)
                do { try await Task.sleep(for: delay) } catch { return }
            } catch {
                // Cancellation surfaces here (from a sleep or the HTTP client); anything else is unexpected but
                // treated like a transport failure.
                if Task.isCancelled { return }
                failures += 1
                logger.warning("change capture failed; reconnecting", metadata: ["error": "\(error)"])
                clientId = nil
                do { try await Task.sleep(for: backoff(failures)) } catch { return }
            }
        }
    }

    /// Handshake, subscribe to every channel, then long-poll until something ends it (it always ends by throwing).
    private func converse() async throws {
        try await loadPositions()
        try await handshake()
        for channel in configuration.channels { try await subscribe(channel) }
        while true { try await connect() }
    }

    // MARK: Recovery

    /// Logs `failure`, undoes what it spoiled, and returns how long to wait before the next handshake.
    private func recover(from failure: BayeuxFailure) async -> Duration {
        clientId = nil
        switch failure {
        case .unauthorized(let why):
            logger.warning("Salesforce refused the token; renewing the session", metadata: ["reason": "\(why)"])
            if let session { await consumer.sessions.invalidate(session) }
            session = nil
            // The server's cookies belong to the refused session.
            cookies = []
            // The first renewal is immediate; a token refused again and again backs off.
            return backoff(failures - 1)
        case .rehandshake(let why):
            // Routine: Salesforce forgets clients that were away too long.
            logger.info("handshaking again", metadata: ["reason": "\(why)"])
            return backoff(failures - 1)
        case .transport(let why):
            log(failureLevel, "Streaming API failure; reconnecting", ["error": "\(why)"])
            return backoff(failures)
        case .session(let error):
            log(failureLevel, "no Salesforce session for change capture; retrying", ["error": "\(error)"])
            return backoff(failures)
        case .processing(let why):
            logger.error("a change event was not processed; it will be delivered again", metadata: ["error": "\(why)"])
            return backoff(failures)
        case .refused:
            return backoff(failures)
        }
    }

    /// Warnings for a blip, errors once it keeps failing.
    private var failureLevel: Logger.Level { failures >= 5 ? .error : .warning }

    private func log(_ level: Logger.Level, _ message: Logger.Message, _ metadata: Logger.Metadata) {
        logger.log(level: level, message, metadata: metadata)
    }

    /// `reconnectDelay` doubled per failure in a row, capped at `maxReconnectDelay`; zero for no failures.
    private func backoff(_ failures: Int) -> Duration {
        guard failures > 0 else { return .zero }
        let delay = configuration.reconnectDelay * (1 << min(failures - 1, 20))
        return min(delay, configuration.maxReconnectDelay)
    }

    // MARK: Bayeux

    /// Reads each channel's saved replay id once per run; afterwards the positions kept here are authoritative
    /// (they move with every saved event, and to -1 after a too-old replay id).
    private func loadPositions() async throws {
        guard positions == nil else { return }
        var loaded: [String: Int64] = [:]
        for channel in configuration.channels {
            do {
                loaded[channel] = try await consumer.replayIds.replayId(channel: channel) ?? configuration.initialReplay.rawValue
            } catch {
                throw BayeuxFailure.processing("could not read the replay id of \(channel): \(error)")
            }
        }
        positions = loaded
        logger.info("change capture starting", metadata: ["replayIds": "\(loaded.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", "))"])
    }

    private func handshake() async throws {
        clientId = nil
        let message: JSONObject = [
            "channel": "/meta/handshake", "id": .string(nextMessageId()), "version": "1.0", "minimumVersion": "1.0",
            "supportedConnectionTypes": .array(["long-polling"]),
            // Tells the server we speak its replay extension.
            "ext": .object(["replay": .bool(true)]),
        ]
        let reply = try await exchange(message, timeout: configuration.requestTimeout)
        advice.update(reply["advice"])
        guard reply["successful"] == .bool(true), let id = reply["clientId"]?.stringValue, !id.isEmpty else {
            throw failure(of: reply, on: "/meta/handshake")
        }
        clientId = id
        logger.debug("handshake done", metadata: ["clientId": "\(id)"])
    }

    private func subscribe(_ channel: String) async throws {
        let replay = positions?[channel] ?? configuration.initialReplay.rawValue
        let message: JSONObject = [
            "channel": "/meta/subscribe", "id": .string(nextMessageId()), "clientId": .string(clientId ?? ""), "subscription": .string(channel),
            "ext": .object(["replay": .object([channel: .number(Double(replay))])]),
        ]
        let reply = try await exchange(message, timeout: configuration.requestTimeout)
        if reply["successful"] == .bool(true) {
            logger.info("subscribed", metadata: ["channel": "\(channel)", "replayId": "\(replay)"])
            return
        }
        let error = Self.errorText(of: reply)
        let lowered = error.lowercased()
        // -1 and -2 are presets, never too old; a real id refused as invalid has left the 72-hour retention.
        if replay != -1, replay != -2, lowered.contains("replayid"), lowered.contains("invalid") {
            logger.warning(
                "the saved replay id is past retention; events were missed, resyncing by query",
                metadata: ["channel": "\(channel)", "replayId": "\(replay)", "error": "\(error)"])
            do {
                try await consumer.onReplayTooOld(channel)
            } catch {
                if Task.isCancelled { throw CancellationError() }
                throw BayeuxFailure.processing("the resync of \(channel) after a too-old replay id failed: \(error)")
            }
            positions?[channel] = -1
            try await subscribe(channel)
            return
        }
        throw failure(of: reply, on: "/meta/subscribe")
    }

    /// One long poll: hands over the events it brings, then follows the connect reply's advice.
    private func connect() async throws {
        let message: JSONObject = [
            "channel": "/meta/connect", "id": .string(nextMessageId()), "clientId": .string(clientId ?? ""), "connectionType": "long-polling",
        ]
        // The HTTP request must outlast the server's hold, whichever of ours and its advice is longer.
        let timeout = max(configuration.connectTimeout, (advice.timeout ?? .zero) + .seconds(10))
        let reply = try await exchange(message, timeout: timeout)
        advice.update(reply["advice"])
        let reconnect = reply["advice"]?["reconnect"]?.stringValue
        if reply["successful"] == .bool(true) {
            failures = 0
            switch reconnect {
            case "handshake": throw BayeuxFailure.rehandshake("the server advised a new handshake")
            case "none": throw BayeuxFailure.refused(channel: "/meta/connect", error: "advice reconnect none")
            default: break
            }
            if advice.interval > .zero { try await Task.sleep(for: advice.interval) }
            return
        }
        let failure = failure(of: reply, on: "/meta/connect")
        if case .transport(let why) = failure, reconnect == "retry" {
            // Same client, connect again; a server that keeps refusing still gets the backoff.
            failures += 1
            log(failureLevel, "connect refused; retrying", ["error": "\(why)"])
            try await Task.sleep(for: max(advice.interval, backoff(failures)))
            return
        }
        throw failure
    }

    /// Classifies an unsuccessful meta reply.
    private func failure(of reply: JSONValue, on channel: String) -> BayeuxFailure {
        let error = reply["error"]?.stringValue ?? ""
        let reason = reply["ext"]?["sfdc"]?["failureReason"]?.stringValue ?? ""
        let text = Self.errorText(of: reply)
        // Salesforce reports an expired or revoked token as `401::Authentication invalid`, in the error or in
        // ext.sfdc.failureReason, often with `reconnect: none`: a new token fixes it, so it is not the end.
        if error.hasPrefix("401::") || reason.hasPrefix("401::") { return .unauthorized(text) }
        if text.lowercased().contains("unknown client") { return .rehandshake(text) }
        switch reply["advice"]?["reconnect"]?.stringValue {
        case "none": return .refused(channel: channel, error: text)
        case "handshake": return .rehandshake(text)
        default: return .transport("\(channel) was refused: \(text.isEmpty ? "no reason given" : text)")
        }
    }

    private static func errorText(of reply: JSONValue) -> String {
        [reply["error"]?.stringValue, reply["ext"]?["sfdc"]?["failureReason"]?.stringValue]
            .compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: "; ")
    }

    private func nextMessageId() -> String {
        messageCounter += 1
        return String(messageCounter)
    }

    /// Sends one meta message and returns the server's reply to it; events that came in the same answer are
    /// handed over first, in the order they came.
    private func exchange(_ message: JSONObject, timeout: Duration) async throws -> JSONValue {
        let channel = message["channel"]?.stringValue ?? ""
        let answer = try await post([.object(message)], timeout: timeout)
        var reply: JSONValue?
        for item in answer {
            let itemChannel = item["channel"]?.stringValue ?? ""
            if itemChannel.hasPrefix("/meta/") {
                if itemChannel == channel, reply == nil { reply = item }
                continue
            }
            try await deliver(item)
        }
        guard let reply else { throw BayeuxFailure.transport("the answer to \(channel) held no \(channel) reply") }
        return reply
    }

    /// Hands one event to `handle`, then saves its replay id: in that order, so nothing is marked done too early.
    private func deliver(_ message: JSONValue) async throws {
        let event: ChangeEvent
        do {
            event = try ChangeEvent(message: message)
        } catch {
            // Not a change event (or damaged): nothing to hand over, and stalling the channel on it would help no one.
            logger.error(
                "skipping a message that is not a readable change event",
                metadata: ["channel": "\(message["channel"]?.stringValue ?? "?")", "error": "\(error)"])
            return
        }
        logger.debug(
            "change event",
            metadata: [
                "channel": "\(event.channel)", "replayId": "\(event.replayId)", "changeType": "\(event.changeType)",
                "recordIds": "\(event.recordIds.joined(separator: ","))",
            ])
        do {
            try await consumer.handle(event)
        } catch {
            if Task.isCancelled { throw CancellationError() }
            throw BayeuxFailure.processing("handling event \(event.replayId) on \(event.channel) failed: \(error)")
        }
        do {
            try await consumer.replayIds.save(replayId: event.replayId, channel: event.channel)
        } catch {
            if Task.isCancelled { throw CancellationError() }
            throw BayeuxFailure.processing("saving replay id \(event.replayId) of \(event.channel) failed: \(error)")
        }
        positions?[event.channel] = event.replayId
    }

    // MARK: HTTP

    private func currentSession() async throws -> SalesforceSession {
        if let session { return session }
        do {
            let fresh = try await consumer.sessions.session()
            session = fresh
            return fresh
        } catch {
            if Task.isCancelled { throw CancellationError() }
            throw BayeuxFailure.session(error)
        }
    }

    /// POSTs a Bayeux batch and returns the messages of the answer.
    private func post(_ messages: [JSONValue], timeout: Duration) async throws -> [JSONValue] {
        let session = try await currentSession()
        var base = session.instanceURL
        while base.hasSuffix("/") { base.removeLast() }
        let url = "\(base)/cometd/\(configuration.apiVersion)"
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Authorization", value: "Bearer \(session.accessToken)")
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "Accept", value: "application/json")
        if !cookies.isEmpty { request.headers.add(name: "Cookie", value: cookies.map { "\($0.name)=\($0.value)" }.joined(separator: "; ")) }
        request.body = .bytes(ByteBuffer(string: JSONValue.array(messages).serialized()))
        let response: HTTPClientResponse
        let body: ByteBuffer
        do {
            response = try await consumer.httpClient.execute(request, timeout: Self.timeAmount(timeout))
            body = try await response.body.collect(upTo: 32 << 20)
        } catch {
            // A cancelled long poll ends the run quietly.
            if Task.isCancelled { throw CancellationError() }
            throw BayeuxFailure.transport("POST \(url) failed: \(error)")
        }
        remember(setCookies: response.headers["Set-Cookie"])
        let status = Int(response.status.code)
        let text = String(buffer: body)
        if status == 401 { throw BayeuxFailure.unauthorized("HTTP 401: \(text.prefix(300))") }
        guard (200..<300).contains(status) else { throw BayeuxFailure.transport("POST \(url) answered \(status): \(text.prefix(300))") }
        switch try? JSONParser.parseValue(bytes: Array(buffer: body)) {
        case .array(let items)?: return items
        case .object(let item)?: return [.object(item)]
        default: throw BayeuxFailure.transport("POST \(url) answered with something other than Bayeux JSON: \(text.prefix(300))")
        }
    }

    /// Keeps each `Set-Cookie` by name (a later one replaces an earlier one); `Max-Age=0` or negative removes it.
    private func remember(setCookies headers: [String]) {
        for header in headers {
            let parts = header.split(separator: ";", omittingEmptySubsequences: false)
            guard let first = parts.first, let equals = first.firstIndex(of: "=") else { continue }
            let name = first[..<equals].trimmingCharacters(in: .whitespaces)
            let value = first[first.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            guard !name.isEmpty else { continue }
            let expired = parts.dropFirst().contains { attribute in
                let a = attribute.trimmingCharacters(in: .whitespaces).lowercased()
                return a == "max-age=0" || a.hasPrefix("max-age=-")
            }
            cookies.removeAll { $0.name == name }
            if !expired { cookies.append((name, value)) }
        }
    }

    private static func timeAmount(_ duration: Duration) -> TimeAmount {
        let (seconds, attoseconds) = duration.components
        let capped = min(max(seconds, 0), 1_000_000_000)
        return .nanoseconds(capped * 1_000_000_000 + max(attoseconds, 0) / 1_000_000_000)
    }
}
