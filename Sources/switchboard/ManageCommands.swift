import ArgumentParser
import Foundation
import SwitchboardCore
import SwitchboardPagerDuty
import SwitchboardPipeline
import SwitchboardSalesforce
import SwitchboardServer
import SwitchboardStorage

// MARK: rules list | enable | disable

extension RulesCommand {
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the current version's rulesets, whether each is on, and its rules.",
            discussion: "Exit codes: 0 listed, 1 no rules are stored yet (or the stored ones do not load), 3 database unreachable.")
        @OptionGroup var options: ConfigOptions
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let (stored, disabled, engineOn) = try await withConfiguredDatabase(try await options.configuration()) { db in
                try await db.read { sql in
                    (
                        try await RulesStore.current(on: sql), try await RulesProvider.disabledRulesets(on: sql),
                        try await SettingsStore.get("engine.enabled", on: sql) != "false"
                    )
                }
            }
            guard let stored else { throw CLIError.invalid("no rules are stored yet; import some with `switchboard rules import FILE`") }
            let document: RulesDocument
            do { document = try RulesLoader().load(stored.document) } catch { throw CLIError.invalid("the stored rules do not load: \(error)") }
            let rows: [JSONValue] = document.rulesets.map { set in
                let on = set.enabled && !disabled.contains(set.name)
                return .object([
                    "name": .string(set.name), "enabled": .bool(on),
                    "switchedOffBy": on ? .null : .string(set.enabled ? "switchboard rules disable" : "the rules file"),
                    "rules": .array(set.rules.map { .string($0.name) }),
                ])
            }
            if json {
                print(JSONValue.object(["version": .number(Double(stored.version)), "ruleEngine": .bool(engineOn), "rulesets": .array(rows)]).serialized(pretty: true))
                return
            }
            print("Rules version \(stored.version); rule engine \(engineOn ? "on" : "off").")
            for row in rows {
                let on = row["enabled"] == .bool(true)
                print("\(on ? "on " : "off") \(row["name"]?.stringValue ?? "")\(on ? "" : " (switched off by \(row["switchedOffBy"]?.stringValue ?? ""))")")
                for rule in row["rules"]?.arrayValue ?? [] { print("      - \(rule.stringValue ?? "")") }
            }
        }
    }

    struct Enable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Switch a ruleset back on (one switched off with `rules disable`); a running server follows within a second.",
            discussion: "Exit codes: 0 on, 1 no ruleset of that name (or it is off in the rules file itself), 3 database unreachable, 64 wrong usage.")
        @OptionGroup var options: ConfigOptions
        @Argument(help: "The ruleset's name.") var name: String

        func run() async throws { try await RulesCommand.setRuleset(name, enabled: true, options: options) }
    }

    struct Disable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Switch a ruleset off without editing the rules file; a running server follows within a second.",
            discussion: "Exit codes: 0 off, 1 no ruleset of that name, 3 database unreachable, 64 wrong usage.")
        @OptionGroup var options: ConfigOptions
        @Argument(help: "The ruleset's name.") var name: String

        func run() async throws { try await RulesCommand.setRuleset(name, enabled: false, options: options) }
    }

    static func setRuleset(_ name: String, enabled: Bool, options: ConfigOptions) async throws {
        let configuration = try await options.configuration()
        let outcome = try await withConfiguredDatabase(configuration) { db in
            try await db.transaction { sql -> String? in
                guard let stored = try await RulesStore.current(on: sql) else { return "no rules are stored yet; import some with `switchboard rules import FILE`" }
                guard let document = try? RulesLoader().load(stored.document) else {
                    return "the current rules (version \(stored.version)) do not validate; import a corrected version"
                }
                guard let set = document.rulesets.first(where: { $0.name == name }) else {
                    return "no ruleset is named \"\(name)\"; the current version has \(document.rulesets.map { "\"\($0.name)\"" }.joined(separator: ", "))"
                }
                if enabled && !set.enabled {
                    return "\"\(name)\" is switched off in the rules file itself (enabled: false); import a version that enables it"
                }
                var disabled = try await RulesProvider.disabledRulesets(on: sql)
                if enabled { disabled.remove(name) } else { disabled.insert(name) }
                let now = Int64(Date().timeIntervalSince1970 * 1000)
                try await SettingsStore.set(
                    RulesProvider.disabledKey, value: JSONValue.array(disabled.sorted().map(JSONValue.string)).serialized(), now: now, on: sql)
                try await AuditStore.record(
                    actor: ProcessInfo.processInfo.environment["USER"] ?? "cli", action: enabled ? "rules.enable" : "rules.disable", subject: name,
                    detail: nil, now: now, on: sql)
                return nil
            }
        }
        if let outcome { throw CLIError.invalid(outcome) }
        print("Ruleset \"\(name)\" is \(enabled ? "on" : "off").")
    }
}

