import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import SwitchboardSimulators

struct SimulateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate", abstract: "Run a simulator of an outside service on loopback, for trying Switchboard without accounts.",
        subcommands: [PagerDuty.self])

    struct PagerDuty: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "pagerduty",
            abstract: "A PagerDuty account on loopback: the REST API Switchboard uses, signed webhooks, and /_simulator controls.",
            discussion: "Exit codes: 0 stopped with Ctrl-C, 1 bad input, 4 the port cannot be bound.")
        @Option(help: "Port (0: a free one).") var port: Int = 0
        @Option(name: .customLong("api-key"), help: "The API key it accepts.") var apiKey: String = "simulatorkey0000"
        @Option(help: "PagerDuty's OpenAPI document, to check every request against.") var openapi: String?

        func run() async throws {
            var options = PagerDutySimulator.Options()
            options.apiKey = apiKey
            if let openapi {
                do { options.validator = try OpenAPIRequestValidator(contentsOfFile: openapi) } catch {
                    throw CLIError.invalid("cannot read the OpenAPI document \(openapi): \(error)")
                }
            }
            let simulator = PagerDutySimulator(options: options)
            let (port, key) = (self.port, apiKey)
            do {
                try await runUntilInterrupted({
                    let bound = try await simulator.start(port: port)
                    // Written unbuffered: a supervisor (or a test) waits for this line.
                    let text = """
                        PagerDuty simulator on http://127.0.0.1:\(bound)  (API key \(key); users switchboard@example.com, maeve@example.com)
                        Controls: GET /_simulator/state, POST /_simulator/incidents {"service","title"}, POST /_simulator/incidents/ID/acknowledge

                        """
                    FileHandle.standardOutput.write(Data(text.utf8))
                }, stop: { await simulator.stop() })
            } catch {
                throw CLIError(message: "cannot listen on 127.0.0.1:\(port): \(error)", code: 4)
            }
        }
    }
}

/// Runs `body`, then waits for SIGINT or SIGTERM, then runs `stop`: a simulator's lifetime on the command line.
func runUntilInterrupted(_ body: @escaping @Sendable () async throws -> Void, stop: @escaping @Sendable () async -> Void) async throws {
    struct Holder: Service {
        let body: @Sendable () async throws -> Void
        let stop: @Sendable () async -> Void
        func run() async throws {
            try await body()
            try? await gracefulShutdown()
            await stop()
        }
    }
    var logger = Logger(label: "simulator")
    logger.logLevel = .critical
    let group = ServiceGroup(configuration: .init(services: [Holder(body: body, stop: stop)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
    try await group.run()
}
