import Foundation
import Logging
import SQLKit
import ServiceLifecycle
import Synchronization
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
    /// Jobs claimed and not yet finished by the run loop.
    private let inHand = Atomic<Int>(0)
    /// Records what carry-outs finishing close together did, in one transaction.
    private let recorder: GroupCommit<Recording, Recorded>
    /// The last claim took every free place (or found none): a job finishing frees a place that due jobs may be
    /// waiting for.
    private let placesShort = Atomic<Bool>(false)
    /// Jobs the event processor claimed for this dispatcher in its own transaction (see `reservePlaces(upTo:)`).
    private let handed = Mutex(HandOver())
    private let handedJobs: (stream: AsyncStream<[OutboundJob]>, continuation: AsyncStream<[OutboundJob]>.Continuation)

    private struct HandOver {
        /// True while `run` carries out jobs: only then are places reserved.
        var accepting = false
        /// Places reserved and not yet handed over or given back.
        var reserved = 0
        /// `run` has ended: its handed jobs are over for good.
        var ended = false
    }

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
        self.recorder = Self.recorder(database: database, worker: worker)
        self.handedJobs = AsyncStream.makeStream(of: [OutboundJob].self)
    }

    /// Takes up to `count` free places for jobs the event processor is about to claim in the transaction that plans
    /// them: those jobs then skip a claim of their own (a transaction and a wake-up each). Returns how many places it
    /// took: none when the dispatcher is not running or has none free. Every reservation ends with
    /// `handOver(_:reserved:)`, whether the transaction committed or not.
    public func reservePlaces(upTo count: Int) -> Int {
        guard count > 0 else { return 0 }
        return handed.withLock { h in
            guard h.accepting else { return 0 }
            let taken = takePlaces(upTo: count)
            // None free: the processor's jobs wait for a place, and a finishing job must make the loop look.
            if taken == 0 { placesShort.store(true, ordering: .releasing) }
            h.reserved += taken
            return taken
        }
    }

    /// Takes up to `count` free places at once: the loop's claims and the processor's reservations together never
    /// hold more than `dispatchConcurrency` jobs.
    private func takePlaces(upTo count: Int) -> Int {
        var current = inHand.load(ordering: .acquiring)
        while true {
            let take = min(count, settings.dispatchConcurrency - current)
            guard take > 0 else { return 0 }
            let (exchanged, original) = inHand.compareExchange(expected: current, desired: current + take, ordering: .acquiringAndReleasing)
            if exchanged { return take }
            current = original
        }
    }

    /// Takes the jobs claimed under `worker` with `reserved` places (none if the transaction rolled back) and gives
    /// back the places they did not fill. The jobs are carried out as claimed ones are.
    public func handOver(_ jobs: [OutboundJob], reserved: Int) {
        assert(jobs.count <= reserved, "more jobs handed over than places reserved")
        let (finished, taken) = handed.withLock { h in
            h.reserved -= reserved
            var taken = true
            if !jobs.isEmpty, case .terminated = handedJobs.continuation.yield(jobs) { taken = false }
            return (!h.accepting && h.reserved == 0, taken)
        }
        inHand.subtract(reserved - jobs.count, ordering: .acquiringAndReleasing)
        if !taken {
            logger.warning("jobs claimed after the dispatcher stopped run again once their lease expires", metadata: ["jobs": "\(jobs.map(\.id))"])
        }
        if finished { handedJobs.continuation.finish() }
    }

    /// Stops reserving places; the handed jobs end once every reservation is settled.
    private func stopAccepting() {
        let finished = handed.withLock { h in
            h.accepting = false
            h.ended = true
            return h.reserved == 0
        }
        if finished {
            handedJobs.continuation.finish()
        } else {
            // A transaction that never ends (a database gone) must not hold shutdown for ever: jobs it claims after
            // this run again once their lease expires.
            let continuation = handedJobs.continuation
            Task {
                try? await Task.sleep(for: .seconds(20))
                continuation.finish()
            }
        }
    }

    /// Carries out jobs in hand, then frees their places and wakes the loop where a claim may now find more.
    private func finish(_ jobs: [OutboundJob]) async {
        var lookAgain = true
        do {
            lookAgain = try await carryOut(jobs)
        } catch {
            logger.error("recording dispatched jobs failed; they run again after their lease", metadata: ["error": "\(error)"])
        }
        inHand.subtract(jobs.count, ordering: .acquiringAndReleasing)
        // Look again only where it may find something: later jobs of their partitions may now run, a retry was
        // scheduled, or due jobs were waiting for a place. Otherwise new jobs wake the loop.
        if lookAgain || placesShort.load(ordering: .acquiring) { wakeUp.notify() }
    }

    /// New jobs were written that nobody claimed for this dispatcher (requested actions, or a batch the processor
    /// could not place): look now rather than at the next poll.
    public func wake() { wakeUp.notify() }

    public func run() async throws {
        // Jobs are claimed as they come and carried out while earlier ones are still at the sink: a job does not wait
        // for a whole round to finish before it is claimed. Each claim takes only free places, so at most
        // `dispatchConcurrency` jobs are in hand. On shutdown, jobs in hand finish (or fail and are rescheduled).
        await cancelWhenGracefulShutdown {
            await self.ready.wait()
            await withDiscardingTaskGroup { group in
                self.handed.withLock { $0.accepting = !$0.ended }
                // Jobs claimed by this loop or handed over by the event processor, carried out as they come until every
                // reservation is settled. Not a child of this group: shutdown cancels the group, which would cut off
                // calls under way, and a cancelled stream stops yielding, which would leave jobs handed over after it
                // claimed but not carried out until their lease ran out.
                let handedOver = Task {
                    await withDiscardingTaskGroup { carryOuts in
                        for await jobs in self.handedJobs.stream { carryOuts.addTask { await self.finish(jobs) } }
                    }
                }
                group.addTask { await handedOver.value }
                defer { self.stopAccepting() }
                while !Task.isCancelled {
                    do {
                        // The places are taken before the claim: a reservation made while it runs must not count them free.
                        let free = self.takePlaces(upTo: self.settings.dispatchConcurrency)
                        let jobs: [OutboundJob]
                        do {
                            jobs = free > 0 ? try await self.claim(limit: free) : []
                        } catch {
                            self.inHand.subtract(free, ordering: .acquiringAndReleasing)
                            throw error
                        }
                        self.inHand.subtract(free - jobs.count, ordering: .acquiringAndReleasing)
                        self.placesShort.store(jobs.count >= free, ordering: .releasing)
                        if jobs.isEmpty {
                            // Nothing due, or no free place: a new job or a finished one wakes the loop.
                            await self.wakeUp.wait(timeout: free > 0 ? try await self.idleWait() : self.settings.pollInterval)
                            continue
                        }
                        // Carried out where handed jobs are, outside the cancelled group: on shutdown a call under way
                        // finishes and its result is recorded, instead of being cut off and left to its lease.
                        self.handedJobs.continuation.yield(jobs)
                        if jobs.count < free {
                            await self.wakeUp.wait(timeout: self.settings.pollInterval)
                        }
                    } catch where Task.isCancelled {
                        break
                    } catch {
                        self.logger.error("dispatching jobs failed; retrying", metadata: ["error": "\(error)"])
                        try? await Task.sleep(for: .seconds(1))
                    }
                }
            }
        }
    }

    /// How long to sleep when idle: until the next retry is due, at most one poll interval.
    private func idleWait() async throws -> Duration {
        let database = self.database
        let due = try await withDeadline(.seconds(5)) { try await database.read { db in try await JobStore.nextDue(on: db) } }
        guard let due else { return settings.pollInterval }
        let ms = max(1, due - clock.millis)
        return min(settings.pollInterval, .milliseconds(ms))
    }

    /// Claims and carries out one round of due jobs and waits for all of them; returns how many were attempted. For
    /// stepping the dispatcher by hand (tests); `run` claims and carries out continuously instead.
    @discardableResult
    public func dispatchRound() async throws -> Int {
        let jobs = try await claim(limit: settings.dispatchConcurrency)
        try await carryOut(jobs)
        return jobs.count
    }

    /// Takes up to `limit` due jobs under this worker's lease. The claim is not synced to disk: lost in a crash,
    /// it leaves the jobs due, as an expired lease would, and a carried-out job's result is recorded synced.
    private func claim(limit: Int) async throws -> [OutboundJob] {
        let now = clock.millis
        return try await withDeadline(.seconds(10)) {
            try await self.database.transaction(synced: false) { db in
                try await JobStore.claim(
                    worker: self.worker, limit: limit, now: now, leaseUntil: now + self.settings.leaseMilliseconds,
                    dialect: self.database.dialect, on: db)
            }
        }
    }

    /// Performs claimed jobs concurrently, then records every success in one transaction (shared with the carry-outs
    /// that finish at the same time). Returns true when a claim may now find more: a job failed (its retry is
    /// scheduled) or later jobs of the same partitions are pending.
    @discardableResult
    private func carryOut(_ jobs: [OutboundJob]) async throws -> Bool {
        guard !jobs.isEmpty else { return false }
        let prepared = try await prepare(jobs)
        let results = await withTaskGroup(of: (OutboundJob, Result<Done, ActionFailure>).self) { group in
            for (job, step) in zip(jobs, prepared) {
                group.addTask {
                    switch step {
                    case .failed(let failure): return (job, .failure(failure))
                    case .alreadyDone(let reason): return (job, .success(Done(request: nil, outcome: ActionOutcome(detail: reason), note: reason)))
                    case .perform(let request):
                        let started = ContinuousClock.now
                        let result: Result<ActionOutcome, ActionFailure> = await {
                            do throws(ActionFailure) { return .success(try await self.sink.perform(request)) } catch { return .failure(error) }
                        }()
                        self.metrics.actionLatency(action: job.action, nanoseconds: (ContinuousClock.now - started).nanoseconds)
                        return (job, result.map { Done(request: request, outcome: $0, note: nil) })
                    }
                }
            }
            var all: [(OutboundJob, Result<Done, ActionFailure>)] = []
            for await r in group { all.append(r) }
            return all.sorted { $0.0.id < $1.0.id }
        }
        var successes: [(OutboundJob, Done)] = []
        var failed = false
        for (job, result) in results {
            switch result {
            case .success(let done): successes.append((job, done))
            case .failure(let failure):
                failed = true
                try? await fail(job, failure)
            }
        }
        let followers = try await record(successes)
        return failed || followers
    }

    private struct Done: Sendable {
        var request: ActionRequest?
        var outcome: ActionOutcome
        /// Why nothing was done (the creation had happened already).
        var note: String?
    }

    private enum Step: Sendable {
        case perform(ActionRequest)
        case alreadyDone(String)
        case failed(ActionFailure)
    }

    /// Resolves each job's target and checks that creations have not happened yet: a retried or replayed job
    /// never creates a second incident or record. One read for the whole round.
    private func prepare(_ jobs: [OutboundJob]) async throws -> [Step] {
        let decoded = jobs.map { try? JobPayload.decode($0.payload) }
        var records = Set<String>()
        var incidents = Set<String>()
        for d in decoded.compactMap({ $0 }) {
            switch d.action.target {
            case .createdIncident(_, let record): records.insert(record)
            case .creation where d.action.action == .createIncident: records.insert(d.action.sourceId)
            case .creation where d.action.action == .createRecord: incidents.insert(d.action.sourceId)
            default: break
            }
        }
        let recordList = Array(records)
        let incidentList = Array(incidents)
        let links =
            records.isEmpty && incidents.isEmpty
            ? [] : try await database.read { db in try await LinkStore.findAny(recordIds: recordList, incidentIds: incidentList, on: db) }
        return zip(jobs, decoded).map { job, d -> Step in
            guard let (planned, orgId) = d else { return .failed(.permanent("the job's payload is not a planned action")) }
            var request = ActionRequest(
                idempotencyKey: job.idempotencyKey, action: planned.action, ruleset: planned.ruleset, rule: planned.rule,
                incidentId: planned.incidentId, object: planned.recordObject, recordId: planned.recordId, orgId: orgId,
                parameters: planned.parameters)
            request.stampedWhenPlanned = EchoGuard.isStampedWhenPlanned(planned)
            switch planned.target {
            case .createdIncident(let object, let record):
                guard let link = links.first(where: { SalesforceId.same($0.link.recordId, record) && $0.link.object.lowercased() == object.lowercased() })
                else {
                    return .failed(.permanent("no incident was created for \(object) \(record), so \(planned.action.rawValue) has nothing to act on"))
                }
                request.incidentId = link.link.incidentId
            case .creation where planned.action == .createIncident:
                if let existing = links.first(where: {
                    SalesforceId.same($0.link.recordId, planned.sourceId) && $0.link.object.lowercased() == planned.sourceObject.lowercased()
                }) {
                    return .alreadyDone("\(planned.sourceObject) \(planned.sourceId) is already linked to incident \(existing.link.incidentId)")
                }
            case .creation where planned.action == .createRecord:
                let object = planned.parameters["object"]?.stringValue ?? ""
                if let existing = links.first(where: { $0.link.incidentId == planned.sourceId && $0.link.object.lowercased() == object.lowercased() }) {
                    return .alreadyDone("incident \(planned.sourceId) is already linked to \(object) \(existing.link.recordId)")
                }
                request.incidentId = planned.sourceId
            default:
                break
            }
            return .perform(request)
        }
    }

    /// Records successes: jobs done, new links, origin stamps and log entries, in one transaction. Returns whether
    /// later jobs of their partitions are pending.
    private func record(_ successes: [(OutboundJob, Done)]) async throws -> Bool {
        guard !successes.isEmpty else { return false }
        let now = clock.millis
        var links: [Link] = []
        var stamps: [(target: String, fingerprint: String, ttl: Int64)] = []
        var entries: [Int64: LogEntry] = [:]
        for (job, done) in successes {
            if let request = done.request {
                let outcome = done.outcome
                if request.action == .createIncident, let incident = outcome.createdIncidentId, let record = request.recordId, let object = request.object {
                    links.append(Link(incidentId: incident, object: object, recordId: record, orgId: request.orgId))
                }
                if request.action == .createRecord, let record = outcome.createdRecordId, let incident = request.incidentId {
                    let object = request.parameters["object"]?.stringValue ?? request.object ?? "Case"
                    links.append(Link(incidentId: incident, object: object, recordId: record, orgId: request.orgId))
                }
                for (target, fingerprint) in EchoGuard.stamps(for: request, outcome: outcome) {
                    stamps.append((target, fingerprint, fingerprint == EchoGuard.recentWrite ? settings.hopWindowMilliseconds : settings.stampTTLMilliseconds))
                }
                var text = "\(job.action) (job \(job.id)) done"
                if let id = outcome.createdIncidentId { text += ": incident \(id) created" }
                if let id = outcome.createdRecordId { text += ": record \(id) created" }
                entries[job.id] = log.entry(.info, "dispatch", text, incidentId: request.incidentId ?? outcome.createdIncidentId, recordId: request.recordId, eventId: job.eventId)
            } else if let note = done.note {
                entries[job.id] = log.entry(.info, "dispatch", "\(job.action) (job \(job.id)) skipped: \(note)", eventId: job.eventId)
            }
        }
        let results = successes.map { ($0.0.id, $0.1.outcome.detail ?? $0.1.outcome.createdIncidentId ?? $0.1.outcome.createdRecordId) }
        // Unrecorded successes (the database went away) run again after their lease: their keys keep them single.
        let recorded = try await recorder.submit(
            Recording(now: now, results: results, partitions: successes.map(\.0.partitionKey), links: links, stamps: stamps, entries: entries))
        for (job, done) in successes {
            guard recorded.ids.contains(job.id) else {
                logger.warning("job \(job.id) finished after its lease passed to another process; its result is not recorded twice")
                continue
            }
            metrics.action(job.action, outcome: done.note == nil ? "done" : "skipped")
            if let received = job.receivedAt { metrics.endToEndLatency(nanoseconds: max(0, now - received) * 1_000_000) }
        }
        return recorded.followersPending
    }

    /// What one carry-out has to record.
    struct Recording: Sendable {
        var now: Int64
        var results: [(id: Int64, result: String?)]
        var partitions: [String]
        var links: [Link]
        var stamps: [(target: String, fingerprint: String, ttl: Int64)]
        var entries: [Int64: LogEntry]
    }

    /// What a group's transaction recorded.
    struct Recorded: Sendable {
        var ids: Set<Int64>
        /// Jobs of the group's partitions are still pending (over the whole group: a spare look is harmless).
        var followersPending: Bool
    }

    /// Records the results of carry-outs that finish close together in one transaction: with jobs carried out as they
    /// come, a transaction (and a disk sync) per carry-out would keep the single writer busy under steady load.
    private static func recorder(database: any Database, worker: String) -> GroupCommit<Recording, Recorded> {
        GroupCommit { recordings in
            let now = recordings.map(\.now).max() ?? 0
            let recorded = try await withDeadline(.seconds(15)) {
                try await database.transaction { db -> Recorded in
                    // A job whose lease passed to another process is that process's to record.
                    let recorded = try await JobStore.complete(recordings.flatMap(\.results), worker: worker, now: now, on: db)
                    try await LinkStore.addMany(recordings.flatMap(\.links), by: "rule", now: now, on: db)
                    try await OriginStampStore.addMany(recordings.flatMap(\.stamps), now: now, on: db)
                    let entries = recordings.reduce(into: [Int64: LogEntry]()) { all, r in all.merge(r.entries) { first, _ in first } }
                    try await LogStore.write(recorded.sorted().compactMap { entries[$0] }, on: db)
                    let followers = try await JobStore.anyOpen(partitions: Set(recordings.flatMap(\.partitions)), on: db)
                    return Recorded(ids: recorded, followersPending: followers)
                }
            }
            return Array(repeating: recorded, count: recordings.count)
        }
    }

    private func fail(_ job: OutboundJob, _ failure: ActionFailure) async throws {
        let now = clock.millis
        if case .postponed(_, let after) = failure {
            let entry = log.entry(.info, "dispatch", "\(job.action) (job \(job.id)) postponed: \(failure)", eventId: job.eventId)
            let worker = self.worker
            try await database.transaction { db in
                try await JobStore.postpone(
                    id: job.id, worker: worker, reason: failure.description, runAfter: now + Int64(max(0, after) * 1000), now: now, on: db)
                if let entry { try await LogStore.write([entry], on: db) }
            }
            metrics.action(job.action, outcome: "postponed")
            return
        }
        let retryAt: Int64?
        switch failure {
        case .retryable(_, let after):
            retryAt = now + settings.backoff.delay(afterAttempt: job.attempts, retryAfter: after, random: random())
        case .permanent, .postponed:
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
