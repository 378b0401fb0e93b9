import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresKit
import PostgresNIO
import SQLKit
import SQLiteKit
import Synchronization

/// The two SQL dialects Switchboard runs on. Code branches on it only where semantics differ
/// (claiming work, leader election).
public enum DatabaseDialect: String, Sendable {
    case sqlite, postgresql
}

/// Why the database could not be used, and what to do about it.
public struct DatabaseError: Error, CustomStringConvertible, Sendable {
    public var message: String

    public init(_ message: String) { self.message = message }

    public var description: String { message }
}

extension Database {
    /// Runs `body` in one transaction, committed to disk when it returns, rolled back when it throws.
    public func transaction<T: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        try await transaction(synced: true, body)
    }
}

/// One SQL database, SQLite or PostgreSQL, behind one interface.
public protocol Database: Sendable {
    var dialect: DatabaseDialect { get }
    /// Runs `body` in one transaction: committed when it returns, rolled back when it throws.
    ///
    /// - Parameter synced: false for a write whose loss in a crash does no harm, such as a job claim (the job is
    ///   then simply due again): its commit does not wait for the disk. Later synced commits still take it to disk
    ///   first, as the log is written in order.
    func transaction<T: Sendable>(synced: Bool, _ body: @Sendable (any SQLDatabase) async throws -> T) async throws -> T
    /// Runs `body` on a connection outside an explicit transaction (reads, single statements).
    func read<T: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> T) async throws -> T
    /// Checks that the database answers.
    func ping() async throws
    /// Runs whatever the database needs in the background (PostgreSQL's connection pool) until cancelled.
    func run() async
    /// Releases the connections.
    func close() async
    /// Where the data lives, without credentials, for logs.
    var displayName: String { get }
    /// Runs `body` unless another process is running work of the same name (nil then). On PostgreSQL a session
    /// advisory lock is held for the whole of `body`; a SQLite file has one process, so `body` just runs.
    func exclusively<T: Sendable>(_ name: String, _ body: @Sendable () async throws -> T) async throws -> T?
    /// Why a new connection fails, in the server's words (a database that does not exist, a password refused, a port
    /// where nothing listens); nil when one can be made. A pool retries quietly, so its callers only see time run out.
    func connectionProblem() async -> String?
}

extension Database {
    public func connectionProblem() async -> String? { nil }
}

/// A stable 64-bit key for an advisory lock name.
func advisoryKey(_ name: String) -> Int64 {
    Int64(truncatingIfNeeded: name.utf8.reduce(UInt64(1_469_598_103_934_665_603)) { ($0 ^ UInt64($1)) &* 1_099_511_628_211 })
}

/// Opens the database a URL names: `sqlite:///path/to/file.sqlite`, a plain file path, `sqlite::memory:`, or
/// `postgres://user:password@host:port/database[?sslmode=disable|prefer|require]`.
public func openDatabase(url: String, logger: Logger) async throws -> any Database {
    if url.hasPrefix("postgres://") || url.hasPrefix("postgresql://") {
        return try PostgreSQLDatabase(url: url, logger: logger)
    }
    if url == "sqlite::memory:" || url == ":memory:" {
        return try await SQLiteDatabase(path: nil, logger: logger)
    }
    var path = url
    if path.hasPrefix("sqlite://") { path = String(path.dropFirst("sqlite://".count)) }
    if path.hasPrefix("sqlite:") { path = String(path.dropFirst("sqlite:".count)) }
    guard !path.isEmpty else { throw DatabaseError("the database URL \"\(url)\" names no file") }
    return try await SQLiteDatabase(path: path, logger: logger)
}

// MARK: - SQLite

/// SQLite: WAL, full sync, a busy timeout, one writer at a time (SQLite's own model) and a separate read-only
/// connection, so reads never wait for the writer.
public final class SQLiteDatabase: Database {
    public let dialect = DatabaseDialect.sqlite
    public let displayName: String
    private let connection: SQLiteConnection
    private let reader: SQLiteConnection?
    private let lock = AsyncLock()
    private let readLock = AsyncLock()
    private let logger: Logger
    private let closed = Mutex(false)
    /// The writer's last `synchronous` setting was NORMAL (an unsynced transaction could not restore FULL).
    private let syncRelaxed = Mutex(false)

