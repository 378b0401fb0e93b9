import Foundation
import SQLKit
import SwitchboardCore
@testable import SwitchboardStorage
import SwitchboardTestSupport
import Testing

/// The same storage scenarios on SQLite and on PostgreSQL.
enum StorageScenarios {
    static func migrations(_ backend: Backend) async throws {
        try await withTestDatabase(backend, migrate: false) { (db: any Database, _: String) async throws -> Void in
            #expect(try await Migrations.currentVersion(db) == 0)
            #expect(try await Migrations.migrate(db, now: 1) == Migrations.all.map(\.version))
            // Running again (another process, a restart) changes nothing.
            #expect(try await Migrations.migrate(db, now: 2) == [])
            #expect(try await Migrations.currentVersion(db) == Migrations.all.last?.version)
        }
    }

    /// A transaction whose task is cancelled midway (a deadline passed) rolls back and leaves the database usable.
    static func cancelledTransactionRollsBack(_ backend: Backend) async throws {
        try await withTestDatabase(backend) { (db: any Database, _: String) async throws -> Void in
            for synced in [true, false] {
                let external = "cancelled-\(synced)"
                let cancelled = Task {
                    try await db.transaction(synced: synced) { d in
                        _ = try await EventStore.insert([NewInboundEvent(source: .pagerduty, externalId: external, partitionKey: "p", payload: "{}")], now: 1, on: d)
                        withUnsafeCurrentTask { $0?.cancel() }
                        try await d.raw("SELECT 1 AS x").run()
                        try Task.checkCancellation()
                    }
                }
                await #expect(throws: (any Error).self) { try await cancelled.value }
                // Before, SQLite's writer stayed inside the open transaction and every later one failed.
                let ids = try await db.transaction { d in
                    try await EventStore.insert([NewInboundEvent(source: .pagerduty, externalId: "after-\(synced)", partitionKey: "p", payload: "{}")], now: 2, on: d)
                }
                #expect(ids.count == 1 && ids[0] != nil)
                let stored = try await db.read { try await EventStore.list(limit: 100, on: $0) }.map(\.externalId)
                #expect(!stored.contains(external), "the cancelled transaction's insert is rolled back")
                #expect(stored.contains("after-\(synced)"))
            }
        }
    }

    /// A batch's decisions land on the right rows, whether they share a few (status, outcome) pairs or each has its own.
    static func decisionsLandOnTheirEvents(_ backend: Backend) async throws {
        try await withTestDatabase(backend) { (db: any Database, _: String) async throws -> Void in
            let events = (0..<40).map { NewInboundEvent(source: .pagerduty, externalId: "d\($0)", partitionKey: "pd:P\($0)", payload: "{}") }
            let ids = try await db.transaction { try await EventStore.insert(events, now: 1, on: $0) }.compactMap { $0 }
            #expect(ids.count == 40)
            // Few pairs (one statement each), then one pair per event (beyond the grouped statements' limit).
            let few = ids.prefix(20).enumerated().map { i, id in (id: id, status: ["processed", "ignored", "failed"][i % 3], outcome: i % 3 == 1 ? nil : "o\(i % 3)") }
            let many = ids.dropFirst(20).prefix(19).enumerated().map { i, id in (id: id, status: "processed", outcome: Optional("outcome \(i)")) }
            try await db.transaction { try await EventStore.markProcessed(few, now: 5, on: $0) }
            try await db.transaction { try await EventStore.markProcessed(Array(many), now: 6, on: $0) }
            var expected: [Int64: (String, String?, Int64?)] = [:]
            for d in few { expected[d.id] = (d.status, d.outcome, 5) }
            for d in many { expected[d.id] = (d.status, d.outcome, 6) }
            expected[ids[39]] = ("pending", nil, nil)
            for event in try await db.read({ try await EventStore.list(limit: 100, on: $0) }) {
                let want = try #require(expected[event.id])
                #expect(event.status == want.0 && event.outcome == want.1 && event.processedAt == want.2, "event \(event.id)")
            }
            #expect(try await db.read { try await EventStore.counts(on: $0) } == ["processed": 26, "ignored": 7, "failed": 6, "pending": 1])
        }
    }

    static func eventsDeduplicateAndKeepOrder(_ backend: Backend) async throws {
        try await withTestDatabase(backend) { (db: any Database, _: String) async throws -> Void in
            let events = (0..<5).map { NewInboundEvent(source: .pagerduty, externalId: "e\($0)", partitionKey: "pd:P\($0 % 2)", payload: "{}") }
            let ids = try await db.transaction { try await EventStore.insert(events, now: 10, on: $0) }
            #expect(ids.allSatisfy { $0 != nil })
            let again = try await db.transaction { try await EventStore.insert([events[1], NewInboundEvent(source: .pagerduty, externalId: "e9", partitionKey: "x", payload: "{}")], now: 11, on: $0) }
            #expect(again[0] == nil)
            #expect(again[1] != nil)
            // The same external id from the other source is a different event.
            let other = try await db.transaction {
                try await EventStore.insert([NewInboundEvent(source: .salesforce, externalId: "e1", partitionKey: "sf", payload: "{}")], now: 12, on: $0)
            }
            #expect(other[0] != nil)
            let claimed = try await db.transaction { try await EventStore.claim(limit: 10, dialect: db.dialect, on: $0) }
            // SQLite offers every pending event in order; PostgreSQL offers the head of each partition.
            switch backend {
            case .sqlite: #expect(claimed.map(\.externalId) == ["e0", "e1", "e2", "e3", "e4", "e9", "e1"])
            case .postgresql: #expect(Set(claimed.map(\.partitionKey)).count == claimed.count)
            }
            #expect(claimed.first?.externalId == "e0")
        }
    }

