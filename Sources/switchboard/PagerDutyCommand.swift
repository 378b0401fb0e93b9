import ArgumentParser
import Foundation
import SwitchboardCore
import SwitchboardPagerDuty
import SwitchboardServer
import SwitchboardStorage

struct PagerDutyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pagerduty", abstract: "Connect a PagerDuty account: API key, region, integration user, webhook subscription.",
        subcommands: [Connect.self, Status.self, Disconnect.self])

    /// A client for the command line: quiet, and failing at once on a refused connection.
    static func client(_ connection: PagerDutyConnection) -> PagerDutyClient {
        PagerDutyClient(configuration: connection.configuration, httpClient: cliHTTPClient, logger: quietLogger)
    }

    static func secretBox(_ configuration: ServerConfiguration) throws -> SecretBox {
        guard let key = configuration.secretKey else {
            throw CLIError.invalid("set secret.key (SWITCHBOARD_SECRET_KEY) first: it encrypts the API key at rest; generate one with `openssl rand -hex 32`")
        }
        return try SecretBox(encodedKey: key)
    }

    struct Connect: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check the API key, create the webhook v3 subscription for Switchboard's public URL, and store both.",
            discussion: """
                The API key is a General Access REST API key (Integrations → API Access Keys). It is stored encrypted \
                under secret.key. The integration user's email is sent as From on every write. PagerDuty will deliver \
                webhooks to PUBLIC_URL/webhooks/pagerduty, signed with a secret only returned now, which is stored encrypted too. \
                Exit codes: 0 connected, 1 refused (bad key, unknown user, PagerDuty unreachable, no secret.key), \
                3 database unreachable, 64 wrong usage.
                """)
        @OptionGroup var options: ConfigOptions
        @Option(name: .customLong("api-key"), help: "The REST API key (or env SWITCHBOARD_PAGERDUTY_API_KEY).") var apiKey: String?
        @Option(help: "The integration user's email, sent as From.") var from: String
        @Option(name: .customLong("public-url"), help: "Switchboard's public URL, e.g. https://switchboard.example.com.") var publicURL: String
        @Option(help: "us or eu.") var region: String = "us"
        @Option(name: .customLong("base-url"), help: "Override the API URL (a simulator).") var baseURL: String?
        @Option(help: "Only deliver events of this service (default: the whole account).") var service: String?

        func validate() throws {
            guard PagerDutyRegion(rawValue: region) != nil else { throw ValidationError("--region must be us or eu") }
            guard let u = URL(string: publicURL), u.scheme == "https" || u.scheme == "http", u.host != nil else {
                throw ValidationError("--public-url must be an http(s) URL")
            }
            if let baseURL {
                guard let u = URL(string: baseURL), u.scheme == "https" || u.scheme == "http", u.host != nil else {
                    throw ValidationError("--base-url must be an http(s) URL")
                }
            }
        }

        func run() async throws {
            let configuration = try await options.configuration()
            let box = try PagerDutyCommand.secretBox(configuration)
            guard let key = apiKey ?? ProcessInfo.processInfo.environment["SWITCHBOARD_PAGERDUTY_API_KEY"], !key.isEmpty else {
                throw CLIError.invalid("give the API key with --api-key or SWITCHBOARD_PAGERDUTY_API_KEY")
            }
            var connection = PagerDutyConnection(apiKey: key, region: PagerDutyRegion(rawValue: region) ?? .us, baseURL: baseURL, fromEmail: from)
            connection.publicURL = publicURL
            let client = PagerDutyCommand.client(connection)
            do {
                try await client.checkKey()
            } catch {
                throw CLIError.invalid(error.status == 401 ? "PagerDuty refused the API key (401)" : "cannot reach PagerDuty: \(error)".oneLine)
            }
            let users = try await wrap { try await client.objects(.users) }
            guard users.contains(where: { $0.email?.lowercased() == from.lowercased() }) else {
                throw CLIError.invalid("no PagerDuty user has the email \(from); the integration user must exist in the account")
            }
            var filter: [String: JSONValue] = ["type": "account_reference"]
            if let service {
                let id = try await wrap { try await client.resolve(service, as: .services) }
                filter = ["type": "service_reference", "id": .string(id)]
            }
            let previous = try await withConfiguredDatabase(configuration) { db in try await db.read { try await PagerDutyConnection.load(box: box, on: $0) } }
            if let old = previous?.subscriptionId {
                // A subscription's URL cannot be edited: replace it.
                try? await client.deleteWebhookSubscription(old)
            }
            var filterObject = JSONObject()
            for (k, v) in filter.sorted(by: { $0.key < $1.key }) { filterObject[k] = v }
            let url = publicURL.trimmingCharacters(in: CharacterSet(charactersIn: "/")) + "/webhooks/pagerduty"
            let created = try await wrap {
                try await client.createWebhookSubscription(url: url, events: PagerDutyConnection.subscribedEvents, filter: filterObject, description: "Switchboard")
            }
            connection.subscriptionId = created.id
            connection.webhookSecrets = [created.secret]
            let stored = connection
            try await withConfiguredDatabase(configuration) { db in
                try await db.transaction { sql in
                    let now = Int64(Date().timeIntervalSince1970 * 1000)
                    try await stored.save(box: box, now: now, on: sql)
                    try await AuditStore.record(actor: from, action: "pagerduty.connect", subject: created.id, detail: url, now: now, on: sql)
                }
            }
            print("Connected to PagerDuty (\(baseURL ?? connection.region.baseURL)) as \(from).")
            print("Webhook subscription \(created.id) delivers \(PagerDutyConnection.subscribedEvents.count) event types to \(url).")
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show the connection and the webhook subscription's health.",
            discussion: "Exit codes: 0 shown (a subscription that cannot be read is reported, not an error), 1 no secret.key, 3 database unreachable.")
        @OptionGroup var options: ConfigOptions
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let configuration = try await options.configuration()
            let box = try PagerDutyCommand.secretBox(configuration)
            let (connection, lastEvent, engine) = try await withConfiguredDatabase(configuration) { db in
                try await db.read { sql in
                    (
                        try await PagerDutyConnection.load(box: box, on: sql),
                        try await sql.raw("SELECT MAX(received_at) AS t FROM inbound_events WHERE source = 'pagerduty'").first()?.decode(column: "t", as: Int64?.self),
                        try await SettingsStore.get("engine.enabled", on: sql) != "false"
                    )
                }
            }
            guard let connection else {
                if json { print(JSONValue.object(["connected": .bool(false)]).serialized(pretty: true)) } else { print("PagerDuty is not connected.") }
                return
            }
            var webhook = "no subscription"
            if let id = connection.subscriptionId {
                do {
                    let sub = try await PagerDutyCommand.client(connection).webhookSubscription(id)
                    let disabled = sub["delivery_method"]?["temporarily_disabled"] == .bool(true)
                    webhook = "\(id): " + (disabled ? "temporarily disabled by PagerDuty (serve re-enables it and backfills)" : (sub["active"] == .bool(true) ? "active" : "inactive"))
                } catch {
                    webhook = "\(id): cannot be read (\(error))"
                }
            }
            let last = lastEvent.map { Instant(millisecondsSince1970: $0).iso8601 } ?? "never"
            if json {
                print(JSONValue.object([
                    "connected": .bool(true), "region": .string(connection.region.rawValue), "from": .string(connection.fromEmail),
                    "webhook": .string(webhook), "lastEvent": .string(last), "ruleEngine": .bool(engine),
                ]).serialized(pretty: true))
            } else {
                print("PagerDuty: connected (\(connection.baseURL ?? connection.region.baseURL)) as \(connection.fromEmail)")
                print("Webhook: \(webhook); last delivery \(last)")
                print("Rule engine: \(engine ? "on" : "off")")
            }
        }
    }

    struct Disconnect: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove the extension: turn the rule engine off, delete the webhook subscription, clear the integration email and key.",
            discussion: "Exit codes: 0 disconnected, 1 the subscription cannot be deleted (nothing is changed) or no secret.key, 3 database unreachable.")
        @OptionGroup var options: ConfigOptions

        func run() async throws {
            let configuration = try await options.configuration()
            let box = try PagerDutyCommand.secretBox(configuration)
            let connection = try await withConfiguredDatabase(configuration) { db in try await db.read { try await PagerDutyConnection.load(box: box, on: $0) } }
            if let connection, let id = connection.subscriptionId {
                do {
                    try await PagerDutyCommand.client(connection).deleteWebhookSubscription(id)
                } catch where error.status == 404 {
                    // Already gone.
                } catch {
                    throw CLIError.invalid("cannot delete the webhook subscription \(id): \(error); nothing was changed".oneLine)
                }
            }
            try await withConfiguredDatabase(configuration) { db in
                try await db.transaction { sql in
                    let now = Int64(Date().timeIntervalSince1970 * 1000)
                    try await PagerDutyConnection.remove(on: sql, now: now)
                    try await AuditStore.record(actor: "cli", action: "pagerduty.disconnect", subject: connection?.subscriptionId ?? "-", detail: nil, now: now, on: sql)
                }
            }
            print(connection == nil ? "PagerDuty was not connected; the rule engine is off." : "Disconnected: rule engine off, webhook subscription deleted, integration email cleared.")
        }
    }
}

/// Turns a PagerDuty error into a one-line CLI error.
func wrap<T>(_ body: () async throws -> T) async throws -> T {
    do { return try await body() } catch let error as PagerDutyError { throw CLIError.invalid("PagerDuty: \(error)".oneLine) }
}
