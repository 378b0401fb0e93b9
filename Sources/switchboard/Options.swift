import ArgumentParser
import Foundation
import Logging
import SwitchboardPipeline
import SwitchboardServer
import SwitchboardStorage

/// Exit code for a database that cannot be reached or used.
extension ExitStatus {
    static let databaseUnavailable: Int32 = 3
}

/// Options shared by every command that reads the configuration.
struct ConfigOptions: ParsableArguments {
    @Option(name: .customLong("config"), help: "A JSON config file (keys as in the README's configuration reference).")
    var configFile: String?

    @Option(name: .customLong("database-url"), help: "sqlite file path or postgres://user:password@host:port/database (env SWITCHBOARD_DATABASE_URL).")
    var databaseURL: String?

    /// Reads the configuration with these flags on top of the environment and the file.
    func configuration(extra: [String: String] = [:]) async throws -> ServerConfiguration {
        var flags = extra
        if let databaseURL { flags["database.url"] = databaseURL }
        do {
            let reader = try await ServerConfiguration.reader(flags: flags, environment: ProcessInfo.processInfo.environment, configFile: configFile)
            return try ServerConfiguration(reader: reader)
        } catch let error as ConfigurationError {
            throw CLIError(message: error.description, code: ExitStatus.invalidInput)
        }
    }
}

/// Sets up process logging once.
func bootstrapLogging(level: String, format: String) -> Logger {
    let logLevel = Logger.Level(rawValue: level) ?? .info
    LoggingSystem.bootstrap { label in
        var handler: any LogHandler = format == "json" ? JSONLogHandler(label: label) : StreamLogHandler.standardError(label: label)
        handler.logLevel = logLevel
        return handler
    }
    return Logger(label: "switchboard")
}

/// Runs `body` with the configured database, migrated, reporting an unreachable one in one line (exit 3).
func withConfiguredDatabase<T: Sendable>(
    _ configuration: ServerConfiguration, migrate: Bool = true, _ body: @Sendable (any Database) async throws -> T
) async throws -> T {
    var logger = Logger(label: "switchboard")
    logger.logLevel = .critical
    do {
        return try await withDatabase(url: configuration.databaseURL, logger: logger) { database in
            do {
                try await reachable(database)
                if migrate { try await Migrations.migrate(database, now: Int64(Date().timeIntervalSince1970 * 1000)) }
            } catch {
                throw CLIError(message: "cannot use the database \(database.displayName): \(error)", code: ExitStatus.databaseUnavailable)
            }
            return try await body(database)
        }
    } catch let error as DatabaseError {
        throw CLIError(message: error.message, code: ExitStatus.databaseUnavailable)
    }
}

/// Checks that the database answers, retrying briefly (a database that is still starting).
func reachable(_ database: any Database, attempts: Int = 5) async throws {
    var lastError: (any Error)?
    for attempt in 1...attempts {
        do {
            try await withDeadline(.seconds(2)) { try await database.ping() }
            return
        } catch {
            lastError = error
            if attempt < attempts { try await Task.sleep(for: .milliseconds(400)) }
        }
    }
    throw DatabaseError("it does not answer (\(lastError.map { String(describing: $0).prefix(300) } ?? "no error"))")
}