    /// Whatever text a delivery holds is stored and read back unchanged, in groups of any size, with ids in the order
    /// given; a NUL character in a log entry (a malformed delivery may hold one) does not lose the entry.
    static func groupsOfAnyTextRoundTrip(_ backend: Backend) async throws {
        try await withTestDatabase(backend) { (db: any Database, _: String) async throws -> Void in
            let awkward = [
                #"{"quote":"\"","backslash":"\\","tab":"\t"}"#, "line\nbreak\r\ttab \u{1} \u{1F} \"quoted\" back\\slash / solidus",
                "café 日本語 😀 e\u{301} \u{2028}\u{2029} \u{FEFF}", "", " ", "null", "[1,2]", String(repeating: "x", count: 70_000),
            ]
            let events = (0..<300).map { i in
                NewInboundEvent(source: i % 2 == 0 ? .pagerduty : .salesforce, externalId: "ext-\(i)-\(awkward[i % awkward.count].prefix(20))",
                    partitionKey: "pd:\(awkward[(i + 1) % awkward.count].prefix(10))", payload: awkward[i % awkward.count])
            }
            let ids = try await db.transaction { try await EventStore.insert(events, now: 7, on: $0) }
            #expect(ids.allSatisfy { $0 != nil })
            #expect(ids.compactMap { $0 } == ids.compactMap { $0 }.sorted(), "ids follow the order given")
            let stored = try await db.read { try await EventStore.list(limit: 1000, on: $0) }.reversed()
            #expect(stored.map(\.externalId) == events.map(\.externalId))
            #expect(stored.map(\.partitionKey) == events.map(\.partitionKey))
            #expect(stored.map(\.payload) == events.map(\.payload))
            #expect(stored.allSatisfy { $0.receivedAt == 7 && $0.status == "pending" })

            let first = awkward.enumerated().map { i, text in
                LogEntry(at: Int64(1_000 + i), level: .info, category: "intake", message: "message \(text.prefix(50))", incidentId: i % 2 == 0 ? "Q\(i)" : nil,
                    recordId: i % 3 == 0 ? nil : "500\(i)", eventId: i % 2 == 0 ? ids[i] : nil, payload: i % 4 == 0 ? nil : text)
            }
            try await db.transaction { try await LogStore.write(first, on: $0) }
            // A NUL character (a malformed delivery may hold one): the group still goes in, the NUL kept as U+FFFD.
            let second = [first[first.count - 1], LogEntry(at: 2_000, level: .error, category: "intake", message: "refused\u{0}", payload: "{\u{0}not json")]
            try await db.transaction { try await LogStore.write(second, on: $0) }
            let entries = first + [LogEntry(at: 2_000, level: .error, category: "intake", message: "refused\u{FFFD}", payload: "{\u{FFFD}not json")]
            let read = try await db.read { try await LogStore.query(LogQuery(limit: 100), on: $0) }.reversed()
            let written = entries + [entries[entries.count - 2]]
            #expect(read.count == written.count)
            for (r, w) in zip(read, written.sorted { $0.at < $1.at }) {
                #expect(r.at == w.at && r.level == w.level && r.category == w.category && r.message == w.message)
                #expect(r.incidentId == w.incidentId && r.recordId == w.recordId && r.eventId == w.eventId)
                // An intake entry without a payload shows its event's.
                #expect(r.payload == (w.payload ?? w.eventId.flatMap { id in stored.first { $0.id == id }?.payload }))
            }
        }
    }

    static func jobsRunInOrderWithRetriesAndDeadLetters(_ backend: Backend) async throws {
        try await withTestDatabase(backend) { (db: any Database, _: String) async throws -> Void in
            let jobs = (0..<3).map {
                NewOutboundJob(idempotencyKey: "k\($0)", eventId: 1, partitionKey: "sf:Case:1", action: "acknowledge", ruleset: "s", rule: "r", payload: "{}")
            } + [NewOutboundJob(idempotencyKey: "other", eventId: 2, partitionKey: "pd:Q", action: "resolve", ruleset: nil, rule: nil, payload: "{}")]
            #expect(try await db.transaction { try await JobStore.enqueue(jobs, maxAttempts: 2, now: 0, on: $0) } == 4)
            // Enqueuing the same keys again (a replayed event) adds nothing.
            #expect(try await db.transaction { try await JobStore.enqueue(jobs, maxAttempts: 2, now: 0, on: $0) } == 0)

            func claim(_ worker: String, at now: Int64) async throws -> [OutboundJob] {
                try await db.transaction { try await JobStore.claim(worker: worker, limit: 10, now: now, leaseUntil: now + 1000, dialect: db.dialect, on: $0) }
            }
            // One job per partition at a time, oldest first.
            let first = try await claim("a", at: 10)
            #expect(first.map(\.idempotencyKey) == ["k0", "other"])
            #expect(try await claim("b", at: 11).isEmpty)
            // k0 fails and is retried later; k1 must wait behind it.
            #expect(try await db.transaction { try await JobStore.fail(id: first[0].id, worker: "a", error: "timeout", retryAt: 500, now: 12, on: $0) } == false)
            #expect(try await db.transaction { try await JobStore.complete(id: first[1].id, worker: "a", result: nil, now: 12, on: $0) })
            #expect(try await claim("b", at: 100).isEmpty)
            let retried = try await claim("b", at: 600)
            #expect(retried.map(\.idempotencyKey) == ["k0"])
            #expect(retried[0].attempts == 2)
            // Out of attempts: a dead letter, and the partition moves on.
            #expect(try await db.transaction { try await JobStore.fail(id: retried[0].id, worker: "b", error: "still failing", retryAt: 700, now: 601, on: $0) })
            let dead = try await db.read { try await JobStore.deadLetters(on: $0) }
            #expect(dead.map(\.jobId) == [retried[0].id])
            #expect(dead[0].error == "still failing")
            #expect(try await claim("b", at: 602).map(\.idempotencyKey) == ["k1"])
            // An admin retries the dead letter; it runs again with fresh attempts.
            #expect(try await db.transaction { try await JobStore.retryDead(jobId: retried[0].id, now: 603, on: $0) })
            #expect(try await db.read { try await JobStore.deadLetters(on: $0) }.isEmpty)
            let back = try await db.read { try await JobStore.find(id: retried[0].id, on: $0) }
            #expect(back?.status == "pending")
            #expect(back?.attempts == 0)
        }
    }

