import SQLKit

/// An action to carry out, as written into the outbox.
public struct NewOutboundJob: Sendable, Hashable {
    /// Unique per effect: a replayed event or a retried job finds the same key and is not enqueued twice.
    public var idempotencyKey: String
    public var eventId: Int64?
    /// Jobs with the same key run strictly in order (an incident is created before responders are added to it).
    public var partitionKey: String
    public var action: String
    public var ruleset: String?
    public var rule: String?
    /// The planned action as JSON.
    public var payload: String
    /// When the event that planned it arrived, for the event-to-action latency.
    public var receivedAt: Int64?

    public init(
        idempotencyKey: String, eventId: Int64?, partitionKey: String, action: String, ruleset: String?, rule: String?, payload: String,
        receivedAt: Int64? = nil
    ) {
        self.receivedAt = receivedAt
        self.idempotencyKey = idempotencyKey
        self.eventId = eventId
        self.partitionKey = partitionKey
        self.action = action
        self.ruleset = ruleset
        self.rule = rule
        self.payload = payload
    }
}

/// A job in the outbox.
public struct OutboundJob: Sendable, Hashable {
    public var id: Int64
    public var idempotencyKey: String
    public var eventId: Int64?
    public var partitionKey: String
    public var action: String
    public var ruleset: String?
    public var rule: String?
    public var payload: String
    /// `pending`, `running`, `done` or `dead`.
    public var status: String
    public var attempts: Int
    public var maxAttempts: Int
    public var runAfter: Int64
    public var lastError: String?
    public var result: String?
    public var createdAt: Int64
    public var updatedAt: Int64
    public var receivedAt: Int64?

    init(row: any SQLRow) throws {
        receivedAt = try row.decode(column: "received_at", as: Int64?.self)
        id = try row.decode(column: "id", as: Int64.self)
        idempotencyKey = try row.decode(column: "idempotency_key", as: String.self)
        eventId = try row.decode(column: "event_id", as: Int64?.self)
        partitionKey = try row.decode(column: "partition_key", as: String.self)
        action = try row.decode(column: "action", as: String.self)
        ruleset = try row.decode(column: "ruleset", as: String?.self)
        rule = try row.decode(column: "rule", as: String?.self)
        payload = try row.decode(column: "payload", as: String.self)
        status = try row.decode(column: "status", as: String.self)
        attempts = try row.decode(column: "attempts", as: Int.self)
        maxAttempts = try row.decode(column: "max_attempts", as: Int.self)
        runAfter = try row.decode(column: "run_after", as: Int64.self)
        lastError = try row.decode(column: "last_error", as: String?.self)
        result = try row.decode(column: "result", as: String?.self)
        createdAt = try row.decode(column: "created_at", as: Int64.self)
        updatedAt = try row.decode(column: "updated_at", as: Int64.self)
    }
}

/// A job that failed for good, kept for an admin to inspect and retry.
public struct DeadLetter: Sendable, Hashable {
    public var id: Int64
    public var jobId: Int64
    public var action: String
    public var error: String
    public var payload: String
    public var attempts: Int
    public var failedAt: Int64

    init(row: any SQLRow) throws {
        id = try row.decode(column: "id", as: Int64.self)
        jobId = try row.decode(column: "job_id", as: Int64.self)
        action = try row.decode(column: "action", as: String.self)
        error = try row.decode(column: "error", as: String.self)
        payload = try row.decode(column: "payload", as: String.self)
        attempts = try row.decode(column: "attempts", as: Int.self)
        failedAt = try row.decode(column: "failed_at", as: Int64.self)
    }
}

/// The outbox: enqueue in the transaction that decided, claim with leases, complete, retry, dead-letter.
public enum JobStore {
    /// Enqueues jobs; a job whose idempotency key exists already is skipped. Returns how many were new.
    @discardableResult
    public static func enqueue(_ jobs: [NewOutboundJob], maxAttempts: Int, now: Int64, on db: any SQLDatabase) async throws -> Int {
        guard !jobs.isEmpty else { return 0 }
        var query = SQLQueryString(
            "INSERT INTO outbound_jobs (idempotency_key, event_id, partition_key, action, ruleset, rule, payload, status, attempts, max_attempts, run_after, created_at, updated_at, received_at) VALUES "
        )
        for (i, j) in jobs.enumerated() {
            if i > 0 { query += ", " }
            query += """
                (\(bind: j.idempotencyKey), \(bind: j.eventId), \(bind: j.partitionKey), \(bind: j.action), \(bind: j.ruleset), \(bind: j.rule), \
                \(bind: j.payload), 'pending', 0, \(bind: maxAttempts), \(bind: now), \(bind: now), \(bind: now), \(bind: j.receivedAt))
                """
        }
        query += " ON CONFLICT (idempotency_key) DO NOTHING RETURNING id"
        return try await db.raw(query).all().count
    }

