import ArgumentParser
import Foundation
import SwitchboardCore
import SwitchboardStorage

struct RulesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rules",
        abstract: "Validate, test and describe rulesets.",
        subcommands: [Validate.self, Test.self, Schema.self, Import.self, Export.self, List.self, Enable.self, Disable.self, History.self, Diff.self, Restore.self]
    )

    struct Validate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a rules file (YAML or JSON) and report every problem with its location.",
            discussion: "Exit codes: 0 the file is valid, 1 it has problems (each listed on its own line), 2 it cannot be read, 64 wrong usage."
        )

        @Argument(help: "The rules file (.yaml, .yml or .json).")
        var file: String

        @Flag(help: "Print the result as JSON.")
        var json = false

        func run() async throws {
            let text = try readTextFile(file, limit: RulesLoader.maximumSize, what: "rules file")
            do {
                let document = try RulesLoader().load(text, path: file)
                let rules = document.rulesets.reduce(0) { $0 + $1.rules.count }
                if json {
                    let result: JSONValue = .object([
                        "valid": .bool(true), "rulesets": .number(Double(document.rulesets.count)), "rules": .number(Double(rules)),
                        "calendars": .number(Double(document.calendars.count)), "problems": .array([]),
                    ])
                    print(result.serialized(pretty: true))
                } else {
                    print("\(file) is valid: \(document.rulesets.count) ruleset\(document.rulesets.count == 1 ? "" : "s"), \(rules) rule\(rules == 1 ? "" : "s"), \(document.calendars.count) calendar\(document.calendars.count == 1 ? "" : "s").")
                }
            } catch {
                if json {
                    print(JSONValue.object(["valid": .bool(false), "problems": .array(error.diagnostics.map(\.jsonValue))]).serialized(pretty: true))
                    throw ExitCode(ExitStatus.invalidInput)
                }
                throw CLIError.invalid("\(file): \(error.description)")
            }
        }
    }

    struct Test: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Dry-run rules against a sample event and explain each rule's verdict.",
            discussion: """
                The event file is a Salesforce trigger payload {"object": "Case", "isInsert": true, "old": {...} | null, \
                "new": {...}} (old and new map record Ids to records, as JSON.serialize(Trigger.oldMap/newMap) gives them) \
                or a raw PagerDuty webhook v3 body. The links file is a JSON array of {"incident": ID, "object": NAME, \
                "record": ID}. Nothing is sent anywhere. Exit codes: 0 evaluated, 1 rules, event, links or previous incident that \
                do not validate, 2 a file that cannot be read, 64 wrong usage (a missing flag, a --now that is not ISO 8601).
                """
        )

        @Option(help: "The rules file (.yaml, .yml or .json).")
        var rules: String

        @Option(help: "The event file (JSON).")
        var event: String

        @Option(help: "A JSON array of links between incidents and records.")
        var links: String?

        @Option(help: "Evaluate as if the event happened at this ISO 8601 time (default: the event's own time, else now).")
        var now: String?

        @Option(name: .customLong("previous-incident"), help: "The incident as it was before a PagerDuty event (JSON), for `changes` conditions.")
        var previousIncident: String?

        @Flag(help: "Print {\"actions\": [...], \"rules\": [...]} as JSON.")
        var json = false

        func validate() throws {
            if let now, Instant(iso8601: now) == nil {
                throw ValidationError("--now \"\(now)\" is not an ISO 8601 date-time with an offset, e.g. 2026-11-21T03:00:00Z")
            }
        }

        func run() async throws {
            let rulesText = try readTextFile(rules, limit: RulesLoader.maximumSize, what: "rules file")
            let document: RulesDocument
            do {
                document = try RulesLoader().load(rulesText, path: rules)
            } catch {
                throw CLIError.invalid("\(rules): \(error.description)")
            }
            var previous: IncidentSnapshot?
            if let previousIncident {
                let text = try readTextFile(previousIncident, limit: DryRun.maximumEventSize, what: "previous incident file")
                do { previous = try DryRun.incident(fromJSON: text) } catch { throw CLIError.invalid("\(previousIncident): \(error)") }
            }
            let eventText = try readTextFile(event, limit: DryRun.maximumEventSize, what: "event file")
            var events: [RuleEvent]
            do { events = try DryRun.events(fromJSON: eventText, previousIncident: previous) } catch { throw CLIError.invalid("\(event): \(error)") }
            var linkList: [Link] = []
            if let links {
                let text = try readTextFile(links, limit: DryRun.maximumEventSize, what: "links file")
                do { linkList = try DryRun.links(fromJSON: text) } catch { throw CLIError.invalid("\(links): \(error)") }
            }
            let evaluationTime: Instant
            if let now, let t = Instant(iso8601: now) {
                evaluationTime = t
                // An explicit time is the event's time too.
                events = events.map { e in
                    guard case .pagerDuty(var p) = e else { return e }
                    p.occurredAt = t
                    return .pagerDuty(p)
                }
            } else {
                evaluationTime = Instant(Date())
            }
            let run = DryRun(engine: RuleEngine(document: document), events: events, links: linkList, now: evaluationTime)
            print(json ? run.jsonValue.serialized(pretty: true) : run.text, terminator: json ? "\n" : "")
        }
    }

    struct Schema: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the JSON Schema of the rules file.", discussion: "Exit codes: 0 printed.")

        func run() async throws {
            print(RulesSchema.json)
        }
    }

    struct Import: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate a rules file and store it as the new current version (every version is kept).",
            discussion: "Exit codes: 0 stored, 1 invalid rules, 2 unreadable file, 3 database unreachable, 64 wrong usage.")

        @OptionGroup var options: ConfigOptions
        @Argument(help: "The rules file (.yaml, .yml or .json).") var file: String
        @Option(help: "Why the rules changed, kept with the version.") var comment: String?
        @Option(help: "Who changed them (default: the user running the command).") var author: String?

        func run() async throws {
            let text = try readTextFile(file, limit: RulesLoader.maximumSize, what: "rules file")
            let document: RulesDocument
            do { document = try RulesLoader().load(text, path: file) } catch { throw CLIError.invalid("\(file): \(error.description)") }
            let who = author ?? ProcessInfo.processInfo.environment["USER"] ?? "cli"
            let note = comment
            let version = try await withConfiguredDatabase(try await options.configuration()) { db in
                try await db.transaction { sql in
                    let now = Int64(Date().timeIntervalSince1970 * 1000)
                    let v = try await RulesStore.save(document: text, author: who, comment: note, now: now, on: sql)
                    try await AuditStore.record(actor: who, action: "rules.import", subject: "version \(v)", detail: note, now: now, on: sql)
                    return v
                }
            }
            let rules = document.rulesets.reduce(0) { $0 + $1.rules.count }
            print("Stored \(file) as rules version \(version): \(document.rulesets.count) ruleset\(document.rulesets.count == 1 ? "" : "s"), \(rules) rule\(rules == 1 ? "" : "s").")
        }
    }

    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the current rules (or a given version) as stored.",
            discussion: "Exit codes: 0 printed, 1 no such version (or none stored yet), 3 database unreachable, 64 wrong usage.")
        @OptionGroup var options: ConfigOptions
        @Option(help: "A version number (default: the current one).") var version: Int?

        func run() async throws {
            let n = version
            let stored = try await withConfiguredDatabase(try await options.configuration()) { db in
                try await db.read { sql in
                    if let n { return try await RulesStore.version(n, on: sql) }
                    return try await RulesStore.current(on: sql)
                }
            }
            guard let stored else { throw CLIError.invalid(version.map { "there is no rules version \($0)" } ?? "no rules are stored yet; import some with `switchboard rules import FILE`") }
            print(stored.document, terminator: stored.document.hasSuffix("\n") ? "" : "\n")
        }
    }

    struct History: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the stored rules versions, newest first.", discussion: "Exit codes: 0 listed, 3 database unreachable.")
        @OptionGroup var options: ConfigOptions
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let versions = try await withConfiguredDatabase(try await options.configuration()) { db in
                try await db.read { try await RulesStore.history(on: $0) }
            }
            if json {
                print(JSONValue.array(versions.map { v in
                    .object(["version": .number(Double(v.version)), "author": .string(v.author), "comment": v.comment.map(JSONValue.string) ?? .null,
                             "createdAt": .string(time(v.createdAt))])
                }).serialized(pretty: true))
                return
            }
            if versions.isEmpty { print("No rules are stored yet.") }
            for v in versions { print("version \(v.version)  \(time(v.createdAt))  \(v.author)\(v.comment.map { "  \($0)" } ?? "")") }
        }
    }

    struct Diff: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show what changed between two stored rules versions (default: the previous and the current one).",
            discussion: "Exit codes: 0 shown, 1 a version does not exist, 3 database unreachable, 64 wrong usage.")
        @OptionGroup var options: ConfigOptions
        @Argument(help: "The older version.") var from: Int?
        @Argument(help: "The newer version (default: the current one).") var to: Int?

        func run() async throws {
            let (a, b) = (from, to)
            let versions = try await withConfiguredDatabase(try await options.configuration()) { db in
                try await db.read { sql -> (RulesVersion?, RulesVersion?) in
                    let newest = try await RulesStore.current(on: sql)
                    var newer = newest
                    if let b { newer = try await RulesStore.version(b, on: sql) }
                    let olderNumber = a ?? (newer.map { $0.version - 1 } ?? 0)
                    return (try await RulesStore.version(olderNumber, on: sql), newer)
                }
            }
            guard let older = versions.0, let newer = versions.1 else {
                throw CLIError.invalid("both versions must exist; see `switchboard rules history`")
            }
            let lines = LineDiff.unified(older.document, newer.document, fromName: "version \(older.version)", toName: "version \(newer.version)")
            print(lines.isEmpty ? "Versions \(older.version) and \(newer.version) are identical." : lines, terminator: lines.isEmpty ? "\n" : "")
        }
    }

    struct Restore: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make an earlier version current again, as a new version (history is never rewritten).",
            discussion: "Exit codes: 0 restored, 1 no such version, 3 database unreachable, 64 wrong usage.")
        @OptionGroup var options: ConfigOptions
        @Argument(help: "The version to restore.") var version: Int
        @Option(help: "Who restores it (default: the user running the command).") var author: String?

        func run() async throws {
            let n = version
            let who = author ?? ProcessInfo.processInfo.environment["USER"] ?? "cli"
            let created = try await withConfiguredDatabase(try await options.configuration()) { db in
                try await db.transaction { sql -> Int? in
                    guard let old = try await RulesStore.version(n, on: sql) else { return nil }
                    do { _ = try RulesLoader().load(old.document) } catch {
                        // Rules that loaded when stored may not load under a newer Switchboard.
                        throw CLIError.invalid("rules version \(n) no longer validates: \(error)".oneLine)
                    }
                    let now = Int64(Date().timeIntervalSince1970 * 1000)
                    let v = try await RulesStore.save(document: old.document, author: who, comment: "restored version \(n)", now: now, on: sql)
                    try await AuditStore.record(actor: who, action: "rules.restore", subject: "version \(n) as \(v)", detail: nil, now: now, on: sql)
                    return v
                }
            }
            guard let created else { throw CLIError.invalid("there is no rules version \(version)") }
            print("Restored version \(version) as version \(created).")
        }
    }
}

/// A small line diff (longest common subsequence), enough for rules files.
enum LineDiff {
    static func unified(_ a: String, _ b: String, fromName: String, toName: String) -> String {
        let x = a.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let y = b.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard x != y else { return "" }
        var lcs = Array(repeating: Array(repeating: 0, count: y.count + 1), count: x.count + 1)
        for i in stride(from: x.count - 1, through: 0, by: -1) {
            for j in stride(from: y.count - 1, through: 0, by: -1) {
                lcs[i][j] = x[i] == y[j] ? lcs[i + 1][j + 1] + 1 : max(lcs[i + 1][j], lcs[i][j + 1])
            }
        }
        var out = "--- \(fromName)\n+++ \(toName)\n"
        var (i, j) = (0, 0)
        while i < x.count || j < y.count {
            if i < x.count, j < y.count, x[i] == y[j] {
                out += "  \(x[i])\n"
                i += 1
                j += 1
            } else if j < y.count, i == x.count || lcs[i][j + 1] >= lcs[i + 1][j] {
                out += "+ \(y[j])\n"
                j += 1
            } else {
                out += "- \(x[i])\n"
                i += 1
            }
        }
        return out
    }
}