// MARK: links list | add | remove

struct LinksCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "links", abstract: "The links between PagerDuty incidents and Salesforce records.",
        subcommands: [List.self, Add.self, Remove.self], defaultSubcommand: List.self)

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List links, newest first.", discussion: "Exit codes: 0 listed, 3 database unreachable, 64 wrong usage.")
        @OptionGroup var options: ConfigOptions
        @Option(help: "Only this incident's.") var incident: String?
        @Option(help: "Only this record's (15 or 18 characters).") var record: String?
        @Option(help: "At most this many.") var limit: Int = 100
        @Flag(help: "Print JSON.") var json = false

        func validate() throws {
            if limit < 1 { throw ValidationError("--limit must be at least 1") }
        }

        func run() async throws {
            let (incidentId, recordId, max) = (incident, record, limit)
            let links = try await withConfiguredDatabase(try await options.configuration()) { db in
                try await db.read { try await LinkStore.find(recordId: recordId, incidentId: incidentId, limit: max, on: $0) }
            }
            let rows: [JSONValue] = links.map { l in
                .object([
                    "incident": .string(l.link.incidentId), "object": .string(l.link.object), "record": .string(l.link.recordId),
                    "org": l.link.orgId.map(JSONValue.string) ?? .null, "createdAt": .string(time(l.createdAt)),
                    "createdBy": l.createdBy.map(JSONValue.string) ?? .null,
                ])
            }
            if json {
                print(JSONValue.array(rows).serialized(pretty: true))
                return
            }
            if rows.isEmpty { print("No links.") }
            for l in links { print("\(l.link.incidentId)  \(l.link.object) \(l.link.recordId)  \(time(l.createdAt))\(l.createdBy.map { "  by \($0)" } ?? "")") }
        }
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Link an incident to a record by hand (an incident opened before Switchboard, say).",
            discussion: "Exit codes: 0 linked (or already linked), 3 database unreachable, 64 wrong usage (a bad Id, a missing flag).")
        @OptionGroup var options: ConfigOptions
        @Option(help: "The PagerDuty incident id.") var incident: String
        @Option(help: "The Salesforce object, e.g. Case.") var object: String = "Case"
        @Option(help: "The record's Id (15 or 18 characters).") var record: String
        @Option(name: .customLong("org-id"), help: "The org, when several are connected.") var orgId: String?

        func validate() throws {
            guard SalesforceId.isValid(record) else { throw ValidationError("--record must be a 15- or 18-character Salesforce Id") }
            guard !incident.isEmpty else { throw ValidationError("--incident must not be empty") }
            if let orgId, !SalesforceId.isValid(orgId) { throw ValidationError("--org-id must be a 15- or 18-character Salesforce Id") }
        }

        func run() async throws {
            let link = Link(incidentId: incident, object: object, recordId: record, orgId: orgId.map(SalesforceId.normalized))
            let added = try await withConfiguredDatabase(try await options.configuration()) { db in
                try await db.transaction { sql in
                    try await LinkStore.add(link, by: ProcessInfo.processInfo.environment["USER"] ?? "cli", now: Int64(Date().timeIntervalSince1970 * 1000), on: sql)
                }
            }
            print(added ? "Linked incident \(link.incidentId) to \(link.object) \(link.recordId)." : "Incident \(link.incidentId) and \(link.object) \(link.recordId) were already linked.")
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove a link; rules stop acting across it.",
            discussion: "Exit codes: 0 removed, 1 no such link, 3 database unreachable, 64 wrong usage.")
        @OptionGroup var options: ConfigOptions
        @Option(help: "The PagerDuty incident id.") var incident: String
        @Option(help: "The Salesforce object, e.g. Case.") var object: String = "Case"
        @Option(help: "The record's Id.") var record: String

        func run() async throws {
            let link = Link(incidentId: incident, object: object, recordId: record)
            let removed = try await withConfiguredDatabase(try await options.configuration()) { db in
                try await db.transaction { try await LinkStore.remove(link, on: $0) }
            }
            guard removed else { throw CLIError.invalid("incident \(incident) is not linked to \(object) \(link.recordId); see `switchboard links list`") }
            print("Removed the link between incident \(incident) and \(object) \(link.recordId).")
        }
    }
}

// MARK: events replay

