import SQLKit

/// The levels of the integration's own log (the LOGGER tab): Debug records everything, Info records info and
/// errors, Error records errors only.
public enum LogLevel: String, Sendable, CaseIterable, Comparable {
    case debug, info, error

    var rank: Int {
        switch self {
        case .debug: 0
        case .info: 1
        case .error: 2
        }
    }

    public static func < (lhs: LogLevel, rhs: LogLevel) -> Bool { lhs.rank < rhs.rank }
}

/// One log entry: every inbound delivery and every error, with the raw payload.
public struct LogEntry: Sendable, Hashable {
    public var id: Int64?
    public var at: Int64
    public var level: LogLevel
    /// `intake`, `processing`, `dispatch`, `echo`, `retention`, …
    public var category: String
    public var message: String
    public var incidentId: String?
    public var recordId: String?
    public var eventId: Int64?
    public var payload: String?

    public init(
        at: Int64, level: LogLevel, category: String, message: String, incidentId: String? = nil, recordId: String? = nil,
        eventId: Int64? = nil, payload: String? = nil
    ) {
        self.at = at
        self.level = level
        self.category = category
        self.message = message
        self.incidentId = incidentId
        self.recordId = recordId
        self.eventId = eventId
        self.payload = payload
    }

    /// The entry with every NUL character replaced by U+FFFD.
    var withoutNUL: LogEntry {
        func clean(_ s: String) -> String { s.utf8.contains(0) ? s.replacingOccurrences(of: "\u{0}", with: "\u{FFFD}") : s }
        var e = self
        e.category = clean(category)
        e.message = clean(message)
        e.incidentId = incidentId.map(clean)
        e.recordId = recordId.map(clean)
        e.payload = payload.map(clean)
        return e
    }

    init(row: any SQLRow) throws {
        id = try row.decode(column: "id", as: Int64.self)
        at = try row.decode(column: "at", as: Int64.self)
        level = LogLevel(rawValue: try row.decode(column: "level", as: String.self)) ?? .info
        category = try row.decode(column: "category", as: String.self)
        message = try row.decode(column: "message", as: String.self)
        incidentId = try row.decode(column: "incident_id", as: String?.self)
        recordId = try row.decode(column: "record_id", as: String?.self)
        eventId = try row.decode(column: "event_id", as: Int64?.self)
        payload = try row.decode(column: "payload", as: String?.self)
    }
}

/// What `switchboard logs` filters on.
public struct LogQuery: Sendable {
    public var minimumLevel: LogLevel?
    public var since: Int64?
    public var until: Int64?
    public var incidentId: String?
    public var recordId: String?
    public var category: String?
    public var text: String?
    public var limit: Int

    public init(
        minimumLevel: LogLevel? = nil, since: Int64? = nil, until: Int64? = nil, incidentId: String? = nil, recordId: String? = nil,
        category: String? = nil, text: String? = nil, limit: Int = 100
    ) {
        self.minimumLevel = minimumLevel
        self.since = since
        self.until = until
        self.incidentId = incidentId
        self.recordId = recordId
        self.category = category
        self.text = text
        self.limit = limit
    }
}

public enum LogStore {
    /// Writes the entries. A NUL character (a malformed delivery may hold one) is kept as U+FFFD: PostgreSQL refuses it in
    /// text, and SQLite would give the text back cut short at it.
    public static func write(_ entries: [LogEntry], on db: any SQLDatabase) async throws {
        guard !entries.isEmpty else { return }
        var statement = PlainStatement("INSERT INTO logs (at, level, category, message, incident_id, record_id, event_id, payload) VALUES ")
        for (i, e) in entries.map(\.withoutNUL).enumerated() {
            if i > 0 { statement.sql(", ") }
            statement.row([
                .integer(e.at), .text(e.level.rawValue), .text(e.category), .text(e.message), PlainValue(e.incidentId), PlainValue(e.recordId),
                PlainValue(e.eventId), PlainValue(e.payload),
            ])
        }
        try await statement.run(on: db)
    }

