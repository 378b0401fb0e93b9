import AsyncHTTPClient
import Foundation
import Logging
import ServiceLifecycle
import SwitchboardCore
import SwitchboardPipeline
import SwitchboardStorage

/// Reads record changes from orgs connected for Change Data Capture or polling and commits them as inbound events,
/// the same way the trigger intake does. With several instances on PostgreSQL, one holds the capture lock and does
/// it all; another takes over when it stops.
public struct ChangeCaptureService: Service {
    let clients: SalesforceClients
    let database: any Database
    let intake: IntakeWriter
    let clock: any WallClock
    let log: IntegrationLog
    let httpClient: HTTPClient
    let logger: Logger
    let reconcileInterval: Duration
    /// Opened once the schema is migrated.
    public let ready = Gate()

    public init(
        clients: SalesforceClients, database: any Database, intake: IntakeWriter, clock: any WallClock, log: IntegrationLog,
        httpClient: HTTPClient = .shared, logger: Logger, reconcileInterval: Duration = .seconds(5)
    ) {
        self.clients = clients
        self.database = database
        self.intake = intake
        self.clock = clock
        self.log = log
        self.httpClient = httpClient
        self.logger = logger
        self.reconcileInterval = reconcileInterval
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await ready.wait()
            while !Task.isCancelled {
                do {
                    // The lock (a pooled connection on PostgreSQL) is taken only while some org needs capturing, and
                    // given back every few minutes so a process whose database went away does not keep the work.
                    if await !wanted().isEmpty {
                        _ = try await database.exclusively("salesforce-capture") { await supervise(for: Self.leadershipTerm) }
                    }
                } catch {
                    logger.error("Salesforce capture stopped; restarting", metadata: ["error": "\(error)"])
                }
                try? await Task.sleep(for: reconcileInterval)
            }
        }
    }

    /// How long one process captures before it gives the lock back and takes it again.
    static let leadershipTerm: Duration = .seconds(300)

    /// The orgs connected for CDC or polling.
    func wanted() async -> [SalesforceConnection] {
        clients.connections.invalidate()
        return await clients.connections.all().filter { $0.hasAPIAccess && $0.capture != .trigger }
    }

    /// Keeps one capture task per org that needs one, restarting it when the org's settings change, for `term` or
    /// until no org needs capturing.
    func supervise(for term: Duration) async {
        let end = ContinuousClock.now + term
        await withTaskGroup(of: Void.self) { group in
            var running: [String: (connection: SalesforceConnection, stop: Gate)] = [:]
            while !Task.isCancelled && ContinuousClock.now < end {
                let wanted = await wanted()
                if wanted.isEmpty { break }
                for (org, entry) in running where !wanted.contains(entry.connection) {
                    entry.stop.open()
                    running[org] = nil
                }
                for connection in wanted where running[connection.orgId] == nil {
                    let stop = Gate()
                    running[connection.orgId] = (connection, stop)
                    group.addTask {
                        await withTaskGroup(of: Void.self) { inner in
                            inner.addTask { await capture(connection) }
                            inner.addTask { await stop.wait() }
                            await inner.next()
                            inner.cancelAll()
                        }
                    }
                }
                try? await Task.sleep(for: reconcileInterval)
            }
            group.cancelAll()
        }
    }

    func capture(_ connection: SalesforceConnection) async {
        while !Task.isCancelled {
            do {
                guard let entry = try await clients.client(orgId: connection.orgId) else { return }
                switch connection.capture {
                case .cdc: try await consume(connection, entry.client)
                case .polling: try await poll(connection, entry.client)
                case .trigger: return
                }
            } catch where Task.isCancelled {
                return
            } catch {
                logger.error("Salesforce capture failed; retrying", metadata: ["org": "\(connection.orgId)", "error": "\(error)"])
                await write([], logs: log.entry(.error, "capture", "Salesforce org \(connection.orgId): capture failed: \(error)").map { [$0] } ?? [])
                try? await Task.sleep(for: .seconds(5))
            }
        }
    }

    // MARK: Change Data Capture

    func consume(_ connection: SalesforceConnection, _ client: SalesforceClient) async throws {
        let org = connection.orgId
        let consumer = ChangeDataCaptureConsumer(
            configuration: .init(
                apiVersion: connection.apiVersion, channels: connection.objects.map { "/data/\($0)ChangeEvent" },
                ownClient: connection.callOptionsClient),
            sessions: client.sessions, replayIds: SettingsReplayIdStore(database: database, orgId: org, clock: clock), httpClient: httpClient,
            logger: logger,
            onReplayTooOld: { channel in
                // Past the 72-hour retention: what was missed is read back by query.
                let object = String(channel.dropFirst("/data/".count).dropLast("ChangeEvent".count))
                try await resync(connection, client, object: object)
            },
            handle: { event in try await handle(event, connection, client) })
        try await consumer.run()
    }

    func handle(_ event: ChangeEvent, _ connection: SalesforceConnection, _ client: SalesforceClient) async throws {
        let org = connection.orgId
        if event.isGap {
            // The event bus lost the details: read the records themselves.
            for id in event.recordIds {
                let record = try await client.get(event.entityName, id: id)
                try await commit(connection, object: event.entityName, id: id, isInsert: false, fields: record, externalId: "\(event.dedupeKey)#\(id)")
            }
            return
        }
        guard event.changeType == "CREATE" || event.changeType == "UPDATE" || event.changeType == "UNDELETE" else { return }
        let own = event.isOwnWrite(client: connection.callOptionsClient)
        for id in event.recordIds {
            var previous = try await database.read { try await RecordSnapshots.get(orgId: org, recordId: id, on: $0) }
            if previous == nil, event.changeType != "CREATE" {
                // First news of this record: read it once so rules see every field, not only the changed ones.
                previous = try? await client.get(event.entityName, id: id)
            }
            let old = previous ?? [:]
            let new = CapturedChanges.merge(old, event.fields, nulled: event.nulledFields)
            if own {
                // Switchboard's own write coming back: remember the values, fire nothing.
                let now = clock.millis
                try await database.transaction { try await RecordSnapshots.put(orgId: org, recordId: id, fields: new, now: now, on: $0) }
                continue
            }
            try await commit(
                connection, object: event.entityName, id: id, isInsert: event.changeType == "CREATE", old: old, fields: new,
                externalId: "\(event.dedupeKey)#\(id)")
        }
    }

    // MARK: Polling

    func poll(_ connection: SalesforceConnection, _ client: SalesforceClient) async throws {
        var pollers: [String: ChangePoller] = [:]
        for object in connection.objects { pollers[object] = ChangePoller(client: client, object: object) }
        while !Task.isCancelled {
            for object in connection.objects {
                guard let poller = pollers[object] else { continue }
                try await pollOnce(connection, poller, object: object)
            }
            try await Task.sleep(for: .seconds(connection.pollSeconds))
        }
    }

    func pollOnce(_ connection: SalesforceConnection, _ poller: ChangePoller, object: String) async throws {
        let org = connection.orgId
        let stored = try await database.read { try await CaptureState.get(orgId: org, "poll.\(object)", on: $0) }
        let state = stored.flatMap { try? JSONDecoder().decode(PollerState.self, from: Data($0.utf8)) } ?? PollerState()
        let result = try await poller.poll(state)
        for change in result.changes {
            try await commit(connection, object: object, id: change.id, isInsert: change.isInsert, fields: change.record, externalId: change.dedupeKey)
        }
        // The watermark moves only after every change it covers is committed.
        let encoded = String(decoding: try JSONEncoder().encode(result.state), as: UTF8.self)
        let now = clock.millis
        try await database.transaction { try await CaptureState.set(orgId: org, "poll.\(object)", value: encoded, now: now, on: $0) }
    }

    /// After a CDC gap too old to replay: every record changed in the last 72 hours, read by query.
    func resync(_ connection: SalesforceConnection, _ client: SalesforceClient, object: String) async throws {
        let since = Date(timeIntervalSince1970: Double(clock.millis) / 1000 - 72 * 3600)
        let poller = ChangePoller(client: client, object: object)
        let marker = "resync-\(clock.millis)"
        var state = PollerState(watermark: Instant(millisecondsSince1970: Int64(since.timeIntervalSince1970 * 1000)))
        repeat {
            let result = try await poller.poll(state)
            for change in result.changes {
                try await commit(connection, object: object, id: change.id, isInsert: change.isInsert, fields: change.record, externalId: "\(marker):\(change.dedupeKey)")
            }
            state = result.state
            if !result.truncated { break }
        } while !Task.isCancelled
        await write([], logs: log.entry(.info, "capture", "Salesforce org \(connection.orgId): \(object) resynced by query after a replay gap").map { [$0] } ?? [])
    }

    // MARK: Commit

    /// Commits one record's change as an inbound event and keeps its values for the next change's `old`.
    func commit(
        _ connection: SalesforceConnection, object: String, id: String, isInsert: Bool, old: JSONObject? = nil, fields: JSONObject, externalId: String
    ) async throws {
        let org = connection.orgId
        let previous: JSONObject?
        if let old {
            previous = old
        } else {
            previous = try await database.read { try await RecordSnapshots.get(orgId: org, recordId: id, on: $0) }
        }
        let event = CapturedChanges.inboundEvent(
            object: object, recordId: id, isInsert: isInsert, old: previous, new: fields, orgId: org, externalId: externalId)
        let entry = log.entry(.info, "intake", "Salesforce \(connection.capture.rawValue) change: \(object) \(SalesforceId.normalized(id))", recordId: id, payload: event.payload)
        _ = try await intake.accept([event], logs: entry.map { [$0] } ?? [])
        let now = clock.millis
        try await database.transaction { try await RecordSnapshots.put(orgId: org, recordId: id, fields: fields, now: now, on: $0) }
    }

    func write(_ events: [NewInboundEvent], logs: [LogEntry]) async {
        _ = try? await intake.accept(events, logs: logs)
    }
}

/// CDC replay ids kept in the settings table, per org and channel.
struct SettingsReplayIdStore: ReplayIdStore {
    let database: any Database
    let orgId: String
    let clock: any WallClock

    func replayId(channel: String) async throws -> Int64? {
        try await database.read { try await CaptureState.get(orgId: orgId, "replay.\(channel)", on: $0) }.flatMap { Int64($0) }
    }

    func save(replayId: Int64, channel: String) async throws {
        let now = clock.millis
        try await database.transaction { try await CaptureState.set(orgId: orgId, "replay.\(channel)", value: String(replayId), now: now, on: $0) }
    }
}