    /// Claims due jobs for `worker` until `leaseUntil`: the oldest runnable job of each partition whose earlier jobs
    /// are finished. A running job whose lease expired (its process died) is claimed again.
    public static func claim(
        worker: String, limit: Int, now: Int64, leaseUntil: Int64, dialect: DatabaseDialect, on db: any SQLDatabase
    ) async throws -> [OutboundJob] {
        try await db.raw(claimQuery(worker: worker, limit: limit, now: now, leaseUntil: leaseUntil, dialect: dialect)).all()
            .map(OutboundJob.init(row:)).sorted { $0.id < $1.id }
    }

    /// The statement `claim` runs (its plan is checked by the tests: it must not sort the whole backlog).
    public static func claimQuery(worker: String, limit: Int, now: Int64, leaseUntil: Int64, dialect: DatabaseDialect) -> SQLQueryString {
        if dialect == .sqlite {
            // The same claim as below, written so that each branch walks the (status, id) index in id order instead of
            // sorting every pending job (pending jobs first; running ones whose lease expired are rare). The index is
            // named: without statistics the planner may pick the due-time index and sort the backlog again.
            let query: SQLQueryString = """
                UPDATE outbound_jobs SET status = 'running', locked_by = \(bind: worker), locked_until = \(bind: leaseUntil),
                  attempts = attempts + 1, updated_at = \(bind: now)
                WHERE id IN (
                  SELECT id FROM (SELECT j.id FROM outbound_jobs j INDEXED BY outbound_by_status_id WHERE j.status = 'pending' AND j.run_after <= \(bind: now)
                    AND NOT EXISTS (SELECT 1 FROM outbound_jobs p WHERE p.partition_key = j.partition_key AND p.id < j.id
                                    AND p.status IN ('pending', 'running'))
                    ORDER BY j.id LIMIT \(bind: limit))
                  UNION ALL
                  SELECT id FROM (SELECT j.id FROM outbound_jobs j INDEXED BY outbound_by_status_id WHERE j.status = 'running' AND j.locked_until < \(bind: now)
                    AND NOT EXISTS (SELECT 1 FROM outbound_jobs p WHERE p.partition_key = j.partition_key AND p.id < j.id
                                    AND p.status IN ('pending', 'running'))
                    ORDER BY j.id LIMIT \(bind: limit))
                  ORDER BY id LIMIT \(bind: limit)
                ) RETURNING *
                """
            return query
        }
        let query: SQLQueryString = """
            UPDATE outbound_jobs SET status = 'running', locked_by = \(bind: worker), locked_until = \(bind: leaseUntil),
              attempts = attempts + 1, updated_at = \(bind: now)
            WHERE id IN (SELECT j.id FROM outbound_jobs j
              WHERE j.status IN ('pending', 'running')
              AND ((j.status = 'pending' AND j.run_after <= \(bind: now)) OR (j.status = 'running' AND j.locked_until < \(bind: now)))
              AND NOT EXISTS (SELECT 1 FROM outbound_jobs p WHERE p.partition_key = j.partition_key AND p.id < j.id
                              AND p.status IN ('pending', 'running'))
              ORDER BY j.id LIMIT \(bind: limit) FOR UPDATE SKIP LOCKED) RETURNING *
            """
        return query
    }

    /// Marks a job done, if `worker` still holds it. Returns false when the lease was lost.
    @discardableResult
    public static func complete(id: Int64, worker: String, result: String?, now: Int64, on db: any SQLDatabase) async throws -> Bool {
        let rows = try await db.raw(
            """
            UPDATE outbound_jobs SET status = 'done', result = \(bind: result), locked_by = NULL, locked_until = NULL, last_error = NULL,
              updated_at = \(bind: now) WHERE id = \(bind: id) AND locked_by = \(bind: worker) AND status = 'running' RETURNING id
            """
        ).all()
        return !rows.isEmpty
    }

    /// Records a failed attempt: schedules the next one at `retryAt`, or moves the job to the dead letters when
    /// `retryAt` is nil or the attempts are used up. Returns true when the job is now dead.
    @discardableResult
    public static func fail(
        id: Int64, worker: String, error: String, retryAt: Int64?, now: Int64, on db: any SQLDatabase
    ) async throws -> Bool {
        guard let row = try await db.raw("SELECT * FROM outbound_jobs WHERE id = \(bind: id) AND locked_by = \(bind: worker)").first() else {
            return false
        }
        let job = try OutboundJob(row: row)
        if let retryAt, job.attempts < job.maxAttempts {
            try await db.raw(
                """
                UPDATE outbound_jobs SET status = 'pending', run_after = \(bind: retryAt), last_error = \(bind: error), locked_by = NULL,
                  locked_until = NULL, updated_at = \(bind: now) WHERE id = \(bind: id)
                """
            ).run()
            return false
        }
        try await db.raw(
            """
            UPDATE outbound_jobs SET status = 'dead', last_error = \(bind: error), locked_by = NULL, locked_until = NULL,
              updated_at = \(bind: now) WHERE id = \(bind: id)
            """
        ).run()
        try await db.raw(
            """
            INSERT INTO dead_letters (job_id, action, error, payload, attempts, failed_at)
            VALUES (\(bind: id), \(bind: job.action), \(bind: error), \(bind: job.payload), \(bind: job.attempts), \(bind: now))
            """
        ).run()
        return true
    }

