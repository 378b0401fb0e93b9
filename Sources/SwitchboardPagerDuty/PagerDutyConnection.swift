import Foundation
import Logging
import SQLKit
import Synchronization
import SwitchboardCore
import SwitchboardPipeline
import SwitchboardStorage

/// The stored connection to a PagerDuty account: key (encrypted), region, integration user, webhook subscription
/// and its signing secrets (encrypted).
public struct PagerDutyConnection: Sendable, Hashable {
    public var apiKey: String
    public var region: PagerDutyRegion
    public var baseURL: String?
    public var fromEmail: String
    public var subscriptionId: String?
    /// Secrets that sign deliveries; several while one is being replaced.
    public var webhookSecrets: [String]
    /// Switchboard's public URL, where PagerDuty delivers webhooks.
    public var publicURL: String?

    public init(apiKey: String, region: PagerDutyRegion, baseURL: String?, fromEmail: String) {
        self.apiKey = apiKey
        self.region = region
        self.baseURL = baseURL
        self.fromEmail = fromEmail
        self.webhookSecrets = []
    }

    public var configuration: PagerDutyConfiguration {
        PagerDutyConfiguration(apiKey: apiKey, region: region, baseURL: baseURL, fromEmail: fromEmail)
    }

    /// Every webhook v3 event type Switchboard subscribes to.
    public static let subscribedEvents = [
        "incident.triggered", "incident.acknowledged", "incident.unacknowledged", "incident.resolved", "incident.reopened", "incident.reassigned",
        "incident.escalated", "incident.delegated", "incident.priority_updated", "incident.annotated", "incident.responder.added",
        "incident.responder.replied", "incident.status_update_published", "incident.conference_bridge.updated", "incident.service_updated",
        "incident.incident_type.changed", "incident.custom_field_values.updated", "incident.workflow.started", "incident.workflow.completed",
        "incident.action_invocation.created", "incident.action_invocation.updated", "incident.action_invocation.terminated",
    ]

    static let keys = ["pagerduty.region", "pagerduty.baseURL", "pagerduty.fromEmail", "pagerduty.subscriptionId", "pagerduty.publicURL"]

    /// The stored connection, or nil when PagerDuty is not connected.
    public static func load(box: SecretBox?, on db: any SQLDatabase) async throws -> PagerDutyConnection? {
        let values = try await SettingsStore.getMany(keys, on: db)
        guard let email = values["pagerduty.fromEmail"], !email.isEmpty else { return nil }
        guard let box else {
            throw DatabaseError("PagerDuty is connected but secret.key is not configured, so its API key cannot be read; set SWITCHBOARD_SECRET_KEY")
        }
        guard let key = try await SettingsStore.getSecret("pagerduty.apiKey", box: box, on: db) else { return nil }
        var connection = PagerDutyConnection(
            apiKey: key, region: PagerDutyRegion(rawValue: values["pagerduty.region"] ?? "us") ?? .us, baseURL: values["pagerduty.baseURL"],
            fromEmail: email)
        connection.subscriptionId = values["pagerduty.subscriptionId"]
        connection.publicURL = values["pagerduty.publicURL"]
        if let secrets = try await SettingsStore.getSecret("pagerduty.webhookSecrets", box: box, on: db) {
            connection.webhookSecrets = (try? JSONParser.parseValue(secrets).arrayValue?.compactMap(\.stringValue)) ?? []
        }
        return connection
    }

    public func save(box: SecretBox, now: Int64, on db: any SQLDatabase) async throws {
        try await SettingsStore.setSecret("pagerduty.apiKey", value: apiKey, box: box, now: now, on: db)
        try await SettingsStore.set("pagerduty.region", value: region.rawValue, now: now, on: db)
        try await SettingsStore.set("pagerduty.fromEmail", value: fromEmail, now: now, on: db)
        if let baseURL { try await SettingsStore.set("pagerduty.baseURL", value: baseURL, now: now, on: db) } else { try await SettingsStore.remove("pagerduty.baseURL", on: db) }
        if let subscriptionId {
            try await SettingsStore.set("pagerduty.subscriptionId", value: subscriptionId, now: now, on: db)
        } else {
            try await SettingsStore.remove("pagerduty.subscriptionId", on: db)
        }
        if let publicURL { try await SettingsStore.set("pagerduty.publicURL", value: publicURL, now: now, on: db) }
        let secrets = JSONValue.array(webhookSecrets.map(JSONValue.string)).serialized()
        try await SettingsStore.setSecret("pagerduty.webhookSecrets", value: secrets, box: box, now: now, on: db)
    }

