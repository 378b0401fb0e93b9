import ArgumentParser
import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import SwitchboardPipeline
import SwitchboardServer
import SwitchboardStorage

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run Switchboard: the webhook intake, the pipeline and the operations endpoints.",
        discussion: """
            Configuration comes from these flags, then SWITCHBOARD_* environment variables, then the --config file, then \
            defaults; the README lists every key. The schema is migrated on start. SIGTERM or SIGINT stops it gracefully: \
            in-flight work finishes or returns to the queue. Exit codes: 0 stopped cleanly, 1 bad configuration (flag values \
            are checked as configuration), 2 the --config file cannot be read, 3 database unreachable or unusable, 4 the address \
            or port cannot be bound (in use, or not this machine's), 64 wrong usage.
            """)

    @OptionGroup var options: ConfigOptions

    @Option(help: "Address to listen on (http.host).") var host: String?
    @Option(help: "Port to listen on; 0 picks a free one (http.port).") var port: Int?
    @Option(name: .customLong("sink-url"), help: "URL that receives actions as JSON while no connector is configured (sink.url).")
    var sinkURL: String?
    @Option(name: .customLong("log-level"), help: "Process log level (log.level).") var logLevel: String?
    @Option(name: .customLong("log-format"), help: "text or json (log.format).") var logFormat: String?
    @Option(name: .customLong("instance-id"), help: "Names this process in leases and logs (instance.id).") var instanceId: String?

    func run() async throws {
        var flags: [String: String] = [:]
        if let host { flags["http.host"] = host }
        if let port { flags["http.port"] = String(port) }
        if let sinkURL { flags["sink.url"] = sinkURL }
        if let logLevel { flags["log.level"] = logLevel }
        if let logFormat { flags["log.format"] = logFormat }
        if let instanceId { flags["instance.id"] = instanceId }
        let configuration = try await options.configuration(extra: flags)
        let logger = bootstrapLogging(level: configuration.logLevel, format: configuration.logFormat)
        let database: any Database
        do {
            database = try await openDatabase(url: configuration.databaseURL, logger: logger)
        } catch {
            throw CLIError(message: "\(error)".oneLine, code: ExitStatus.databaseUnavailable)
        }
        let sink: (any OutboundSink)? = configuration.sinkURL.map { HTTPSink(url: $0, client: HTTPClient.shared) }
        let box = try configuration.secretKey.map { try SecretBox(encodedKey: $0) }
        let app = try await buildApplication(
            configuration: configuration, dependencies: Dependencies(database: database, sink: sink, secretBox: box, logger: logger),
            checkDatabase: { try await reachable(database) }
        ) { port in
            // One line a supervisor (or a test) can wait for.
            let line = "switchboard listening on http://\(configuration.host):\(port) (database \(database.displayName), instance \(configuration.instanceId))\n"
            FileHandle.standardOutput.write(Data(line.utf8))
        }
        do {
            try await app.runService()
            await database.close()
        } catch let error as DatabaseError {
            await database.close()
            throw CLIError(message: "cannot use the database \(database.displayName): \(error.message)", code: ExitStatus.databaseUnavailable)
        } catch {
            await database.close()
            let text = "\(error)"
            // Only "already in use" is said as such; a host that is not this machine's, or no host at all, says why.
            if text.contains("ddress already in use") || text.contains("bind") || text.contains("UnknownHost") {
                throw CLIError(message: "cannot listen on \(configuration.host):\(configuration.port): \(bindFailure(error))", code: 4)
            }
            throw CLIError(message: "switchboard stopped: \(text.oneLine)", code: 1)
        }
    }
}

struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate", abstract: "Create or update the database schema (serve does this on start too).",
        discussion: "Exit codes: 0 done, 1 bad configuration, 2 the --config file cannot be read, 3 database unreachable, 64 wrong usage.")

    @OptionGroup var options: ConfigOptions

    func run() async throws {
        let configuration = try await options.configuration()
        let applied = try await withConfiguredDatabase(configuration, migrate: false) { database in
            do {
                return try await Migrations.migrate(database, now: Int64(Date().timeIntervalSince1970 * 1000))
            } catch {
                throw CLIError(message: "migrating \(database.displayName) failed: \(error)", code: ExitStatus.databaseUnavailable)
            }
        }
        print(applied.isEmpty ? "The schema is up to date." : "Applied migration\(applied.count == 1 ? "" : "s") \(applied.map(String.init).joined(separator: ", ")).")
    }
}