    /// Puts a claimed job back to run after `runAfter`, giving back the attempt its claim took: waiting for the far
    /// side's budget is not a failure of the job.
    public static func postpone(id: Int64, worker: String, reason: String, runAfter: Int64, now: Int64, on db: any SQLDatabase) async throws {
        try await db.raw(
            """
            UPDATE outbound_jobs SET status = 'pending', run_after = \(bind: runAfter), last_error = \(bind: reason), locked_by = NULL,
              locked_until = NULL, attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, updated_at = \(bind: now)
            WHERE id = \(bind: id) AND locked_by = \(bind: worker)
            """
        ).run()
    }

    /// Returns a dead job to the queue, to run now with a fresh set of attempts. Later dead jobs of the same event
    /// come back with it: they usually failed because it did (responders for an incident never created).
    public static func retryDead(jobId: Int64, now: Int64, on db: any SQLDatabase) async throws -> Bool {
        let rows = try await db.raw(
            """
            UPDATE outbound_jobs SET status = 'pending', attempts = 0, run_after = \(bind: now), updated_at = \(bind: now)
            WHERE id = \(bind: jobId) AND status = 'dead' RETURNING id, event_id
            """
        ).all()
        guard let row = rows.first else { return false }
        var ids = [jobId]
        if let event = try row.decode(column: "event_id", as: Int64?.self) {
            let followers = try await db.raw(
                """
                UPDATE outbound_jobs SET status = 'pending', attempts = 0, run_after = \(bind: now), updated_at = \(bind: now)
                WHERE event_id = \(bind: event) AND id > \(bind: jobId) AND status = 'dead' RETURNING id
                """
            ).all()
            ids += try followers.map { try $0.decode(column: "id", as: Int64.self) }
        }
        try await db.raw("DELETE FROM dead_letters WHERE job_id IN (\(binds: ids))").run()
        return true
    }

    /// Drops a dead letter for good (the job stays, marked dead, for the record).
    public static func dropDead(jobId: Int64, on db: any SQLDatabase) async throws -> Bool {
        let rows = try await db.raw("DELETE FROM dead_letters WHERE job_id = \(bind: jobId) RETURNING id").all()
        return !rows.isEmpty
    }

    public static func deadLetters(limit: Int = 100, on db: any SQLDatabase) async throws -> [DeadLetter] {
        try await db.raw("SELECT * FROM dead_letters ORDER BY id DESC LIMIT \(bind: limit)").all().map(DeadLetter.init(row:))
    }

    public static func find(id: Int64, on db: any SQLDatabase) async throws -> OutboundJob? {
        try await db.raw("SELECT * FROM outbound_jobs WHERE id = \(bind: id)").first().map(OutboundJob.init(row:))
    }

    public static func list(status: String? = nil, limit: Int = 100, on db: any SQLDatabase) async throws -> [OutboundJob] {
        var query = SQLQueryString("SELECT * FROM outbound_jobs")
        if let status { query += " WHERE status = \(bind: status)" }
        query += " ORDER BY id LIMIT \(bind: limit)"
        return try await db.raw(query).all().map(OutboundJob.init(row:))
    }

    /// Counts by status (the queue depths).
    public static func counts(on db: any SQLDatabase) async throws -> [String: Int] {
        try await statusCounts("SELECT status, COUNT(*) AS n FROM outbound_jobs GROUP BY status", on: db)
    }

    /// The statuses whose rows are few: waiting, in hand, or dead letters (done jobs are every action ever taken).
    public static let openStatuses = ["pending", "running", "dead"]

    /// Counts of the open statuses only, read from the (status, id) index: cheap at any table size (see
    /// `EventStore.openCounts`).
    public static func openCounts(on db: any SQLDatabase) async throws -> [String: Int] {
        try await statusCounts(openCountsQuery, on: db)
    }

    /// The statement `openCounts` runs (its plan is checked by the tests).
    public static var openCountsQuery: SQLQueryString {
        "SELECT status, COUNT(*) AS n FROM outbound_jobs WHERE status IN (\(binds: openStatuses)) GROUP BY status"
    }

    /// When the next pending job is due, so a dispatcher can sleep until then.
    public static func nextDue(on db: any SQLDatabase) async throws -> Int64? {
        let row = try await db.raw("SELECT MIN(run_after) AS due FROM outbound_jobs WHERE status = 'pending'").first()
        return try row?.decode(column: "due", as: Int64?.self)
    }
}

extension JobStore {
    /// Deletes done jobs created before `cutoff`, in id order after `after`. Pending, running and dead jobs stay. A
    /// job is never deleted before the event that planned it (it was created after it), so a replayed event still
    /// finds its jobs' idempotency keys.
    public static func purge(before cutoff: Int64, after: Int64 = 0, limit: Int = 5_000, on db: any SQLDatabase) async throws -> RetentionStep {
        try await RetentionStep.run(table: "outbound_jobs", time: "created_at", finished: ["done"], before: cutoff, after: after, limit: limit, on: db)
    }
}