    static func expiredLeasesAreReclaimed(_ backend: Backend) async throws {
        try await withTestDatabase(backend) { (db: any Database, _: String) async throws -> Void in
            _ = try await db.transaction {
                try await JobStore.enqueue(
                    [NewOutboundJob(idempotencyKey: "k", eventId: nil, partitionKey: "p", action: "resolve", ruleset: nil, rule: nil, payload: "{}")],
                    maxAttempts: 5, now: 0, on: $0)
            }
            let a = try await db.transaction { try await JobStore.claim(worker: "dead-process", limit: 5, now: 1, leaseUntil: 100, dialect: db.dialect, on: $0) }
            #expect(a.count == 1)
            #expect(try await db.transaction { try await JobStore.claim(worker: "b", limit: 5, now: 50, leaseUntil: 150, dialect: db.dialect, on: $0) }.isEmpty)
            let b = try await db.transaction { try await JobStore.claim(worker: "b", limit: 5, now: 101, leaseUntil: 200, dialect: db.dialect, on: $0) }
            #expect(b.map(\.id) == a.map(\.id))
            // The process that lost the lease cannot record a result.
            #expect(try await db.transaction { try await JobStore.complete(id: a[0].id, worker: "dead-process", result: nil, now: 102, on: $0) } == false)
            #expect(try await db.transaction { try await JobStore.complete(id: a[0].id, worker: "b", result: "ok", now: 102, on: $0) })
        }
    }

    /// An unsynced transaction (a job claim) commits like any other, and only it skips the disk sync: the
    /// transactions after it, and one that failed, leave the connection syncing every commit again.
    static func unsyncedTransactionsStayUnsynced(_ backend: Backend) async throws {
        try await withTestDatabase(backend) { (db: any Database, _: String) async throws -> Void in
            // SQLite: synchronous 2 is FULL, 1 NORMAL. PostgreSQL: synchronous_commit on or off.
            let syncSetting: @Sendable (any SQLDatabase) async throws -> String = { sql in
                switch db.dialect {
                case .sqlite: return String(try await sql.raw("PRAGMA synchronous").first()?.decode(column: "synchronous", as: Int.self) ?? -1)
                case .postgresql: return try await sql.raw("SHOW synchronous_commit").first()?.decode(column: "synchronous_commit", as: String.self) ?? "?"
                }
            }
            let (full, relaxed) = db.dialect == .sqlite ? ("2", "1") : ("on", "off")
            #expect(try await db.transaction { try await syncSetting($0) } == full)
            let inside = try await db.transaction(synced: false) { sql in
                _ = try await JobStore.enqueue(
                    [NewOutboundJob(idempotencyKey: "k", eventId: nil, partitionKey: "p", action: "resolve", ruleset: nil, rule: nil, payload: "{}")],
                    maxAttempts: 5, now: 0, on: sql)
                return try await syncSetting(sql)
            }
            #expect(inside == relaxed)
            #expect(try await db.transaction { try await syncSetting($0) } == full)
            // The unsynced commit is visible like any other.
            #expect(try await db.transaction { try await JobStore.claim(worker: "w", limit: 5, now: 1, leaseUntil: 100, dialect: db.dialect, on: $0) }.count == 1)
            struct Refused: Error {}
            await #expect(throws: (any Error).self) { try await db.transaction(synced: false) { _ in throw Refused() } }
            #expect(try await db.transaction { try await syncSetting($0) } == full)
        }
    }

