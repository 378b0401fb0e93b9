import Logging
import SQLKit
import ServiceLifecycle
import SwitchboardStorage

/// Deletes logs, decided events and done jobs past the log's retention, and expired origin stamps, on one process
/// at a time.
public final class RetentionService: Service {
    let database: any Database
    let clock: any WallClock
    let log: IntegrationLog
    let interval: Duration
    let logger: Logger
    /// Opened once the schema is migrated.
    public let ready = Gate()

    public init(database: any Database, clock: any WallClock, log: IntegrationLog, interval: Duration, logger: Logger) {
        self.database = database
        self.clock = clock
        self.log = log
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await self.ready.wait()
            // The logger's settings are re-read every few seconds, so `switchboard settings set log.level …` takes
            // effect on a running server; a shorter retention purges at once rather than at the next interval.
            let settingsInterval = min(self.interval, .seconds(2))
            var lastPurge: ContinuousClock.Instant?
            var purgedWithDays: Int?
            while !Task.isCancelled {
                await self.log.reload(from: self.database)
                let days = self.log.current.retentionDays
                if lastPurge.map({ ContinuousClock.now - $0 >= self.interval }) ?? true || purgedWithDays.map({ days < $0 }) == true {
                    do {
                        try await self.purge()
                        lastPurge = .now
                        purgedWithDays = days
                    } catch where Task.isCancelled {
                        break
                    } catch {
                        lastPurge = .now
                        self.logger.error("the retention purge failed", metadata: ["error": "\(error)"])
                    }
                }
                try? await Task.sleep(for: settingsInterval)
            }
        }
    }

    /// What one purge deleted.
    public struct Purged: Sendable, Hashable {
        public var logEntries = 0
        public var events = 0
        public var jobs = 0
    }

    /// Runs one purge if no other process is; returns what it deleted, or nil when another process was purging.
    ///
    /// Log entries, decided events and done jobs share the log's retention: an entry about a delivery shows the
    /// stored event's payload. Each step is a short transaction of at most `stepLimit` rows, so deliveries keep committing
    /// while a large backlog of old rows is deleted.
    @discardableResult
    public func purge(stepLimit: Int = 1_000) async throws -> Purged? {
        let now = clock.millis
        let days = log.current.retentionDays
        let cutoff = now - Int64(days) * 86_400_000
        let database = self.database
        var purged = Purged()
        // Every step takes the lock again; another process finding it taken skips its purge (nothing is done twice,
        // and deleting an old row twice would be harmless anyway).
        func step<T: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> T) async throws -> T? {
            try await PeriodicLock.run("retention", database: database, body)
        }
        guard try await step({ db in try await OriginStampStore.purge(before: now, on: db) }) != nil else { return nil }
        while let deleted = try await step({ db in try await LogStore.purge(before: cutoff, limit: stepLimit, on: db) }) {
            purged.logEntries += deleted
            if deleted < stepLimit { break }
        }
        var after: Int64? = 0
        while let from = after, let result = try await step({ db in try await EventStore.purge(before: cutoff, after: from, limit: stepLimit, on: db) }) {
            purged.events += result.deleted
            after = result.resumeAfter
        }
        after = 0
        while let from = after, let result = try await step({ db in try await JobStore.purge(before: cutoff, after: from, limit: stepLimit, on: db) }) {
            purged.jobs += result.deleted
            after = result.resumeAfter
        }
        if purged != Purged(),
            let entry = log.entry(
                .info, "retention",
                "deleted \(purged.logEntries) log entries, \(purged.events) decided events and \(purged.jobs) done jobs older than \(days) days")
        {
            try await database.transaction { db in try await LogStore.write([entry], on: db) }
        }
        return purged
    }
}
