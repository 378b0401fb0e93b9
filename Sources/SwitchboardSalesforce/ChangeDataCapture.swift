// Change Data Capture over the Streaming API (CometD/Bayeux, JSON over HTTP long-polling): the events, where the
// consumer keeps its place, and the consumer itself. The wire conversation lives in ChangeDataCapture+Bayeux.swift.
import AsyncHTTPClient
import Foundation
import Logging
import ServiceLifecycle
import SwitchboardCore

// MARK: - Events

/// One change event as Change Data Capture delivered it.
public struct ChangeEvent: Sendable, Hashable {
    /// The channel it came on, e.g. `/data/CaseChangeEvent`.
    public var channel: String
    /// The object that changed, e.g. `Case`.
    public var entityName: String
    /// The changed records, 18-character form (one change can touch several records).
    public var recordIds: [String]
    /// `CREATE`, `UPDATE`, `DELETE`, `UNDELETE`, or a gap (`GAP_CREATE`, …, `GAP_OVERFLOW`).
    public var changeType: String
    public var changedFields: [String]
    public var nulledFields: [String]
    /// The payload without its `ChangeEventHeader`: the new values.
    public var fields: JSONObject
    /// Who made the change, e.g. `com/salesforce/api/rest/62.0;client=switchboard`.
    public var changeOrigin: String
    /// The user who committed the change, 18-character form.
    public var commitUser: String?
    /// Commit time, epoch milliseconds.
    public var commitTimestamp: Int64
    public var transactionKey: String?
    public var sequenceNumber: Int?
    /// The event's position on its channel. Opaque: compare for equality only, never compute with it.
    public var replayId: Int64

    public init(
        channel: String, entityName: String, recordIds: [String], changeType: String, changedFields: [String] = [],
        nulledFields: [String] = [], fields: JSONObject = [:], changeOrigin: String = "", commitUser: String? = nil,
        commitTimestamp: Int64 = 0, transactionKey: String? = nil, sequenceNumber: Int? = nil, replayId: Int64
    ) {
        self.channel = channel
        self.entityName = entityName
        self.recordIds = recordIds.map(SalesforceId.normalized)
        self.changeType = changeType
        self.changedFields = changedFields
        self.nulledFields = nulledFields
        self.fields = fields
        self.changeOrigin = changeOrigin
        self.commitUser = commitUser.map(SalesforceId.normalized)
        self.commitTimestamp = commitTimestamp
        self.transactionKey = transactionKey
        self.sequenceNumber = sequenceNumber
        self.replayId = replayId
    }

    /// Reads one Bayeux event message: `{"channel", "data": {"schema", "payload": {"ChangeEventHeader": …, fields…},
    /// "event": {"replayId"}}}`.
    public init(message: JSONValue) throws(SalesforceError) {
        guard let channel = message["channel"]?.stringValue else { throw .malformedResponse("a change event without a channel") }
        guard let data = message["data"]?.objectValue, var payload = data["payload"]?.objectValue,
            let header = payload["ChangeEventHeader"]?.objectValue
        else { throw .malformedResponse("an event on \(channel) without a ChangeEventHeader") }
        guard let replayId = data["event"]?["replayId"].flatMap(Self.int64) else {
            throw .malformedResponse("an event on \(channel) without a replayId")
        }
        guard let entityName = header["entityName"]?.stringValue, let changeType = header["changeType"]?.stringValue else {
            throw .malformedResponse("the change event \(replayId) on \(channel) has no entityName or changeType")
        }
        func strings(_ key: String) -> [String] { header[key]?.arrayValue?.compactMap(\.stringValue) ?? [] }
        payload["ChangeEventHeader"] = nil
        self.init(
            channel: channel, entityName: entityName, recordIds: strings("recordIds"), changeType: changeType,
            changedFields: strings("changedFields"), nulledFields: strings("nulledFields"), fields: payload,
            changeOrigin: header["changeOrigin"]?.stringValue ?? "", commitUser: header["commitUser"]?.stringValue,
            commitTimestamp: header["commitTimestamp"].flatMap(Self.int64) ?? 0, transactionKey: header["transactionKey"]?.stringValue,
            sequenceNumber: header["sequenceNumber"].flatMap(Self.int64).map { Int($0) }, replayId: replayId)
    }

    /// True when Switchboard's own REST write caused it: its `changeOrigin` names `client=<client>` (the value our
    /// writes send in `Sforce-Call-Options`).
    public func isOwnWrite(client: String) -> Bool {
        guard !client.isEmpty else { return false }
        // The origin is `<path>;client=<id>`; compare the whole value so `client=switchboard2` is not ours.
        return changeOrigin.split(separator: ";").contains { part in
            let item = part.trimmingCharacters(in: .whitespaces)
            return item.hasPrefix("client=") && item.dropFirst("client=".count) == client
        }
    }

    /// A gap event: Salesforce could not say what changed, so the records must be read again by Id.
    public var isGap: Bool { changeType.hasPrefix("GAP_") }

    /// The key the pipeline deduplicates on: delivery is at least once, so the same event can come twice.
    public var dedupeKey: String { "cdc:\(channel):\(replayId)" }

    /// Replay ids and timestamps come as JSON numbers; strings holding digits are read too.
    static func int64(_ value: JSONValue) -> Int64? {
        switch value {
        case .number(let n) where n.rounded() == n && abs(n) < 9.0e18: Int64(n)
        case .string(let s): Int64(s)
        default: nil
        }
    }
}

// MARK: - Replay positions

