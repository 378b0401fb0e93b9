import Foundation
import Logging
import SQLKit
import ServiceLifecycle
import SwitchboardCore
import SwitchboardStorage

/// Takes committed events in order, evaluates the rules, and writes the planned actions into the outbox in
/// the same transaction that marks each event processed: a crash leaves an event either untouched or fully
/// decided, never half.
public final class EventProcessor: Service {
    let database: any Database
    let rules: RulesProvider
    let clock: any WallClock
    let settings: PipelineSettings
    let log: IntegrationLog
    let metrics: PipelineMetrics
    let wakeUp: Signal
    let jobsWritten: @Sendable () -> Void
    let logger: Logger
    /// Opened once the schema is migrated; the worker waits for it.
    public let ready = Gate()

    public init(
        database: any Database, rules: RulesProvider, clock: any WallClock, settings: PipelineSettings, log: IntegrationLog,
        metrics: PipelineMetrics, wakeUp: Signal, logger: Logger, jobsWritten: @escaping @Sendable () -> Void
    ) {
        self.database = database
        self.rules = rules
        self.clock = clock
        self.settings = settings
        self.log = log
        self.metrics = metrics
        self.wakeUp = wakeUp
        self.logger = logger
        self.jobsWritten = jobsWritten
    }

    public func run() async throws {
        // Finish the batch in hand on shutdown, then stop; unprocessed events stay pending for the next start.
        await cancelWhenGracefulShutdown {
            await self.ready.wait()
            while !Task.isCancelled {
                do {
                    if try await self.processBatch() == 0 { await self.wakeUp.wait(timeout: self.settings.pollInterval) }
                } catch is CancellationError {
                    break
                } catch {
                    self.logger.error("processing events failed; retrying", metadata: ["error": "\(error)"])
                    try? await Task.sleep(for: .seconds(1))
                }
            }
        }
    }

    /// Processes one batch; returns how many events it decided.
    @discardableResult
    public func processBatch() async throws -> Int {
        let now = clock.millis
        let (count, jobs, statuses) = try await database.transaction { db -> (Int, Int, [String]) in
            let events = try await EventStore.claim(limit: self.settings.processBatchSize, dialect: self.database.dialect, on: db)
            guard !events.isEmpty else { return (0, 0, []) }
            let engineOn = try await SettingsStore.get("engine.enabled", on: db) != "false"
            let sync = try await SettingsStore.get("mapping.syncDescription", on: db) != "false"
            let compiled = try await self.rules.engine(on: db, settings: EngineSettings(syncDescriptionOnCreate: sync))
            var logs: [LogEntry] = []
            var jobs = 0
            var statuses: [String] = []
            for event in events {
                let result = try await self.process(event, engine: engineOn ? compiled?.engine : nil, engineOn: engineOn, now: now, on: db, logs: &logs)
                jobs += result.jobs
                statuses.append(result.status)
            }
            try await LogStore.write(logs, on: db)
            return (events.count, jobs, statuses)
        }
        for status in statuses { metrics.eventProcessed(status: status) }
        if jobs > 0 { jobsWritten() }
        return count
    }