    static func linksSettingsRulesLogs(_ backend: Backend) async throws {
        try await withTestDatabase(backend) { (db: any Database, _: String) async throws -> Void in
            let link = Link(incidentId: "PINC1", object: "Case", recordId: "5003000000D8cuI")
            #expect(try await db.transaction { try await LinkStore.add(link, now: 1, on: $0) })
            #expect(try await db.transaction { try await LinkStore.add(link, now: 2, on: $0) } == false)
            #expect(try await db.transaction { try await LinkStore.add(Link(incidentId: "PINC2", object: "Case", recordId: "5003000000D8cuIAAR"), now: 3, on: $0) })
            let byRecord = try await db.read { try await LinkStore.find(recordId: "5003000000D8cuIAAR", on: $0) }
            #expect(Set(byRecord.map(\.link.incidentId)) == ["PINC1", "PINC2"])
            #expect(try await db.transaction { try await LinkStore.remove(link, on: $0) })
            #expect(try await db.read { try await LinkStore.find(incidentId: "PINC1", on: $0) }.isEmpty)

            // Secrets are encrypted at rest and never listed.
            let box = try SecretBox(encodedKey: SecretBox.generateEncodedKey())
            try await db.transaction { try await SettingsStore.setSecret("pagerduty.apiKey", value: "u+SECRETKEY123", box: box, now: 1, on: $0) }
            let raw = try await db.read { try await $0.raw("SELECT value FROM settings WHERE key = 'pagerduty.apiKey'").first()?.decode(column: "value", as: String.self) }
            #expect(raw?.contains("SECRETKEY") == false)
            #expect(try await db.read { try await SettingsStore.getSecret("pagerduty.apiKey", box: box, on: $0) } == "u+SECRETKEY123")
            #expect(try await db.read { try await SettingsStore.all(on: $0) }.first?.value == "(secret)")
            let otherBox = try SecretBox(encodedKey: SecretBox.generateEncodedKey())
            await #expect(throws: DatabaseError.self) { _ = try await db.read { try await SettingsStore.getSecret("pagerduty.apiKey", box: otherBox, on: $0) } }

            // Every rules version is kept.
            let v1 = try await db.transaction { try await RulesStore.save(document: "a", author: "x", comment: nil, now: 1, on: $0) }
            let v2 = try await db.transaction { try await RulesStore.save(document: "b", author: "y", comment: "second", now: 2, on: $0) }
            #expect(v2 > v1)
            #expect(try await db.read { try await RulesStore.current(on: $0) }?.document == "b")
            #expect(try await db.read { try await RulesStore.version(v1, on: $0) }?.document == "a")
            #expect(try await db.read { try await RulesStore.history(on: $0) }.map(\.version) == [v2, v1])

            // Logs: filtered by level, time, incident and record; purged by age.
            try await db.transaction {
                try await LogStore.write(
                    [
                        LogEntry(at: 100, level: .debug, category: "processing", message: "d", incidentId: "P1"),
                        LogEntry(at: 200, level: .info, category: "intake", message: "delivery", recordId: "R1", payload: "{\"raw\":1}"),
                        LogEntry(at: 300, level: .error, category: "dispatch", message: "boom", incidentId: "P1"),
                    ], on: $0)
            }
            #expect(try await db.read { try await LogStore.query(LogQuery(minimumLevel: .info), on: $0) }.map(\.message) == ["boom", "delivery"])
            #expect(try await db.read { try await LogStore.query(LogQuery(incidentId: "P1"), on: $0) }.count == 2)
            #expect(try await db.read { try await LogStore.query(LogQuery(since: 150, until: 250), on: $0) }.map(\.message) == ["delivery"])
            #expect(try await db.read { try await LogStore.query(LogQuery(text: "raw"), on: $0) }.map(\.recordId) == ["R1"])
            #expect(try await db.transaction { try await LogStore.purge(before: 250, on: $0) } == 2)
        }
    }

    static func retentionDeletesOnlyFinishedOldRows(_ backend: Backend) async throws {
        try await withTestDatabase(backend) { (db: any Database, _: String) async throws -> Void in
            let old = (1...7).map { NewInboundEvent(source: .pagerduty, externalId: "old\($0)", partitionKey: "pd:P\($0)", payload: "{}") }
            let oldIds = try await db.transaction { try await EventStore.insert(old, now: 10, on: $0) }.compactMap { $0 }
            let young = [NewInboundEvent(source: .pagerduty, externalId: "young", partitionKey: "pd:Y", payload: "{}")]
            let youngIds = try await db.transaction { try await EventStore.insert(young, now: 1_000, on: $0) }.compactMap { $0 }
            let statuses = ["processed", "processed", "processed", "failed", "echo", "pending", "ignored"]
            try await db.transaction { db in
                for (id, status) in zip(oldIds, statuses) where status != "pending" {
                    try await EventStore.markProcessed(id: id, status: status, outcome: nil, now: 20, on: db)
                }
                try await EventStore.markProcessed(id: youngIds[0], status: "processed", outcome: nil, now: 1_001, on: db)
            }
            // Small steps, so the purge resumes where the previous step ended.
            var deleted = 0
            var after: Int64? = 0
            var steps = 0
            while let from = after {
                let step = try await db.transaction { try await EventStore.purge(before: 500, after: from, limit: 2, on: $0) }
                deleted += step.deleted
                after = step.resumeAfter
                steps += 1
            }
            #expect(deleted == 5)
            #expect(steps == 4)
            let left = try await db.read { try await EventStore.list(limit: 100, on: $0) }
            #expect(Set(left.map(\.externalId)) == ["old4", "old6", "young"])

            let jobs = (1...4).map {
                NewOutboundJob(idempotencyKey: "k\($0)", eventId: nil, partitionKey: "p\($0)", action: "resolve", ruleset: nil, rule: nil, payload: "{}")
            }
            _ = try await db.transaction { try await JobStore.enqueue(jobs, maxAttempts: 1, now: 10, on: $0) }
            _ = try await db.transaction {
                try await JobStore.enqueue(
                    [NewOutboundJob(idempotencyKey: "k5", eventId: nil, partitionKey: "p5", action: "resolve", ruleset: nil, rule: nil, payload: "{}")],
                    maxAttempts: 1, now: 1_000, on: $0)
            }
            let claimed = try await db.transaction { try await JobStore.claim(worker: "w", limit: 10, now: 1_000, leaseUntil: 9_000, dialect: db.dialect, on: $0) }
            #expect(claimed.count == 5)
            try await db.transaction { db in
                for job in claimed where job.idempotencyKey != "k3" && job.idempotencyKey != "k4" {
                    try await JobStore.complete(id: job.id, worker: "w", result: nil, now: 1_001, on: db)
                }
                if let k3 = claimed.first(where: { $0.idempotencyKey == "k3" }) {
                    #expect(try await JobStore.fail(id: k3.id, worker: "w", error: "gone", retryAt: nil, now: 1_001, on: db))
                }
            }
            let step = try await db.transaction { try await JobStore.purge(before: 500, on: $0) }
            #expect(step == RetentionStep(deleted: 2, resumeAfter: nil))
            // The dead job (still a dead letter), the running one and the young one stay.
            #expect(Set(try await db.read { try await JobStore.list(limit: 100, on: $0) }.map(\.idempotencyKey)) == ["k3", "k4", "k5"])
            #expect(try await db.read { try await JobStore.deadLetters(on: $0) }.count == 1)
            // A young table needs one read and no delete.
            #expect(try await db.transaction { try await JobStore.purge(before: 5, on: $0) } == RetentionStep(deleted: 0, resumeAfter: nil))
        }
    }

