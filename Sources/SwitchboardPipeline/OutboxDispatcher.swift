import Foundation
import Logging
import SQLKit
import ServiceLifecycle
import SwitchboardCore
import SwitchboardStorage

/// Carries out the outbox: claims due jobs with a lease, performs them through the sink, records the result,
/// links and origin stamps in one transaction, and retries failures with backoff until they become dead letters.
public final class OutboxDispatcher: Service {
    let database: any Database
    let sink: any OutboundSink
    let clock: any WallClock
    let settings: PipelineSettings
    let log: IntegrationLog
    let metrics: PipelineMetrics
    let wakeUp: Signal
    let worker: String
    let logger: Logger
    /// Opened once the schema is migrated; the worker waits for it.
    public let ready = Gate()
    let random: @Sendable () -> Double

    public init(
        database: any Database, sink: any OutboundSink, clock: any WallClock, settings: PipelineSettings, log: IntegrationLog,
        metrics: PipelineMetrics, wakeUp: Signal, worker: String, logger: Logger, random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) }
    ) {
        self.database = database
        self.sink = sink
        self.clock = clock
        self.settings = settings
        self.log = log
        self.metrics = metrics
        self.wakeUp = wakeUp
        self.worker = worker
        self.logger = logger
        self.random = random
    }

    public func run() async throws {
        // On shutdown, jobs in hand finish (or fail and are rescheduled); claimed-but-unstarted ones do not exist
        // because each round starts only what it claimed.
        await cancelWhenGracefulShutdown {
            await self.ready.wait()
            while !Task.isCancelled {
                do {
                    let done = try await self.dispatchRound()
                    if done == 0 { await self.wakeUp.wait(timeout: try await self.idleWait()) }
                } catch is CancellationError {
                    break
                } catch {
                    self.logger.error("dispatching jobs failed; retrying", metadata: ["error": "\(error)"])
                    try? await Task.sleep(for: .seconds(1))
                }
            }
        }
    }

    /// How long to sleep when idle: until the next retry is due, at most one poll interval.
    private func idleWait() async throws -> Duration {
        let due = try await database.read { db in try await JobStore.nextDue(on: db) }
        guard let due else { return settings.pollInterval }
        let ms = max(1, due - clock.millis)
        return min(settings.pollInterval, .milliseconds(ms))
    }

    /// Claims and carries out one round of jobs concurrently; returns how many were attempted.
    @discardableResult
    public func dispatchRound() async throws -> Int {
        let now = clock.millis
        let jobs = try await database.transaction { db in
            try await JobStore.claim(
                worker: self.worker, limit: self.settings.dispatchConcurrency, now: now, leaseUntil: now + self.settings.leaseMilliseconds,
                dialect: self.database.dialect, on: db)
        }
        guard !jobs.isEmpty else { return 0 }
        await withTaskGroup(of: Void.self) { group in
            for job in jobs {
                group.addTask { await self.carryOut(job) }
            }
        }
        return jobs.count
    }

    private func carryOut(_ job: OutboundJob) async {
        let started = ContinuousClock.now
        do {
            let (planned, orgId) = try JobPayload.decode(job.payload)
            let prepared = try await prepare(job, planned, orgId: orgId)
            switch prepared {
            case .alreadyDone(let reason):
                try await complete(job, request: nil, outcome: ActionOutcome(detail: reason), note: reason)
            case .perform(let request):
                let outcome: ActionOutcome
                do {
                    outcome = try await sink.perform(request)
                } catch {
                    try await fail(job, error)
                    return
                }
                metrics.actionLatency(action: job.action, nanoseconds: (ContinuousClock.now - started).nanoseconds)
                try await complete(job, request: request, outcome: outcome, note: nil)
            }
        } catch let failure as ActionFailure {
            try? await fail(job, failure)
        } catch {
            try? await fail(job, .retryable("\(error)"))
        }
    }

    private enum Prepared {
        case perform(ActionRequest)
        case alreadyDone(String)
    }

    /// Resolves the job's target and checks that a creation has not already happened.
    private func prepare(_ job: OutboundJob, _ planned: PlannedAction, orgId: String?) async throws -> Prepared {
        var request = ActionRequest(
            idempotencyKey: job.idempotencyKey, action: planned.action, ruleset: planned.ruleset, rule: planned.rule, incidentId: planned.incidentId,
            object: planned.recordObject, recordId: planned.recordId, orgId: orgId, parameters: planned.parameters)
        switch planned.target {
        case .createdIncident(let object, let record):
            let links = try await database.read { db in try await LinkStore.find(recordId: record, on: db) }
            guard let link = links.first(where: { $0.link.object.lowercased() == object.lowercased() }) else {
                throw ActionFailure.permanent("no incident was created for \(object) \(record), so \(planned.action.rawValue) has nothing to act on")
            }
            request.incidentId = link.link.incidentId
        case .creation where planned.action == .createIncident:
            // A link check before create: a retried or replayed job never creates a second incident.
            let links = try await database.read { db in try await LinkStore.find(recordId: planned.sourceId, on: db) }
            if let existing = links.first(where: { $0.link.object.lowercased() == planned.sourceObject.lowercased() }) {
                return .alreadyDone("\(planned.sourceObject) \(planned.sourceId) is already linked to incident \(existing.link.incidentId)")
            }
        case .creation where planned.action == .createRecord:
            let object = planned.parameters["object"]?.stringValue ?? ""
            let links = try await database.read { db in try await LinkStore.find(incidentId: planned.sourceId, on: db) }
            if let existing = links.first(where: { $0.link.object.lowercased() == object.lowercased() }) {
                return .alreadyDone("incident \(planned.sourceId) is already linked to \(object) \(existing.link.recordId)")
            }
            request.incidentId = planned.sourceId
        default:
            break
        }
        return .perform(request)
    }

    private func complete(_ job: OutboundJob, request: ActionRequest?, outcome: ActionOutcome, note: String?) async throws {
        let now = clock.millis
        let entry: LogEntry?
        if let note {
            entry = log.entry(.info, "dispatch", "\(job.action) (job \(job.id)) skipped: \(note)", eventId: job.eventId)
        } else {
            var text = "\(job.action) (job \(job.id)) done"
            if let id = outcome.createdIncidentId { text += ": incident \(id) created" }
            if let id = outcome.createdRecordId { text += ": record \(id) created" }
            entry = log.entry(.info, "dispatch", text, incidentId: request?.incidentId ?? outcome.createdIncidentId, recordId: request?.recordId, eventId: job.eventId)
        }
        let settings = self.settings
        let worker = self.worker
        let stored = try await database.transaction { db -> Bool in
            guard try await JobStore.complete(id: job.id, worker: worker, result: outcome.detail ?? outcome.createdIncidentId ?? outcome.createdRecordId, now: now, on: db)
            else { return false }
            if let request {
                // Link bookkeeping for creations.
                if request.action == .createIncident, let incident = outcome.createdIncidentId, let record = request.recordId, let object = request.object {
                    try await LinkStore.add(Link(incidentId: incident, object: object, recordId: record, orgId: request.orgId), by: "rule", now: now, on: db)
                }
                if request.action == .createRecord, let record = outcome.createdRecordId, let incident = request.incidentId {
                    let object = request.parameters["object"]?.stringValue ?? request.object ?? "Case"
                    try await LinkStore.add(Link(incidentId: incident, object: object, recordId: record, orgId: request.orgId), by: "rule", now: now, on: db)
                }
                for (target, fingerprint) in EchoGuard.stamps(for: request, outcome: outcome) {
                    let ttl = fingerprint == EchoGuard.recentWrite ? settings.hopWindowMilliseconds : settings.stampTTLMilliseconds
                    try await OriginStampStore.add(target: target, fingerprint: fingerprint, now: now, ttl: ttl, on: db)
                }
            }
            if let entry { try await LogStore.write([entry], on: db) }
            return true
        }
        if stored {
            metrics.action(job.action, outcome: note == nil ? "done" : "skipped")
            if let received = try? await database.read({ db in try await EventStore.find(id: job.eventId ?? -1, on: db)?.receivedAt }) {
                metrics.endToEndLatency(nanoseconds: (now - received) * 1_000_000)
            }
        } else {
            logger.warning("job \(job.id) finished after its lease passed to another process; its result is not recorded twice")
        }
    }

    private func fail(_ job: OutboundJob, _ failure: ActionFailure) async throws {
        let now = clock.millis
        let retryAt: Int64?
        switch failure {
        case .retryable(_, let after):
            retryAt = now + settings.backoff.delay(afterAttempt: job.attempts, retryAfter: after, random: random())
        case .permanent:
            retryAt = nil
        }
        let willRetry = retryAt != nil && job.attempts < job.maxAttempts
        let text =
            willRetry
            ? "\(job.action) (job \(job.id)) attempt \(job.attempts) of \(job.maxAttempts) failed: \(failure); retrying"
            : "\(job.action) (job \(job.id)) failed for good after \(job.attempts) attempt\(job.attempts == 1 ? "" : "s"): \(failure); moved to the dead letters"
        let entry = log.entry(.error, "dispatch", text, eventId: job.eventId, payload: job.payload)
        let worker = self.worker
        let dead = try await database.transaction { db -> Bool in
            let dead = try await JobStore.fail(id: job.id, worker: worker, error: failure.description, retryAt: retryAt, now: now, on: db)
            if let entry { try await LogStore.write([entry], on: db) }
            return dead
        }
        metrics.action(job.action, outcome: dead ? "dead" : "retry")
    }
}

extension Duration {
    var nanoseconds: Int64 { components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000 }
}