    private func process(
        _ event: InboundEvent, engine: RuleEngine?, engineOn: Bool, now: Int64, on db: any SQLDatabase, logs: inout [LogEntry]
    ) async throws -> (status: String, jobs: Int) {
        func finish(_ status: String, _ outcome: String, level: LogLevel = .debug, incident: String? = nil, record: String? = nil) async throws {
            try await EventStore.markProcessed(id: event.id, status: status, outcome: outcome, now: now, on: db)
            if let e = log.entry(level, "processing", "event \(event.id): \(outcome)", incidentId: incident, recordId: record, eventId: event.id) {
                logs.append(e)
            }
        }
        // Decode.
        let ruleEvents: [RuleEvent]
        var orgId: String?
        var incidentData: JSONValue?
        do {
            switch event.source {
            case .pagerduty:
                let body = try JSONParser.parseValue(event.payload)
                var previous: IncidentSnapshot?
                if let id = PagerDutyIntake.incidentId(of: body), let stored = try await SnapshotStore.get(incidentId: id, on: db) {
                    previous = IncidentSnapshot(json: try JSONParser.parseValue(stored))
                }
                let decoded = try PagerDutyEvent(webhook: body, previous: previous)
                if decoded.data["type"]?.stringValue == "incident" { incidentData = decoded.data }
                ruleEvents = [.pagerDuty(decoded)]
            case .salesforce:
                let body = try JSONParser.parseValue(event.payload)
                orgId = body["orgId"]?.stringValue
                ruleEvents = try SalesforceTriggerPayload.decode(body).map(RuleEvent.salesforce)
            }
        } catch {
            try await EventStore.markProcessed(id: event.id, status: "failed", outcome: "cannot be decoded: \(error)", now: now, on: db)
            if let e = log.entry(.error, "processing", "event \(event.id) cannot be decoded: \(error)", eventId: event.id, payload: event.payload) {
                logs.append(e)
            }
            return ("failed", 0)
        }
        guard let ruleEvent = ruleEvents.first else {
            try await finish("ignored", "the event holds no change")
            return ("ignored", 0)
        }
        let (incidentId, recordId) = subjects(ruleEvent)

        // The incident's snapshot moves on whatever happens next, so `changes` compares with the latest state.
        if let incidentId, let incidentData {
            try await SnapshotStore.put(incidentId: incidentId, snapshot: incidentData.serialized(), now: now, on: db)
        }

        // Echo of Switchboard's own write?
        if let echo = try await echoOf(ruleEvent, now: now, on: db) {
            try await finish("echo", "echo of Switchboard's own \(echo); rules not evaluated", level: .info, incident: incidentId, record: recordId)
            return ("echo", 0)
        }
        guard engineOn else {
            try await finish("ignored", "the rule engine is disabled", level: .info, incident: incidentId, record: recordId)
            return ("ignored", 0)
        }
        guard let engine else {
            try await finish("ignored", "no rules are loaded", level: .info, incident: incidentId, record: recordId)
            return ("ignored", 0)
        }

        // Decide.
        let links: [Link]
        switch ruleEvent {
        case .salesforce(let c): links = try await LinkStore.find(recordId: c.recordId, on: db).map(\.link)
        case .pagerDuty(let e): links = try await LinkStore.find(incidentId: e.incidentId ?? "", on: db).map(\.link)
        }
        let evaluation = engine.evaluate(ruleEvent, links: links, now: Instant(millisecondsSince1970: event.receivedAt))
        let subjectTarget = incidentId.map(EchoGuard.target(incident:)) ?? recordId.map(EchoGuard.target(record:)) ?? ""
        let recentlyWritten = try await OriginStampStore.isLive(target: subjectTarget, fingerprint: EchoGuard.recentWrite, now: now, on: db)

        var jobs: [NewOutboundJob] = []
        var suspendedRules = Set<String>()
        for (index, action) in evaluation.actions.enumerated() {
            let ruleKey = action.ruleset + "/" + action.rule
            if suspendedRules.contains(ruleKey) { continue }
            if recentlyWritten, !jobs.contains(where: { $0.ruleset == action.ruleset && $0.rule == action.rule }) {
                if let suspension = try await HopStore.recordHop(
                    ruleKey: ruleKey, subject: subjectTarget, limit: settings.hopLimit, window: settings.hopWindowMilliseconds, now: now, on: db)
                {
                    suspendedRules.insert(ruleKey)
                    if let e = log.entry(
                        .error, "loop", "rule \"\(action.rule)\" of \"\(action.ruleset)\" \(suspension.reason)", incidentId: incidentId, recordId: recordId,
                        eventId: event.id)
                    {
                        logs.append(e)
                    }
                    continue
                }
            } else if try await HopStore.isSuspended(ruleKey: ruleKey, subject: subjectTarget, on: db) {
                suspendedRules.insert(ruleKey)
                continue
            }
            jobs.append(
                NewOutboundJob(
                    idempotencyKey: "event-\(event.id)-action-\(index)", eventId: event.id, partitionKey: event.partitionKey, action: action.action.rawValue,
                    ruleset: action.ruleset, rule: action.rule, payload: JobPayload.encode(action, orgId: orgId)))
        }
        try await JobStore.enqueue(jobs, maxAttempts: settings.maxAttempts, now: now, on: db)
        let matched = evaluation.rules.filter(\.matched).map { "\"\($0.rule)\"" }
        let outcome =
            jobs.isEmpty
            ? (matched.isEmpty ? "no rule matched" : "rules \(matched.joined(separator: ", ")) matched; no action needed")
            : "\(jobs.count) action\(jobs.count == 1 ? "" : "s") planned by \(matched.joined(separator: ", "))"
        try await finish("processed", outcome, level: jobs.isEmpty ? .debug : .info, incident: incidentId, record: recordId)
        return ("processed", jobs.count)
    }

    private func subjects(_ event: RuleEvent) -> (incident: String?, record: String?) {
        switch event {
        case .salesforce(let c): (nil, c.recordId)
        case .pagerDuty(let e): (e.incidentId, nil)
        }
    }

    /// What own write this event echoes, if it does.
    private func echoOf(_ event: RuleEvent, now: Int64, on db: any SQLDatabase) async throws -> String? {
        switch event {
        case .pagerDuty(let e):
            guard let incident = e.incidentId else { return nil }
            let target = EchoGuard.target(incident: incident)
            return try await OriginStampStore.consume(target: target, fingerprint: e.eventName, now: now, on: db) ? e.eventName : nil
        case .salesforce(let c):
            let target = EchoGuard.target(record: c.recordId)
            if c.isInsert {
                return try await OriginStampStore.consume(target: target, fingerprint: "create", now: now, on: db) ? "creation of \(c.object) \(c.recordId)" : nil
            }
            let changed = EchoGuard.changedFields(c)
            guard !changed.isEmpty else { return nil }
            for (field, value) in changed
            where !(try await OriginStampStore.isLive(target: target, fingerprint: EchoGuard.fieldFingerprint(field, value), now: now, on: db)) {
                return nil
            }
            for (field, value) in changed {
                _ = try await OriginStampStore.consume(target: target, fingerprint: EchoGuard.fieldFingerprint(field, value), now: now, on: db)
            }
            return "update of " + changed.map { "\($0.0) = \"\($0.1)\"" }.joined(separator: ", ")
        }
    }
}

/// Reading PagerDuty deliveries just enough to store them: their id and their incident.
public enum PagerDutyIntake {
    /// The incident an event is about: `data.id` for incident data, `data.incident.id` otherwise.
    public static func incidentId(of body: JSONValue) -> String? {
        let data = body["event"]?["data"]
        if data?["type"]?.stringValue == "incident" { return data?["id"]?.stringValue }
        return data?["incident"]?["id"]?.stringValue ?? data?["incident_role_assignments"]?.arrayValue?.first?["incident"]?["id"]?.stringValue
    }
}
