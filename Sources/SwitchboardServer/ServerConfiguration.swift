import Configuration
import Foundation
import SwitchboardPipeline
import SwitchboardStorage

/// Every problem found in the configuration at once, named by key, with the environment variable that sets it.
public struct ConfigurationError: Error, CustomStringConvertible, Sendable {
    public var problems: [String]

    public var description: String {
        "the configuration has \(problems.count) problem\(problems.count == 1 ? "" : "s"):\n" + problems.map { "  - " + $0 }.joined(separator: "\n")
    }
}

/// The server's configuration, read from flags, the environment (`SWITCHBOARD_…`), a JSON config file and
/// defaults, in that order of precedence. See the README's configuration reference.
public struct ServerConfiguration: Sendable {
    public var host = "127.0.0.1"
    public var port = 8080
    public var databaseURL = "switchboard.sqlite"
    /// The key that encrypts stored secrets (hex or base64, 32 bytes), if given.
    public var secretKey: String?
    /// Process log level (trace … critical) and format (text or json).
    public var logLevel = "info"
    public var logFormat = "text"
    /// Where actions go until the PagerDuty and Salesforce connectors are configured: a URL that receives each
    /// action as JSON.
    public var sinkURL: String?
    public var pipeline = PipelineSettings()
    /// PagerDuty delivers at most 256 KB; anything larger is not PagerDuty.
    public var pagerDutyMaxBodyBytes = 256 * 1024
    /// Webhook signing secrets given in the configuration, in addition to the stored subscription's.
    public var pagerDutyWebhookSecrets: [String] = []
    /// How often the webhook subscription is checked (and re-enabled and backfilled when PagerDuty disabled it).
    public var pagerDutyUpkeepInterval: Duration = .seconds(60)
    public var salesforceMaxBodyBytes = 6 * 1024 * 1024
    /// How often change capture looks for orgs connected, changed or removed (tests shorten it).
    public var salesforceCaptureReconcile: Duration = .seconds(5)
    /// How long work waits after an org's API budget is spent, in seconds.
    public var salesforceLimitWaitSeconds: Double = 60
    /// Names this process in leases and logs.
    public var instanceId = "\(ProcessInfo.processInfo.hostName)-\(ProcessInfo.processInfo.processIdentifier)"

    public init() {}

    /// Every key, with its meaning, for the README and `--help`.
    public static let keys: [(key: String, meaning: String)] = [
        ("http.host", "address to listen on (default 127.0.0.1)"),
        ("http.port", "port to listen on; 0 picks a free one (default 8080)"),
        ("database.url", "sqlite file path or sqlite:///path, or postgres://user:password@host:port/database (default switchboard.sqlite)"),
        ("secret.key", "32-byte key, hex or base64, that encrypts stored secrets"),
        ("secret.keyFile", "a file holding that key"),
        ("log.level", "process log level: trace, debug, info, notice, warning, error, critical (default info)"),
        ("log.format", "text or json (default text)"),
        ("sink.url", "URL that receives actions as JSON while no connector is configured"),
        ("pipeline.maxAttempts", "attempts per action before it becomes a dead letter (default 8)"),
        ("pipeline.backoffBaseSeconds", "first retry delay (default 2)"),
        ("pipeline.backoffCapSeconds", "longest retry delay (default 600)"),
        ("pipeline.leaseSeconds", "how long a process holds a job before another may take it (default 60)"),
        ("pipeline.concurrency", "actions carried out at once per process (default 64)"),
        ("pipeline.pollMilliseconds", "how often to look for work written by other processes (default 250)"),
        ("pipeline.hopLimit", "rule firings allowed on a subject Switchboard just wrote to, per window (default 5)"),
        ("pipeline.hopWindowSeconds", "the loop-detection window (default 600)"),
        ("intake.pagerDutyMaxBytes", "largest PagerDuty delivery accepted (default 262144, PagerDuty's own limit)"),
        ("pagerduty.webhookSecrets", "webhook signing secrets (comma-separated) accepted besides the connected subscription's"),
        ("pagerduty.upkeepSeconds", "how often the webhook subscription is checked, re-enabled and backfilled (default 60)"),
        ("intake.salesforceMaxBytes", "largest Salesforce payload accepted (default 6291456)"),
        ("salesforce.limitWaitSeconds", "how long work waits after an org's API budget is spent (REQUEST_LIMIT_EXCEEDED) before trying again (default 60)"),
        ("instance.id", "names this process in leases and logs (default host-pid)"),
    ]

    /// The environment variable for a key: `pipeline.maxAttempts` → `SWITCHBOARD_PIPELINE_MAX_ATTEMPTS`.
    public static func environmentName(_ key: String) -> String {
        var out = "SWITCHBOARD_"
        for c in key {
            if c == "." {
                out += "_"
            } else if c.isUppercase {
                out += "_" + String(c)
            } else {
                out += c.uppercased()
            }
        }
        return out
    }

