import Foundation
import Logging
import ServiceLifecycle
import SwitchboardCore
import SwitchboardPipeline
import SwitchboardStorage

/// Keeps the webhook subscription alive: PagerDuty disables a subscription for 24 h after 3 dropped deliveries and
/// discards what happens meanwhile. Upkeep notices (`temporarily_disabled`), re-enables it, and backfills what was
/// missed from the account's log entries, so a disabled webhook loses nothing.
public final class SubscriptionUpkeep: Service {
    let connections: PagerDutyConnections
    let database: any Database
    let intake: IntakeWriter
    let clock: any WallClock
    let interval: Duration
    let logger: Logger
    let log: IntegrationLog

    public init(
        connections: PagerDutyConnections, database: any Database, intake: IntakeWriter, clock: any WallClock, log: IntegrationLog,
        interval: Duration = .seconds(60), logger: Logger
    ) {
        self.connections = connections
        self.database = database
        self.intake = intake
        self.clock = clock
        self.log = log
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: self.interval)
                do {
                    try await self.check()
                } catch where Task.isCancelled {
                    break
                } catch {
                    self.logger.error("checking the PagerDuty webhook subscription failed", metadata: ["error": "\(error)"])
                }
            }
        }
    }

    /// What one check found.
    public enum Outcome: Sendable, Hashable {
        case notConnected
        case healthy
        /// It was disabled; re-enabled, and this many missed changes were fed to the pipeline.
        case reenabled(backfilled: Int)
        case otherProcessChecking
    }

    /// Checks the subscription once, on one process at a time.
    @discardableResult
    public func check() async throws -> Outcome {
        try await database.exclusively("pagerduty-upkeep") { try await self.checkNow() } ?? .otherProcessChecking
    }

    private func checkNow() async throws -> Outcome {
        let (connection, client) = await connections.current()
        guard let connection, let client, let id = connection.subscriptionId else { return .notConnected }
        let subscription = try await client.webhookSubscription(id)
        let disabled = subscription["delivery_method"]?["temporarily_disabled"] == .bool(true) || subscription["active"] == .bool(false)
        guard disabled else { return .healthy }
        try await client.enableWebhookSubscription(id)
        let backfilled = try await backfill(client: client)
        if let entry = log.entry(.error, "webhook", "the PagerDuty webhook subscription \(id) was disabled; re-enabled it and backfilled \(backfilled) missed changes") {
            _ = try? await intake.accept([], logs: [entry])
        }
        return .reenabled(backfilled: backfilled)
    }

    /// Feeds the changes PagerDuty recorded since the last delivery Switchboard received into the pipeline, as if
    /// their webhooks had arrived.
    public func backfill(client: PagerDutyClient) async throws -> Int {
        let last = try await database.read { db in
            try await db.raw("SELECT MAX(received_at) AS t FROM inbound_events WHERE source = 'pagerduty'").first()?.decode(column: "t", as: Int64?.self)
        }
        // A minute of overlap: deliveries in flight when the subscription stopped; duplicates are harmless.
        let since = Instant(millisecondsSince1970: (last ?? (clock.millis - 86_400_000)) - 60_000).iso8601
        var events: [NewInboundEvent] = []
        var incidents: [String: JSONValue] = [:]
        for entry in try await client.logEntries(since: since) {
            guard let logId = entry["id"]?.stringValue, let name = Self.webhookEventType(forLogEntry: entry["type"]?.stringValue ?? ""),
                let incidentId = entry["incident"]?["id"]?.stringValue
            else { continue }
            var incident = incidents[incidentId]
            if incident == nil {
                incident = try await client.incident(incidentId)
                incidents[incidentId] = incident
            }
            var data: JSONValue = Self.webhookIncident(incident ?? .null)
            if name == "incident.annotated" {
                data = .object([
                    "type": "incident_note", "id": .string(logId), "content": entry["channel"]?["summary"] ?? entry["summary"] ?? .string(""), "trimmed": .bool(false),
                    "incident": .object(["id": .string(incidentId), "type": "incident_reference", "summary": incident?["title"] ?? .null]),
                ])
            }
            let body: JSONValue = .object([
                "event": .object([
                    "id": .string("backfill-\(logId)"), "event_type": .string(name), "resource_type": "incident",
                    "occurred_at": entry["created_at"] ?? .string(Instant(millisecondsSince1970: clock.millis).iso8601), "agent": entry["agent"] ?? .null,
                    "client": .object(["name": "Switchboard backfill"]), "data": data,
                ])
            ])
            events.append(NewInboundEvent(source: .pagerduty, externalId: "backfill-\(logId)", partitionKey: "pd:\(incidentId)", payload: body.serialized()))
        }
        let outcomes = try await intake.accept(events)
        return outcomes.filter { if case .accepted = $0 { true } else { false } }.count
    }

    /// The webhook event a log entry stands for.
    static func webhookEventType(forLogEntry type: String) -> String? {
        switch type {
        case "trigger_log_entry": "incident.triggered"
        case "acknowledge_log_entry": "incident.acknowledged"
        case "unacknowledge_log_entry": "incident.unacknowledged"
        case "resolve_log_entry": "incident.resolved"
        case "reopen_log_entry": "incident.reopened"
        case "assign_log_entry": "incident.reassigned"
        case "escalate_log_entry": "incident.escalated"
        case "delegate_log_entry": "incident.delegated"
        case "annotate_log_entry": "incident.annotated"
        case "priority_change_log_entry": "incident.priority_updated"
        case "responder_request_log_entry": "incident.responder.added"
        default: nil
        }
    }

    /// A REST incident in the shape webhook data has (`number`, `assignees`).
    static func webhookIncident(_ incident: JSONValue) -> JSONValue {
        guard var o = incident.objectValue else { return incident }
        o["type"] = "incident"
        if o["number"] == nil { o["number"] = o["incident_number"] }
        if o["assignees"] == nil { o["assignees"] = .array((o["assignments"]?.arrayValue ?? []).compactMap { $0["assignee"] }) }
        return .object(o)
    }
}
