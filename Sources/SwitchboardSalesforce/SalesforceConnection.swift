import Foundation
import Logging
import SQLKit
import Synchronization
import SwitchboardCore
import SwitchboardPipeline
import SwitchboardStorage

/// How Switchboard hears about record changes in an org.
public enum CaptureMode: String, Sendable, Hashable, CaseIterable {
    /// The Salesforce package's Apex triggers post signed batches to `/webhooks/salesforce`.
    case trigger
    /// Change Data Capture events read over the CometD Streaming API (no Apex in the org).
    case cdc
    /// SOQL on `SystemModstamp` every few seconds (no setup in the org; costs API calls).
    case polling
}

/// How Switchboard gets a token for an org.
public enum SalesforceAuthKind: String, Sendable, Hashable, CaseIterable {
    case jwt, clientCredentials, refreshToken
}

/// One connected Salesforce org. Several orgs can share one PagerDuty account; each is keyed by its 18-character
/// org Id. Secrets (private key, client secret, refresh token, trigger secrets) are stored encrypted.
public struct SalesforceConnection: Sendable, Hashable {
    public var orgId: String
    /// `https://login.salesforce.com`, `https://test.salesforce.com`, a My Domain URL, or a simulator's URL.
    public var loginURL: String
    public var auth: SalesforceAuthKind?
    /// The connected app's consumer key (client id).
    public var consumerKey: String?
    /// The integration user (JWT `sub`).
    public var username: String?
    public var apiVersion: String
    public var capture: CaptureMode
    /// Objects whose changes are captured (CDC channels, polled objects).
    public var objects: [String]
    public var pollSeconds: Int
    /// The `Sforce-Call-Options` client name on every write; CDC's `changeOrigin` carries it back.
    public var callOptionsClient: String
    /// The instance URL from the last token response (informational; every token response updates it).
    public var instanceURL: String?

    // Secrets.
    public var privateKeyPEM: String?
    public var clientSecret: String?
    public var refreshToken: String?
    /// Secrets that sign the package's posts; several while one is being replaced.
    public var triggerSecrets: [String]

    public init(
        orgId: String, loginURL: String = "https://login.salesforce.com", auth: SalesforceAuthKind? = nil, consumerKey: String? = nil,
        username: String? = nil, apiVersion: String = "62.0", capture: CaptureMode = .trigger, objects: [String] = ["Case", "CaseComment"],
        pollSeconds: Int = 15, callOptionsClient: String = "switchboard", triggerSecrets: [String] = []
    ) {
        self.orgId = SalesforceId.normalized(orgId)
        self.loginURL = loginURL
        self.auth = auth
        self.consumerKey = consumerKey
        self.username = username
        self.apiVersion = apiVersion
        self.capture = capture
        self.objects = objects
        self.pollSeconds = pollSeconds
        self.callOptionsClient = callOptionsClient
        self.triggerSecrets = triggerSecrets
    }

    /// True when Switchboard can call the org's API (not only receive its trigger posts).
    public var hasAPIAccess: Bool { auth != nil }

    static let prefix = "salesforce.org."

    var publicJSON: JSONValue {
        var o: JSONObject = [
            "orgId": .string(orgId), "loginURL": .string(loginURL), "apiVersion": .string(apiVersion), "capture": .string(capture.rawValue),
            "objects": .array(objects.map(JSONValue.string)), "pollSeconds": .number(Double(pollSeconds)),
            "callOptionsClient": .string(callOptionsClient),
        ]
        if let auth { o["auth"] = .string(auth.rawValue) }
        if let consumerKey { o["consumerKey"] = .string(consumerKey) }
        if let username { o["username"] = .string(username) }
        if let instanceURL { o["instanceURL"] = .string(instanceURL) }
        return .object(o)
    }

    var secretJSON: JSONValue {
        var o: JSONObject = ["triggerSecrets": .array(triggerSecrets.map(JSONValue.string))]
        if let privateKeyPEM { o["privateKeyPEM"] = .string(privateKeyPEM) }
        if let clientSecret { o["clientSecret"] = .string(clientSecret) }
        if let refreshToken { o["refreshToken"] = .string(refreshToken) }
        return .object(o)
    }

    init?(publicJSON: JSONValue, secretJSON: JSONValue?) {
        guard let orgId = publicJSON["orgId"]?.stringValue else { return nil }
        self.init(
            orgId: orgId, loginURL: publicJSON["loginURL"]?.stringValue ?? "https://login.salesforce.com",
            auth: publicJSON["auth"]?.stringValue.flatMap(SalesforceAuthKind.init(rawValue:)), consumerKey: publicJSON["consumerKey"]?.stringValue,
            username: publicJSON["username"]?.stringValue, apiVersion: publicJSON["apiVersion"]?.stringValue ?? "62.0",
            capture: publicJSON["capture"]?.stringValue.flatMap(CaptureMode.init(rawValue:)) ?? .trigger,
            objects: publicJSON["objects"]?.arrayValue?.compactMap(\.stringValue) ?? ["Case"],
            pollSeconds: { if case .number(let n)? = publicJSON["pollSeconds"] { Int(n) } else { 15 } }(), callOptionsClient: publicJSON["callOptionsClient"]?.stringValue ?? "switchboard")
        instanceURL = publicJSON["instanceURL"]?.stringValue
        triggerSecrets = secretJSON?["triggerSecrets"]?.arrayValue?.compactMap(\.stringValue) ?? []
        privateKeyPEM = secretJSON?["privateKeyPEM"]?.stringValue
        clientSecret = secretJSON?["clientSecret"]?.stringValue
        refreshToken = secretJSON?["refreshToken"]?.stringValue
    }

