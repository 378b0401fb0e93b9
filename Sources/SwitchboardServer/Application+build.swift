import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import Metrics
import Prometheus
import ServiceLifecycle
import SwitchboardCore
import SwitchboardPagerDuty
import SwitchboardPipeline
import SwitchboardSalesforce
import SwitchboardStorage

/// The outside world, injected: tests pass fakes, `serve` passes the real thing.
public struct Dependencies: Sendable {
    public var database: any Database
    /// Where actions go; nil: to the connected PagerDuty account (and, later, Salesforce org).
    public var sink: (any OutboundSink)?
    public var clock: any WallClock
    public var logger: Logger
    /// Decrypts stored secrets (API keys, webhook secrets).
    public var secretBox: SecretBox?
    /// Where Salesforce actions go when `sink` is nil; nil: to the connected orgs.
    public var salesforceSink: (any OutboundSink)?

    public init(
        database: any Database, sink: (any OutboundSink)? = nil, salesforceSink: (any OutboundSink)? = nil, clock: any WallClock = SystemClock(),
        secretBox: SecretBox? = nil, logger: Logger
    ) {
        self.database = database
        self.sink = sink
        self.salesforceSink = salesforceSink
        self.clock = clock
        self.secretBox = secretBox
        self.logger = logger
    }
}

/// The parts of a running Switchboard, for the routes, the services and the tests.
public struct Switchboard: Sendable {
    public let configuration: ServerConfiguration
    public let database: any Database
    public let clock: any WallClock
    public let intake: IntakeWriter
    public let processor: EventProcessor
    public let dispatcher: OutboxDispatcher
    public let retention: RetentionService
    public let log: IntegrationLog
    public let registry: PrometheusCollectorRegistry
    public let metrics: PipelineMetrics
    public let logger: Logger
    public let pagerDuty: PagerDutyConnections
    public let upkeep: SubscriptionUpkeep
    public let salesforce: SalesforceConnections
    /// One client (session, describe cache, API budget) per connected org.
    public let salesforceClients: SalesforceClients
    /// Change Data Capture and polling for the orgs connected that way.
    public let capture: ChangeCaptureService

    /// Wires the pipeline from the configuration and the dependencies.
    public init(configuration: ServerConfiguration, dependencies: Dependencies) {
        self.configuration = configuration
        self.database = dependencies.database
        self.clock = dependencies.clock
        self.logger = dependencies.logger
        let registry = PrometheusCollectorRegistry()
        self.registry = registry
        let metrics = PipelineMetrics(factory: PrometheusMetricsFactory(registry: registry))
        self.metrics = metrics
        let log = IntegrationLog(clock: dependencies.clock)
        self.log = log
        let eventsWritten = Signal()
        let jobsWritten = Signal()
        let pagerDuty = PagerDutyConnections(
            database: dependencies.database, box: dependencies.secretBox, staticSecrets: configuration.pagerDutyWebhookSecrets, logger: dependencies.logger)
        self.pagerDuty = pagerDuty
        let salesforce = SalesforceConnections(database: dependencies.database, box: dependencies.secretBox, logger: dependencies.logger)
        self.salesforce = salesforce
        let salesforceClients = SalesforceClients(
            connections: salesforce, limitWaitSeconds: configuration.salesforceLimitWaitSeconds, logger: dependencies.logger)
        self.salesforceClients = salesforceClients
        let sink =
            dependencies.sink
            ?? RoutingSink(
                pagerDuty: ConnectedPagerDutySink(connections: pagerDuty),
                salesforce: FullNoteSink(wrapping: dependencies.salesforceSink ?? salesforceClients.sink, connections: pagerDuty))
        intake = IntakeWriter(database: dependencies.database, clock: dependencies.clock) { eventsWritten.notify() }
        let dispatcher = OutboxDispatcher(
            database: dependencies.database, sink: sink, clock: dependencies.clock, settings: configuration.pipeline, log: log,
            metrics: metrics, wakeUp: jobsWritten, worker: configuration.instanceId, logger: dependencies.logger)
        self.dispatcher = dispatcher
        processor = EventProcessor(
            database: dependencies.database, rules: RulesProvider(), clock: dependencies.clock, settings: configuration.pipeline, log: log,
            metrics: metrics, wakeUp: eventsWritten, logger: dependencies.logger, dispatcher: dispatcher)
        retention = RetentionService(
            database: dependencies.database, clock: dependencies.clock, log: log, interval: configuration.pipeline.retentionInterval,
            logger: dependencies.logger)
        capture = ChangeCaptureService(
            clients: salesforceClients, database: dependencies.database, intake: intake, clock: dependencies.clock, log: log,
            logger: dependencies.logger, reconcileInterval: configuration.salesforceCaptureReconcile)
        upkeep = SubscriptionUpkeep(
            connections: pagerDuty, database: dependencies.database, intake: intake, clock: dependencies.clock, log: log,
            interval: configuration.pagerDutyUpkeepInterval, logger: dependencies.logger)
    }
}

