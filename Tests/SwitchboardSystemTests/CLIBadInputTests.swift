import Foundation
import SwitchboardSimulators
import SwitchboardTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Every subcommand, given bad input: the documented exit code, one `error: …` line (ArgumentParser's usage block
/// is allowed for 64), no crash, no hang.
@Suite("Bad input on the command line: one clear line and the documented exit code")
struct CLIBadInputTests {
    /// One run: the arguments, the exit code expected and a fragment the message must contain.
    struct Case: Sendable, CustomStringConvertible {
        var args: [String]
        var code: Int32
        var says: String?
        var env: [String: String] = [:]
        /// Seconds the run may take.
        var within: TimeInterval

        init(_ args: [String], _ code: Int32, _ says: String? = nil, env: [String: String] = [:], within: TimeInterval = 30) {
            self.args = args
            self.code = code
            self.says = says
            self.env = env
            self.within = within
        }

        var description: String { args.joined(separator: " ") }
    }

    static let secretKey = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    static let missingDatabase = "/nonexistent/dir/x.sqlite"
    /// Longer than any case may take: a run still going then hung, and is killed.
    static let timeout: TimeInterval = 40

    /// Runs the command line, timing it; a run still going at the deadline hung, and is killed.
    static func run(_ arguments: [String], environment: [String: String]) async throws -> (status: Int32, output: String, seconds: TimeInterval) {
        let start = Date()
        let result = try await runSwitchboard(arguments, environment: environment, timeout: timeout)
        return (result.status, result.output, Date().timeIntervalSince(start))
    }

    /// Runs each case (a few at a time) and checks the code, the one-line message and the time taken.
    func check(_ cases: [Case], environment: [String: String] = [:]) async {
        await withTaskGroup(of: (Case, Int32, String, TimeInterval)?.self) { group in
            var pending = cases[...]
            func launch() {
                guard let next = pending.popFirst() else { return }
                group.addTask {
                    do {
                        let run = try await Self.run(next.args, environment: environment.merging(next.env) { $1 })
                        return (next, run.status, run.output, run.seconds)
                    } catch {
                        Issue.record("\(next): cannot run: \(error)")
                        return nil
                    }
                }
            }
            for _ in 0..<3 { launch() }
            while let finished = await group.next() {
                launch()
                guard let (c, status, output, elapsed) = finished else { continue }
                #expect(elapsed < c.within, "\(c): took \(Int(elapsed)) s (hung, or retried for too long)")
                #expect(status == c.code, "\(c): exit \(status), expected \(c.code): \(output)")
                for crash in ["Fatal error", "Stack dump", "Current stack trace", "Segmentation fault", "Illegal instruction"] {
                    #expect(!output.contains(crash), "\(c): crashed: \(output)")
                }
                if let says = c.says { #expect(output.contains(says), "\(c): should say \"\(says)\": \(output)") }
                let lines = output.split(separator: "\n", omittingEmptySubsequences: true)
                if c.code == 64 {
                    // ArgumentParser's usage errors: a first line saying what is wrong, then the usage block.
                    #expect(lines.first?.hasPrefix("Error: ") == true, "\(c): \(output)")
                } else {
                    // One line; a rules file's problems are the one exception, listed one per line under it.
                    #expect(lines.first?.hasPrefix("error: ") == true, "\(c): \(output)")
                    let listed = lines.first?.hasSuffix("problems:") == true || lines.first?.hasSuffix("problem:") == true
                    #expect(lines.count == 1 || (listed && lines.dropFirst().allSatisfy { $0.hasPrefix("  - ") }), "\(c): one line expected: \(output)")
                }
            }
        }
    }

    /// A directory with a migrated SQLite database and some files to give the commands.
    struct Fixture {
        let dir: TemporaryDirectory
        var env: [String: String]

        init() async throws {
            dir = try TemporaryDirectory()
            env = ["SWITCHBOARD_DATABASE_URL": dir.file("db.sqlite"), "SWITCHBOARD_SECRET_KEY": CLIBadInputTests.secretKey]
            let migrated = try await runSwitchboard(["migrate"], environment: env)
            #expect(migrated.status == 0, "\(migrated.output)")
            try "rulesets: [{ name: x, rules: [{ name: r }] }]".write(toFile: invalidRules, atomically: true, encoding: .utf8)
            try "{\"broken".write(toFile: notJSON, atomically: true, encoding: .utf8)
            try Data([0x72, 0x75, 0xff, 0xfe, 0x00, 0xc3]).write(to: URL(fileURLWithPath: binary))
            try "-----BEGIN NOTHING-----\nxyz\n".write(toFile: notPEM, atomically: true, encoding: .utf8)
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            // Larger than any limit: a sparse file of 100 MB.
            _ = FileManager.default.createFile(atPath: huge, contents: nil)
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: huge))
            try handle.truncate(atOffset: 100 << 20)
            try handle.close()
            try validRules.write(toFile: rules, atomically: true, encoding: .utf8)
            try #"{"object": "Case", "isInsert": true, "old": null, "new": {"500000000000001AAA": {"Id": "500000000000001AAA", "Priority": "High"}}}"#
                .write(toFile: event, atomically: true, encoding: .utf8)
        }

        var missing: String { dir.file("missing.yaml") }
        var invalidRules: String { dir.file("invalid.yaml") }
        var notJSON: String { dir.file("broken.json") }
        var binary: String { dir.file("binary.yaml") }
        var notPEM: String { dir.file("not.pem") }
        var directory: String { dir.file("a-directory") }
        var huge: String { dir.file("huge.yaml") }
        var rules: String { dir.file("rules.yaml") }
        var event: String { dir.file("event.json") }

        let validRules = """
            version: 1
            rulesets:
              - name: main
                rules:
                  - name: Page on high priority
                    object: Case
                    runOn: salesforce
                    conditions:
                      - { field: Priority, operator: equals, value: High }
                    applyTo: new
                    actions:
                      - { action: createIncident, service: Support }
            """
    }

    /// Every command, with whether its output is data (and so takes `--json`).
    static let commands: [(path: [String], json: Bool)] = [
        (["serve"], false), (["migrate"], false), (["status"], true), (["settings", "list"], true), (["settings", "set"], false),
        (["rules", "validate"], true), (["rules", "test"], true), (["rules", "schema"], false), (["rules", "import"], false),
        (["rules", "export"], false), (["rules", "list"], true), (["rules", "enable"], false), (["rules", "disable"], false),
        (["rules", "history"], true), (["rules", "diff"], false), (["rules", "restore"], false), (["links", "list"], true),
        (["links", "add"], false), (["links", "remove"], false), (["events", "list"], true), (["events", "show"], false),
        (["events", "replay"], true), (["deadletters", "list"], true), (["deadletters", "retry"], false), (["deadletters", "drop"], false),
        (["logs"], true), (["demo"], false), (["pagerduty", "connect"], false), (["pagerduty", "status"], true), (["pagerduty", "disconnect"], false),
        (["salesforce", "connect"], false), (["salesforce", "status"], true), (["salesforce", "disconnect"], false),
        (["simulate", "pagerduty"], false), (["simulate", "salesforce"], false),
    ]

    @Test("--help on every command: usage, its exit codes, and --json where the output is data")
    func helpEverywhere() async throws {
        for command in Self.commands {
            let r = try await Self.run(command.path + ["--help"], environment: [:])
            let name = command.path.joined(separator: " ")
            #expect(r.status == 0, "\(name) --help exited \(r.status)")
            #expect(r.output.contains("USAGE: switchboard \(name)"), "\(name): \(r.output.prefix(200))")
            #expect(r.output.contains("Exit codes:"), "\(name) --help documents no exit codes")
            if command.json { #expect(r.output.contains("--json"), "\(name) prints data but has no --json") }
        }
    }

    @Test("Usage errors anywhere: unknown commands and flags, missing arguments, values of the wrong type (exit 64)")
    func usage() async throws {
        let f = try await Fixture()
        defer { f.dir.remove() }
        await check([
            Case(["nosuchcommand"], 64), Case(["--bogus"], 64), Case(["rules", "nosuch"], 64),
            Case(["serve", "--port", "abc"], 64), Case(["serve", "--bogus"], 64), Case(["migrate", "extra"], 64), Case(["status", "--bogus"], 64),
            Case(["rules", "validate"], 64), Case(["rules", "validate", f.rules, "--bogus"], 64), Case(["rules", "test", "--rules", f.rules], 64),
            Case(["rules", "test", "--rules", f.rules, "--event", f.event, "--now", "yesterday"], 64, "--now"),
            Case(["rules", "schema", "extra"], 64), Case(["rules", "import"], 64), Case(["rules", "export", "--version", "abc"], 64),
            Case(["rules", "enable"], 64), Case(["rules", "disable"], 64), Case(["rules", "history", "--bogus"], 64),
            Case(["rules", "diff", "abc"], 64), Case(["rules", "diff", "1", "2", "3"], 64), Case(["rules", "restore"], 64),
            Case(["rules", "restore", "abc"], 64), Case(["rules", "list", "--bogus"], 64),
            Case(["links", "list", "--limit", "abc"], 64), Case(["links", "list", "--limit", "0"], 64, "--limit"),
            Case(["links", "add", "--incident", "P1"], 64), Case(["links", "add", "--incident", "P1", "--record", "not-an-id"], 64),
            Case(["links", "add", "--incident", "", "--record", "5003000000D8cuI"], 64),
            Case(["links", "add", "--incident", "P1", "--record", "5003000000D8cuI", "--org-id", "nope"], 64, "--org-id"),
            Case(["links", "remove", "--record", "5003000000D8cuI"], 64),
            Case(["events", "list", "--source", "email"], 64), Case(["events", "list", "--status", "bogus"], 64, "--status"),
            Case(["events", "list", "--limit", "0"], 64, "--limit"), Case(["events", "show"], 64), Case(["events", "show", "abc"], 64),
            Case(["events", "replay"], 64), Case(["events", "replay", "abc"], 64),
            Case(["events", "replay", "1", "--apply", "--rules", f.rules], 64, "--rules"),
            Case(["deadletters", "list", "--bogus"], 64), Case(["deadletters", "retry"], 64, "--all"), Case(["deadletters", "retry", "abc"], 64),
            Case(["deadletters", "retry", "1", "--all"], 64, "--all"), Case(["deadletters", "drop"], 64), Case(["deadletters", "drop", "abc"], 64),
            Case(["logs", "--since", "yesterday"], 64), Case(["logs", "--until", "soon"], 64), Case(["logs", "--level", "loud"], 64),
            Case(["logs", "--limit", "0"], 64), Case(["logs", "--limit", "abc"], 64), Case(["logs", "--since", "1h", "--until", "2h"], 64, "--since"),
            // Times ago too long for the clock (they trapped converting to Int64).
            Case(["logs", "--since", "1e300d"], 64, "--since"), Case(["logs", "--until", "infm"], 64, "--until"),
            Case(["demo", "--port", "abc"], 64), Case(["demo", "--port", "70000"], 64, "--port"), Case(["demo", "--step-timeout", "0"], 64, "--step-timeout"),
            Case(["pagerduty", "connect"], 64), Case(["pagerduty", "connect", "--from", "a@example.com"], 64),
            Case(["pagerduty", "connect", "--from", "a@example.com", "--public-url", "ftp://x"], 64, "--public-url"),
            Case(["pagerduty", "connect", "--from", "a@example.com", "--public-url", "https://x.example.com", "--region", "mars"], 64, "--region"),
            Case(["pagerduty", "connect", "--from", "a@example.com", "--public-url", "https://x.example.com", "--base-url", "not a url"], 64, "--base-url"),
            Case(["pagerduty", "status", "--bogus"], 64), Case(["pagerduty", "disconnect", "extra"], 64),
            Case(["salesforce", "connect"], 64), Case(["salesforce", "connect", "--org-id", "nope"], 64, "--org-id"),
            Case(["salesforce", "connect", "--auth", "magic"], 64, "--auth"), Case(["salesforce", "connect", "--auth", "jwt", "--capture", "smoke"], 64, "--capture"),
            Case(["salesforce", "connect", "--auth", "jwt", "--login-url", "login.salesforce.com"], 64, "--login-url"),
            Case(["salesforce", "connect", "--auth", "client-credentials", "--consumer-key", "k", "--client-secret", "s", "--poll-seconds", "0"], 64),
            Case(["salesforce", "connect", "--auth", "client-credentials", "--client-secret", "s"], 64, "--consumer-key"),
            Case(["salesforce", "connect", "--auth", "client-credentials", "--consumer-key", "k"], 64, "--client-secret"),
            Case(["salesforce", "connect", "--auth", "jwt", "--consumer-key", "k", "--username", "u"], 64, "--private-key-file"),
            Case(["salesforce", "connect", "--auth", "refresh-token", "--consumer-key", "k"], 64, "--refresh-token"),
            Case(["salesforce", "connect", "--org-id", "00D000000000001EAA", "--objects", ",,"], 64, "--objects"),
            Case(["salesforce", "connect", "--org-id", "00D000000000001EAA", "--api-version", "latest"], 64, "--api-version"),
            Case(["salesforce", "status", "--bogus"], 64), Case(["salesforce", "disconnect"], 64),
            Case(["salesforce", "disconnect", "--org-id", "nope"], 64, "--org-id"),
            Case(["simulate", "nosuch"], 64), Case(["simulate", "pagerduty", "--port", "abc"], 64), Case(["simulate", "pagerduty", "--port", "70000"], 64, "--port"),
            Case(["simulate", "salesforce", "--capture", "smoke"], 64), Case(["simulate", "salesforce", "--capture", "trigger"], 64, "--trigger-url"),
            Case(["simulate", "salesforce", "--capture", "trigger", "--trigger-url", "nowhere"], 64, "--trigger-url"),
            Case(["simulate", "salesforce", "--port", "-5"], 64),
        ], environment: f.env)
    }

    @Test("Files: missing, a directory, not UTF-8, too large (exit 2); not valid (exit 1)")
    func files() async throws {
        let f = try await Fixture()
        defer { f.dir.remove() }
        var cases: [Case] = []
        for (path, says) in [(f.missing, "does not exist"), (f.directory, "is a directory"), (f.binary, "not UTF-8"), (f.huge, "limit")] {
            cases += [
                Case(["rules", "validate", path], 2, says), Case(["rules", "import", path], 2, says),
                Case(["rules", "test", "--rules", path, "--event", f.event], 2, says), Case(["rules", "test", "--rules", f.rules, "--event", path], 2, says),
                Case(["rules", "test", "--rules", f.rules, "--event", f.event, "--links", path], 2, says),
                Case(["rules", "test", "--rules", f.rules, "--event", f.event, "--previous-incident", path], 2, says),
                Case(["serve", "--config", path], 2, says), Case(["migrate", "--config", path], 2, says),
                Case(["events", "replay", "1", "--rules", path], 2, says),
                Case(["salesforce", "connect", "--auth", "jwt", "--consumer-key", "k", "--username", "u", "--private-key-file", path], 2, says),
                Case(["simulate", "pagerduty", "--openapi", path], 2, says), Case(["simulate", "salesforce", "--certificate", path], 2, says),
            ]
        }
        cases += [
            Case(["rules", "validate", f.invalidRules], 1, f.invalidRules), Case(["rules", "import", f.invalidRules], 1),
            Case(["rules", "test", "--rules", f.invalidRules, "--event", f.event], 1), Case(["rules", "test", "--rules", f.rules, "--event", f.notJSON], 1),
            Case(["rules", "test", "--rules", f.rules, "--event", f.event, "--links", f.notJSON], 1),
            Case(["rules", "test", "--rules", f.rules, "--event", f.event, "--previous-incident", f.notJSON], 1),
            Case(["serve", "--config", f.notJSON], 1, "not valid JSON"), Case(["events", "replay", "1", "--rules", f.invalidRules], 1),
            Case(["simulate", "pagerduty", "--openapi", f.notJSON], 1), Case(["simulate", "salesforce", "--certificate", f.notPEM], 1, "holds no PEM"),
            Case(["simulate", "salesforce", "--certificate", f.rules], 1),
            Case(
                ["salesforce", "connect", "--auth", "jwt", "--consumer-key", "k", "--username", "u", "--private-key-file", f.rules, "--login-url", "http://127.0.0.1:1"],
                1, "holds no PEM private key"),
        ]
        await check(cases, environment: f.env)
        // --json still reports invalid rules as JSON, with exit 1.
        let json = try await runSwitchboard(["rules", "validate", f.invalidRules, "--json"], environment: f.env)
        #expect(json.status == 1)
        #expect(json.output.contains("\"valid\" : false") || json.output.contains("\"valid\": false"), "\(json.output)")
    }

    @Test("Values that name nothing, and bad configuration (exit 1)")
    func values() async throws {
        let f = try await Fixture()
        defer { f.dir.remove() }
        // An empty database first: no rules, no events, no dead letters, no links, nothing connected.
        await check([
            Case(["rules", "export"], 1, "no rules are stored yet"), Case(["rules", "export", "--version", "99"], 1, "no rules version 99"),
            Case(["rules", "list"], 1, "no rules are stored yet"), Case(["rules", "enable", "main"], 1), Case(["rules", "diff"], 1),
            Case(["rules", "restore", "99"], 1, "no rules version 99"),
            Case(["events", "show", "42"], 1, "no event 42"), Case(["events", "replay", "42"], 1, "no event 42"),
            Case(["deadletters", "retry", "99999"], 1, "99999"), Case(["deadletters", "drop", "99999"], 1, "99999"),
            Case(["links", "remove", "--incident", "P1", "--record", "5003000000D8cuI"], 1, "not linked"),
            Case(["salesforce", "disconnect", "--org-id", "00D000000000001EAA"], 1, "not connected"),
            Case(["pagerduty", "connect", "--from", "a@example.com", "--public-url", "https://x.example.com"], 1, "--api-key"),
            // Bad configuration: every problem named, on one line.
            Case(["status"], 1, "secret.key (SWITCHBOARD_SECRET_KEY)", env: ["SWITCHBOARD_SECRET_KEY": "short"]),
            Case(["serve", "--port", "70000"], 1, "http.port"), Case(["serve", "--sink-url", "not a url"], 1, "sink.url"),
            Case(["serve", "--log-level", "loud"], 1, "log.level"),
            Case(["migrate"], 1, "2 problems", env: ["SWITCHBOARD_HTTP_PORT": "eighty", "SWITCHBOARD_PIPELINE_MAX_ATTEMPTS": "0"]),
            Case(["migrate", "--database-url", ""], 1, "database.url"),
        ], environment: f.env)
        // Without the encryption key, connections can be neither stored nor read.
        await check([
            Case(["pagerduty", "status"], 1, "SWITCHBOARD_SECRET_KEY"), Case(["pagerduty", "disconnect"], 1, "SWITCHBOARD_SECRET_KEY"),
            Case(["salesforce", "status"], 1, "SWITCHBOARD_SECRET_KEY"),
            Case(["salesforce", "connect", "--org-id", "00D000000000001EAA", "--trigger-secret", "s"], 1, "SWITCHBOARD_SECRET_KEY"),
            Case(["pagerduty", "connect", "--api-key", "k", "--from", "a@example.com", "--public-url", "https://x.example.com"], 1, "SWITCHBOARD_SECRET_KEY"),
        ], environment: ["SWITCHBOARD_DATABASE_URL": f.dir.file("db.sqlite")])
        // With rules stored: names and versions that do not exist.
        #expect(try await runSwitchboard(["rules", "import", f.rules], environment: f.env).status == 0)
        await check([
            Case(["rules", "enable", "nope"], 1, "no ruleset is named \"nope\""), Case(["rules", "disable", "nope"], 1, "no ruleset is named \"nope\""),
            Case(["rules", "diff", "1", "99"], 1), Case(["rules", "export", "--version", "0"], 1), Case(["rules", "restore", "0"], 1),
        ], environment: f.env)
    }

    @Test("A database that cannot be opened or reached (exit 3)")
    func database() async throws {
        let f = try await Fixture()
        defer { f.dir.remove() }
        try "this is not a database, it is a text file long enough to have a header".write(toFile: f.dir.file("text.sqlite"), atomically: true, encoding: .utf8)
        let bad = ["SWITCHBOARD_DATABASE_URL": Self.missingDatabase]
        var cases: [Case] = [
            Case(["serve", "--port", "0"], 3, "does not exist"), Case(["migrate"], 3, "does not exist"), Case(["status"], 3),
            Case(["rules", "import", f.rules], 3), Case(["rules", "export"], 3), Case(["rules", "list"], 3), Case(["rules", "enable", "main"], 3),
            Case(["rules", "disable", "main"], 3), Case(["rules", "history"], 3), Case(["rules", "diff"], 3), Case(["rules", "restore", "1"], 3),
            Case(["links", "list"], 3), Case(["links", "add", "--incident", "P1", "--record", "5003000000D8cuI"], 3),
            Case(["links", "remove", "--incident", "P1", "--record", "5003000000D8cuI"], 3),
            Case(["events", "list"], 3), Case(["events", "show", "1"], 3), Case(["events", "replay", "1"], 3),
            Case(["deadletters", "list"], 3), Case(["deadletters", "retry", "--all"], 3), Case(["deadletters", "drop", "1"], 3), Case(["logs"], 3),
            Case(["pagerduty", "status"], 3), Case(["pagerduty", "disconnect"], 3), Case(["salesforce", "status"], 3),
            Case(["salesforce", "disconnect", "--org-id", "00D000000000001EAA"], 3),
            Case(["salesforce", "connect", "--org-id", "00D000000000001EAA", "--trigger-secret", "s"], 3),
        ].map { (c: Case) -> Case in
            var c = c
            c.env = bad
            return c
        }
        cases += [
            // A file that is not a database, a directory, and a PostgreSQL server that is not there.
            Case(["status", "--database-url", f.dir.file("text.sqlite")], 3), Case(["migrate", "--database-url", f.directory], 3),
            Case(["rules", "list", "--database-url", "postgres://nobody@127.0.0.1:1/x"], 3, "postgres://127.0.0.1:1/x"),
        ]
        await check(cases, environment: f.env)
    }

    @Test("Outside services that cannot be reached or refuse (exit 1), reported within seconds")
    func unreachable() async throws {
        let f = try await Fixture()
        defer { f.dir.remove() }
        let salesforce = SalesforceSimulator(options: .init())
        try await salesforce.start()
        let pagerDuty = PagerDutySimulator(options: .init())
        try await pagerDuty.start()
        // Connected while PagerDuty answers; then PagerDuty goes away.
        let connected = try await runSwitchboard(
            ["pagerduty", "connect", "--api-key", "simulatorkey0000", "--from", "switchboard@example.com", "--public-url", "http://127.0.0.1:9", "--base-url", pagerDuty.baseURL],
            environment: f.env)
        #expect(connected.status == 0, "\(connected.output)")
        await pagerDuty.stop()
        // A refused connection is reported at once, not retried until the request's deadline.
        await check([
            Case(
                ["pagerduty", "connect", "--api-key", "k", "--from", "a@example.com", "--public-url", "https://x.example.com", "--base-url", "http://127.0.0.1:1"],
                1, "cannot reach PagerDuty", within: 10),
            Case(["pagerduty", "disconnect"], 1, "cannot delete the webhook subscription", within: 10),
            Case(
                ["salesforce", "connect", "--login-url", "http://127.0.0.1:1", "--auth", "client-credentials", "--consumer-key", "k", "--client-secret", "s"],
                1, "could not be reached", within: 10),
            Case(
                ["salesforce", "connect", "--login-url", "http://127.0.0.1:1", "--auth", "refresh-token", "--consumer-key", "k", "--refresh-token", "t"],
                1, "could not be reached", within: 10),
            // The simulator refuses a consumer key it does not know: one line, not a log warning as well.
            Case(
                ["salesforce", "connect", "--login-url", salesforce.baseURL, "--auth", "client-credentials", "--consumer-key", "someone-else", "--client-secret", "s"],
                1, "refused", within: 10),
            // Stored secrets and a different key: they cannot be decrypted (reported as the database being unusable).
            Case(["pagerduty", "status"], 3, "secret key differs", env: ["SWITCHBOARD_SECRET_KEY": String(repeating: "ab", count: 32)]),
        ], environment: f.env)
        await salesforce.stop()
        // The summaries report an unreachable service and still succeed.
        let status = try await runSwitchboard(["pagerduty", "status"], environment: f.env)
        #expect(status.status == 0 && status.output.contains("cannot be read"), "\(status.output)")
    }

    @Test("A port that is taken (exit 4), reported at once")
    func busyPort() async throws {
        let f = try await Fixture()
        defer { f.dir.remove() }
        let socket = try ListeningSocket()
        defer { socket.close() }
        let port = String(socket.port)
        await check([
            Case(["serve", "--port", port], 4, "cannot listen on 127.0.0.1:\(port)"), Case(["demo", "--port", port], 4, "cannot listen on 127.0.0.1:\(port)"),
            Case(["simulate", "pagerduty", "--port", port], 4, "cannot listen on 127.0.0.1:\(port)"),
            Case(["simulate", "salesforce", "--port", port], 4, "cannot listen on 127.0.0.1:\(port)"),
            // An address that is not this machine's (TEST-NET-1) is not reported as "in use".
            Case(["serve", "--host", "192.0.2.1", "--port", "0"], 4, "cannot listen on 192.0.2.1:0: bind"),
        ], environment: f.env)
    }
}

/// A TCP socket listening on a free loopback port, so that the port is taken.
final class ListeningSocket: Sendable {
    let descriptor: Int32
    let port: Int

    struct Failure: Error { var step: String }

    init() throws {
        #if canImport(Glibc)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw Failure(step: "socket") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 8) == 0 else {
            closeDescriptor(fd)
            throw Failure(step: "bind")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else {
            closeDescriptor(fd)
            throw Failure(step: "getsockname")
        }
        descriptor = fd
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    func close() {
        _ = shutdown(descriptor, Int32(SHUT_RDWR))
        closeDescriptor(descriptor)
    }

    /// Accepts each connection and closes it at once, without a word, until `close()`: a service that is not the one
    /// expected.
    func closeEveryConnection() {
        let fd = descriptor
        Thread.detachNewThread {
            while true {
                let connection = accept(fd, nil, nil)
                guard connection >= 0 else { return }
                closeDescriptor(connection)
            }
        }
    }
}

private func closeDescriptor(_ fd: Int32) { _ = close(fd) }
