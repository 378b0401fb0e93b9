import Foundation
import Synchronization
import SwitchboardCore
@testable import SwitchboardSalesforce
import Testing

/// An org holding Case rows that answers the poller's SOQL (the three condition forms it writes), in pages.
final class PolledOrg: Sendable {
    struct Row: Sendable {
        var id: String
        var stamp: Instant
        var created: Instant
        var subject: String
    }

    let rows = Mutex<[Row]>([])
    let cursors = Mutex<[String: [Row]]>([:])
    let soql = Mutex<[String]>([])
    let pageSize: Int
    let fake: FakeSalesforce
    let client: SalesforceClient

    init(pageSize: Int) async throws {
        self.pageSize = pageSize
        let box = Mutex<PolledOrg?>(nil)
        fake = try await FakeSalesforce.start { request in
            guard let org = box.withLock({ $0 }) else { return .json(503, "[]") }
            return org.answer(request)
        }
        client = SalesforceClient(sessions: StaticSessions(SalesforceSession(accessToken: "x", instanceURL: fake.baseURL)), logger: quietLogger())
        box.withLock { $0 = self }
    }

    func upsert(_ id: String, stamp: Instant, created: Instant? = nil, subject: String = "") {
        rows.withLock { rows in
            let c = created ?? rows.first { $0.id == id }?.created ?? stamp
            rows.removeAll { $0.id == id }
            rows.append(Row(id: id, stamp: stamp, created: c, subject: subject))
        }
    }

