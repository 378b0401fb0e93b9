import ArgumentParser
import Foundation
import SwitchboardCore
import SwitchboardStorage

/// Parses `2026-11-24T10:00:00Z`, or a time ago: `30m`, `2h`, `7d`.
func parseTime(_ text: String, now: Date = Date()) -> Int64? {
    if let instant = Instant(iso8601: text) { return instant.millisecondsSince1970 }
    guard let unit = text.last, let n = Double(text.dropLast()), n.isFinite, n >= 0 else { return nil }
    let seconds: Double
    switch unit {
    case "s": seconds = n
    case "m": seconds = n * 60
    case "h": seconds = n * 3600
    case "d": seconds = n * 86_400
    default: return nil
    }
    // A time so long ago that it is no Int64 of milliseconds is refused, not trapped on.
    return Int64(exactly: ((now.timeIntervalSince1970 - seconds) * 1000).rounded(.towardZero))
}

func time(_ millis: Int64) -> String { Instant(millisecondsSince1970: millis).iso8601 }

struct LogsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logs", abstract: "Read the integration log: deliveries, decisions, actions and errors, with their payloads.",
        discussion: "Exit codes: 0 done, 1 bad configuration, 3 database unreachable, 64 wrong usage (a bad level, time or limit).")

    @OptionGroup var options: ConfigOptions
    @Option(help: "Show this level and above: debug, info or error.") var level: String?
    @Option(help: "From this time: ISO 8601, or a time ago such as 30m, 2h, 7d.") var since: String?
    @Option(help: "Until this time (same formats).") var until: String?
    @Option(help: "Only entries about this PagerDuty incident.") var incident: String?
    @Option(help: "Only entries about this Salesforce record.") var record: String?
    @Option(help: "Only this category: intake, processing, dispatch, loop, retention.") var category: String?
    @Option(help: "Only entries whose message or payload contains this text.") var search: String?
    @Option(help: "At most this many entries (newest first).") var limit: Int = 100
    @Flag(help: "Show the raw payloads too.") var payloads = false
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        if let level, LogLevel(rawValue: level.lowercased()) == nil { throw ValidationError("--level must be debug, info or error") }
        if let since, parseTime(since) == nil { throw ValidationError("--since \"\(since)\" is neither ISO 8601 nor a time ago like 30m, 2h, 7d") }
        if let until, parseTime(until) == nil { throw ValidationError("--until \"\(until)\" is neither ISO 8601 nor a time ago like 30m, 2h, 7d") }
        if let from = since.flatMap({ parseTime($0) }), let to = until.flatMap({ parseTime($0) }), from > to {
            throw ValidationError("--since \"\(since ?? "")\" is after --until \"\(until ?? "")\"; nothing can match")
        }
        if limit < 1 { throw ValidationError("--limit must be at least 1") }
    }

    func run() async throws {
        let configuration = try await options.configuration()
        let query = LogQuery(
            minimumLevel: level.flatMap { LogLevel(rawValue: $0.lowercased()) }, since: since.flatMap { parseTime($0) },
            until: until.flatMap { parseTime($0) }, incidentId: incident, recordId: record, category: category, text: search, limit: limit)
        let entries = try await withConfiguredDatabase(configuration) { db in try await db.read { try await LogStore.query(query, on: $0) } }
        if json {
            print(JSONValue.array(entries.map { e in
                var o: JSONObject = ["id": e.id.map { .number(Double($0)) } ?? .null, "at": .string(time(e.at)), "level": .string(e.level.rawValue)]
                o["category"] = .string(e.category)
                o["message"] = .string(e.message)
                o["incident"] = e.incidentId.map(JSONValue.string) ?? .null
                o["record"] = e.recordId.map(JSONValue.string) ?? .null
                o["event"] = e.eventId.map { .number(Double($0)) } ?? .null
                o["payload"] = e.payload.map(JSONValue.string) ?? .null
                return .object(o)
            }).serialized(pretty: true))
            return
        }
        if entries.isEmpty { print("No log entries match.") }
        for e in entries {
            var line = "\(time(e.at))  \(e.level.rawValue.uppercased().padding(toLength: 5, withPad: " ", startingAt: 0))  \(e.category): \(e.message)"
            if let i = e.incidentId { line += "  [incident \(i)]" }
            if let r = e.recordId { line += "  [record \(r)]" }
            print(line)
            if payloads, let p = e.payload { print("    payload: \(p)") }
        }
    }
}