    /// Every connected org.
    public static func loadAll(box: SecretBox?, on db: any SQLDatabase) async throws -> [SalesforceConnection] {
        var connections: [SalesforceConnection] = []
        for (key, value) in try await SettingsStore.all(on: db) where key.hasPrefix(prefix) && !key.hasSuffix(".secrets") {
            guard let json = try? JSONParser.parseValue(value) else { continue }
            guard let box else {
                throw DatabaseError("a Salesforce org is connected but secret.key is not configured, so its secrets cannot be read; set SWITCHBOARD_SECRET_KEY")
            }
            let secrets = try await SettingsStore.getSecret(key + ".secrets", box: box, on: db).flatMap { try? JSONParser.parseValue($0) }
            if let connection = SalesforceConnection(publicJSON: json, secretJSON: secrets) { connections.append(connection) }
        }
        return connections.sorted { $0.orgId < $1.orgId }
    }

    public static func load(orgId: String, box: SecretBox?, on db: any SQLDatabase) async throws -> SalesforceConnection? {
        try await loadAll(box: box, on: db).first { SalesforceId.same($0.orgId, orgId) }
    }

    public func save(box: SecretBox, now: Int64, on db: any SQLDatabase) async throws {
        let key = Self.prefix + orgId
        try await SettingsStore.set(key, value: publicJSON.serialized(), now: now, on: db)
        try await SettingsStore.setSecret(key + ".secrets", value: secretJSON.serialized(), box: box, now: now, on: db)
    }

    /// "Remove extension" for one org: its settings and secrets forgotten; captured state (replay ids, poll marks) too.
    public static func remove(orgId: String, on db: any SQLDatabase) async throws -> Bool {
        let org = SalesforceId.normalized(orgId)
        var removed = false
        for (key, _) in try await SettingsStore.all(on: db)
        where key == prefix + org || key == prefix + org + ".secrets" || key.hasPrefix("salesforce.capture.\(org).") {
            try await SettingsStore.remove(key, on: db)
            removed = true
        }
        return removed
    }
}

/// The connected orgs of a running server, re-read every few seconds so that `switchboard salesforce connect`
/// takes effect without a restart.
public final class SalesforceConnections: Sendable {
    let database: any Database
    let box: SecretBox?
    let logger: Logger
    /// The last list read (nil before the first), and whether it is still fresh; a stale list is read again, but
    /// still used if that read fails.
    private let cached = Mutex<(freshness: ReadFreshness, connections: [SalesforceConnection]?)>((ReadFreshness(), nil))

    public init(database: any Database, box: SecretBox?, logger: Logger) {
        self.database = database
        self.box = box
        self.logger = logger
    }

    public func all() async -> [SalesforceConnection] {
        let (fresh, ticket) = cached.withLock { c in (c.freshness.isFresh(within: .seconds(5)) ? c.connections : nil, c.freshness.ticket) }
        if let fresh { return fresh }
        let box = self.box
        let database = self.database
        let connections: [SalesforceConnection]
        do {
            // A deadline: trigger posts wait for this read, and a database that went away must not hold them.
            connections = try await withDeadline(.seconds(1)) {
                try await database.read { db in try await SalesforceConnection.loadAll(box: box, on: db) }
            }
        } catch {
            // Cancelled means the process is stopping (a busy port, say): nothing worth an error line.
            if !(error is CancellationError) {
                logger.error("cannot read the Salesforce connections; using the last ones read", metadata: ["error": "\(error)"])
            }
            // The last list read, not none: without it, the orgs' trigger secrets would be forgotten and unsigned
            // posts let in.
            connections = cached.withLock { $0.connections } ?? []
        }
        cached.withLock { c in
            c.freshness.record(ticket: ticket)
            c.connections = connections
        }
        return connections
    }

    public func connection(orgId: String) async -> SalesforceConnection? {
        await all().first { SalesforceId.same($0.orgId, orgId) }
    }

    /// The connections read again unless the cached list is younger than `age`. For a lookup that missed: the org
    /// may have been connected from the command line moments ago, and failing its work for good would be wrong.
    public func refreshed(olderThan age: Duration = .milliseconds(500)) async -> [SalesforceConnection] {
        if let fresh = cached.withLock({ $0.freshness.isFresh(within: age) ? $0.connections : nil }) { return fresh }
        invalidate()
        return await all()
    }

    /// Makes the next lookup read the connections again, and any read already under way count as stale.
    public func invalidate() { cached.withLock { $0.freshness.invalidate() } }
}
