import ArgumentParser
import Foundation
import SwitchboardCore
import SwitchboardStorage

/// The switches of the Summary, Object Mappings and Logger tabs, on the command line. A running server follows
/// within a few seconds.
struct SettingsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "settings",
        abstract: "Show or change the rule engine switch, the object mappings and the logger.",
        discussion: """
            Keys: \(SettingKey.all.map { "\($0.name) (\($0.help))" }.joined(separator: "; ")). \
            Every change is kept in the audit trail. Exit codes: 0 done, 1 an unknown key or a bad value, \
            3 the database cannot be reached.
            """,
        subcommands: [List.self, Set.self], defaultSubcommand: List.self)

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Every setting with its current value (defaults included).", discussion: "Exit codes: 0 listed, 3 database unreachable.")
        @OptionGroup var options: ConfigOptions
        @Flag(help: "Print a JSON object of key to value.") var json = false

        func run() async throws {
            let stored = try await withConfiguredDatabase(try await options.configuration()) { db in
                try await db.read { try await SettingsStore.getMany(SettingKey.all.map(\.name), on: $0) }
            }
            if json {
                var object = JSONObject()
                for key in SettingKey.all { object[key.name] = key.json(stored[key.name] ?? key.defaultValue) }
                print(JSONValue.object(object).serialized(pretty: true))
                return
            }
            for key in SettingKey.all {
                let value = stored[key.name] ?? key.defaultValue
                print("\(key.name.padding(toLength: 24, withPad: " ", startingAt: 0)) \(value)\(stored[key.name] == nil ? " (default)" : "")")
            }
        }
    }

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Change one setting, e.g. `settings set engine.enabled false` or `settings set log.level debug`.",
            discussion: "Exit codes: 0 changed, 1 an unknown key or a bad value, 3 database unreachable, 64 wrong usage.")
        @OptionGroup var options: ConfigOptions
        @Argument(help: "The key.") var key: String
        @Argument(help: "The new value.") var value: String

        func run() async throws {
            guard let setting = SettingKey.all.first(where: { $0.name == key }) else {
                throw CLIError.invalid("unknown setting \"\(key)\"; the settings are \(SettingKey.all.map(\.name).joined(separator: ", "))")
            }
            guard let normalized = setting.normalize(value) else {
                throw CLIError.invalid("\(key) cannot be \"\(value)\": it takes \(setting.help)")
            }
            let actor = ProcessInfo.processInfo.environment["USER"] ?? "cli"
            try await withConfiguredDatabase(try await options.configuration()) { db in
                try await db.transaction { sql in
                    let now = Int64(Date().timeIntervalSince1970 * 1000)
                    let old = try await SettingsStore.get(setting.name, on: sql)
                    try await SettingsStore.set(setting.name, value: normalized, now: now, on: sql)
                    try await AuditStore.record(
                        actor: actor, action: "settings.set", subject: setting.name, detail: "\(old ?? setting.defaultValue) → \(normalized)", now: now, on: sql)
                }
            }
            print("\(setting.name) is \(normalized).")
        }
    }
}

/// A setting the command line may change, with its values and default.
struct SettingKey: Sendable {
    var name: String
    var help: String
    var defaultValue: String
    var normalize: @Sendable (String) -> String?
    var isNumber = false

    func json(_ value: String) -> JSONValue {
        if isNumber, let n = Double(value) { return .number(n) }
        if value == "true" || value == "false" { return .bool(value == "true") }
        return .string(value)
    }

    static func boolean(_ name: String, _ what: String, default value: Bool) -> SettingKey {
        SettingKey(name: name, help: "true or false: \(what)", defaultValue: String(value)) { text in
            switch text.lowercased() {
            case "true", "on", "yes", "1": "true"
            case "false", "off", "no", "0": "false"
            default: nil
            }
        }
    }

    static let all: [SettingKey] = [
        .boolean("engine.enabled", "the rule engine runs", default: true),
        .boolean("mapping.syncDescription", "a record's description becomes the new incident's", default: true),
        .boolean("mapping.notesToFeed", "PagerDuty notes are copied to the Case Feed", default: false),
        .boolean("mapping.notesToComment", "PagerDuty notes are copied as Case Comments", default: false),
        .boolean("mapping.commentsToNotes", "a new Case Comment is copied to the case's linked incidents as a note", default: true),
        SettingKey(name: "log.level", help: "debug, info or error: the lowest level the integration log keeps", defaultValue: "info") { text in
            LogLevel(rawValue: text.lowercased())?.rawValue
        },
        SettingKey(
            name: "log.retentionDays", help: "a whole number of days from 1 to 3650: older log entries, decided events and done jobs are deleted", defaultValue: "30",
            normalize: { text in Int(text).flatMap { (1...3650).contains($0) ? String($0) : nil } }, isNumber: true),
    ]
}
