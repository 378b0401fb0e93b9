import Foundation
import Logging
import SQLKit
import ServiceLifecycle
import Synchronization
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
    /// The dispatcher of this process: it takes the jobs claimed in the transaction that plans them, and is woken
    /// for the others.
    let dispatcher: OutboxDispatcher
    let logger: Logger
    /// Opened once the schema is migrated; the worker waits for it.
    public let ready = Gate()

    public init(
        database: any Database, rules: RulesProvider, clock: any WallClock, settings: PipelineSettings, log: IntegrationLog,
        metrics: PipelineMetrics, wakeUp: Signal, logger: Logger, dispatcher: OutboxDispatcher
    ) {
        self.dispatcher = dispatcher
        self.database = database
        self.rules = rules
        self.clock = clock
        self.settings = settings
        self.log = log
        self.metrics = metrics
        self.wakeUp = wakeUp
        self.logger = logger
    }

    public func run() async throws {
        // Finish the batch in hand on shutdown, then stop; unprocessed events stay pending for the next start.
        await cancelWhenGracefulShutdown {
            await self.ready.wait()
            while !Task.isCancelled {
                do {
                    let done = try await self.processBatch()
                    if done == 0 || (done < self.settings.processBatchSize / 4 && self.database.dialect == .sqlite) {
                        // On SQLite a short batch held every pending event (PostgreSQL's claim offers one per partition
                        // and skips rows other processes hold, so there it looks again): wait for the next delivery.
                        await self.wakeUp.wait(timeout: self.settings.pollInterval)
                    } else if done < self.settings.processBatchSize && done >= self.settings.processBatchSize / 4 {
                        // Under load, let a few more events gather: one batch of many costs the same statements as one.
                        // Under light load, go on at once: a pause would only add to every event's latency.
                        try? await Task.sleep(for: self.settings.coalesceInterval)
                    }
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
        let ((count, statuses), lookForJobs) = try await withDeadline(.seconds(15)) { () -> ((Int, [String]), Bool) in
            switch self.database.dialect {
            case .postgresql:
                // Claim (skipping rows other processes hold), decide and write in one transaction.
                return try await self.transactionHandingOverJobs(now: now) { db in
                    let events = try await EventStore.claim(limit: self.settings.processBatchSize, dialect: .postgresql, on: db)
                    guard !events.isEmpty else { return ((0, []), 0) }
                    var batch = try await Batch.load(events, now: now, on: db, processor: self)
                    for event in events { batch.decide(event) }
                    try await batch.write(on: db)
                    return ((events.count, batch.results.map(\.status)), batch.jobs.count)
                }
            case .sqlite:
                // One process owns a SQLite file, so reading, deciding and writing can be apart: the writer is held
                // only for the short write, and deliveries keep committing meanwhile.
                let loaded = try await self.database.read { db -> ([InboundEvent], Batch)? in
                    let events = try await EventStore.claim(limit: self.settings.processBatchSize, dialect: .sqlite, on: db)
                    guard !events.isEmpty else { return nil }
                    return (events, try await Batch.load(events, now: now, on: db, processor: self))
                }
                guard var (events, batch) = loaded else { return ((0, []), false) }
                for event in events { batch.decide(event) }
                let decided = batch
                events = []
                return try await self.transactionHandingOverJobs(now: now) { db in
                    try await decided.write(on: db)
                    return ((decided.results.count, decided.results.map(\.status)), decided.jobs.count)
                }
            }
        }
        for status in statuses { metrics.eventProcessed(status: status) }
        if lookForJobs { dispatcher.wake() }
        return count
    }

    /// Runs `body` (which returns how many jobs it planned) in one transaction that also claims, for this process's
    /// dispatcher, the due jobs it has places for: they are handed over once committed, and skip a claim of their own.
    /// Returns whether the dispatcher must still look for jobs (it had no place, or the claim may have left some).
    private func transactionHandingOverJobs<T: Sendable>(
        now: Int64, _ body: @escaping @Sendable (any SQLDatabase) async throws -> (T, planned: Int)
    ) async throws -> (T, lookForJobs: Bool) {
        // Settled here whatever happens, not by the caller: a deadline may leave this running after it gave up.
        let reservation = PlacesReserved(dispatcher: dispatcher)
        do {
            let (value, planned, claimed) = try await database.transaction { db -> (T, Int, [OutboundJob]) in
                let (value, planned) = try await body(db)
                guard planned > 0 else { return (value, planned, []) }
                // One place more than planned: a claim that fills them all may have left due jobs behind.
                let places = reservation.reserve(upTo: planned + 1)
                guard places > 0 else { return (value, planned, []) }
                let claimed = try await JobStore.claim(
                    worker: self.dispatcher.worker, limit: places, now: now, leaseUntil: now + self.settings.leaseMilliseconds,
                    dialect: self.database.dialect, on: db)
                return (value, planned, claimed)
            }
            let places = reservation.settle(claimed)
            return (value, planned > 0 && (places == 0 || claimed.count == places))
        } catch {
            reservation.settle([])
            throw error
        }
    }

    /// The switches and rules a batch needs, re-read at most once a second (each read is a statement per batch).
    struct Configuration: Sendable {
        var engineOn: Bool
        var engine: RuleEngine?
        var anySuspended: Bool
        /// Object mappings: PagerDuty notes copied to the Case Feed and/or Case Comments.
        var notesToFeed: Bool
        var notesToComment: Bool
        /// Object mappings: a new Case Comment becomes a note on the case's linked incidents (on unless switched off).
        var commentsToNotes: Bool
        var readAt: ContinuousClock.Instant
    }

    private let cachedConfiguration = Mutex<Configuration?>(nil)

    /// Forgets the cached switches and rules, so the next batch reads them again.
    public func reloadConfiguration() { cachedConfiguration.withLock { $0 = nil } }

    func configuration(on db: any SQLDatabase) async throws -> Configuration {
        if let cached = cachedConfiguration.withLock({ $0 }), ContinuousClock.now - cached.readAt < .seconds(1) { return cached }
        let settings = try await SettingsStore.getMany(["engine.enabled", "mapping.syncDescription", "mapping.notesToFeed", "mapping.notesToComment", "mapping.commentsToNotes"], on: db)
        let engineOn = settings["engine.enabled"] != "false"
        let sync = settings["mapping.syncDescription"] != "false"
        let compiled = engineOn ? try await rules.engine(on: db, settings: EngineSettings(syncDescriptionOnCreate: sync)) : nil
        let anySuspended = try await db.raw("SELECT 1 AS x FROM rule_hops WHERE suspended_reason IS NOT NULL LIMIT 1").first() != nil
        let fresh = Configuration(
            engineOn: engineOn, engine: compiled?.engine, anySuspended: anySuspended, notesToFeed: settings["mapping.notesToFeed"] == "true",
            notesToComment: settings["mapping.notesToComment"] == "true", commentsToNotes: settings["mapping.commentsToNotes"] != "false", readAt: .now)
        cachedConfiguration.withLock { $0 = fresh }
        return fresh
    }

    /// One batch of events and the state they need, held in memory while they are decided.
    private struct Batch {
        let processor: EventProcessor
        let now: Int64
        let engine: RuleEngine?
        let engineOn: Bool
        let notesToFeed: Bool
        let notesToComment: Bool
        let commentsToNotes: Bool
        var bodies: [Int64: JSONValue] = [:]
        var snapshots: [String: String]
        var changedSnapshots: [String: String] = [:]
        var linksByRecord: [String: [Link]] = [:]
        var linksByIncident: [String: [Link]] = [:]
        var stamps: [String: [OriginStamp]] = [:]
        var consumedStamps: [Int64] = []
        /// Origin stamps of the actions planned in this batch, written with them: echoes may arrive before the jobs are recorded.
        var plannedStamps: [(target: String, fingerprint: String, ttl: Int64)] = []
        var hops: [String: HopCounter]
        var changedHops = Set<String>()
        var jobs: [NewOutboundJob] = []
        var results: [(id: Int64, status: String, outcome: String?)] = []
        var logs: [LogEntry] = []

        static func load(_ events: [InboundEvent], now: Int64, on db: any SQLDatabase, processor: EventProcessor) async throws -> Batch {
            let config = try await processor.configuration(on: db)
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
                    // A case comment is synced to the incidents linked to its case.
                    if body["object"]?.stringValue?.lowercased() == "casecomment", let changes = try? SalesforceTriggerPayload.decode(body) {
                        for c in changes { if let parent = c.new["ParentId"].idOrText { records.insert(SalesforceId.normalized(parent)) } }
                    }
                }
            }
            let targets = incidents.map(EchoGuard.target(incident:)) + records.map(EchoGuard.target(record:))
            let stamps = try await OriginStampStore.live(targets: targets, now: now, on: db)
            // Hop counters matter only where Switchboard wrote recently or a rule is suspended somewhere.
            let written = Set(stamps.filter { $0.fingerprint == EchoGuard.recentWrite }.map(\.target))
            let hopSubjects = config.anySuspended ? targets : targets.filter(written.contains)
            var batch = Batch(
                processor: processor, now: now, engine: config.engine, engineOn: config.engineOn, notesToFeed: config.notesToFeed,
                notesToComment: config.notesToComment, commentsToNotes: config.commentsToNotes, bodies: bodies,
                snapshots: incidents.isEmpty ? [:] : try await SnapshotStore.getMany(incidentIds: Array(incidents), on: db),
                hops: hopSubjects.isEmpty ? [:] : try await HopStore.counters(subjects: hopSubjects, on: db))
            for stored in try await LinkStore.findAny(recordIds: Array(records), incidentIds: Array(incidents), on: db) {
                batch.linksByRecord[stored.link.recordId, default: []].append(stored.link)
                batch.linksByIncident[stored.link.incidentId, default: []].append(stored.link)
            }
            for stamp in stamps { batch.stamps[stamp.target, default: []].append(stamp) }
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

        mutating func decide(_ event: InboundEvent) {
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

            if case .pagerDuty(let e) = ruleEvent {
                guard e.isKnownType else {
                    finish(event, "ignored", "unknown PagerDuty event type \(e.eventName); ignored", level: .info, incident: incidentId, payload: event.payload)
                    return
                }
                guard e.incidentId != nil else {
                    finish(event, "ignored", "\(e.eventName) is not about an incident; nothing to do", level: .debug)
                    return
                }
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
                let hopKey = ruleKey + "\u{1F}" + subject
                if suspendedHere.contains(ruleKey) || hops[hopKey]?.suspendedReason != nil { continue }
                // One hop per rule and event, counted only when Switchboard wrote to this subject recently.
                if recentlyWritten, counted.insert(ruleKey).inserted,
                    let suspension = countHop(hopKey, ruleKey: ruleKey, subject: subject, settings: settings)
                {
                    suspendedHere.insert(ruleKey)
                    if let e = processor.log.entry(
                        .error, "loop", "rule \"\(action.rule)\" of \"\(action.ruleset)\" \(suspension.reason)", incidentId: incidentId, recordId: recordId,
                        eventId: event.id)
                    {
                        logs.append(e)
                    }
                    continue
                }
                planned += 1
                // An action on a linked record goes to the org the record lives in (several orgs may share one account).
                var actionOrg = orgId
                if actionOrg == nil, case .record(_, let id) = action.target {
                    actionOrg = links.first { SalesforceId.same($0.recordId, id) }?.orgId
                }
                // A record created from an incident goes to the org the rule names.
                if actionOrg == nil, action.action == .createRecord, let org = action.parameters["org"]?.stringValue { actionOrg = org }
                enqueue(action, key: "event-\(event.id)-action-\(index)", event: event, orgId: actionOrg)
            }
            planned += planNoteSync(ruleEvent, links: links, event: event)
            planned += planCommentSync(ruleEvent, event: event)
            let matched = evaluation.rules.filter(\.matched).map { "\"\($0.rule)\"" }
            let outcome =
                planned == 0
                ? (matched.isEmpty ? "no rule matched" : "rules \(matched.joined(separator: ", ")) matched; no action needed")
                : "\(planned) action\(planned == 1 ? "" : "s") planned by \(matched.joined(separator: ", "))"
            finish(event, "processed", outcome, level: planned == 0 ? .debug : .info, incident: incidentId, record: recordId)
        }

        /// Object mappings: a note added in PagerDuty goes to every linked record's Case Feed and/or Case Comments.
        private mutating func planNoteSync(_ ruleEvent: RuleEvent, links: [Link], event: InboundEvent) -> Int {
            guard case .pagerDuty(let e) = ruleEvent, e.eventName == "incident.annotated", let content = e.noteContent, !content.isEmpty,
                notesToFeed || notesToComment, let incident = e.incidentId
            else { return 0 }
            var count = 0
            for link in links.sorted(by: { $0.recordId < $1.recordId }) {
                let comment = notesToComment && link.object.lowercased() == "case"
                guard notesToFeed || comment else { continue }
                var parameters: JSONObject = ["content": .string(content), "feed": .bool(notesToFeed), "comment": .bool(comment)]
                parameters["author"] = e.agent.map { .string($0.summary ?? $0.id) } ?? .null
                parameters["noteId"] = e.data["id"] ?? .null
                if e.trimmed { parameters["trimmed"] = .bool(true) }
                let action = PlannedAction(
                    action: .syncNote, ruleset: "object mappings", rule: "sync PagerDuty notes", target: .record(object: link.object, id: link.recordId),
                    sourceObject: "incident", sourceId: incident, parameters: parameters)
                enqueue(action, key: "event-\(event.id)-note-\(link.recordId)", event: event, orgId: link.orgId)
                count += 1
            }
            return count
        }

        /// Object mappings: a new Case Comment goes to every incident linked to its case, as a note.
        private mutating func planCommentSync(_ ruleEvent: RuleEvent, event: InboundEvent) -> Int {
            guard commentsToNotes, case .salesforce(let c) = ruleEvent, c.isInsert, c.object.lowercased() == "casecomment",
                let parent = c.new["ParentId"].idOrText, let content = c.new["CommentBody"].idOrText
            else { return 0 }
            let linked = linksByRecord.filter { SalesforceId.same($0.key, parent) }.flatMap(\.value)
            var count = 0
            for incident in Set(linked.map(\.incidentId)).sorted() {
                let action = PlannedAction(
                    action: .addNote, ruleset: "object mappings", rule: "sync case comments", target: .incident(incident), sourceObject: c.object,
                    sourceId: c.recordId, parameters: ["content": .string(content)])
                enqueue(action, key: "event-\(event.id)-comment-\(incident)", event: event, orgId: c.orgId)
                count += 1
            }
            return count
        }

        /// Puts a planned action in the outbox, in the event's partition, with the origin stamps known already.
        private mutating func enqueue(_ action: PlannedAction, key: String, event: InboundEvent, orgId: String?) {
            jobs.append(
                NewOutboundJob(
                    idempotencyKey: key, eventId: event.id, partitionKey: event.partitionKey, action: action.action.rawValue, ruleset: action.ruleset,
                    rule: action.rule, payload: JobPayload.encode(action, orgId: orgId), receivedAt: event.receivedAt))
            let settings = processor.settings
            for (target, fingerprint) in EchoGuard.planned(for: action) {
                plannedStamps.append(
                    (target, fingerprint, fingerprint == EchoGuard.recentWrite ? settings.hopWindowMilliseconds : settings.stampTTLMilliseconds))
            }
        }

        /// What own write this event echoes, if it does; consumes the matching stamps.
        private mutating func echoOf(_ event: RuleEvent, subject: String) -> String? {
            switch event {
            case .pagerDuty(let e):
                if consumeStamp(subject, e.eventName) { return e.eventName }
                if e.eventName == "incident.annotated", let content = e.noteContent, consumeStamp(subject, EchoGuard.noteFingerprint(content)) {
                    return "note copied from a Case Comment"
                }
                return nil
            case .salesforce(let c):
                if c.isInsert, c.object.lowercased() == "casecomment", let parent = c.new["ParentId"].idOrText {
                    // A comment Switchboard wrote from a PagerDuty note: by its creation or by its text.
                    let created = consumeStamp(subject, "create")
                    let copied = consumeStamp(
                        EchoGuard.target(record: parent), EchoGuard.noteFingerprint(EchoGuard.commentNote(c.new["CommentBody"].text)))
                    return created || copied ? "copy of a PagerDuty note as Case Comment \(c.recordId)" : nil
                }
                if c.isInsert { return consumeStamp(subject, "create") ? "creation of \(c.object) \(c.recordId)" : nil }
                let changed = EchoGuard.changedFields(c)
                guard !changed.isEmpty, changed.allSatisfy({ hasStamp(subject, EchoGuard.fieldFingerprint($0.0, $0.1)) }) else { return nil }
                for (field, value) in changed { _ = consumeStamp(subject, EchoGuard.fieldFingerprint(field, value)) }
                return "update of " + changed.map { "\($0.0) = \"\($0.1)\"" }.joined(separator: ", ")
            }
        }

        private mutating func countHop(_ key: String, ruleKey: String, subject: String, settings: PipelineSettings) -> RuleSuspension? {
            changedHops.insert(key)
            return HopCounter.count(&hops[key], ruleKey: ruleKey, subject: subject, limit: settings.hopLimit, window: settings.hopWindowMilliseconds, now: now)
        }

        func write(on db: any SQLDatabase) async throws {
            try await HopStore.save(changedHops.compactMap { hops[$0] }, on: db)
            try await SnapshotStore.putMany(changedSnapshots.map { ($0.key, $0.value) }, now: now, on: db)
            try await OriginStampStore.delete(ids: consumedStamps, on: db)
            try await OriginStampStore.addMany(plannedStamps, now: now, on: db)
            try await JobStore.enqueue(jobs, maxAttempts: processor.settings.maxAttempts, now: now, on: db)
            try await EventStore.markProcessed(results, now: now, on: db)
            try await LogStore.write(logs, on: db)
        }
    }
}

/// Places one batch reserved in the dispatcher, handed over (or given back) exactly once.
private final class PlacesReserved: Sendable {
    let dispatcher: OutboxDispatcher
    private let places = Mutex(0)

    init(dispatcher: OutboxDispatcher) { self.dispatcher = dispatcher }

    func reserve(upTo count: Int) -> Int {
        places.withLock { p in
            p += dispatcher.reservePlaces(upTo: count)
            return p
        }
    }

    /// Hands `claimed` over and gives back the places left; returns how many places there were.
    @discardableResult
    func settle(_ claimed: [OutboundJob]) -> Int {
        let reserved = places.withLock { p in
            defer { p = 0 }
            return p
        }
        if reserved > 0 { dispatcher.handOver(claimed, reserved: reserved) }
        return reserved
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

extension FieldValue {
    /// A reference's Id, or the value's text; nil when empty.
    fileprivate var idOrText: String? {
        if case .reference(let id, _) = self { return id.isEmpty ? nil : id }
        return text.isEmpty ? nil : text
    }
}