    public init(path: String?, logger: Logger) async throws {
        self.logger = logger
        if let path {
            let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw DatabaseError("cannot open the SQLite database \(path): the directory \(directory) does not exist")
            }
            guard FileManager.default.isWritableFile(atPath: directory) else {
                throw DatabaseError("cannot open the SQLite database \(path): the directory \(directory) is not writable")
            }
        }
        self.displayName = path.map { "sqlite:\($0)" } ?? "sqlite::memory:"
        let writer: SQLiteConnection
        do {
            writer = try await SQLiteConnection.open(
                storage: path.map { .file(path: $0) } ?? .memory, threadPool: SQLiteDatabase.writerThread, logger: logger,
                on: MultiThreadedEventLoopGroup.singleton.any())
        } catch {
            throw DatabaseError("cannot open the SQLite database \(path ?? ":memory:"): \(error)")
        }
        var reader: SQLiteConnection?
        do {
            // The first statements are where a file that is not a database (or a directory) is found out.
            for pragma in ["PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL", "PRAGMA busy_timeout=5000", "PRAGMA foreign_keys=ON"] {
                try await writer.sql().raw(SQLQueryString(pragma)).run()
            }
            if let path {
                let opened = try await SQLiteConnection.open(
                    storage: .file(path: path), threadPool: SQLiteDatabase.readerThread, logger: logger, on: MultiThreadedEventLoopGroup.singleton.any())
                reader = opened
                for pragma in ["PRAGMA busy_timeout=5000", "PRAGMA query_only=ON"] { try await opened.sql().raw(SQLQueryString(pragma)).run() }
            }
        } catch {
            // Close what was opened: SQLiteNIO traps on a connection released unclosed.
            try? await reader?.close()
            try? await writer.close()
            throw DatabaseError("cannot open the SQLite database \(path ?? ":memory:"): \(error)")
        }
        connection = writer
        self.reader = reader
    }

    /// One thread each for the writer and the reader: their statements run in order anyway, and a single thread
    /// keeps SQLite's cache warm and spares thread hand-offs.
    static let writerThread: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
        return pool
    }()
    static let readerThread: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
        return pool
    }()
    static let writerExecutor = ThreadPoolExecutor(writerThread)
    static let readerExecutor = ThreadPoolExecutor(readerThread)

    public func transaction<T: Sendable>(synced: Bool, _ body: @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        // The whole transaction runs on the writer's thread: each statement is then queued behind the code that
        // issued it instead of waking another thread, twice per statement, on a machine with every core busy.
        try await withTaskExecutorPreference(SQLiteDatabase.writerExecutor) { try await self.inTransaction(synced: synced, body) }
    }

    private func inTransaction<T: Sendable>(synced: Bool, _ body: @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        try await lock.withLock {
            let db = SQLiteSession(connection)
            // In WAL mode NORMAL commits without syncing the log; the next FULL commit syncs it, this one included.
            // A synced transaction restores FULL first if an unsynced one could not (it runs under the same lock).
            if synced == syncRelaxed.withLock({ $0 }) {
                try await db.raw(synced ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL").run()
                syncRelaxed.withLock { $0 = !synced }
            }
            try await db.raw("BEGIN IMMEDIATE").run()
            do {
                let result = try await body(db)
                try await db.raw("COMMIT").run()
                // Committed: a failure here must not report the transaction as failed. The flag stays set, and the
                // next synced transaction restores FULL before it begins.
                if !synced { try? await restoreFullSync(db) }
                return result
            } catch {
                // Also when cancelled (a deadline passed): SQLite's thread pool refuses work from a cancelled task, and
                // a transaction left open would make every later one on this connection fail.
                try? await Task.detached { try await db.raw("ROLLBACK").run() }.value
                if !synced { try? await Task.detached { try await self.restoreFullSync(db) }.value }
                throw error
            }
        }
    }

    private func restoreFullSync(_ db: any SQLDatabase) async throws {
        try await db.raw("PRAGMA synchronous=FULL").run()
        syncRelaxed.withLock { $0 = false }
    }

    public func exclusively<T: Sendable>(_ name: String, _ body: @Sendable () async throws -> T) async throws -> T? {
        try await body()
    }

    public func read<T: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        guard let reader else {
            return try await withTaskExecutorPreference(SQLiteDatabase.writerExecutor) { try await self.lock.withLock { try await body(SQLiteSession(self.connection)) } }
        }
        return try await withTaskExecutorPreference(SQLiteDatabase.readerExecutor) { try await self.readLock.withLock { try await body(SQLiteSession(reader)) } }
    }

    public func ping() async throws {
        try await read { db in try await db.raw("SELECT 1").run() }
    }

    public func run() async {
        // Nothing runs in the background; wait for cancellation like a service would.
        while !Task.isCancelled { try? await Task.sleep(for: .seconds(3600)) }
    }

    public func close() async {
        guard closed.withLock({ c in defer { c = true }; return !c }) else { return }
        // Closing runs on SQLite's thread pool, which refuses work from a cancelled task; shutdown happens in one.
        let connection = self.connection
        let reader = self.reader
        let lock = self.lock
        let readLock = self.readLock
        await Task.detached {
            try? await readLock.withLock { try await reader?.close() }
            try? await lock.withLock { try await connection.close() }
        }.value
    }
}

