// Simulators of the services Switchboard talks to: PagerDuty (PagerDuty/) and Salesforce (Salesforce/), with the
// OpenAPI check (OpenAPI/) that holds the PagerDuty one to the official document.
import Hummingbird
import Logging
import ServiceLifecycle

/// A Hummingbird server on a loopback port, run in its own service group.
///
/// It stops by graceful shutdown, never by cancelling its task: a cancelled server can drop a connection it has
/// accepted but not yet handed over, and NIO traps on that ("Deinited NIOAsyncWriter without calling finish()").
public final class LoopbackServer: Sendable {
    /// The bound port.
    public let port: Int
    private let group: ServiceGroup
    private let task: Task<Void, any Error>

    private init(port: Int, group: ServiceGroup, task: Task<Void, any Error>) {
        self.port = port
        self.group = group
        self.task = task
    }

    /// Serves `router` on `host:port` (0: a free port) and returns once it accepts connections.
    public static func start(
        router: Router<BasicRequestContext>, host: String = "127.0.0.1", port: Int = 0, serverName: String? = nil,
        logger: Logger
    ) async throws -> LoopbackServer {
        let (stream, continuation) = AsyncStream.makeStream(of: Int.self)
        let app = Application(
            router: router, configuration: .init(address: .hostname(host, port: port), serverName: serverName),
            onServerRunning: { continuation.yield($0.localAddress?.port ?? 0) }, logger: logger)
        let group = ServiceGroup(configuration: .init(services: [app], logger: logger))
        let task = Task {
            defer { continuation.finish() }
            try await group.run()
        }
        var iterator = stream.makeAsyncIterator()
        guard let bound = await iterator.next() else {
            // The server ended before binding: surface its error (a busy port, say).
            try await task.value
            throw CancellationError()
        }
        return LoopbackServer(port: bound, group: group, task: task)
    }

    /// Stops accepting, lets requests in flight finish, and waits until the server is gone.
    public func stop() async {
        await group.triggerGracefulShutdown()
        _ = try? await task.value
    }
}
