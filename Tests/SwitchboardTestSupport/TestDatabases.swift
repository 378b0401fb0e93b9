import Foundation
import Logging
import SwitchboardStorage

/// The two database backends every storage and pipeline test runs on.
public enum Backend: String, Sendable, CaseIterable, CustomStringConvertible {
    case sqlite, postgresql

    public var description: String { rawValue }
}

/// PostgreSQL for tests: `.ci/run` starts the server and sets `SWITCHBOARD_TEST_POSTGRES_URL` to a role that may
/// create databases; each test gets a database of its own, dropped afterwards.
public enum TestPostgres {
    public static var adminURL: String? {
        ProcessInfo.processInfo.environment["SWITCHBOARD_TEST_POSTGRES_URL"].flatMap { $0.isEmpty ? nil : $0 }
    }

    public static var isAvailable: Bool { adminURL != nil }

    public static let skipReason =
        "SKIPPED: PostgreSQL is not configured (set SWITCHBOARD_TEST_POSTGRES_URL; .ci/run starts PostgreSQL and sets it)"

    /// Runs SQL as the admin role through psql-free means: a short-lived client.
    static func runAsAdmin(_ sql: String) async throws {
        guard let url = adminURL else { throw DatabaseError(skipReason) }
        var logger = Logger(label: "test-admin")
        logger.logLevel = .critical
        try await withDatabase(url: url, logger: logger) { db in
            try await db.read { try await $0.raw(.init(stringLiteral: sql)).run() }
        }
    }

    /// A URL to a new, empty database.
    public static func createDatabase() async throws -> (url: String, name: String) {
        guard let admin = adminURL, var components = URLComponents(string: admin) else { throw DatabaseError(skipReason) }
        let name = "sbtest_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(16)
        try await runAsAdmin("CREATE DATABASE \(name)")
        components.path = "/" + name
        guard let url = components.string else { throw DatabaseError("cannot build a database URL") }
        return (url, String(name))
    }

    public static func dropDatabase(_ name: String) async {
        try? await runAsAdmin("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
    }

    /// Makes the database unreachable (refuses new connections, ends current ones), or reachable again.
    public static func setReachable(_ name: String, _ reachable: Bool) async throws {
        try await runAsAdmin("ALTER DATABASE \(name) WITH ALLOW_CONNECTIONS \(reachable ? "true" : "false")")
        if !reachable {
            try await runAsAdmin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '\(name)' AND pid <> pg_backend_pid()")
        }
    }
}

/// A fresh, migrated database of either backend, removed when the body ends.
public func withTestDatabase<T: Sendable>(
    _ backend: Backend, migrate: Bool = true, _ body: @Sendable (any Database, _ url: String) async throws -> T
) async throws -> T {
    var logger = Logger(label: "test-db")
    logger.logLevel = .critical
    switch backend {
    case .sqlite:
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sbtest-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("test.sqlite").path
        return try await withDatabase(url: url, logger: logger) { db in
            if migrate { try await Migrations.migrate(db, now: 0) }
            return try await body(db, url)
        }
    case .postgresql:
        let (url, name) = try await TestPostgres.createDatabase()
        do {
            let result = try await withDatabase(url: url, logger: logger) { db in
                if migrate { try await Migrations.migrate(db, now: 0) }
                return try await body(db, url)
            }
            await TestPostgres.dropDatabase(name)
            return result
        } catch {
            await TestPostgres.dropDatabase(name)
            throw error
        }
    }
}

/// A temporary directory removed by `remove()`.
public struct TemporaryDirectory: Sendable {
    public let path: String

    public init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("sb-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    public func remove() { try? FileManager.default.removeItem(atPath: path) }

    public func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }
}
