import SQLKit
import Synchronization
import SwitchboardCore
import SwitchboardStorage

/// How the pipeline retries, leases and limits. Defaults suit production; tests shorten them.
public struct PipelineSettings: Sendable {
    /// Attempts per job before it becomes a dead letter.
    public var maxAttempts: Int = 8
    public var backoff = Backoff()
    /// How long a claimed job stays with a process before another may take it (the process died).
    public var leaseMilliseconds: Int64 = 60_000
    /// Jobs carried out at once by one process.
    public var dispatchConcurrency: Int = 64
    /// Events evaluated per transaction: as many as the intake commits in one, so a burst that fills the intake's
    /// groups is decided as fast as it is taken in. At 100, with 256 deliveries in flight, the backlog grew by
    /// about 2,700 events a second and the intake slowed as it grew.
    public var processBatchSize: Int = IntakeWriter.defaultMaximumBatch
    /// How often workers look for work written by other processes.
    public var pollInterval: Duration = .milliseconds(250)
    /// A rule firing more than this often on a subject Switchboard just wrote to is suspended there.
    public var hopLimit: Int = 5
    public var hopWindowMilliseconds: Int64 = 600_000
    /// How long a write's origin stamp is remembered, waiting for its echo.
    public var stampTTLMilliseconds: Int64 = 900_000
    /// After a partial batch of at least a quarter of `processBatchSize` events (that is, under load), how long the
    /// processor lets more events gather before the next one: a few milliseconds of latency buy far fewer statements
    /// per event. Smaller batches go on at once.
    public var coalesceInterval: Duration = .milliseconds(3)
    /// How often the retention purge runs.
    public var retentionInterval: Duration = .seconds(3600)

    public init() {}
}

/// The integration's own log (the Logs view), written to the database with the configured level and kept
/// for the configured number of days.
public final class IntegrationLog: Sendable {
    public struct Policy: Sendable, Hashable {
        public var level: LogLevel
        public var retentionDays: Int

        public init(level: LogLevel = .info, retentionDays: Int = 30) {
            self.level = level
            self.retentionDays = retentionDays
        }
    }

    private let policy: Mutex<Policy>
    private let clock: any WallClock

    public init(policy: Policy = Policy(), clock: any WallClock) {
        self.policy = Mutex(policy)
        self.clock = clock
    }

    public var current: Policy { policy.withLock { $0 } }

    public func update(_ new: Policy) { policy.withLock { $0 = new } }

    /// An entry, or nil when the level is below the configured one (levels apply when writing).
    public func entry(
        _ level: LogLevel, _ category: String, _ message: String, incidentId: String? = nil, recordId: String? = nil, eventId: Int64? = nil,
        payload: String? = nil
    ) -> LogEntry? {
        guard level >= current.level else { return nil }
        return LogEntry(
            at: clock.millis, level: level, category: category, message: message, incidentId: incidentId, recordId: recordId, eventId: eventId,
            payload: payload)
    }

    /// Reads the level and retention from the settings table (`log.level`, `log.retentionDays`).
    public func reload(from database: any Database) async {
        let values = try? await database.read { db in
            (try await SettingsStore.get("log.level", on: db), try await SettingsStore.get("log.retentionDays", on: db))
        }
        var p = current
        if let level = values?.0.flatMap(LogLevel.init(rawValue:)) { p.level = level }
        if let days = values?.1.flatMap(Int.init), days > 0 { p.retentionDays = days }
        update(p)
    }
}

/// The current rules, compiled once per stored version and set of switched-off rulesets.
public actor RulesProvider {
    private var cached: (version: Int, disabled: Set<String>, engine: RuleEngine)?
    private let schemas: SchemaCatalog

    /// The setting that lists rulesets switched off from the command line (`switchboard rules disable`), as a JSON
    /// array of names; the stored documents stay as they were imported.
    public static let disabledKey = "rules.disabledRulesets"

    public init(schemas: SchemaCatalog = .standard) {
        self.schemas = schemas
    }

    /// The names in the `rules.disabledRulesets` setting.
    public static func disabledRulesets(on db: any SQLDatabase) async throws -> Set<String> {
        guard let text = try await SettingsStore.get(disabledKey, on: db) else { return [] }
        return Set((try? JSONParser.parseValue(text))?.arrayValue?.compactMap(\.stringValue) ?? [])
    }

    /// The engine for the newest stored rules, or nil when none are stored. Throws when the stored document no
    /// longer validates (it did when it was imported; a newer schema catalog may disagree).
    public func engine(on db: any SQLDatabase, settings: EngineSettings) async throws -> (version: Int, engine: RuleEngine)? {
        guard let version = try await RulesStore.currentVersionNumber(on: db) else { return nil }
        let disabled = try await Self.disabledRulesets(on: db)
        if let cached, cached.version == version, cached.disabled == disabled, cached.engine.settings == settings {
            return (cached.version, cached.engine)
        }
        guard let current = try await RulesStore.version(version, on: db) else { return nil }
        var document = try RulesLoader(schemas: schemas).load(current.document)
        for i in document.rulesets.indices where disabled.contains(document.rulesets[i].name) { document.rulesets[i].enabled = false }
        let engine = RuleEngine(document: document, schemas: schemas, settings: settings)
        cached = (current.version, disabled, engine)
        return (current.version, engine)
    }
}