    static func echoStampsAndHops(_ backend: Backend) async throws {
        try await withTestDatabase(backend) { (db: any Database, _: String) async throws -> Void in
            try await db.transaction { try await OriginStampStore.add(target: "pd:P1", fingerprint: "incident.acknowledged", now: 0, ttl: 100, on: $0) }
            #expect(try await db.transaction { try await OriginStampStore.consume(target: "pd:P1", fingerprint: "incident.resolved", now: 1, on: $0) } == false)
            #expect(try await db.transaction { try await OriginStampStore.consume(target: "pd:P1", fingerprint: "incident.acknowledged", now: 1, on: $0) })
            // Consumed once only.
            #expect(try await db.transaction { try await OriginStampStore.consume(target: "pd:P1", fingerprint: "incident.acknowledged", now: 2, on: $0) } == false)
            try await db.transaction { try await OriginStampStore.add(target: "pd:P2", fingerprint: "x", now: 0, ttl: 10, on: $0) }
            #expect(try await db.transaction { try await OriginStampStore.consume(target: "pd:P2", fingerprint: "x", now: 11, on: $0) } == false)

            for hop in 1...3 {
                let s = try await db.transaction { try await HopStore.recordHop(ruleKey: "s/r", subject: "sf:R", limit: 3, window: 1000, now: Int64(hop), on: $0) }
                #expect(s == nil)
            }
            let suspended = try await db.transaction { try await HopStore.recordHop(ruleKey: "s/r", subject: "sf:R", limit: 3, window: 1000, now: 4, on: $0) }
            #expect(suspended?.reason.contains("loop") == true)
            #expect(try await db.read { try await HopStore.isSuspended(ruleKey: "s/r", subject: "sf:R", on: $0) })
            #expect(try await db.read { try await HopStore.suspensions(on: $0) }.count == 1)
            try await db.transaction { try await HopStore.lift(ruleKey: "s/r", subject: "sf:R", on: $0) }
            #expect(try await db.read { try await HopStore.isSuspended(ruleKey: "s/r", subject: "sf:R", on: $0) } == false)
        }
    }
}

@Suite("Storage on SQLite")
struct SQLiteStorageTests {
    @Test func migrations() async throws { try await StorageScenarios.migrations(.sqlite) }
    @Test func eventsDeduplicateAndKeepOrder() async throws { try await StorageScenarios.eventsDeduplicateAndKeepOrder(.sqlite) }
    @Test func decisionsLandOnTheirEvents() async throws { try await StorageScenarios.decisionsLandOnTheirEvents(.sqlite) }
    @Test func cancelledTransactionRollsBack() async throws { try await StorageScenarios.cancelledTransactionRollsBack(.sqlite) }
    @Test func groupsOfAnyTextRoundTrip() async throws { try await StorageScenarios.groupsOfAnyTextRoundTrip(.sqlite) }
    @Test func jobsRunInOrderWithRetriesAndDeadLetters() async throws { try await StorageScenarios.jobsRunInOrderWithRetriesAndDeadLetters(.sqlite) }
    @Test func expiredLeasesAreReclaimed() async throws { try await StorageScenarios.expiredLeasesAreReclaimed(.sqlite) }
    @Test func unsyncedTransactionsStayUnsynced() async throws { try await StorageScenarios.unsyncedTransactionsStayUnsynced(.sqlite) }
    @Test func linksSettingsRulesLogs() async throws { try await StorageScenarios.linksSettingsRulesLogs(.sqlite) }
    @Test func echoStampsAndHops() async throws { try await StorageScenarios.echoStampsAndHops(.sqlite) }
    @Test func retentionDeletesOnlyFinishedOldRows() async throws { try await StorageScenarios.retentionDeletesOnlyFinishedOldRows(.sqlite) }

