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
                } catch where Task.isCancelled {
                    break
                } catch {
                    self.logger.error("processing events failed; retrying", metadata: ["error": "\(error)"])
                    try? await Task.sleep(for: .seconds(1))
                }
            }
        }
    }

    /// Processes one batch; returns how many events it decided. The whole batch costs a fixed number of
    /// statements: state is read set-at-a-time, events are decided in memory in order, results written together.
    @discardableResult
    public func processBatch() async throws -> Int {
        let now = clock.millis
        // A deadline, so a database that went away cannot hold the worker: the transaction rolls back and the events
        // stay pending for the next attempt.
        let (count, jobs, statuses) = try await withDeadline(.seconds(15)) {
            try await self.database.transaction { db -> (Int, Int, [String]) in
                let events = try await EventStore.claim(limit: self.settings.processBatchSize, dialect: self.database.dialect, on: db)
                guard !events.isEmpty else { return (0, 0, []) }
                var batch = try await Batch.load(events, now: now, on: db, processor: self)
                for event in events { try await batch.decide(event, on: db) }
                try await batch.write(on: db)
                return (events.count, batch.jobs.count, batch.results.map(\.status))
            }
        }
        for status in statuses { metrics.eventProcessed(status: status) }
        if jobs > 0 { jobsWritten() }
        return count
    }

    /// One batch of events and the state they need, held in memory while they are decided.
    private struct Batch {
        let processor: EventProcessor
        let now: Int64
        let engine: RuleEngine?
        let engineOn: Bool
        var bodies: [Int64: JSONValue] = [:]
        var snapshots: [String: String]
        var changedSnapshots: [String: String] = [:]
        var linksByRecord: [String: [Link]] = [:]
        var linksByIncident: [String: [Link]] = [:]
        var stamps: [String: [OriginStamp]] = [:]
        var consumedStamps: [Int64] = []
        var suspended: Set<String>
        var jobs: [NewOutboundJob] = []
        var results: [(id: Int64, status: String, outcome: String?)] = []
        var logs: [LogEntry] = []

        static func load(_ events: [InboundEvent], now: Int64, on db: any SQLDatabase, processor: EventProcessor) async throws -> Batch {
            let settings = try await SettingsStore.getMany(["engine.enabled", "mapping.syncDescription"], on: db)
            let engineOn = settings["engine.enabled"] != "false"
            let sync = settings["mapping.syncDescription"] != "false"
            let compiled = engineOn ? try await processor.rules.engine(on: db, settings: EngineSettings(syncDescriptionOnCreate: sync)) : nil
            var bodies: [Int64: JSONValue] = [:]
            var incidents = Set<String>()
            var records = Set<String>()
            for event in events {
                guard let body = try? JSONParser.parseValue(event.payload) else { continue }
                bodies[event.id] = body
                switch event.source {
                case .pagerduty: if let id = PagerDutyIntake.incidentId(of: body) { incidents.insert(id) }
                case .salesforce:
                    for key in body["new"]?.objectValue?.keys ?? [] { records.insert(SalesforceId.normalized(key)) }
                }
            }
            let targets = incidents.map(EchoGuard.target(incident:)) + records.map(EchoGuard.target(record:))
            var batch = Batch(
                processor: processor, now: now, engine: compiled?.engine, engineOn: engineOn, bodies: bodies,
                snapshots: try await SnapshotStore.getMany(incidentIds: Array(incidents), on: db),
                suspended: try await HopStore.suspended(subjects: targets, on: db))
            for stored in try await LinkStore.findAny(recordIds: Array(records), incidentIds: Array(incidents), on: db) {
                batch.linksByRecord[stored.link.recordId, default: []].append(stored.link)
                batch.linksByIncident[stored.link.incidentId, default: []].append(stored.link)
            }
            for stamp in try await OriginStampStore.live(targets: targets, now: now, on: db) {
                batch.stamps[stamp.target, default: []].append(stamp)
            }
            return batch
        }

        private mutating func hasStamp(_ target: String, _ fingerprint: String) -> Bool {
            stamps[target]?.contains { $0.fingerprint == fingerprint } ?? false
        }

        private mutating func consumeStamp(_ target: String, _ fingerprint: String) -> Bool {
            guard let i = stamps[target]?.firstIndex(where: { $0.fingerprint == fingerprint }), let stamp = stamps[target]?.remove(at: i) else {
                return false
            }
            consumedStamps.append(stamp.id)
            return true
        }

        private mutating func finish(_ event: InboundEvent, _ status: String, _ outcome: String, level: LogLevel = .debug, incident: String? = nil, record: String? = nil, payload: String? = nil) {
            results.append((event.id, status, outcome))
            if let e = processor.log.entry(level, "processing", "event \(event.id): \(outcome)", incidentId: incident, recordId: record, eventId: event.id, payload: payload) {
                logs.append(e)
            }
        }

        mutating func decide(_ event: InboundEvent, on db: any SQLDatabase) async throws {
            // Decode.
            let ruleEvent: RuleEvent
            var orgId: String?
            do {
                guard let body = bodies[event.id] else { throw DocumentError("the payload is not valid JSON") }
                switch event.source {
                case .pagerduty:
                    let incidentId = PagerDutyIntake.incidentId(of: body)
                    let previous = incidentId.flatMap { snapshots[$0] }.flatMap { try? JSONParser.parseValue($0) }.flatMap(IncidentSnapshot.init(json:))
                    let decoded = try PagerDutyEvent(webhook: body, previous: previous)
                    // The snapshot moves on whatever happens next, so `changes` compares with the latest state.
                    if let id = decoded.incidentId, decoded.data["type"]?.stringValue == "incident" {
                        let text = decoded.data.serialized()
                        snapshots[id] = text
                        changedSnapshots[id] = text
                    }
                    ruleEvent = .pagerDuty(decoded)
                case .salesforce:
                    orgId = body["orgId"]?.stringValue
                    guard let change = try SalesforceTriggerPayload.decode(body).first else { throw DocumentError("the event holds no change") }
                    ruleEvent = .salesforce(change)
                }
            } catch {
                finish(event, "failed", "cannot be decoded: \(error)", level: .error, payload: event.payload)
                return
            }
            let incidentId: String?
            let recordId: String?
            let subject: String
            let links: [Link]
            switch ruleEvent {
            case .salesforce(let c):
                (incidentId, recordId, subject) = (nil, c.recordId, EchoGuard.target(record: c.recordId))
                links = linksByRecord[c.recordId] ?? []
            case .pagerDuty(let e):
                (incidentId, recordId, subject) = (e.incidentId, nil, EchoGuard.target(incident: e.incidentId ?? ""))
                links = linksByIncident[e.incidentId ?? ""] ?? []
            }

            // Echo of Switchboard's own write?
            if let echo = echoOf(ruleEvent, subject: subject) {
                finish(event, "echo", "echo of Switchboard's own \(echo); rules not evaluated", level: .info, incident: incidentId, record: recordId)
                return
            }
            guard engineOn else {
                finish(event, "ignored", "the rule engine is disabled", level: .info, incident: incidentId, record: recordId)
                return
            }
            guard let engine else {
                finish(event, "ignored", "no rules are loaded", level: .info, incident: incidentId, record: recordId)
                return
            }

            // Decide.
            let evaluation = engine.evaluate(ruleEvent, links: links, now: Instant(millisecondsSince1970: event.receivedAt))
            let recentlyWritten = hasStamp(subject, EchoGuard.recentWrite)
            var planned = 0
            var suspendedHere = Set<String>()
            var counted = Set<String>()
            let settings = processor.settings
            for (index, action) in evaluation.actions.enumerated() {
                let ruleKey = action.ruleset + "/" + action.rule
                if suspendedHere.contains(ruleKey) || suspended.contains(ruleKey + "\u{1F}" + subject) { continue }
                if recentlyWritten, counted.insert(ruleKey).inserted,
                    let suspension = try await HopStore.recordHop(
                        ruleKey: ruleKey, subject: subject, limit: settings.hopLimit, window: settings.hopWindowMilliseconds, now: now, on: db)
                {
                    suspendedHere.insert(ruleKey)
                    suspended.insert(ruleKey + "\u{1F}" + subject)
                    if let e = processor.log.entry(
                        .error, "loop", "rule \"\(action.rule)\" of \"\(action.ruleset)\" \(suspension.reason)", incidentId: incidentId, recordId: recordId,
                        eventId: event.id)
                    {
                        logs.append(e)
                    }
                    continue
                }
                planned += 1
                jobs.append(
                    NewOutboundJob(
                        idempotencyKey: "event-\(event.id)-action-\(index)", eventId: event.id, partitionKey: event.partitionKey,
                        action: action.action.rawValue, ruleset: action.ruleset, rule: action.rule, payload: JobPayload.encode(action, orgId: orgId),
                        receivedAt: event.receivedAt))
            }
            let matched = evaluation.rules.filter(\.matched).map { "\"\($0.rule)\"" }
            let outcome =
                planned == 0
                ? (matched.isEmpty ? "no rule matched" : "rules \(matched.joined(separator: ", ")) matched; no action needed")
                : "\(planned) action\(planned == 1 ? "" : "s") planned by \(matched.joined(separator: ", "))"
            finish(event, "processed", outcome, level: planned == 0 ? .debug : .info, incident: incidentId, record: recordId)
        }

        /// What own write this event echoes, if it does; consumes the matching stamps.
        private mutating func echoOf(_ event: RuleEvent, subject: String) -> String? {
            switch event {
            case .pagerDuty(let e):
                return consumeStamp(subject, e.eventName) ? e.eventName : nil
            case .salesforce(let c):
                if c.isInsert { return consumeStamp(subject, "create") ? "creation of \(c.object) \(c.recordId)" : nil }
                let changed = EchoGuard.changedFields(c)
                guard !changed.isEmpty, changed.allSatisfy({ hasStamp(subject, EchoGuard.fieldFingerprint($0.0, $0.1)) }) else { return nil }
                for (field, value) in changed { _ = consumeStamp(subject, EchoGuard.fieldFingerprint(field, value)) }
                return "update of " + changed.map { "\($0.0) = \"\($0.1)\"" }.joined(separator: ", ")
            }
        }

        func write(on db: any SQLDatabase) async throws {
            try await SnapshotStore.putMany(changedSnapshots.map { ($0.key, $0.value) }, now: now, on: db)
            try await OriginStampStore.delete(ids: consumedStamps, on: db)
            try await JobStore.enqueue(jobs, maxAttempts: processor.settings.maxAttempts, now: now, on: db)
            try await EventStore.markProcessed(results, now: now, on: db)
            try await LogStore.write(logs, on: db)
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
