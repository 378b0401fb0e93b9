import SQLKit

/// Where an inbound event came from.
public enum EventSource: String, Sendable, CaseIterable {
    case pagerduty, salesforce
}

/// An event as received, before processing.
public struct NewInboundEvent: Sendable, Hashable {
    public var source: EventSource
    /// The source's own id (PagerDuty's event id, or a digest of a Salesforce delivery and record): duplicates
    /// of it are acknowledged and ignored.
    public var externalId: String
    /// Events with the same key (one incident, one record) are processed strictly in order.
    public var partitionKey: String
    public var payload: String

    public init(source: EventSource, externalId: String, partitionKey: String, payload: String) {
        self.source = source
        self.externalId = externalId
        self.partitionKey = partitionKey
        self.payload = payload
    }
}

/// A stored inbound event.
public struct InboundEvent: Sendable, Hashable {
    public var id: Int64
    public var source: EventSource
    public var externalId: String
    public var partitionKey: String
    public var payload: String
    public var receivedAt: Int64
    /// `pending`, `processed`, `echo`, `ignored` or `failed`.
    public var status: String
    public var outcome: String?
    public var processedAt: Int64?

    init(row: any SQLRow) throws {
        id = try row.decode(column: "id", as: Int64.self)
        source = EventSource(rawValue: try row.decode(column: "source", as: String.self)) ?? .pagerduty
        externalId = try row.decode(column: "external_id", as: String.self)
        partitionKey = try row.decode(column: "partition_key", as: String.self)
        payload = try row.decode(column: "payload", as: String.self)
        receivedAt = try row.decode(column: "received_at", as: Int64.self)
        status = try row.decode(column: "status", as: String.self)
        outcome = try row.decode(column: "outcome", as: String?.self)
        processedAt = try row.decode(column: "processed_at", as: Int64?.self)
    }
}

/// The inbound events table: durable intake, deduplication, ordered claiming.
public enum EventStore {
    /// Inserts a group of events in one statement; returns the new id of each event, or `nil` for a duplicate.
    public static func insert(_ events: [NewInboundEvent], now: Int64, on db: any SQLDatabase) async throws -> [Int64?] {
        guard !events.isEmpty else { return [] }
        var statement = PlainStatement("INSERT INTO inbound_events (source, external_id, partition_key, payload, received_at, status) VALUES ")
        for (i, e) in events.enumerated() {
            if i > 0 { statement.sql(", ") }
            statement.row([.text(e.source.rawValue), .text(e.externalId), .text(e.partitionKey), .text(e.payload), .integer(now)], then: "'pending'")
        }
        statement.sql(" ON CONFLICT (source, external_id) DO NOTHING RETURNING id, source, external_id")
        var ids: [String: Int64] = [:]
        for row in try await statement.rows(on: db, columns: ["id", "source", "external_id"]) {
            guard let id = row[0].integer, let source = row[1].text, let external = row[2].text else {
                throw DatabaseError("the database returned an inserted event without its id, source or external id")
            }
            ids[source + "\u{1F}" + external] = id
        }
        return events.map { ids[$0.source.rawValue + "\u{1F}" + $0.externalId] }
    }

    /// The next pending events to process, oldest first. On PostgreSQL only the oldest pending event of each
    /// partition is offered and rows other processes hold are skipped, so several processes share the work
    /// without breaking per-partition order; call within the transaction that processes them.
    public static func claim(limit: Int, dialect: DatabaseDialect, on db: any SQLDatabase) async throws -> [InboundEvent] {
        try await db.raw(claimQuery(limit: limit, dialect: dialect)).all().map(InboundEvent.init(row:))
    }

    /// The statement `claim` runs (its plan is checked by the tests: it must not sort the whole backlog).
    public static func claimQuery(limit: Int, dialect: DatabaseDialect) -> SQLQueryString {
        let query: SQLQueryString
        switch dialect {
        case .sqlite:
            query = "SELECT * FROM inbound_events INDEXED BY inbound_pending WHERE status = 'pending' ORDER BY id LIMIT \(bind: limit)"
        case .postgresql:
            query = """
                SELECT * FROM inbound_events e WHERE e.status = 'pending'
                AND NOT EXISTS (SELECT 1 FROM inbound_events p WHERE p.partition_key = e.partition_key AND p.status = 'pending' AND p.id < e.id)
                ORDER BY e.id LIMIT \(bind: limit) FOR UPDATE SKIP LOCKED
                """
        }
        return query
    }

    public static func markProcessed(id: Int64, status: String, outcome: String?, now: Int64, on db: any SQLDatabase) async throws {
        try await db.raw(
            "UPDATE inbound_events SET status = \(bind: status), outcome = \(bind: outcome), processed_at = \(bind: now) WHERE id = \(bind: id)"
        ).run()
    }

    public static func find(id: Int64, on db: any SQLDatabase) async throws -> InboundEvent? {
        try await db.raw("SELECT * FROM inbound_events WHERE id = \(bind: id)").first().map(InboundEvent.init(row:))
    }

    /// Events, newest first, optionally filtered.
    public static func list(source: EventSource? = nil, status: String? = nil, limit: Int = 50, on db: any SQLDatabase) async throws -> [InboundEvent] {
        var query = SQLQueryString("SELECT * FROM inbound_events WHERE 1 = 1")
        if let source { query += " AND source = \(bind: source.rawValue)" }
        if let status { query += " AND status = \(bind: status)" }
        query += " ORDER BY id DESC LIMIT \(bind: limit)"
        return try await db.raw(query).all().map(InboundEvent.init(row:))
    }

    /// The statuses whose rows are few (waiting or failed), unlike processed ones, which are every event ever received.
    public static let openStatuses = ["pending", "failed"]

    /// Counts of the open statuses only, read from the (status, id) index: cheap at any table size, for gauges that
    /// are read every few seconds (counting every status read the whole index, 65 ms at 600,000 events, and held up
    /// the reads of the processor meanwhile).
    public static func openCounts(on db: any SQLDatabase) async throws -> [String: Int] {
        try await statusCounts(openCountsQuery, on: db)
    }

    /// The statement `openCounts` runs (its plan is checked by the tests).
    public static var openCountsQuery: SQLQueryString {
        "SELECT status, COUNT(*) AS n FROM inbound_events WHERE status IN (\(binds: openStatuses)) GROUP BY status"
    }

    /// Counts by status.
    public static func counts(on db: any SQLDatabase) async throws -> [String: Int] {
        try await statusCounts("SELECT status, COUNT(*) AS n FROM inbound_events GROUP BY status", on: db)
    }
}

/// Runs a `SELECT status, COUNT(*) AS n … GROUP BY status` query into a dictionary.
func statusCounts(_ query: SQLQueryString, on db: any SQLDatabase) async throws -> [String: Int] {
    var out: [String: Int] = [:]
    for row in try await db.raw(query).all() {
        out[try row.decode(column: "status", as: String.self)] = try row.decode(column: "n", as: Int.self)
    }
    return out
}

extension EventStore {
    /// Deletes decided events (processed, echo, ignored) received before `cutoff`, in id order after `after`.
    /// Pending and failed events stay. A source that delivers a deleted event again gets it accepted as new.
    public static func purge(before cutoff: Int64, after: Int64 = 0, limit: Int = 5_000, on db: any SQLDatabase) async throws -> RetentionStep {
        try await RetentionStep.run(
            table: "inbound_events", time: "received_at", finished: ["processed", "echo", "ignored"], before: cutoff, after: after, limit: limit,
            on: db)
    }
}