    @Test("SQLite's transactions and reads offer its own connection, so the intake's inserts bind their values directly")
    func plainStatementsBindDirectly() async throws {
        try await withTestDatabase(.sqlite) { (db: any Database, _: String) async throws -> Void in
            #expect(try await db.transaction { $0 is SQLiteSession })
            #expect(try await db.read { $0 is SQLiteSession })
            // Both paths of a plain statement give the same rows: SQLite's own and SQLKit's.
            var statement = PlainStatement("SELECT ")
            statement.value(.text("a'b"))
            statement.sql(" AS t, ")
            statement.value(.integer(Int64.max))
            statement.sql(" AS i, ")
            statement.value(.null)
            statement.sql(" AS n")
            let query = statement
            let direct = try await db.read { try await query.rows(on: $0, columns: ["t", "i", "n"]) }
            let throughSQLKit = try await db.read { try await query.rows(on: ($0 as? SQLiteSession)?.connection.sql() ?? $0, columns: ["t", "i", "n"]) }
            #expect(direct == [[.text("a'b"), .integer(Int64.max), .null]])
            #expect(throughSQLKit == direct)
        }
    }

    @Test("SQLite's direct binding and decoding give what SQLKit's encoder and decoder give, errors included")
    func sessionValuesMatchSQLKit() async throws {
        try await withTestDatabase(.sqlite) { (db: any Database, _: String) async throws -> Void in
            let select: SQLQueryString = "SELECT \(bind: "text") AS t, \(bind: "42") AS digits, \(bind: Int64(-7)) AS i, \(bind: 3) AS small, NULL AS n, 2.5 AS f, \(bind: Optional<String>.none) AS bound_null"
            let (session, plain) = try await db.read { db -> ([any SQLRow], [any SQLRow]) in
                let sqlkit = try #require(db as? SQLiteSession).connection.sql()
                return (try await db.raw(select).all(), try await sqlkit.raw(select).all())
            }
            let columns = ["t", "digits", "i", "small", "n", "f", "bound_null", "missing"]
            func outcome<D: Decodable & Sendable>(_ row: any SQLRow, _ column: String, _ type: D.Type) -> String {
                do { return "\(try row.decode(column: column, as: type))" } catch { return "error" }
            }
            for column in columns {
                for (a, b) in zip(session, plain) {
                    #expect(try a.decodeNil(column: column) == b.decodeNil(column: column), "\(column)")
                    #expect(a.contains(column: column) == b.contains(column: column), "\(column)")
                    #expect(outcome(a, column, String.self) == outcome(b, column, String.self), "\(column) as String")
                    #expect(outcome(a, column, String?.self) == outcome(b, column, String?.self), "\(column) as String?")
                    #expect(outcome(a, column, Int.self) == outcome(b, column, Int.self), "\(column) as Int")
                    #expect(outcome(a, column, Int?.self) == outcome(b, column, Int?.self), "\(column) as Int?")
                    #expect(outcome(a, column, Int64.self) == outcome(b, column, Int64.self), "\(column) as Int64")
                    #expect(outcome(a, column, Int64?.self) == outcome(b, column, Int64?.self), "\(column) as Int64?")
                    #expect(outcome(a, column, Double.self) == outcome(b, column, Double.self), "\(column) as Double")
                    #expect(outcome(a, column, Bool.self) == outcome(b, column, Bool.self), "\(column) as Bool")
                }
            }
            #expect(session.count == 1 && session.first?.allColumns == plain.first?.allColumns)
            #expect(try session.first?.decode(column: "i", as: Int64.self) == -7)
            #expect(try session.first?.decode(column: "n", as: String?.self) == nil)
        }
    }

    @Test("An unusable SQLite path is refused with a clear message")
    func badPath() async {
        await #expect(throws: DatabaseError.self) {
            _ = try await openDatabase(url: "/nonexistent-dir/x.sqlite", logger: .init(label: "t"))
        }
    }
}

@Suite("Storage on PostgreSQL", .enabled(if: TestPostgres.isAvailable, Comment(rawValue: TestPostgres.skipReason)))
struct PostgreSQLStorageTests {
    @Test func migrations() async throws { try await StorageScenarios.migrations(.postgresql) }
    @Test func eventsDeduplicateAndKeepOrder() async throws { try await StorageScenarios.eventsDeduplicateAndKeepOrder(.postgresql) }
    @Test func decisionsLandOnTheirEvents() async throws { try await StorageScenarios.decisionsLandOnTheirEvents(.postgresql) }
    @Test func cancelledTransactionRollsBack() async throws { try await StorageScenarios.cancelledTransactionRollsBack(.postgresql) }
    @Test func groupsOfAnyTextRoundTrip() async throws { try await StorageScenarios.groupsOfAnyTextRoundTrip(.postgresql) }
    @Test func jobsRunInOrderWithRetriesAndDeadLetters() async throws { try await StorageScenarios.jobsRunInOrderWithRetriesAndDeadLetters(.postgresql) }
    @Test func expiredLeasesAreReclaimed() async throws { try await StorageScenarios.expiredLeasesAreReclaimed(.postgresql) }
    @Test func unsyncedTransactionsStayUnsynced() async throws { try await StorageScenarios.unsyncedTransactionsStayUnsynced(.postgresql) }
    @Test func linksSettingsRulesLogs() async throws { try await StorageScenarios.linksSettingsRulesLogs(.postgresql) }
    @Test func echoStampsAndHops() async throws { try await StorageScenarios.echoStampsAndHops(.postgresql) }
    @Test func retentionDeletesOnlyFinishedOldRows() async throws { try await StorageScenarios.retentionDeletesOnlyFinishedOldRows(.postgresql) }