extension EventsCommand {
    struct Replay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a received event through the current rules (or a draft rules file) again and explain each verdict.",
            discussion: """
                A dry run by default: nothing is sent. --apply puts the event back in the queue as a new event, so a running \
                server decides it again under the current rules and carries out what they plan. Exit codes: 0 done, 1 no such \
                event, no rules, or a draft that does not validate, 2 the draft cannot be read, 3 database unreachable, 64 wrong usage.
                """)
        @OptionGroup var options: ConfigOptions
        @Argument(help: "The event id (see `switchboard events list`).") var id: Int64
        @Option(help: "A draft rules file to use instead of the stored rules.") var rules: String?
        @Flag(help: "Queue the event again for real (not a dry run).") var apply = false
        @Flag(help: "Print JSON.") var json = false

        func validate() throws {
            if apply, rules != nil { throw ValidationError("--rules is for a dry run; --apply queues the event under the current rules") }
        }

        func run() async throws {
            // A draft is checked before the database is opened: a bad file is reported as such, whatever the event.
            var draft: RulesDocument?
            if let rules {
                let text = try readTextFile(rules, limit: RulesLoader.maximumSize, what: "rules file")
                do { draft = try RulesLoader().load(text, path: rules) } catch { throw CLIError.invalid("\(rules): \(error.description)") }
            }
            let configuration = try await options.configuration()
            let eventId = id
            let (found, stored, links) = try await withConfiguredDatabase(configuration) { db in
                try await db.read { sql -> (InboundEvent?, RulesVersion?, [Link]) in
                    let event = try await EventStore.find(id: eventId, on: sql)
                    return (event, try await RulesStore.current(on: sql), try await LinkStore.find(limit: 10_000, on: sql).map(\.link))
                }
            }
            guard let event = found else { throw CLIError.invalid("no event \(id); see `switchboard events list`") }
            if apply {
                let copy = NewInboundEvent(
                    source: event.source, externalId: "replay-\(event.id)-\(UUID().uuidString.prefix(8))", partitionKey: event.partitionKey,
                    payload: event.payload)
                let ids = try await withConfiguredDatabase(configuration) { db in
                    try await db.transaction { try await EventStore.insert([copy], now: Int64(Date().timeIntervalSince1970 * 1000), on: $0) }
                }
                print("Event \(id) queued again as event \(ids.first.flatMap { $0 }.map(String.init) ?? "?"); a running server decides it under the current rules.")
                return
            }
            let document: RulesDocument
            if let draft {
                document = draft
            } else {
                guard let stored else { throw CLIError.invalid("no rules are stored yet; give a draft with --rules FILE") }
                do { document = try RulesLoader().load(stored.document, path: "stored rules") } catch { throw CLIError.invalid("\(error)".oneLine) }
            }
            let events: [RuleEvent]
            do { events = try DryRun.events(fromJSON: event.payload, previousIncident: nil) } catch { throw CLIError.invalid("event \(id): \(error)".oneLine) }
            let run = DryRun(engine: RuleEngine(document: document), events: events, links: links, now: Instant(millisecondsSince1970: event.receivedAt))
            print(json ? run.jsonValue.serialized(pretty: true) : run.text, terminator: json ? "\n" : "")
        }
    }
}

