import Logging
import SQLKit
import Synchronization
import SwitchboardStorage

/// A real database that can be made to stop answering, as a PostgreSQL server that went away does: the pool's
/// callers then wait instead of failing, which is what deadlines in the server must cope with.
public final class StallingDatabase: Database {
    private let wrapped: any Database
    private let stalled = Mutex(false)
    private let holding = Mutex((on: false, held: 0))
    private let unsynced = Mutex((count: 0, holding: false, waiting: 0))

    public init(_ wrapped: any Database) { self.wrapped = wrapped }

    /// From now on every call waits (until cancelled), or answers again.
    public func stall(_ stalling: Bool) { stalled.withLock { $0 = stalling } }

    /// From now on reads run, then keep their answer until released: a read that began before a change returns
    /// what it saw before it, after the change.
    public func holdAnswers(_ on: Bool) { holding.withLock { $0.on = on } }

    /// How many reads have held their answer so far.
    public var answersHeld: Int { holding.withLock { $0.held } }

    private func waitWhileStalled() async throws {
        while stalled.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(20)) }
    }

    public var dialect: DatabaseDialect { wrapped.dialect }
    public var displayName: String { wrapped.displayName }

    /// How many transactions ran without a disk sync (the dispatcher's own job claims).
    public var unsyncedTransactions: Int { unsynced.withLock { $0.count } }

    /// From now on transactions without a disk sync (the dispatcher's claims) wait before they begin, or go on.
    public func holdUnsynced(_ on: Bool) { unsynced.withLock { $0.holding = on } }

    /// How many unsynced transactions are waiting now.
    public var unsyncedWaiting: Int { unsynced.withLock { $0.waiting } }

    public func transaction<T: Sendable>(synced: Bool, _ body: @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        try await waitWhileStalled()
        if !synced {
            unsynced.withLock { $0.count += 1; $0.waiting += 1 }
            defer { unsynced.withLock { $0.waiting -= 1 } }
            while unsynced.withLock({ $0.holding }) { try await Task.sleep(for: .milliseconds(5)) }
        }
        return try await wrapped.transaction(synced: synced, body)
    }

    public func read<T: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        try await waitWhileStalled()
        let answer = try await wrapped.read(body)
        guard holding.withLock({ h in h.held += h.on ? 1 : 0; return h.on }) else { return answer }
        while holding.withLock({ $0.on }) { try await Task.sleep(for: .milliseconds(5)) }
        return answer
    }

    public func ping() async throws {
        try await waitWhileStalled()
        try await wrapped.ping()
    }

    public func run() async { await wrapped.run() }
    public func close() async { await wrapped.close() }

    public func exclusively<T: Sendable>(_ name: String, _ body: @Sendable () async throws -> T) async throws -> T? {
        try await waitWhileStalled()
        return try await wrapped.exclusively(name, body)
    }
}

extension StallingDatabase {
    /// A fresh SQLite database, filled by `fill` under a new secret key, then handed to `body` behind a
    /// `StallingDatabase`, with the key and a quiet logger.
    public static func withFilled(
        _ fill: @Sendable (SecretBox, any SQLDatabase) async throws -> Void,
        _ body: @Sendable (StallingDatabase, SecretBox, Logger) async throws -> Void
    ) async throws {
        try await withTestDatabase(.sqlite) { (db: any Database, _: String) async throws -> Void in
            let box = try SecretBox(encodedKey: SecretBox.generateEncodedKey())
            try await db.transaction { try await fill(box, $0) }
            var logger = Logger(label: "test")
            logger.logLevel = .critical
            try await body(StallingDatabase(db), box, logger)
        }
    }
}
