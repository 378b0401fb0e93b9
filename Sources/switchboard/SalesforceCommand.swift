import ArgumentParser
import Foundation
import SwitchboardCore
import SwitchboardSalesforce
import SwitchboardServer
import SwitchboardStorage

struct SalesforceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "salesforce", abstract: "Connect Salesforce orgs: OAuth, trigger secret, and how changes are captured.",
        subcommands: [Connect.self, Status.self, Disconnect.self])

    struct Connect: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check the org's OAuth settings, then store them (secrets encrypted) with the trigger secret and the capture mode.",
            discussion: """
                --auth jwt needs --consumer-key, --username and --private-key-file (the key whose certificate is on the connected \
                app); client-credentials needs --consumer-key and --client-secret and a My Domain --login-url; refresh-token needs \
                --consumer-key and --refresh-token. Without --auth the org only posts trigger batches and Flow actions (give \
                --org-id and --trigger-secret). Secrets may come from SWITCHBOARD_SALESFORCE_CLIENT_SECRET, \
                SWITCHBOARD_SALESFORCE_REFRESH_TOKEN and SWITCHBOARD_SALESFORCE_TRIGGER_SECRET instead of flags. \
                Connecting an org again replaces its settings; --keep-old-secret accepts the previous trigger secret too while \
                the org is switched over. Exit codes: 0 connected, 1 refused (the org refuses or cannot be reached, no \
                secret.key), 2 unreadable key file, 3 database unreachable, 64 wrong usage (a flow's flag missing, a bad value).
                """)
        @OptionGroup var options: ConfigOptions
        @Option(name: .customLong("login-url"), help: "https://login.salesforce.com, https://test.salesforce.com, a My Domain URL, or a simulator's.")
        var loginURL: String = "https://login.salesforce.com"
        @Option(help: "jwt, client-credentials or refresh-token; leave out for an org that only posts to Switchboard.") var auth: String?
        @Option(name: .customLong("consumer-key"), help: "The connected app's consumer key (client id).") var consumerKey: String?
        @Option(help: "The integration user (JWT).") var username: String?
        @Option(name: .customLong("private-key-file"), help: "PEM file with the connected app's private key (JWT).") var privateKeyFile: String?
        @Option(name: .customLong("client-secret"), help: "The connected app's consumer secret.") var clientSecret: String?
        @Option(name: .customLong("refresh-token"), help: "A refresh token (refresh-token flow).") var refreshToken: String?
        @Option(name: .customLong("trigger-secret"), help: "The secret in the org's Switchboard Settings that signs its posts.") var triggerSecret: String?
        @Flag(name: .customLong("keep-old-secret"), help: "Keep accepting the previous trigger secret (rotation).") var keepOldSecret = false
        @Option(name: .customLong("org-id"), help: "The org's Id (needed without --auth; checked against the token with it).") var orgId: String?
        @Option(help: "trigger, cdc or polling.") var capture: String = "trigger"
        @Option(help: "Objects whose changes are captured, comma-separated.") var objects: String = "Case,CaseComment"
        @Option(name: .customLong("api-version"), help: "The REST API version.") var apiVersion: String = "62.0"
        @Option(name: .customLong("poll-seconds"), help: "Polling interval.") var pollSeconds: Int = 15
        @Option(name: .customLong("client-name"), help: "Sforce-Call-Options client name on every write.") var clientName: String = "switchboard"

        func validate() throws {
            guard let u = URL(string: loginURL), u.scheme == "https" || u.scheme == "http", u.host != nil else {
                throw ValidationError("--login-url must be an http(s) URL")
            }
            guard CaptureMode(rawValue: capture) != nil else { throw ValidationError("--capture must be trigger, cdc or polling") }
            if let auth, Self.authKind(auth) == nil { throw ValidationError("--auth must be jwt, client-credentials or refresh-token") }
            if auth == nil, capture != "trigger" { throw ValidationError("--capture \(capture) reads the org's API: give --auth") }
            if auth == nil, orgId == nil { throw ValidationError("without --auth, give --org-id") }
            if let orgId, !SalesforceId.isValid(orgId) { throw ValidationError("--org-id must be a 15- or 18-character Salesforce Id") }
            guard (1...3600).contains(pollSeconds) else { throw ValidationError("--poll-seconds must be between 1 and 3600") }
            guard objects.split(separator: ",").contains(where: { !$0.trimmingCharacters(in: .whitespaces).isEmpty }) else {
                throw ValidationError("--objects must name at least one object, e.g. Case,CaseComment")
            }
            guard apiVersion.wholeMatch(of: /[0-9]+\.[0-9]+/) != nil else { throw ValidationError("--api-version must look like 62.0") }
            // What each flow needs, named before anything is sent (secrets may come from the environment).
            let env = ProcessInfo.processInfo.environment
            func given(_ flag: String?, _ variable: String? = nil) -> Bool {
                !(flag ?? variable.flatMap { env[$0] } ?? "").isEmpty
            }
            switch auth.flatMap(Self.authKind) {
            case .jwt?:
                guard given(consumerKey), given(username), given(privateKeyFile) else {
                    throw ValidationError("--auth jwt needs --consumer-key, --username and --private-key-file")
                }
            case .clientCredentials?:
                guard given(consumerKey), given(clientSecret, "SWITCHBOARD_SALESFORCE_CLIENT_SECRET") else {
                    throw ValidationError("--auth client-credentials needs --consumer-key and --client-secret (or SWITCHBOARD_SALESFORCE_CLIENT_SECRET)")
                }
            case .refreshToken?:
                guard given(consumerKey), given(refreshToken, "SWITCHBOARD_SALESFORCE_REFRESH_TOKEN") else {
                    throw ValidationError("--auth refresh-token needs --consumer-key and --refresh-token (or SWITCHBOARD_SALESFORCE_REFRESH_TOKEN)")
                }
            case nil:
                break
            }
        }

        static func authKind(_ text: String) -> SalesforceAuthKind? {
            switch text {
            case "jwt": .jwt
            case "client-credentials": .clientCredentials
            case "refresh-token": .refreshToken
            default: nil
            }
        }

        func run() async throws {
            let configuration = try await options.configuration()
            let box = try PagerDutyCommand.secretBox(configuration)
            let env = ProcessInfo.processInfo.environment
            var connection = SalesforceConnection(
                orgId: orgId ?? "", loginURL: loginURL.trimmingCharacters(in: CharacterSet(charactersIn: "/")), auth: auth.flatMap(Self.authKind),
                consumerKey: consumerKey, username: username, apiVersion: apiVersion, capture: CaptureMode(rawValue: capture) ?? .trigger,
                objects: objects.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty },
                pollSeconds: pollSeconds, callOptionsClient: clientName)
            if let privateKeyFile {
                let pem = try readTextFile(privateKeyFile, limit: 64 * 1024, what: "private key")
                // Caught here, it is a bad file; caught when signing, it reads as the org refusing.
                guard pem.contains("-----BEGIN") && pem.contains("PRIVATE KEY-----") else {
                    throw CLIError.invalid("the private key \(privateKeyFile) holds no PEM private key (-----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----)")
                }
                connection.privateKeyPEM = pem
            }
            connection.clientSecret = clientSecret ?? env["SWITCHBOARD_SALESFORCE_CLIENT_SECRET"]
            connection.refreshToken = refreshToken ?? env["SWITCHBOARD_SALESFORCE_REFRESH_TOKEN"]
            if let secret = triggerSecret ?? env["SWITCHBOARD_SALESFORCE_TRIGGER_SECRET"], !secret.isEmpty { connection.triggerSecrets = [secret] }

            var lines: [String] = []
            if connection.hasAPIAccess {
                let provider: SalesforceTokenProvider
                do { provider = try SalesforceTokenProvider(connection: connection, httpClient: cliHTTPClient, logger: quietLogger) } catch {
                    throw CLIError.invalid("\(error)".oneLine)
                }
                let session: SalesforceSession
                do { session = try await provider.session() } catch { throw CLIError.invalid("\(error)".oneLine) }
                guard let org = session.orgId else { throw CLIError.invalid("the token response names no org (its `id` is not …/id/<org>/<user>)") }
                if let orgId, !SalesforceId.same(orgId, org) {
                    throw CLIError.invalid("the token is for org \(org), not --org-id \(orgId)")
                }
                connection.orgId = SalesforceId.normalized(org)
                connection.instanceURL = session.instanceURL
                let client = SalesforceClient(
                    sessions: provider, configuration: .init(apiVersion: apiVersion, callOptionsClient: clientName), httpClient: cliHTTPClient, logger: quietLogger)
                for object in connection.objects {
                    do { _ = try await client.describe(object) } catch {
                        throw CLIError.invalid("cannot describe \(object) in org \(org): \(error); check the object name and the user's permissions".oneLine)
                    }
                }
                lines.append("Authorised (\(connection.auth?.rawValue ?? "")) at \(session.instanceURL) as user \(session.userId ?? "?").")
                if let budget = try? await client.limits()["DailyApiRequests"] {
                    lines.append("API budget: \(budget.remaining) of \(budget.max) daily requests left.")
                }
            }
            let stored = connection
            let previous = try await withConfiguredDatabase(configuration) { db in
                try await db.transaction { sql -> SalesforceConnection? in
                    let previous = try await SalesforceConnection.load(orgId: stored.orgId, box: box, on: sql)
                    var next = stored
                    if next.triggerSecrets.isEmpty { next.triggerSecrets = previous?.triggerSecrets ?? [] }
                    if keepOldSecret, let old = previous?.triggerSecrets.first, !next.triggerSecrets.contains(old) { next.triggerSecrets.append(old) }
                    let now = Int64(Date().timeIntervalSince1970 * 1000)
                    try await next.save(box: box, now: now, on: sql)
                    try await AuditStore.record(
                        actor: next.username ?? "cli", action: "salesforce.connect", subject: next.orgId, detail: "capture \(next.capture.rawValue)",
                        now: now, on: sql)
                    return previous
                }
            }
            print("Connected Salesforce org \(connection.orgId) (\(connection.loginURL))\(previous == nil ? "" : ", replacing its earlier settings").")
            for line in lines { print(line) }
            switch connection.capture {
            case .trigger: print("Changes arrive from the Salesforce package's triggers at /webhooks/salesforce (signed with the trigger secret).")
            case .cdc: print("Changes are read from Change Data Capture channels: \(connection.objects.map { "/data/\($0)ChangeEvent" }.joined(separator: ", ")).")
            case .polling: print("Changes are polled every \(connection.pollSeconds) s on SystemModstamp: \(connection.objects.joined(separator: ", ")).")
            }
            if connection.triggerSecrets.isEmpty && previous?.triggerSecrets.isEmpty != false {
                print("No trigger secret: posts from this org's package are refused until one is set (--trigger-secret).")
            }
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show each connected org: authorisation, capture, API budget, last change seen.",
            discussion: "Exit codes: 0 shown (an org whose authorisation fails is reported, not an error), 1 no secret.key, 3 database unreachable.")
        @OptionGroup var options: ConfigOptions
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let configuration = try await options.configuration()
            let box = try PagerDutyCommand.secretBox(configuration)
            let connections = try await withConfiguredDatabase(configuration) { db in
                try await db.read { sql in try await SalesforceConnection.loadAll(box: box, on: sql) }
            }
            var out: [JSONValue] = []
            for connection in connections {
                var o: JSONObject = [
                    "orgId": .string(connection.orgId), "loginURL": .string(connection.loginURL), "capture": .string(connection.capture.rawValue),
                    "objects": .array(connection.objects.map(JSONValue.string)), "triggerSecrets": .number(Double(connection.triggerSecrets.count)),
                    "auth": connection.auth.map { .string($0.rawValue) } ?? .null,
                ]
                if connection.hasAPIAccess {
                    do {
                        let provider = try SalesforceTokenProvider(connection: connection, httpClient: cliHTTPClient, logger: quietLogger)
                        let client = SalesforceClient(
                            sessions: provider, configuration: .init(apiVersion: connection.apiVersion), httpClient: cliHTTPClient, logger: quietLogger)
                        let limits = try await client.limits()
                        o["authorised"] = .bool(true)
                        if let daily = limits["DailyApiRequests"] {
                            o["apiBudget"] = .object(["max": .number(Double(daily.max)), "remaining": .number(Double(daily.remaining))])
                        }
                    } catch {
                        o["authorised"] = .bool(false)
                        o["error"] = .string("\(error)")
                    }
                }
                out.append(.object(o))
            }
            if json {
                print(JSONValue.object(["orgs": .array(out)]).serialized(pretty: true))
                return
            }
            guard !out.isEmpty else {
                print("No Salesforce org is connected.")
                return
            }
            for org in out {
                let id = org["orgId"]?.stringValue ?? ""
                let auth = org["auth"]?.stringValue.map { "OAuth \($0)" } ?? "posts only (no API access)"
                print("Org \(id) (\(org["loginURL"]?.stringValue ?? "")): \(auth)")
                print("  Capture: \(org["capture"]?.stringValue ?? "") of \(org["objects"]?.arrayValue?.compactMap(\.stringValue).joined(separator: ", ") ?? "")")
                if case .number(let n)? = org["triggerSecrets"] { print("  Trigger secrets: \(Int(n))") }
                if org["authorised"] == .bool(false) { print("  Authorisation failing: \(org["error"]?.stringValue ?? "")") }
                if let b = org["apiBudget"], case .number(let remaining)? = b["remaining"], case .number(let max)? = b["max"] {
                    print("  API budget: \(Int(remaining)) of \(Int(max)) daily requests left")
                }
            }
        }
    }

    struct Disconnect: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove an org: its settings, secrets and capture state are deleted; its posts are refused from then on.",
            discussion: "Exit codes: 0 removed, 1 the org is not connected, 3 database unreachable, 64 wrong usage (an --org-id that is not an Id).")
        @OptionGroup var options: ConfigOptions
        @Option(name: .customLong("org-id"), help: "The org to remove.") var orgId: String

        func validate() throws {
            guard SalesforceId.isValid(orgId) else { throw ValidationError("--org-id must be a 15- or 18-character Salesforce Id") }
        }

        func run() async throws {
            let configuration = try await options.configuration()
            let org = orgId
            let removed = try await withConfiguredDatabase(configuration) { db in
                try await db.transaction { sql in
                    let removed = try await SalesforceConnection.remove(orgId: org, on: sql)
                    if removed {
                        try await AuditStore.record(
                            actor: "cli", action: "salesforce.disconnect", subject: SalesforceId.normalized(org), detail: nil,
                            now: Int64(Date().timeIntervalSince1970 * 1000), on: sql)
                    }
                    return removed
                }
            }
            guard removed else { throw CLIError.invalid("org \(orgId) is not connected; `switchboard salesforce status` lists the connected ones") }
            print("Disconnected Salesforce org \(SalesforceId.normalized(orgId)).")
        }
    }
}
