import ArgumentParser
import AsyncHTTPClient
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
        // A config file that cannot be read is exit 2, like every other file; one that does not validate is exit 1.
        if let configFile { _ = try readTextFile(configFile, limit: 1 << 20, what: "config file") }
        do {
            let reader = try await ServerConfiguration.reader(flags: flags, environment: ProcessInfo.processInfo.environment, configFile: configFile)
            return try ServerConfiguration(reader: reader)
        } catch let error as ConfigurationError {
            // One line: every problem, separated by semicolons.
            let problems = error.problems.map(\.oneLine).joined(separator: "; ")
            throw CLIError.invalid("the configuration has \(error.problems.count) problem\(error.problems.count == 1 ? "" : "s"): \(problems)")
        }
    }
}

extension String {
    /// The text on one line: errors from libraries (HTTP bodies, nested errors) may carry newlines.
    var oneLine: String {
        split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.joined(separator: " ")
    }
}

/// A logger that stays quiet: commands other than `serve` report in their one `error:` line, so the libraries'
/// warnings (a refused token request, say) would only repeat it.
let quietLogger: Logger = {
    var logger = Logger(label: "switchboard")
    logger.logLevel = .critical
    return logger
}()

/// The HTTP client of the commands that talk to PagerDuty and Salesforce: a refused connection fails at once
/// instead of being retried until the request's deadline (20 s and more), so a wrong URL is reported in a moment.
/// It lives as long as the process.
let cliHTTPClient: HTTPClient = {
    var configuration = HTTPClient.Configuration()
    configuration.connectionPool.retryConnectionEstablishment = false
    configuration.timeout.connect = .seconds(10)
    return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration, backgroundActivityLogger: quietLogger)
}()

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
                throw CLIError(message: "cannot use the database \(database.displayName): \(error)".oneLine, code: ExitStatus.databaseUnavailable)
            }
            return try await body(database)
        }
    } catch let error as DatabaseError {
        throw CLIError(message: error.message.oneLine, code: ExitStatus.databaseUnavailable)
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
    if let problem = await database.connectionProblem() { throw DatabaseError("cannot connect: \(problem)".oneLine) }
    throw DatabaseError("it does not answer (\(lastError.map { String(describing: $0).prefix(300) } ?? "no error"))")
}