struct DeadLettersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deadletters", abstract: "List, retry or drop actions that failed for good.",
        subcommands: [List.self, Retry.self, Drop.self], defaultSubcommand: List.self)

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List dead letters, newest first.", discussion: "Exit codes: 0 listed, 3 database unreachable.")
        @OptionGroup var options: ConfigOptions
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let letters = try await withConfiguredDatabase(try await options.configuration()) { db in
                try await db.read { try await JobStore.deadLetters(limit: 1000, on: $0) }
            }
            if json {
                print(JSONValue.array(letters.map { d in
                    .object([
                        "job": .number(Double(d.jobId)), "action": .string(d.action), "error": .string(d.error), "attempts": .number(Double(d.attempts)),
                        "failedAt": .string(time(d.failedAt)), "payload": (try? JSONParser.parseValue(d.payload)) ?? .string(d.payload),
                    ])
                }).serialized(pretty: true))
                return
            }
            if letters.isEmpty { print("No dead letters.") }
            for d in letters {
                print("job \(d.jobId)  \(d.action)  failed \(time(d.failedAt)) after \(d.attempts) attempt\(d.attempts == 1 ? "" : "s"): \(d.error)")
            }
        }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Put dead jobs back in the queue, to run now.",
            discussion: "Exit codes: 0 queued again, 1 a job has no dead letter (the others are queued), 3 database unreachable, 64 wrong usage.")
        @OptionGroup var options: ConfigOptions
        @Argument(help: "Job ids (from `deadletters list`).") var jobs: [Int64] = []
        @Flag(help: "Retry every dead letter.") var all = false

        func validate() throws {
            guard all || !jobs.isEmpty else { throw ValidationError("name the jobs to retry, or pass --all") }
            guard !(all && !jobs.isEmpty) else { throw ValidationError("name the jobs to retry or pass --all, not both") }
        }

        func run() async throws {
            let ids = jobs
            let retryAll = all
            let results = try await withConfiguredDatabase(try await options.configuration()) { db in
                try await db.transaction { sql -> [(Int64, Bool)] in
                    let targets = retryAll ? try await JobStore.deadLetters(limit: 100_000, on: sql).map(\.jobId) : ids
                    var out: [(Int64, Bool)] = []
                    let now = Int64(Date().timeIntervalSince1970 * 1000)
                    for id in targets { out.append((id, try await JobStore.retryDead(jobId: id, now: now, on: sql))) }
                    try await AuditStore.record(actor: "cli", action: "deadletters.retry", subject: targets.map(String.init).joined(separator: ","), detail: nil, now: now, on: sql)
                    return out
                }
            }
            var missing: [Int64] = []
            for (id, ok) in results {
                if ok { print("job \(id) is queued again") } else { missing.append(id) }
            }
            if results.isEmpty { print("No dead letters.") }
            if !missing.isEmpty { throw CLIError.invalid("no dead letter for job \(missing.map(String.init).joined(separator: ", "))") }
        }
    }

    struct Drop: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Drop dead letters for good (the jobs stay recorded as dead).",
            discussion: "Exit codes: 0 dropped, 1 a job has no dead letter (the others are dropped), 3 database unreachable, 64 wrong usage.")
        @OptionGroup var options: ConfigOptions
        @Argument(help: "Job ids.") var jobs: [Int64]

        func run() async throws {
            let ids = jobs
            let results = try await withConfiguredDatabase(try await options.configuration()) { db in
                try await db.transaction { sql -> [(Int64, Bool)] in
                    var out: [(Int64, Bool)] = []
                    for id in ids { out.append((id, try await JobStore.dropDead(jobId: id, on: sql))) }
                    try await AuditStore.record(actor: "cli", action: "deadletters.drop", subject: ids.map(String.init).joined(separator: ","), detail: nil,
                        now: Int64(Date().timeIntervalSince1970 * 1000), on: sql)
                    return out
                }
            }
            let missing = results.filter { !$0.1 }.map(\.0)
            for (id, ok) in results where ok { print("dead letter of job \(id) dropped") }
            if !missing.isEmpty { throw CLIError.invalid("no dead letter for job \(missing.map(String.init).joined(separator: ", "))") }
        }
    }
}

struct EventsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events", abstract: "List, show and replay received events.", subcommands: [List.self, Show.self, Replay.self],
        defaultSubcommand: List.self)

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Received events, newest first.", discussion: "Exit codes: 0 listed, 3 database unreachable, 64 wrong usage.")
        @OptionGroup var options: ConfigOptions
        @Option(help: "pagerduty or salesforce.") var source: String?
        @Option(help: "pending, processed, echo, ignored or failed.") var status: String?
        @Option(help: "At most this many.") var limit: Int = 50
        @Flag(help: "Print JSON.") var json = false

        func validate() throws {
            if let source, EventSource(rawValue: source) == nil { throw ValidationError("--source must be pagerduty or salesforce") }
            if let status, !["pending", "processed", "echo", "ignored", "failed"].contains(status) {
                throw ValidationError("--status must be pending, processed, echo, ignored or failed")
            }
            if limit < 1 { throw ValidationError("--limit must be at least 1") }
        }

        func run() async throws {
            let src = source.flatMap(EventSource.init(rawValue:))
            let st = status
            let n = limit
            let events = try await withConfiguredDatabase(try await options.configuration()) { db in
                try await db.read { try await EventStore.list(source: src, status: st, limit: n, on: $0) }
            }
            if json {
                print(JSONValue.array(events.map(describe)).serialized(pretty: true))
                return
            }
            if events.isEmpty { print("No events.") }
            for e in events {
                print("\(e.id)  \(time(e.receivedAt))  \(e.source.rawValue)  \(e.status)  \(e.partitionKey)  \(e.outcome ?? "")")
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "One event with its payload.", discussion: "Exit codes: 0 shown, 1 no such event, 3 database unreachable, 64 wrong usage.")
        @OptionGroup var options: ConfigOptions
        @Argument(help: "The event id.") var id: Int64

        func run() async throws {
            let eventId = id
            guard let event = try await withConfiguredDatabase(try await options.configuration(), { db in
                try await db.read { try await EventStore.find(id: eventId, on: $0) }
            }) else { throw CLIError.invalid("no event \(id)") }
            print(describe(event).serialized(pretty: true))
        }
    }
}

func describe(_ e: InboundEvent) -> JSONValue {
    .object([
        "id": .number(Double(e.id)), "source": .string(e.source.rawValue), "externalId": .string(e.externalId), "partition": .string(e.partitionKey),
        "receivedAt": .string(time(e.receivedAt)), "status": .string(e.status), "outcome": e.outcome.map(JSONValue.string) ?? .null,
        "payload": (try? JSONParser.parseValue(e.payload)) ?? .string(e.payload),
    ])
}