// MARK: - PostgreSQL

/// PostgreSQL through PostgresNIO's connection pool.
public final class PostgreSQLDatabase: Database {
    public let dialect = DatabaseDialect.postgresql
    public let displayName: String
    let client: PostgresClient
    /// `PostgresClient.run()` may run once: a second caller (an application inside a test that already runs the
    /// pool) just waits.
    private let running = Mutex(false)
    private let logger: Logger

    public init(url: String, logger: Logger) throws {
        guard let components = URLComponents(string: url), let host = components.host, !host.isEmpty else {
            throw DatabaseError("the database URL is not a valid postgres:// URL (expected postgres://user:password@host:port/database)")
        }
        let database = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        guard !database.isEmpty else { throw DatabaseError("the database URL names no database (postgres://user:password@host:port/DATABASE)") }
        let mode = components.queryItems?.first { $0.name == "sslmode" }?.value ?? (["127.0.0.1", "localhost", "::1"].contains(host) ? "disable" : "prefer")
        let tls: PostgresClient.Configuration.TLS
        switch mode {
        case "disable": tls = .disable
        case "require", "verify-full", "verify-ca": tls = .require(.makeClientConfiguration())
        case "prefer", "allow": tls = .prefer(.makeClientConfiguration())
        default: throw DatabaseError("sslmode \(mode) is not supported; use disable, prefer or require")
        }
        var configuration = PostgresClient.Configuration(
            host: host, port: components.port ?? 5432, username: components.user ?? "postgres", password: components.password,
            database: database, tls: tls)
        configuration.options.connectTimeout = .seconds(5)
        configuration.options.maximumConnections = 10
        // The pool retries connections on its own; its chatter belongs at warning and above.
        var poolLogger = logger
        poolLogger.logLevel = max(logger.logLevel, .warning)
        self.client = PostgresClient(configuration: configuration, backgroundLogger: poolLogger)
        self.logger = logger
        self.displayName = "postgres://\(host):\(components.port ?? 5432)/\(database)"
        self.connectionSettings = (host, components.port ?? 5432, components.user ?? "postgres", components.password, database, mode)
    }

    /// What a single connection outside the pool needs, to learn why the pool cannot connect.
    private let connectionSettings: (host: String, port: Int, user: String, password: String?, database: String, sslmode: String)

    public func connectionProblem() async -> String? {
        let s = connectionSettings
        do {
            let tls: PostgresConnection.Configuration.TLS
            switch s.sslmode {
            case "disable": tls = .disable
            case "prefer", "allow": tls = .prefer(try NIOSSLContext(configuration: .makeClientConfiguration()))
            default: tls = .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
            }
            var configuration = PostgresConnection.Configuration(host: s.host, port: s.port, username: s.user, password: s.password, database: s.database, tls: tls)
            configuration.options.connectTimeout = .seconds(5)
            var quiet = logger
            quiet.logLevel = .critical
            let connection = try await PostgresConnection.connect(configuration: configuration, id: 0, logger: quiet)
            try? await connection.close()
            return nil
        } catch let error as PSQLError {
            // The server's own words when it answered (no such database, authentication failed), else the socket's.
            if let message = error.serverInfo?[.message] { return message }
            if let underlying = error.underlying as? NIOConnectionError { return Self.describe(underlying) }
            if let underlying = error.underlying as? ChannelError, case .connectTimeout(let after) = underlying {
                return "\(s.host):\(s.port) did not answer within \(after.nanoseconds / 1_000_000_000) s (nothing reachable there, or not PostgreSQL)"
            }
            // Closed (or reset, when our startup message was still unread) without a word: something took the
            // connection but did not speak PostgreSQL, or a network in between dropped it.
            let reset = (error.underlying as? IOError).map { $0.errnoCode == ECONNRESET || $0.errnoCode == EPIPE } ?? false
            if reset || (error.code == .serverClosedConnection && error.underlying == nil) {
                return "\(s.host):\(s.port) closed the connection without answering (not a PostgreSQL server, or one that cannot be reached)"
            }
            if let underlying = error.underlying { return "\(underlying)" }
            return String(String(reflecting: error).prefix(300))
        } catch {
            return "\(error)"
        }
    }