    /// Builds the reader: flags first, then `SWITCHBOARD_…` variables, then the config file, then defaults.
    public static func reader(flags: [String: String], environment: [String: String], configFile: String?) async throws -> ConfigReader {
        var providers: [any ConfigProvider] = []
        providers.append(InMemoryProvider(values: Dictionary(uniqueKeysWithValues: flags.map { (AbsoluteConfigKey(stringLiteral: $0.key), ConfigValue(.string($0.value), isSecret: false)) })))
        var env: [String: String] = [:]
        for (name, value) in environment where name.hasPrefix("SWITCHBOARD_") { env[String(name.dropFirst("SWITCHBOARD_".count))] = value }
        providers.append(EnvironmentVariablesProvider(environmentVariables: env))
        if let configFile {
            guard FileManager.default.fileExists(atPath: configFile) else {
                throw ConfigurationError(problems: ["config file \(configFile) does not exist"])
            }
            do {
                providers.append(try await FileProvider<JSONSnapshot>(filePath: .init(configFile)))
            } catch {
                throw ConfigurationError(problems: ["config file \(configFile) is not valid JSON: \(error)"])
            }
        }
        return ConfigReader(providers: providers)
    }

    /// Reads and checks every key, reporting all problems together.
    public init(reader: ConfigReader) throws(ConfigurationError) {
        var problems: [String] = []
        func raw(_ key: String) -> String? {
            let k = ConfigKey(key)
            if let s = reader.string(forKey: k, isSecret: key.hasPrefix("secret")) { return s }
            if let i = reader.int(forKey: k) { return String(i) }
            if let d = reader.double(forKey: k) { return String(d) }
            if let b = reader.bool(forKey: k) { return String(b) }
            return nil
        }
        func bad(_ key: String, _ value: String, _ expected: String) {
            let shown = key.hasPrefix("secret") ? "(hidden)" : "\"\(value)\""
            problems.append("\(key) (\(ServerConfiguration.environmentName(key))) is \(shown); expected \(expected)")
        }
        func int(_ key: String, _ range: ClosedRange<Int>, into target: inout Int) {
            guard let v = raw(key) else { return }
            guard let n = Int(v), range.contains(n) else { return bad(key, v, "a whole number from \(range.lowerBound) to \(range.upperBound)") }
            target = n
        }
        func double(_ key: String, _ range: ClosedRange<Double>, into target: inout Double) {
            guard let v = raw(key) else { return }
            guard let n = Double(v), range.contains(n) else { return bad(key, v, "a number from \(range.lowerBound) to \(range.upperBound)") }
            target = n
        }
        if let v = raw("http.host") { host = v }
        int("http.port", 0...65535, into: &port)
        if let v = raw("database.url") {
            if v.isEmpty { bad("database.url", v, "a file path or a postgres:// URL") } else { databaseURL = v }
        }
        if let v = raw("secret.key") {
            if (try? SecretBox(encodedKey: v)) == nil { bad("secret.key", v, "32 bytes as 64 hex characters or base64 (openssl rand -hex 32)") } else { secretKey = v }
        } else if let path = raw("secret.keyFile") {
            if let text = try? String(contentsOfFile: path, encoding: .utf8), (try? SecretBox(encodedKey: text)) != nil {
                secretKey = text.trimmingCharacters(in: .whitespacesAndNewlines)
            } else {
                problems.append("secret.keyFile (SWITCHBOARD_SECRET_KEY_FILE) \(path) cannot be read or does not hold a 32-byte key")
            }
        }
        if let v = raw("log.level") {
            if ["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(v.lowercased()) { logLevel = v.lowercased() } else {
                bad("log.level", v, "one of trace, debug, info, notice, warning, error, critical")
            }
        }
        if let v = raw("log.format") {
            if ["text", "json"].contains(v.lowercased()) { logFormat = v.lowercased() } else { bad("log.format", v, "text or json") }
        }
        if let v = raw("sink.url") {
            if let u = URL(string: v), u.scheme == "http" || u.scheme == "https", u.host != nil { sinkURL = v } else { bad("sink.url", v, "an http(s) URL") }
        }
        int("pipeline.maxAttempts", 1...100, into: &pipeline.maxAttempts)
        double("pipeline.backoffBaseSeconds", 0.001...3600, into: &pipeline.backoff.base)
        double("pipeline.backoffCapSeconds", 0.001...86_400, into: &pipeline.backoff.cap)
        var lease = Int(pipeline.leaseMilliseconds / 1000)
        int("pipeline.leaseSeconds", 1...3600, into: &lease)
        pipeline.leaseMilliseconds = Int64(lease) * 1000
        int("pipeline.concurrency", 1...256, into: &pipeline.dispatchConcurrency)
        var poll = 250
        int("pipeline.pollMilliseconds", 10...60_000, into: &poll)
        pipeline.pollInterval = .milliseconds(poll)
        int("pipeline.hopLimit", 1...1000, into: &pipeline.hopLimit)
        var window = Int(pipeline.hopWindowMilliseconds / 1000)
        int("pipeline.hopWindowSeconds", 1...86_400, into: &window)
        pipeline.hopWindowMilliseconds = Int64(window) * 1000
        int("intake.pagerDutyMaxBytes", 1024...(64 << 20), into: &pagerDutyMaxBodyBytes)
        int("intake.salesforceMaxBytes", 1024...(64 << 20), into: &salesforceMaxBodyBytes)
        if let v = raw("instance.id"), !v.isEmpty { instanceId = v }
        if let v = raw("pagerduty.webhookSecrets") {
            pagerDutyWebhookSecrets = v.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        var upkeep = 60
        int("pagerduty.upkeepSeconds", 1...86_400, into: &upkeep)
        pagerDutyUpkeepInterval = .seconds(upkeep)
        double("salesforce.limitWaitSeconds", 0.01...86_400, into: &salesforceLimitWaitSeconds)
        if !problems.isEmpty { throw ConfigurationError(problems: problems) }
    }
}
