import Logging
import Synchronization
import SwitchboardStorage

/// What became of one delivered event.
public enum IntakeOutcome: Sendable, Hashable {
    case accepted(id: Int64)
    /// The source sent it before; it is acknowledged and ignored.
    case duplicate
}

/// Commits inbound events durably before they are acknowledged, in groups: requests that arrive while a
/// commit is under way share the next one, so one disk sync acknowledges many deliveries.
public final class IntakeWriter: Sendable {
    /// One request's events and log entries.
    private struct Delivery: Sendable {
        var events: [NewInboundEvent]
        var logs: [LogEntry]
        /// The log entries show the (single) event's payload by reference instead of a copy.
        var logsReferToEvent: Bool
    }

    private let group: GroupCommit<Delivery, [IntakeOutcome]>

    /// Events committed together at most, unless told otherwise.
    public static let defaultMaximumBatch = 500

    /// - Parameters:
    ///   - committed: called after each commit, to wake the processor.
    ///   - maximumBatch: events per transaction at most.
    ///   - commitTimeout: a commit that takes longer is reported as failed (the sender retries; a late commit is
    ///     deduplicated).
    public init(
        database: any Database, clock: any WallClock, maximumBatch: Int = IntakeWriter.defaultMaximumBatch, commitTimeout: Duration = .seconds(4),
        committed: @escaping @Sendable () -> Void
    ) {
        group = GroupCommit(maximumGroup: maximumBatch, size: { $0.events.count }) { deliveries in
            let outcomes = try await Self.commit(deliveries, now: clock.millis, database: database, timeout: commitTimeout)
            committed()
            return outcomes
        }
    }

    /// Stores the events (and their log entries) and returns once they are on disk.
    ///
    /// - Parameter logsReferToEvent: with one event, its log entries carry no copy of the payload: they name the
    ///   stored event, whose payload the log shows (a duplicate delivery's entries get the copy, as nothing is
    ///   stored for it). The raw payload is written once instead of twice.
    public func accept(_ events: [NewInboundEvent], logs: [LogEntry] = [], logsReferToEvent: Bool = false) async throws -> [IntakeOutcome] {
        try await group.submit(Delivery(events: events, logs: logs, logsReferToEvent: logsReferToEvent && events.count == 1))
    }

    /// An event's identity at its source: what deduplication compares.
    private static func key(_ event: NewInboundEvent) -> String { event.source.rawValue + "\u{1F}" + event.externalId }

    /// Stores a group of deliveries in one transaction; returns each delivery's outcomes.
    private static func commit(_ batch: [Delivery], now: Int64, database: any Database, timeout: Duration) async throws -> [[IntakeOutcome]] {
        // The same event twice in one group: the first one wins, the rest are duplicates.
        var seen = Set<String>()
        var deduplicated: [NewInboundEvent] = []
        for event in batch.flatMap(\.events) where seen.insert(key(event)).inserted {
            deduplicated.append(event)
        }
        let unique = deduplicated
        let pendingLogs = batch.map { (logs: $0.logs, event: $0.logsReferToEvent ? $0.events.first : nil) }
        // The id of each event stored now, by key; duplicates of stored events are absent.
        let stored = try await withDeadline(timeout) {
            try await database.transaction { db in
                let ids = try await EventStore.insert(unique, now: now, on: db)
                var stored: [String: Int64] = [:]
                for (event, id) in zip(unique, ids) {
                    if let id { stored[key(event)] = id }
                }
                var logs: [LogEntry] = []
                for pending in pendingLogs {
                    guard let event = pending.event else {
                        logs += pending.logs
                        continue
                    }
                    let id = stored[key(event)]
                    for var entry in pending.logs {
                        if let id { entry.eventId = entry.eventId ?? id } else { entry.payload = entry.payload ?? event.payload }
                        logs.append(entry)
                    }
                }
                try await LogStore.write(logs, on: db)
                return stored
            }
        }
        var claimed = Set<String>()
        return batch.map { delivery in
            delivery.events.map { event -> IntakeOutcome in
                let key = key(event)
                guard let id = stored[key], claimed.insert(key).inserted else { return .duplicate }
                return .accepted(id: id)
            }
        }
    }
}

/// Runs `body`, failing with a `DatabaseError` when it takes longer than `timeout`.
///
/// The deadline holds even when `body` ignores cancellation (a query on a connection the server dropped can wait
/// on its socket): the caller gets the error on time and `body` is cancelled and left to end on its own, rather
/// than the caller waiting for it as a task group would.
public func withDeadline<T: Sendable>(_ timeout: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    let race = DeadlineRace<T>()
    let work = Task { try await body() }
    let timer = Task {
        try? await Task.sleep(for: timeout)
        if !Task.isCancelled { race.finish(.failure(DatabaseError("the database did not answer within \(timeout)"))) }
    }
    Task { race.finish(await work.result) }
    let result = await withTaskCancellationHandler {
        await race.wait()
    } onCancel: {
        race.finish(.failure(CancellationError()))
    }
    timer.cancel()
    work.cancel()
    return try result.get()
}

/// The first of the body's result, the deadline and cancellation, handed to one waiter.
private final class DeadlineRace<T: Sendable>: Sendable {
    private struct State {
        var result: Result<T, any Error>?
        var waiter: CheckedContinuation<Result<T, any Error>, Never>?
    }

    private let state = Mutex(State())

    func finish(_ result: Result<T, any Error>) {
        let waiter = state.withLock { s -> CheckedContinuation<Result<T, any Error>, Never>? in
            guard s.result == nil else { return nil }
            s.result = result
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume(returning: result)
    }

    func wait() async -> Result<T, any Error> {
        await withCheckedContinuation { c in
            let ready = state.withLock { s -> Result<T, any Error>? in
                if let r = s.result { return r }
                s.waiter = c
                return nil
            }
            if let ready { c.resume(returning: ready) }
        }
    }
}