    /// A failed connect in a few words: no address for the name, or why each address refused.
    static func describe(_ error: NIOConnectionError) -> String {
        if error.connectionErrors.isEmpty {
            return "the host name \(error.host) cannot be resolved"
        }
        let reasons = error.connectionErrors.map { failure -> String in
            guard let io = failure.error as? IOError else { return "\(failure.target): \(failure.error)" }
            switch io.errnoCode {
            case ECONNREFUSED: return "nothing listens on \(error.host):\(error.port) (connection refused)"
            case ETIMEDOUT: return "\(error.host):\(error.port) does not answer (timed out)"
            case EHOSTUNREACH, ENETUNREACH: return "\(error.host):\(error.port) cannot be reached (no route)"
            default: return "\(error.host):\(error.port): \(String(cString: strerror(io.errnoCode)))"
            }
        }
        var unique: [String] = []
        for r in reasons where !unique.contains(r) { unique.append(r) }
        return unique.joined(separator: "; ")
    }

    public func transaction<T: Sendable>(synced: Bool, _ body: @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        try await client.withTransaction(logger: logger) { connection in
            if !synced { try await connection.sql().raw("SET LOCAL synchronous_commit = off").run() }
            return try await body(connection.sql())
        }
    }

    public func read<T: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        try await client.withConnection { connection in try await body(connection.sql()) }
    }

    public func exclusively<T: Sendable>(_ name: String, _ body: @Sendable () async throws -> T) async throws -> T? {
        let key = advisoryKey(name)
        return try await client.withConnection { connection -> T? in
            let db = connection.sql()
            guard try await db.raw("SELECT pg_try_advisory_lock(\(bind: key)) AS locked").first()?.decode(column: "locked", as: Bool.self) == true else {
                return nil
            }
            do {
                let result = try await body()
                try await db.raw("SELECT pg_advisory_unlock(\(bind: key))").run()
                return result
            } catch {
                try? await db.raw("SELECT pg_advisory_unlock(\(bind: key))").run()
                throw error
            }
        }
    }

    public func ping() async throws {
        try await read { db in try await db.raw("SELECT 1").run() }
    }

    public func run() async {
        guard running.withLock({ r in defer { r = true }; return !r }) else {
            while !Task.isCancelled { try? await Task.sleep(for: .seconds(3600)) }
            return
        }
        await client.run()
    }

    public func close() async {}
}

/// Runs `body` with a database whose background work (PostgreSQL's pool) runs alongside it, then closes it.
public func withDatabase<T: Sendable>(
    url: String, logger: Logger, _ body: @Sendable (any Database) async throws -> T
) async throws -> T {
    let database = try await openDatabase(url: url, logger: logger)
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { await database.run() }
        defer { group.cancelAll() }
        do {
            let result = try await body(database)
            await database.close()
            return result
        } catch {
            await database.close()
            throw error
        }
    }
}

/// Runs tasks on the thread of a one-thread NIO pool, the thread SQLite's statements run on: a task that issues a
/// statement and waits for it then costs no thread switch.
final class ThreadPoolExecutor: TaskExecutor {
    private let pool: NIOThreadPool

    init(_ pool: NIOThreadPool) { self.pool = pool }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        // A job must run even when the pool is shutting down: its task would otherwise never finish.
        pool.submit { _ in job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}

/// A first-in, first-out lock for async code: one holder at a time, across suspension points.
public actor AsyncLock {
    private var locked = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    public init() {}

    public func withLock<T: Sendable>(_ body: @Sendable () async throws -> T) async throws -> T {
        await acquire()
        do {
            let result = try await body()
            release()
            return result
        } catch {
            release()
            throw error
        }
    }

    private func acquire() async {
        if !locked {
            locked = true
            return
        }
        await withCheckedContinuation { waiters.append($0) }
    }

    private func release() {
        if waiters.isEmpty {
            locked = false
        } else {
            waiters.removeFirst().resume()
        }
    }
}