public typealias SwitchboardRequestContext = BasicRequestContext

/// Builds the application: migrations run first, then the HTTP server, the database pool and the pipeline's
/// workers run as services of one group with graceful shutdown.
public func buildApplication(
    configuration: ServerConfiguration, dependencies: Dependencies,
    checkDatabase: @escaping @Sendable () async throws -> Void = {},
    onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
) async throws -> some ApplicationProtocol {
    try await buildApplication(
        Switchboard(configuration: configuration, dependencies: dependencies), dependencies: dependencies, checkDatabase: checkDatabase,
        onServerRunning: onServerRunning)
}

/// Builds the application around parts already wired (tests keep a handle on them).
public func buildApplication(
    _ switchboard: Switchboard, dependencies: Dependencies, checkDatabase: @escaping @Sendable () async throws -> Void = {},
    onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
) async throws -> some ApplicationProtocol {
    let configuration = switchboard.configuration
    let router = buildRouter(switchboard)
    var app = Application(
        router: router,
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "Switchboard"),
        onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? 0) },
        logger: dependencies.logger)
    app.addServices(DatabaseService(database: dependencies.database))
    app.beforeServerStarts {
        try await checkDatabase()
        try await Migrations.migrate(dependencies.database, now: dependencies.clock.millis)
        await switchboard.log.reload(from: dependencies.database)
        switchboard.processor.ready.open()
        switchboard.dispatcher.ready.open()
        switchboard.retention.ready.open()
        switchboard.capture.ready.open()
    }
    app.addServices(
        switchboard.processor, switchboard.dispatcher, switchboard.retention, switchboard.upkeep, switchboard.capture,
        QueueDepthReporter(switchboard: switchboard), FreePageReleaser())
    return app
}

/// Builds the routes.
public func buildRouter(_ switchboard: Switchboard) -> Router<SwitchboardRequestContext> {
    let router = Router(context: SwitchboardRequestContext.self)
    router.add(middleware: ErrorLoggingMiddleware(logger: switchboard.logger))
    OperationsRoutes(switchboard: switchboard).register(on: router)
    IntakeRoutes(switchboard: switchboard).register(on: router)
    return router
}

/// Runs the database's background work (PostgreSQL's pool) as a service of the group.
struct DatabaseService: Service {
    let database: any Database

    func run() async throws {
        await cancelWhenGracefulShutdown { await database.run() }
        // Shut down last (it was added first), after the workers stopped using it.
        await database.close()
    }
}

/// Publishes queue depths as gauges every few seconds: the open statuses only, which an index counts at once
/// (processed events and done jobs are counted by `switchboard_events_processed_total` and
/// `switchboard_actions_total`).
struct QueueDepthReporter: Service {
    let switchboard: Switchboard

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                if let (events, jobs) = try? await switchboard.database.read({ db in (try await EventStore.openCounts(on: db), try await JobStore.openCounts(on: db)) }) {
                    for status in EventStore.openStatuses { switchboard.metrics.queueDepth("events", status: status, events[status] ?? 0) }
                    for status in JobStore.openStatuses { switchboard.metrics.queueDepth("jobs", status: status, jobs[status] ?? 0) }
                }
                try? await Task.sleep(for: .seconds(5))
            }
        }
    }
}

/// Logs unexpected errors with the request they belong to; clients get a JSON error without internals.
struct ErrorLoggingMiddleware<Context: RequestContext>: RouterMiddleware {
    let logger: Logger

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as any HTTPResponseError {
            throw error
        } catch {
            logger.error("request failed", metadata: ["path": "\(request.uri.path)", "error": "\(error)"])
            return jsonResponse(.internalServerError, ["error": .object(["message": "internal error; see the server log"])])
        }
    }
}

/// A JSON response.
func jsonResponse(_ status: HTTPResponse.Status, _ body: JSONObject) -> Response {
    var headers = HTTPFields()
    headers[.contentType] = "application/json; charset=utf-8"
    return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: JSONValue.object(body).serialized() + "\n")))
}