    private func answer(_ request: FakeRequest) -> FakeReply {
        if request.path.hasSuffix("/describe") { return .json(200, (try? whizbangDescribe()) ?? "{}") }
        var matched: [Row]
        if let q = request.query["q"] {
            soql.withLock { $0.append(q) }
            guard let whereRange = q.range(of: " WHERE "), let orderRange = q.range(of: " ORDER BY "), let limitRange = q.range(of: " LIMIT "),
                let limit = Int(q[limitRange.upperBound...])
            else { return .json(400, #"[{"message":"unexpected query","errorCode":"MALFORMED_QUERY"}]"#) }
            let conditions = q[whereRange.upperBound..<orderRange.lowerBound].components(separatedBy: " AND ")
            matched = rows.withLock { $0 }.filter { row in
                conditions.allSatisfy { c in
                    let parts = c.split(separator: " ").map(String.init)
                    guard parts.count == 3 else { return false }
                    if parts[0] == "Id" { return row.id > parts[2].trimmingCharacters(in: CharacterSet(charactersIn: "'")) }
                    guard let t = SalesforceDateTime.parse(parts[2]) else { return false }
                    switch parts[1] {
                    case ">": return row.stamp > t
                    case ">=": return row.stamp >= t
                    case "<": return row.stamp < t
                    default: return false
                    }
                }
            }
            if q[orderRange.upperBound...].hasPrefix("Id ASC") {
                matched.sort { $0.id < $1.id }
            } else {
                matched.sort { ($0.stamp, $0.id) < ($1.stamp, $1.id) }
            }
            matched = Array(matched.prefix(limit))
        } else if let rest = cursors.withLock({ $0[request.path] }) {
            matched = rest
        } else {
            return .fixture(404, "rest_error_404_not_found.restforce.json")
        }
        let page = Array(matched.prefix(pageSize))
        let rest = Array(matched.dropFirst(pageSize))
        var body: JSONObject = ["totalSize": .number(Double(matched.count)), "done": .bool(rest.isEmpty)]
        if !rest.isEmpty {
            let next = "/services/data/v62.0/query/01gCURSOR-\(UUID().uuidString)"
            cursors.withLock { $0[next] = rest }
            body["nextRecordsUrl"] = .string(next)
        }
        body["records"] = .array(
            page.map { row in
                .object([
                    "attributes": .object(["type": "Case", "url": .string("/services/data/v62.0/sobjects/Case/\(row.id)")]), "Id": .string(row.id),
                    "SystemModstamp": .string(Self.salesforceFormat(row.stamp)), "CreatedDate": .string(Self.salesforceFormat(row.created)),
                    "Subject": .string(row.subject),
                ])
            })
        return .json(200, JSONValue.object(body).serialized())
    }

    /// `2026-01-01T00:00:12.300+0000`, as the API writes date-times.
    static func salesforceFormat(_ t: Instant) -> String {
        var s = t.iso8601.dropLast()  // no Z
        if !s.contains(".") { s += ".000" }
        return String(s) + "+0000"
    }
}

let t0 = Instant(iso8601: "2026-01-01T00:00:00Z") ?? Instant(millisecondsSince1970: 0)
func at(_ seconds: Double) -> Instant { Instant(millisecondsSince1970: t0.millisecondsSince1970 + Int64(seconds * 1000)) }
func caseRecordId(_ n: Int) -> String { SalesforceId.normalized("5000000000000" + String(format: "%02d", n)) }

/// The state as the caller would store and read it back.
func roundTrip(_ state: PollerState) throws -> PollerState {
    try JSONDecoder().decode(PollerState.self, from: JSONEncoder().encode(state))
}

@Suite("Change poller")
struct ChangePollerTests {
    @Test("The first poll starts from now and reads nothing")
    func firstPoll() async throws {
        let org = try await PolledOrg(pageSize: 2)
        defer { Task { await org.fake.stop() } }
        let poller = ChangePoller(client: org.client, object: "Case", fields: ["Subject"], now: { at(100).date })
        let result = try await poller.poll(PollerState())
        #expect(result.changes.isEmpty && result.state.watermark == at(100))
        #expect(org.fake.requests.isEmpty)
    }

    @Test("SOQL on SystemModstamp minus the overlap, unquoted Z literal, pages followed, ties at a page boundary all read", .enabled(if: Reference.isAvailable, Reference.skipReason))
    func pages() async throws {
        let org = try await PolledOrg(pageSize: 2)
        defer { Task { await org.fake.stop() } }
        org.upsert(caseRecordId(1), stamp: at(11), created: at(1), subject: "one")
        for n in 2...4 { org.upsert(caseRecordId(n), stamp: at(12.5), created: at(2)) }
        org.upsert(caseRecordId(5), stamp: at(13), subject: "new")
        org.upsert(caseRecordId(9), stamp: at(3))  // long before the window
        let poller = ChangePoller(client: org.client, object: "Case", fields: ["Subject", "Id"], overlap: .seconds(5))
        let result = try await poller.poll(PollerState(watermark: at(10)))
        #expect(org.soql.withLock { $0 } == ["SELECT Id, SystemModstamp, CreatedDate, Subject FROM Case WHERE SystemModstamp > 2026-01-01T00:00:05Z ORDER BY SystemModstamp ASC, Id ASC LIMIT 2000"])
        #expect(org.fake.requests.count == 3, "three pages of two")
        #expect(result.changes.map(\.id) == (1...5).map(caseRecordId))
        #expect(result.changes.map(\.isInsert) == [false, false, false, false, true])
        #expect(result.changes[0].dedupeKey == "poll:Case:\(caseRecordId(1)):2026-01-01T00:00:11Z")
        #expect(result.changes[1].dedupeKey == "poll:Case:\(caseRecordId(2)):2026-01-01T00:00:12.500Z")
        #expect(result.changes[0].record["Subject"] == "one" && result.changes[0].record["attributes"] == nil)
        #expect(result.state.watermark == at(13))
        #expect(!result.truncated)
    }

    @Test("Across polls: the overlap re-read reports nothing twice, and a late commit inside the window is caught", .enabled(if: Reference.isAvailable, Reference.skipReason))
    func acrossPolls() async throws {
        let org = try await PolledOrg(pageSize: 2)
        defer { Task { await org.fake.stop() } }
        for n in 1...4 { org.upsert(caseRecordId(n), stamp: at(10 + Double(n)), created: at(1)) }
        let poller = ChangePoller(client: org.client, object: "Case", fields: ["Subject"], overlap: .seconds(5))
        var state = try roundTrip(try await poller.poll(PollerState(watermark: at(10))).state)
        #expect(state.watermark == at(14))
        #expect(try await poller.poll(state).changes.isEmpty, "the window re-read is all known")
        // A transaction that committed late carries a stamp older than the watermark; another record changes again.
        org.upsert(caseRecordId(7), stamp: at(13.5))
        org.upsert(caseRecordId(2), stamp: at(15))
        let second = try await poller.poll(state)
        #expect(second.changes.map(\.id) == [caseRecordId(7), caseRecordId(2)])
        #expect(second.changes.map(\.isInsert) == [true, false])
        state = try roundTrip(second.state)
        #expect(state.watermark == at(15))
        #expect(try await poller.poll(state).changes.isEmpty)
        // The stored keys are those the next poll can re-read (stamps after watermark − overlap − 1 s).
        #expect(state.seen.allSatisfy { (PollerState.stamp(ofKey: $0) ?? 0) >= at(9).millisecondsSince1970 })
        #expect(state.seen.contains(PollerState.key(id: caseRecordId(1), stamp: at(11))))
        org.upsert(caseRecordId(3), stamp: at(40))
        state = try await poller.poll(state).state
        #expect(state.seen == [PollerState.key(id: caseRecordId(3), stamp: at(40))], "older keys pruned")
    }

    @Test("More records in one second than a poll reads: the rest are read by Id, nothing lost or doubled", .enabled(if: Reference.isAvailable, Reference.skipReason))
    func crowdedSecond() async throws {
        let org = try await PolledOrg(pageSize: 2)
        defer { Task { await org.fake.stop() } }
        for n in 1...7 { org.upsert(caseRecordId(n), stamp: at(12 + Double(n) / 10)) }
        let poller = ChangePoller(client: org.client, object: "Case", fields: [], overlap: .seconds(5), limit: 3)
        let first = try await poller.poll(PollerState(watermark: at(10)))
        #expect(first.changes.map(\.id) == (1...3).map(caseRecordId))
        #expect(first.truncated)
        let second = try await poller.poll(first.state)
        #expect(second.changes.map(\.id) == (4...7).map(caseRecordId))
        let third = try await poller.poll(second.state)
        #expect(third.changes.isEmpty)
        let all = first.changes + second.changes
        #expect(Set(all.map(\.dedupeKey)).count == 7)
    }

    @Test("Without a field list the describe's fields are selected, capped", .enabled(if: Reference.isAvailable, Reference.skipReason))
    func describedFields() async throws {
        let org = try await PolledOrg(pageSize: 10)
        defer { Task { await org.fake.stop() } }
        let poller = ChangePoller(client: org.client, object: "Whizbang", maxFields: 6)
        #expect(try await poller.selectList() == ["Id", "SystemModstamp", "CreatedDate", "OwnerId", "IsDeleted", "Name"])
        let all = try await ChangePoller(client: org.client, object: "Whizbang").selectList()
        #expect(all.count == 30, "\(all)")
        #expect(Set(all.map { $0.lowercased() }).count == all.count)
    }
}