/// Where the last processed replay id per channel is kept (the server persists it in its database).
public protocol ReplayIdStore: Sendable {
    /// The last replay id handled on `channel`, or nil when none was ever saved.
    func replayId(channel: String) async throws -> Int64?
    /// Records that every event on `channel` up to and including `replayId` has been handled.
    func save(replayId: Int64, channel: String) async throws
}

/// A replay id store in memory: for tests and runs that need not resume after a restart.
public actor InMemoryReplayIdStore: ReplayIdStore {
    private var ids: [String: Int64]

    public init(_ ids: [String: Int64] = [:]) { self.ids = ids }

    public func replayId(channel: String) -> Int64? { ids[channel] }
    public func save(replayId: Int64, channel: String) { ids[channel] = replayId }
    /// Every saved position.
    public var all: [String: Int64] { ids }
}

// MARK: - Errors

/// Why the consumer stopped for good (everything else it retries).
public enum ChangeDataCaptureError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The server advised `reconnect: none`: it will not take this client back.
    case reconnectRefused(channel: String, error: String)

    public var description: String {
        switch self {
        case .reconnectRefused(let channel, let error):
            "Salesforce's Streaming API refused to reconnect (\(channel): \(error.isEmpty ? "no reason given" : error)); change capture stopped"
        }
    }
}

// MARK: - Consumer

/// Subscribes to change channels and hands each event to `handle`, in order, resuming after restarts.
///
/// Delivery is at least once: a channel's replay id is saved only after `handle` returned for its event, and a
/// reconnect resubscribes from the last saved id, so an event may come again (deduplicate on
/// ``ChangeEvent/dedupeKey``). When `handle` (or saving the replay id) throws, the consumer does not skip the event:
/// it backs off, handshakes again and resubscribes from the last saved id, so that event and those after it are
/// delivered again, in order. The own-write filter is left to `handle` (see ``ChangeEvent/isOwnWrite(client:)``).
public struct ChangeDataCaptureConsumer: Sendable {
    /// Where to start on a channel with no saved replay id.
    public enum InitialReplay: Int64, Sendable, Hashable {
        /// `-1`: only events published after subscribing.
        case newEvents = -1
        /// `-2`: every event still retained (72 hours).
        case allRetained = -2
    }

    public struct Configuration: Sendable {
        /// The API version in the endpoint `<instance>/cometd/<apiVersion>` (replay needs 37.0 or later).
        public var apiVersion: String
        /// The channels to follow, e.g. `["/data/CaseChangeEvent"]`.
        public var channels: [String]
        /// The `client=` name Switchboard's REST writes send; for ``ChangeEvent/isOwnWrite(client:)`` in the caller.
        public var ownClient: String
        /// How long a `/meta/connect` may take. Longer than the server's long poll (Salesforce holds it 110 s).
        public var connectTimeout: Duration
        /// How long a handshake or subscribe may take.
        public var requestTimeout: Duration
        /// The first wait after a failure; it doubles with each failure in a row, up to `maxReconnectDelay`.
        public var reconnectDelay: Duration
        public var maxReconnectDelay: Duration
        /// Where to start on a channel with no saved replay id.
        public var initialReplay: InitialReplay

        public init(
            apiVersion: String = "62.0", channels: [String] = ["/data/CaseChangeEvent"], ownClient: String = "switchboard",
            connectTimeout: Duration = .seconds(120), requestTimeout: Duration = .seconds(30), reconnectDelay: Duration = .seconds(1),
            maxReconnectDelay: Duration = .seconds(60), initialReplay: InitialReplay = .newEvents
        ) {
            self.apiVersion = apiVersion
            self.channels = channels
            self.ownClient = ownClient
            self.connectTimeout = connectTimeout
            self.requestTimeout = requestTimeout
            self.reconnectDelay = reconnectDelay
            self.maxReconnectDelay = maxReconnectDelay
            self.initialReplay = initialReplay
        }
    }

    public let configuration: Configuration
    let sessions: any SalesforceSessionProvider
    let replayIds: any ReplayIdStore
    let httpClient: HTTPClient
    let logger: Logger
    let onReplayTooOld: @Sendable (_ channel: String) async throws -> Void
    let handle: @Sendable (ChangeEvent) async throws -> Void

    /// - Parameters:
    ///   - sessions: the org's sessions; a refused token is invalidated and a new one asked for.
    ///   - replayIds: where each channel's last processed replay id is kept.
    ///   - httpClient: used for every request; its own read timeout, if any, must exceed the long poll.
    ///   - onReplayTooOld: the saved replay id of `channel` is past retention, so events were lost: resync the
    ///     records by query. Called before the consumer resubscribes with `-1` (new events only); if it throws, the
    ///     consumer backs off and tries the same subscription again.
    ///   - handle: called for each event, one at a time, in the order the server sent them.
    public init(
        configuration: Configuration, sessions: any SalesforceSessionProvider, replayIds: any ReplayIdStore, httpClient: HTTPClient,
        logger: Logger, onReplayTooOld: @escaping @Sendable (_ channel: String) async throws -> Void,
        handle: @escaping @Sendable (ChangeEvent) async throws -> Void
    ) {
        self.configuration = configuration
        self.sessions = sessions
        self.replayIds = replayIds
        self.httpClient = httpClient
        self.logger = logger
        self.onReplayTooOld = onReplayTooOld
        self.handle = handle
    }

    /// Runs until cancelled or a graceful shutdown (then it returns without error): handshake, subscribe, the
    /// connect loop, and reconnects. Throws only ``ChangeDataCaptureError`` (the server advised never to reconnect).
    public func run() async throws {
        try await cancelWhenGracefulShutdown {
            try await ChangeDataCaptureRun(consumer: self).run()
        }
    }
}

extension ChangeDataCaptureConsumer: Service {}
