import Logging
import ServiceLifecycle
import SwitchboardStorage

/// Deletes logs past their retention and expired origin stamps, on one process at a time.
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

    /// Runs one purge if no other process is; returns how many log entries were deleted, or nil when another
    /// process ran it.
    @discardableResult
    public func purge() async throws -> Int? {
        let now = clock.millis
        let cutoff = now - Int64(log.current.retentionDays) * 86_400_000
        let log = self.log
        return try await PeriodicLock.run("retention", database: database) { db in
            let deleted = try await LogStore.purge(before: cutoff, on: db)
            try await OriginStampStore.purge(before: now, on: db)
            if deleted > 0, let entry = log.entry(.info, "retention", "deleted \(deleted) log entries older than \(log.current.retentionDays) days") {
                try await LogStore.write([entry], on: db)
            }
            return deleted
        }
    }
}