// MARK: status

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "The summary: connections, object mappings, webhook health, rule engine, API budgets, queue depths.",
        discussion: "Exit codes: 0 shown (a connection that fails is reported, not an error), 1 bad configuration, 3 database unreachable.")
    @OptionGroup var options: ConfigOptions
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        let configuration = try await options.configuration()
        let box = configuration.secretKey.flatMap { try? SecretBox(encodedKey: $0) }
        let summary = try await withConfiguredDatabase(configuration) { db in
            try await db.read { sql in
                (
                    pagerDuty: box == nil ? nil : try await PagerDutyConnection.load(box: box, on: sql),
                    salesforce: box == nil ? [] : try await SalesforceConnection.loadAll(box: box, on: sql),
                    settings: try await SettingsStore.getMany(
                        ["engine.enabled", "mapping.notesToFeed", "mapping.notesToComment", "mapping.syncDescription", "mapping.commentsToNotes", "log.level", "log.retentionDays"], on: sql),
                    events: try await EventStore.counts(on: sql), jobs: try await JobStore.counts(on: sql),
                    dead: try await JobStore.deadLetters(limit: 10_000, on: sql).count, rules: try await RulesStore.currentVersionNumber(on: sql),
                    disabled: try await RulesProvider.disabledRulesets(on: sql)
                )
            }
        }
        var webhook = "not connected"
        if let pd = summary.pagerDuty, let id = pd.subscriptionId {
            do {
                let sub = try await PagerDutyCommand.client(pd).webhookSubscription(id)
                let disabled = sub["delivery_method"]?["temporarily_disabled"] == .bool(true)
                webhook = "\(id) " + (disabled ? "temporarily disabled (serve re-enables it and backfills)" : (sub["active"] == .bool(true) ? "active" : "inactive"))
            } catch {
                webhook = "\(id) cannot be read: \(error)"
            }
        }
        var orgs: [JSONValue] = []
        for org in summary.salesforce {
            var o: JSONObject = ["orgId": .string(org.orgId), "capture": .string(org.capture.rawValue), "objects": .array(org.objects.map(JSONValue.string))]
            if org.hasAPIAccess {
                do {
                    let sessions = try SalesforceTokenProvider(connection: org, httpClient: cliHTTPClient, logger: quietLogger)
                    let client = SalesforceClient(
                        sessions: sessions, configuration: .init(apiVersion: org.apiVersion), httpClient: cliHTTPClient, logger: quietLogger)
                    if let daily = try await client.limits()["DailyApiRequests"] {
                        o["apiBudget"] = .object(["max": .number(Double(daily.max)), "remaining": .number(Double(daily.remaining))])
                    }
                } catch {
                    o["apiBudget"] = .string("cannot be read: \(error)")
                }
            }
            orgs.append(.object(o))
        }
        func counts(_ d: [String: Int]) -> JSONValue {
            var o = JSONObject()
            for (k, v) in d.sorted(by: { $0.key < $1.key }) { o[k] = .number(Double(v)) }
            return .object(o)
        }
        let settings = summary.settings
        let value: JSONValue = .object([
            "pagerDuty": summary.pagerDuty.map { .object(["from": .string($0.fromEmail), "region": .string($0.region.rawValue), "webhook": .string(webhook)]) } ?? .null,
            "salesforce": .array(orgs),
            "mappings": .object([
                "notesToFeed": .bool(settings["mapping.notesToFeed"] == "true"), "notesToComment": .bool(settings["mapping.notesToComment"] == "true"),
                "syncDescription": .bool(settings["mapping.syncDescription"] != "false"),
                "commentsToNotes": .bool(settings["mapping.commentsToNotes"] != "false"),
            ]),
            "ruleEngine": .bool(settings["engine.enabled"] != "false"), "rulesVersion": summary.rules.map { .number(Double($0)) } ?? .null,
            "rulesetsSwitchedOff": .array(summary.disabled.sorted().map(JSONValue.string)),
            "events": counts(summary.events), "jobs": counts(summary.jobs), "deadLetters": .number(Double(summary.dead)),
            "secretKey": .bool(box != nil),
        ])
        if json {
            print(value.serialized(pretty: true))
            return
        }
        if box == nil { print("secret.key is not set: stored connections cannot be read (set SWITCHBOARD_SECRET_KEY).") }
        if let pd = summary.pagerDuty { print("PagerDuty: connected as \(pd.fromEmail) (\(pd.region.rawValue)); webhook \(webhook)") } else { print("PagerDuty: not connected") }
        if orgs.isEmpty { print("Salesforce: no org connected") }
        for org in orgs {
            var line = "Salesforce org \(org["orgId"]?.stringValue ?? ""): \(org["capture"]?.stringValue ?? "") of \(org["objects"]?.arrayValue?.compactMap(\.stringValue).joined(separator: ", ") ?? "")"
            if let b = org["apiBudget"], case .number(let remaining)? = b["remaining"], case .number(let max)? = b["max"] {
                line += "; API budget \(Int(remaining)) of \(Int(max)) left"
            } else if let text = org["apiBudget"]?.stringValue {
                line += "; API budget \(text)"
            }
            print(line)
        }
        print("Object mappings: notes to Case Feed \(settings["mapping.notesToFeed"] == "true" ? "on" : "off"), to Case Comments \(settings["mapping.notesToComment"] == "true" ? "on" : "off"); case comments to incident notes \(settings["mapping.commentsToNotes"] != "false" ? "on" : "off"); case description to new incidents \(settings["mapping.syncDescription"] != "false" ? "on" : "off")")
        print("Rule engine: \(settings["engine.enabled"] != "false" ? "on" : "off"); rules version \(summary.rules.map(String.init) ?? "none")\(summary.disabled.isEmpty ? "" : "; switched off: \(summary.disabled.sorted().joined(separator: ", "))")")
        let fmt: ([String: Int]) -> String = { d in d.isEmpty ? "none" : d.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") }
        print("Queues: events \(fmt(summary.events)); jobs \(fmt(summary.jobs)); dead letters \(summary.dead)")
    }
}