    /// "Remove extension": the rule engine off, the webhook subscription forgotten, the integration email cleared.
    public static func remove(on db: any SQLDatabase, now: Int64) async throws {
        try await SettingsStore.set("engine.enabled", value: "false", now: now, on: db)
        for key in keys + ["pagerduty.apiKey", "pagerduty.webhookSecrets"] { try await SettingsStore.remove(key, on: db) }
    }
}

/// The current PagerDuty connection for a running server, re-read every few seconds so that `switchboard pagerduty
/// connect` takes effect without a restart.
public final class PagerDutyConnections: Sendable {
    let database: any Database
    let box: SecretBox?
    let staticSecrets: [String]
    let logger: Logger
    /// The last connection read (with its client), and whether it is still fresh; a stale one is read again, but
    /// still used if that read fails.
    private let cached = Mutex<(freshness: ReadFreshness, connection: PagerDutyConnection?, client: PagerDutyClient?)>((ReadFreshness(), nil, nil))

    /// - Parameter staticSecrets: webhook secrets from the configuration (`pagerduty.webhookSecrets`), accepted too.
    public init(database: any Database, box: SecretBox?, staticSecrets: [String] = [], logger: Logger) {
        self.database = database
        self.box = box
        self.staticSecrets = staticSecrets
        self.logger = logger
    }

    public func current() async -> (connection: PagerDutyConnection?, client: PagerDutyClient?) {
        let previous = cached.withLock { $0 }
        if previous.freshness.isFresh(within: .seconds(5)) { return (previous.connection, previous.client) }
        let box = self.box
        let database = self.database
        let connection: PagerDutyConnection?
        do {
            // A deadline: deliveries wait for this read, and a database that went away must not hold them past
            // PagerDuty's 5 s.
            connection = try await withDeadline(.seconds(1)) {
                try await database.read { db in try await PagerDutyConnection.load(box: box, on: db) }
            }
        } catch {
            // Cancelled means the process is stopping (a busy port, say): nothing worth an error line.
            if !(error is CancellationError) {
                logger.error("cannot read the PagerDuty connection; using the last one read", metadata: ["error": "\(error)"])
            }
            // The last connection read, not none: without it, its webhook secrets would be forgotten and unsigned
            // deliveries let in.
            connection = previous.connection
        }
        var client: PagerDutyClient?
        if let connection {
            // Keep the client (and its caches) while the connection is unchanged.
            if previous.connection == connection, let same = previous.client {
                client = same
            } else {
                client = PagerDutyClient(configuration: connection.configuration, logger: logger)
            }
        }
        cached.withLock { c in
            c.freshness.record(ticket: previous.freshness.ticket)
            (c.connection, c.client) = (connection, client)
        }
        return (connection, client)
    }

    /// Secrets that may sign deliveries: the stored subscription's and the configured ones.
    public func webhookSecrets() async -> [String] {
        staticSecrets + ((await current().connection?.webhookSecrets) ?? [])
    }

    /// The connection read again unless the cached one is younger than `age`. For a lookup that missed: PagerDuty
    /// may have been connected (or its subscription replaced) from the command line moments ago.
    public func refreshed(olderThan age: Duration = .milliseconds(500)) async -> (connection: PagerDutyConnection?, client: PagerDutyClient?) {
        let c = cached.withLock { $0 }
        if c.freshness.isFresh(within: age) { return (c.connection, c.client) }
        invalidate()
        return await current()
    }

    /// Makes the next lookup read the connection again, and any read already under way count as stale.
    public func invalidate() { cached.withLock { $0.freshness.invalidate() } }
}

/// The PagerDuty sink of a running server: the current connection's, or a clear failure when not connected.
public final class ConnectedPagerDutySink: OutboundSink {
    let connections: PagerDutyConnections
    private let sinks = Mutex<[ObjectIdentifier: PagerDutySink]>([:])

    public init(connections: PagerDutyConnections) {
        self.connections = connections
    }

    public func perform(_ request: ActionRequest) async throws(ActionFailure) -> ActionOutcome {
        var connected = await connections.current().client
        if connected == nil { connected = await connections.refreshed().client }
        guard let client = connected else {
            throw .permanent("\(request.action.rawValue) needs PagerDuty, which is not connected; run `switchboard pagerduty connect` and retry the dead letter")
        }
        let sink = sinks.withLock { cache in
            if let s = cache[ObjectIdentifier(client)] { return s }
            let s = PagerDutySink(client: client)
            cache = [ObjectIdentifier(client): s]
            return s
        }
        return try await sink.perform(request)
    }
}