    /// Entries matching the query, newest first.
    public static func query(_ q: LogQuery, on db: any SQLDatabase) async throws -> [LogEntry] {
        // An intake entry without a payload of its own shows its stored event's (written once, not twice).
        var query = SQLQueryString(
            """
            SELECT l.id, l.at, l.level, l.category, l.message, l.incident_id, l.record_id, l.event_id, COALESCE(l.payload, e.payload) AS payload
            FROM logs l LEFT JOIN inbound_events e ON l.payload IS NULL AND l.category = 'intake' AND e.id = l.event_id WHERE 1 = 1
            """)
        if let level = q.minimumLevel {
            let levels = LogLevel.allCases.filter { $0 >= level }.map(\.rawValue)
            query += " AND l.level IN (\(binds: levels))"
        }
        if let since = q.since { query += " AND l.at >= \(bind: since)" }
        if let until = q.until { query += " AND l.at <= \(bind: until)" }
        if let incident = q.incidentId { query += " AND l.incident_id = \(bind: incident)" }
        if let record = q.recordId { query += " AND l.record_id = \(bind: record)" }
        if let category = q.category { query += " AND l.category = \(bind: category)" }
        if let text = q.text {
            query += " AND (l.message LIKE \(bind: "%" + text + "%") OR COALESCE(l.payload, e.payload) LIKE \(bind: "%" + text + "%"))"
        }
        query += " ORDER BY l.at DESC, l.id DESC LIMIT \(bind: q.limit)"
        return try await db.raw(query).all().map(LogEntry.init(row:))
    }

    /// Deletes up to `limit` entries older than `before` (oldest first); returns how many.
    @discardableResult
    public static func purge(before: Int64, limit: Int = 5_000, on db: any SQLDatabase) async throws -> Int {
        try await db.raw(
            "DELETE FROM logs WHERE id IN (SELECT id FROM logs WHERE at < \(bind: before) ORDER BY at LIMIT \(bind: limit)) RETURNING id"
        ).all().count
    }
}

/// The audit trail of configuration changes.
public struct AuditEntry: Sendable, Hashable {
    public var at: Int64
    public var actor: String
    public var action: String
    public var subject: String
    public var detail: String?
}

public enum AuditStore {
    public static func record(actor: String, action: String, subject: String, detail: String?, now: Int64, on db: any SQLDatabase) async throws {
        try await db.raw(
            """
            INSERT INTO audit_trail (at, actor, action, subject, detail)
            VALUES (\(bind: now), \(bind: actor), \(bind: action), \(bind: subject), \(bind: detail))
            """
        ).run()
    }

    public static func list(limit: Int = 100, on db: any SQLDatabase) async throws -> [AuditEntry] {
        try await db.raw("SELECT * FROM audit_trail ORDER BY id DESC LIMIT \(bind: limit)").all().map { row in
            AuditEntry(
                at: try row.decode(column: "at", as: Int64.self), actor: try row.decode(column: "actor", as: String.self),
                action: try row.decode(column: "action", as: String.self), subject: try row.decode(column: "subject", as: String.self),
                detail: try row.decode(column: "detail", as: String?.self))
        }
    }
}

/// Runs periodic work on exactly one process at a time.
public enum PeriodicLock {
    /// Runs `body` in a transaction if no other process is running the same named work: on PostgreSQL through a
    /// transaction-scoped advisory lock, on SQLite (one process) through the write lock. Returns nil when another
    /// process holds it.
    public static func run<T: Sendable>(
        _ name: String, database: any Database, _ body: @Sendable (any SQLDatabase) async throws -> T
    ) async throws -> T? {
        try await database.transaction { db in
            if database.dialect == .postgresql {
                let key = advisoryKey(name)
                let row = try await db.raw("SELECT pg_try_advisory_xact_lock(\(bind: key)) AS locked").first()
                guard try row?.decode(column: "locked", as: Bool.self) == true else { return nil }
            }
            return try await body(db)
        }
    }
}
