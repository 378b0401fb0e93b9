import CoreMetrics
import Metrics
import SwitchboardStorage

/// The pipeline's measurements, made through swift-metrics with an explicit factory (the server passes
/// Prometheus's), so tests and several applications in one process never share global state.
public struct PipelineMetrics: Sendable {
    let factory: any MetricsFactory
    // The metrics recorded for every event are made once: making one looks it up in the registry under a lock,
    // which cost more than the recording itself.
    private let intake: Timer
    private let received: [String: (new: Counter, duplicate: Counter)]
    private let processed: [String: Counter]

    public init(factory: any MetricsFactory) {
        self.factory = factory
        intake = Timer(label: "switchboard_intake_duration_seconds", factory: factory)
        var received: [String: (new: Counter, duplicate: Counter)] = [:]
        for source in EventSource.allCases.map(\.rawValue) {
            received[source] = (Self.receivedCounter(source, false, factory), Self.receivedCounter(source, true, factory))
        }
        self.received = received
        var processed: [String: Counter] = [:]
        for status in ["processed", "echo", "ignored", "failed"] { processed[status] = Self.processedCounter(status, factory) }
        self.processed = processed
    }

    private static func receivedCounter(_ source: String, _ duplicate: Bool, _ factory: any MetricsFactory) -> Counter {
        Counter(label: "switchboard_events_received_total", dimensions: [("source", source), ("duplicate", duplicate ? "true" : "false")], factory: factory)
    }

    private static func processedCounter(_ status: String, _ factory: any MetricsFactory) -> Counter {
        Counter(label: "switchboard_events_processed_total", dimensions: [("status", status)], factory: factory)
    }

    /// A factory that records nothing.
    public static let none = PipelineMetrics(factory: NOOPMetricsHandler.instance)

    func eventReceived(source: String, duplicate: Bool, count: Int = 1) {
        guard count > 0 else { return }
        ((duplicate ? received[source]?.duplicate : received[source]?.new) ?? Self.receivedCounter(source, duplicate, factory)).increment(by: count)
    }

    func eventProcessed(status: String) {
        (processed[status] ?? Self.processedCounter(status, factory)).increment()
    }

    func action(_ action: String, outcome: String) {
        Counter(label: "switchboard_actions_total", dimensions: [("action", action), ("outcome", outcome)], factory: factory).increment()
    }

    func intakeLatency(nanoseconds: Int64) {
        intake.recordNanoseconds(nanoseconds)
    }

    func endToEndLatency(nanoseconds: Int64) {
        Timer(label: "switchboard_event_to_action_seconds", factory: factory).recordNanoseconds(nanoseconds)
    }

    func actionLatency(action: String, nanoseconds: Int64) {
        Timer(label: "switchboard_action_duration_seconds", dimensions: [("action", action)], factory: factory).recordNanoseconds(nanoseconds)
    }

    public func queueDepth(_ queue: String, status: String, _ value: Int) {
        Gauge(label: "switchboard_queue_depth", dimensions: [("queue", queue), ("status", status)], factory: factory).record(value)
    }

    /// Recorded by the HTTP intake, which knows when a request arrived.
    public func recordIntake(nanoseconds: Int64) { intakeLatency(nanoseconds: nanoseconds) }
    public func recordReceived(source: String, duplicate: Bool, count: Int = 1) { eventReceived(source: source, duplicate: duplicate, count: count) }
}