    @Test("Periodic work runs on one process at a time")
    func periodicLock() async throws {
        try await withTestDatabase(.postgresql) { (db: any Database, _: String) async throws -> Void in
            let started = AsyncStream.makeStream(of: Void.self)
            let release = AsyncStream.makeStream(of: Void.self)
            // The first holds the lock until the second has tried, however slow the machine.
            async let first: Int? = PeriodicLock.run("retention", database: db) { _ in
                started.continuation.yield()
                var wait = release.stream.makeAsyncIterator()
                await wait.next()
                return 1
            }
            defer { release.continuation.yield() }
            var it = started.stream.makeAsyncIterator()
            await it.next()
            let second = try await PeriodicLock.run("retention", database: db) { _ in 2 }
            release.continuation.yield()
            #expect(second == nil)
            #expect(try await first == 1)
            #expect(try await PeriodicLock.run("retention", database: db) { _ in 3 } == 3)
        }
    }

    @Test("Two processes claiming at once never get the same job")
    func concurrentClaims() async throws {
        try await withTestDatabase(.postgresql) { (db: any Database, url: String) async throws -> Void in
            let jobs = (0..<200).map {
                NewOutboundJob(idempotencyKey: "k\($0)", eventId: nil, partitionKey: "p\($0)", action: "resolve", ruleset: nil, rule: nil, payload: "{}")
            }
            _ = try await db.transaction { try await JobStore.enqueue(jobs, maxAttempts: 3, now: 0, on: $0) }
            let other = try await openDatabase(url: url, logger: .init(label: "t"))
            let claimedIds = try await withThrowingTaskGroup(of: [Int64].self) { group in
                group.addTask { await other.run(); return [] }
                for (worker, database) in [("a", db), ("b", other), ("c", db), ("d", other)] {
                    group.addTask {
                        var mine: [Int64] = []
                        while true {
                            let got = try await database.transaction {
                                try await JobStore.claim(worker: worker, limit: 7, now: 1, leaseUntil: 10_000, dialect: .postgresql, on: $0)
                            }
                            if got.isEmpty { break }
                            mine += got.map(\.id)
                        }
                        return mine
                    }
                }
                var all: [Int64] = []
                for _ in 0..<4 { all += try await group.next() ?? [] }
                group.cancelAll()
                return all
            }
            #expect(claimedIds.count == 200)
            #expect(Set(claimedIds).count == 200)
        }
    }
}

