import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import SwitchboardCore
import SwitchboardSimulators

struct SimulateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate", abstract: "Run a simulator of an outside service on loopback, for trying Switchboard without accounts.",
        subcommands: [PagerDuty.self, Salesforce.self])

    struct PagerDuty: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "pagerduty",
            abstract: "A PagerDuty account on loopback: the REST API Switchboard uses, signed webhooks, and /_simulator controls.",
            discussion: """
                Exit codes: 0 stopped with Ctrl-C, 1 bad input (an OpenAPI document that does not load), 2 the OpenAPI \
                document cannot be read, 4 the port cannot be bound, 64 wrong usage.
                """)
        @Option(help: "Port (0: a free one).") var port: Int = 0
        @Option(name: .customLong("api-key"), help: "The API key it accepts.") var apiKey: String = "simulatorkey0000"
        @Option(help: "PagerDuty's OpenAPI document, to check every request against.") var openapi: String?

        func validate() throws {
            guard (0...65535).contains(port) else { throw ValidationError("--port must be from 0 to 65535") }
        }

        func run() async throws {
            var options = PagerDutySimulator.Options()
            options.apiKey = apiKey
            if let openapi {
                // PagerDuty's published document is about 3 MB.
                let text = try readTextFile(openapi, limit: 64 << 20, what: "OpenAPI document")
                do { options.validator = try OpenAPIRequestValidator(document: try JSONParser.parseValue(text)) } catch {
                    throw CLIError.invalid("the OpenAPI document \(openapi) does not load: \(error)".oneLine)
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
                throw CLIError(message: "cannot listen on 127.0.0.1:\(port): \(bindFailure(error))", code: 4)
            }
        }
    }
}

extension SimulateCommand {
    struct Salesforce: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "salesforce",
            abstract: "A Salesforce org on loopback: OAuth, REST, Composite, Collections, SOQL, CometD change events, and /_simulator controls.",
            discussion: """
                Changes made through its API or its controls reach Switchboard the chosen way: --capture trigger posts the \
                Salesforce package's signed payload to --trigger-url, cdc publishes change events on /cometd/<version>, none \
                leaves Switchboard to poll. Exit codes: 0 stopped with Ctrl-C, 1 bad input (a certificate file without a PEM \
                key or certificate), 2 the certificate file cannot be read, 4 the port cannot be bound, 64 wrong usage.
                """)
        @Option(help: "Port (0: a free one).") var port: Int = 0
        @Option(help: "trigger, cdc or none.") var capture: String = "none"
        @Option(name: .customLong("trigger-url"), help: "Where trigger posts go, e.g. http://127.0.0.1:8080/webhooks/salesforce.") var triggerURL: String?
        @Option(name: .customLong("trigger-secret"), help: "The secret that signs trigger posts.") var triggerSecret: String = "test-trigger-secret"
        @Option(name: .customLong("certificate"), help: "A PEM file with the RSA public key that verifies JWT assertions.") var certificate: String?
        @Option(name: .customLong("api-allocation"), help: "Daily API requests allowed.") var allocation: Int = 100_000

        func validate() throws {
            guard ["trigger", "cdc", "none"].contains(capture) else { throw ValidationError("--capture must be trigger, cdc or none") }
            if capture == "trigger", triggerURL == nil { throw ValidationError("--capture trigger needs --trigger-url") }
            if let triggerURL {
                guard let u = URL(string: triggerURL), u.scheme == "https" || u.scheme == "http", u.host != nil else {
                    throw ValidationError("--trigger-url must be an http(s) URL")
                }
            }
            guard (0...65535).contains(port) else { throw ValidationError("--port must be from 0 to 65535") }
            guard allocation >= 0 else { throw ValidationError("--api-allocation must not be negative") }
        }

        func run() async throws {
            var options = SalesforceSimulator.Options()
            options.triggerSecret = triggerSecret
            options.apiAllocation = allocation
            if let certificate {
                let pem = try readTextFile(certificate, limit: 64 * 1024, what: "certificate file")
                // The key is parsed at the first JWT assertion; refuse a file that cannot hold one now, not then.
                guard pem.contains("-----BEGIN CERTIFICATE-----") || pem.contains("-----BEGIN PUBLIC KEY-----") || pem.contains("-----BEGIN RSA PUBLIC KEY-----")
                else {
                    throw CLIError.invalid("the certificate file \(certificate) holds no PEM certificate or public key (-----BEGIN CERTIFICATE----- or -----BEGIN PUBLIC KEY-----)")
                }
                options.certificatePublicKeyPEM = pem
            }
            switch capture {
            case "trigger": options.capture = .trigger(url: triggerURL ?? "")
            case "cdc": options.capture = .cdc
            default: options.capture = .none
            }
            let simulator = SalesforceSimulator(options: options)
            let (port, org, key, secret, user) = (self.port, options.orgId, options.consumerKey, options.clientSecret, options.username)
            do {
                try await runUntilInterrupted({
                    let bound = try await simulator.start(port: port)
                    let text = """
                        Salesforce simulator on http://127.0.0.1:\(bound)  (org \(org); consumer key \(key), client secret \(secret); user \(user))
                        Controls: POST /_simulator/records/Case {fields}, PATCH /_simulator/records/Case/ID, GET /_simulator/usage

                        """
                    FileHandle.standardOutput.write(Data(text.utf8))
                }, stop: { await simulator.stop() })
            } catch {
                throw CLIError(message: "cannot listen on 127.0.0.1:\(port): \(bindFailure(error))", code: 4)
            }
        }
    }
}

/// Why a server could not listen, in a few words.
func bindFailure(_ error: any Error) -> String {
    let text = "\(error)"
    return text.contains("ddress already in use") ? "the address is already in use" : text.oneLine
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
