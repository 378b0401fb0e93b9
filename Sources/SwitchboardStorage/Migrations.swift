import SQLKit

/// One step of the schema. Steps are applied in order, once, each in its own transaction.
public struct Migration: Sendable {
    public var version: Int
    public var name: String
    public var statements: @Sendable (DatabaseDialect) -> [String]
}

/// The schema, one list for both databases.
public enum Migrations {
    public static let all: [Migration] = [
        Migration(version: 1, name: "pipeline, links, logs, configuration") { d in
            let id = d == .sqlite ? "INTEGER PRIMARY KEY AUTOINCREMENT" : "BIGSERIAL PRIMARY KEY"
            return [
                """
                CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL, is_secret INTEGER NOT NULL DEFAULT 0,
                  updated_at BIGINT NOT NULL)
                """,
                """
                CREATE TABLE connections (id \(id), kind TEXT NOT NULL, name TEXT NOT NULL, config TEXT NOT NULL, secret TEXT,
                  created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, UNIQUE (kind, name))
                """,
                """
                CREATE TABLE rules_versions (version \(id), document TEXT NOT NULL, author TEXT NOT NULL, comment TEXT,
                  created_at BIGINT NOT NULL)
                """,
                """
                CREATE TABLE links (id \(id), incident_id TEXT NOT NULL, org_id TEXT NOT NULL DEFAULT '', object TEXT NOT NULL,
                  record_id TEXT NOT NULL, subdomain TEXT, created_at BIGINT NOT NULL, created_by TEXT,
                  UNIQUE (incident_id, org_id, object, record_id))
                """,
                "CREATE INDEX links_by_record ON links (record_id)",
                """
                CREATE TABLE inbound_events (id \(id), source TEXT NOT NULL, external_id TEXT NOT NULL, partition_key TEXT NOT NULL,
                  payload TEXT NOT NULL, received_at BIGINT NOT NULL, status TEXT NOT NULL DEFAULT 'pending', processed_at BIGINT,
                  outcome TEXT, UNIQUE (source, external_id))
                """,
                "CREATE INDEX inbound_by_status ON inbound_events (status, partition_key, id)",
                """
                CREATE TABLE outbound_jobs (id \(id), idempotency_key TEXT NOT NULL UNIQUE, event_id BIGINT, partition_key TEXT NOT NULL,
                  action TEXT NOT NULL, ruleset TEXT, rule TEXT, payload TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'pending',
                  attempts INTEGER NOT NULL DEFAULT 0, max_attempts INTEGER NOT NULL, run_after BIGINT NOT NULL, locked_by TEXT,
                  locked_until BIGINT, last_error TEXT, result TEXT, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL)
                """,
                "CREATE INDEX outbound_by_status ON outbound_jobs (status, partition_key, id)",
                """
                CREATE TABLE dead_letters (id \(id), job_id BIGINT NOT NULL, action TEXT NOT NULL, error TEXT NOT NULL,
                  payload TEXT NOT NULL, attempts INTEGER NOT NULL, failed_at BIGINT NOT NULL)
                """,
                "CREATE TABLE incident_snapshots (incident_id TEXT PRIMARY KEY, snapshot TEXT NOT NULL, updated_at BIGINT NOT NULL)",
                """
                CREATE TABLE origin_stamps (id \(id), target TEXT NOT NULL, fingerprint TEXT NOT NULL, created_at BIGINT NOT NULL,
                  expires_at BIGINT NOT NULL)
                """,
                "CREATE INDEX origin_stamps_by_target ON origin_stamps (target, fingerprint)",
                """
                CREATE TABLE rule_hops (rule_key TEXT NOT NULL, subject TEXT NOT NULL, window_start BIGINT NOT NULL, hops INTEGER NOT NULL,
                  suspended_reason TEXT, suspended_at BIGINT, PRIMARY KEY (rule_key, subject))
                """,
                """
                CREATE TABLE logs (id \(id), at BIGINT NOT NULL, level TEXT NOT NULL, category TEXT NOT NULL, message TEXT NOT NULL,
                  incident_id TEXT, record_id TEXT, event_id BIGINT, payload TEXT)
                """,
                "CREATE INDEX logs_by_time ON logs (at)",
                """
                CREATE TABLE audit_trail (id \(id), at BIGINT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, subject TEXT NOT NULL,
                  detail TEXT)
                """,
                "CREATE TABLE leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at BIGINT NOT NULL)",
            ]
        },
        Migration(version: 2, name: "event arrival time on jobs, for the event-to-action latency") { _ in
            ["ALTER TABLE outbound_jobs ADD COLUMN received_at BIGINT"]
        },
        // Claims take the oldest pending rows in id order. Without these, each claim sorted every pending row: with
        // a backlog, processing slowed as the backlog grew.
        Migration(version: 3, name: "pending events and jobs in id order") { _ in
            ["CREATE INDEX inbound_pending ON inbound_events (status, id)", "CREATE INDEX outbound_by_status_id ON outbound_jobs (status, id)"]
        },
        // When the next retry is due, without reading every pending job.
        Migration(version: 4, name: "pending jobs by due time") { _ in
            ["CREATE INDEX outbound_due ON outbound_jobs (status, run_after)"]
        },
        // The (status, partition_key, id) indexes served only the per-partition order checks, which look at open rows.
        // Every status change moved an entry from the small open part to a random place in the large closed part:
        // processing a batch dirtied a page per event, which went to disk on every commit. Partial indexes hold the
        // open rows only; the (status, id) indexes, where closed rows are appended in id order, stay for claims and counts.
        Migration(version: 5, name: "per-partition order checks on open rows only") { _ in
            [
                "DROP INDEX inbound_by_status",
                "CREATE INDEX inbound_pending_by_partition ON inbound_events (partition_key, id) WHERE status = 'pending'",
                "DROP INDEX outbound_by_status",
                "CREATE INDEX outbound_open_by_partition ON outbound_jobs (partition_key, id) WHERE status IN ('pending', 'running')",
            ]
        },
    ]

    /// Applies the steps not applied yet. Safe to run from several processes at once: on PostgreSQL an
    /// advisory lock serialises them; on SQLite the write lock does.
    @discardableResult
    public static func migrate(_ database: any Database, now: Int64) async throws -> [Int] {
        try await database.transaction { db in
            try await db.raw(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)"
            ).run()
        }
        var applied: [Int] = []
        for migration in all {
            let done: Bool = try await database.transaction { db in
                if database.dialect == .postgresql {
                    try await db.raw("SELECT pg_advisory_xact_lock(7305521)").run()
                }
                let existing = try await db.raw("SELECT version FROM schema_migrations WHERE version = \(bind: migration.version)").first()
                if existing != nil { return true }
                for statement in migration.statements(database.dialect) {
                    try await db.raw(SQLQueryString(statement)).run()
                }
                try await db.raw(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (\(bind: migration.version), \(bind: migration.name), \(bind: now))"
                ).run()
                return false
            }
            if !done { applied.append(migration.version) }
        }
        return applied
    }

    /// The newest version applied, or 0 for an empty database.
    public static func currentVersion(_ database: any Database) async throws -> Int {
        try await database.read { db in
            let row = try? await db.raw("SELECT MAX(version) AS v FROM schema_migrations").first()
            return (try? row?.decodeNil(column: "v")) == false ? (try row?.decode(column: "v", as: Int.self) ?? 0) : 0
        }
    }
}