@Suite("Storage: claims stay cheap with a backlog")
struct ClaimPlanTests {
    @Test("On SQLite, claiming events and jobs walks an index in id order; it never sorts every pending row")
    func claimsDoNotSortTheBacklog() async throws {
        try await withTestDatabase(.sqlite) { (db: any Database, _: String) async throws -> Void in
            let claims: [(String, SQLQueryString)] = [
                ("events", EventStore.claimQuery(limit: 100, dialect: .sqlite)),
                ("jobs", JobStore.claimQuery(worker: "w", limit: 64, now: 0, leaseUntil: 1, dialect: .sqlite)),
            ]
            for (name, claim) in claims {
                var explain: SQLQueryString = "EXPLAIN QUERY PLAN "
                explain += claim
                let statement = explain
                let plan = try await db.read { try await $0.raw(statement).all() }.compactMap { try? $0.decode(column: "detail", as: String.self) }
                #expect(!plan.isEmpty)
                // Each scan of the claimed table walks the (status, id) index, so the oldest rows come first and the scan
                // stops at the limit; the plan before sorted every pending row in a temporary B-tree on every claim.
                let scans = plan.filter { $0.hasPrefix("SEARCH inbound_events") || $0.hasPrefix("SEARCH e ") || $0.hasPrefix("SEARCH j ") }
                #expect(!scans.isEmpty, "\(name): \(plan)")
                #expect(scans.allSatisfy { $0.contains("inbound_pending") || $0.contains("outbound_by_status_id") }, "\(name): \(plan)")
                if name == "events" { #expect(!plan.contains { $0.contains("TEMP B-TREE") }, "\(plan)") }
                // The per-partition order check reads the partial index of open jobs, which closed jobs leave: an index
                // over every job's status and partition made each status change dirty a page at a random place.
                if name == "jobs" { #expect(plan.contains { $0.hasPrefix("SEARCH p ") && $0.contains("outbound_open_by_partition") }, "\(plan)") }
            }
        }
    }

    @Test("Asking whether a partition has open jobs reads the open jobs' partial index; it never scans the jobs")
    func openJobsOfPartitionsUseThePartialIndex() async throws {
        try await withTestDatabase(.sqlite) { (db: any Database, _: String) async throws -> Void in
            var explain: SQLQueryString = "EXPLAIN QUERY PLAN "
            explain += JobStore.anyOpenQuery(partitions: ["case:1", "case:2"])
            let statement = explain
            let plan = try await db.read { try await $0.raw(statement).all() }.compactMap { try? $0.decode(column: "detail", as: String.self) }
            #expect(plan.contains { $0.hasPrefix("SEARCH") && $0.contains("outbound_open_by_partition") }, "\(plan)")
            #expect(!plan.contains { $0.hasPrefix("SCAN") }, "\(plan)")

            let jobs = [("a1", "case:1"), ("a2", "case:1"), ("b1", "case:2")].map { key, partition in
                NewOutboundJob(idempotencyKey: key, eventId: nil, partitionKey: partition, action: "createIncident", ruleset: nil, rule: nil, payload: "{}")
            }
            _ = try await db.transaction { try await JobStore.enqueue(jobs, maxAttempts: 3, now: 1, on: $0) }
            let claimed = try await db.transaction { try await JobStore.claim(worker: "w", limit: 10, now: 2, leaseUntil: 100, dialect: .sqlite, on: $0) }
            #expect(claimed.map(\.idempotencyKey) == ["a1", "b1"])
            let followers = try await db.transaction { db -> (Bool, Bool) in
                _ = try await JobStore.complete(claimed.map { ($0.id, nil) }, worker: "w", now: 3, on: db)
                return (try await JobStore.anyOpen(partitions: ["case:1"], on: db), try await JobStore.anyOpen(partitions: ["case:2"], on: db))
            }
            #expect(followers == (true, false), "case:1 still has a2 pending; case:2 has nothing open")
            #expect(try await db.read { try await JobStore.anyOpen(partitions: [], on: $0) } == false)
        }
    }

    @Test("Queue depths count the open statuses from an index; they never read every event or job")
    func queueDepthsUseTheIndex() async throws {
        try await withTestDatabase(.sqlite) { (db: any Database, _: String) async throws -> Void in
            for query in [EventStore.openCountsQuery, JobStore.openCountsQuery] {
                var explain: SQLQueryString = "EXPLAIN QUERY PLAN "
                explain += query
                let statement = explain
                let plan = try await db.read { try await $0.raw(statement).all() }.compactMap { try? $0.decode(column: "detail", as: String.self) }
                // Counting every status read the whole index every few seconds: 65 ms at 600,000 rows, during which
                // the processor's reads waited.
                #expect(plan.contains { $0.hasPrefix("SEARCH") && $0.contains("COVERING INDEX") && $0.contains("status=?") }, "\(plan)")
                #expect(!plan.contains { $0.hasPrefix("SCAN") }, "\(plan)")
            }
            let events = (0..<4).map { NewInboundEvent(source: .pagerduty, externalId: "q\($0)", partitionKey: "p\($0)", payload: "{}") }
            let ids = try await db.transaction { try await EventStore.insert(events, now: 1, on: $0) }.compactMap { $0 }
            try await db.transaction { db in
                try await EventStore.markProcessed([(ids[0], "processed", nil), (ids[1], "failed", "bad")], now: 2, on: db)
            }
            #expect(try await db.read { try await EventStore.openCounts(on: $0) } == ["pending": 2, "failed": 1])
            #expect(try await db.read { try await EventStore.counts(on: $0) } == ["pending": 2, "failed": 1, "processed": 1])
        }
    }

    @Test("Looking up the links of a batch uses the indexes; it never scans every link")
    func linkLookupsUseIndexes() async throws {
        try await withTestDatabase(.sqlite) { (db: any Database, _: String) async throws -> Void in
            for (records, incidents) in [(["500000000000001"], ["PINC1"]), (["500000000000001"], []), ([], ["PINC1", "PINC2"])] {
                var explain: SQLQueryString = "EXPLAIN QUERY PLAN "
                explain += try #require(LinkStore.findAnyQuery(recordIds: records, incidentIds: incidents))
                let statement = explain
                let plan = try await db.read { try await $0.raw(statement).all() }.compactMap { try? $0.decode(column: "detail", as: String.self) }
                #expect(!plan.isEmpty)
                #expect(!plan.contains { $0.hasPrefix("SCAN links") }, "\(plan)")
            }
            // And it finds what it should: both sides, each link once.
            try await db.transaction { db in
                try await LinkStore.addMany(
                    [Link(incidentId: "PINC1", object: "Case", recordId: "500000000000001AAA"), Link(incidentId: "PINC2", object: "Case", recordId: "500000000000002AAA")],
                    by: "test", now: 0, on: db)
            }
            let found = try await db.read { try await LinkStore.findAny(recordIds: ["500000000000001AAA"], incidentIds: ["PINC1", "PINC2"], on: $0) }
            #expect(found.map(\.link.incidentId).sorted() == ["PINC1", "PINC2"])
        }
    }
}

@Suite("Cached reads: freshness")
struct ReadFreshnessTests {
    @Test("A read is fresh for its age; an invalidation during a read leaves its answer stale")
    func invalidationDuringARead() {
        let start = ContinuousClock.now
        var freshness = ReadFreshness()
        #expect(!freshness.isFresh(within: .seconds(5), now: start), "nothing read yet")
        freshness.record(at: start, ticket: freshness.ticket)
        #expect(freshness.isFresh(within: .seconds(5), now: start + .seconds(4)))
        #expect(!freshness.isFresh(within: .seconds(5), now: start + .seconds(5)))

        let ticket = freshness.ticket
        freshness.invalidate()
        #expect(!freshness.isFresh(within: .seconds(5), now: start))
        freshness.record(at: start, ticket: ticket)
        #expect(!freshness.isFresh(within: .seconds(5), now: start), "the read began before the invalidation")
        freshness.record(at: start, ticket: freshness.ticket)
        #expect(freshness.isFresh(within: .seconds(5), now: start))
    }
}
