import Foundation
import SwitchboardCore

/// Where a poller stands: the newest `SystemModstamp` read, and the changes already reported within the overlap
/// window, so a re-read of that window reports nothing twice. The caller stores it between polls (it is Codable).
public struct PollerState: Sendable, Hashable, Codable {
    /// The newest `SystemModstamp` seen, milliseconds since 1970; nil before the first poll.
    public var watermarkMilliseconds: Int64?
    /// `"<Id>@<SystemModstamp ms>"` of the changes reported whose stamp is still inside the overlap window.
    public var seen: Set<String>

    /// - Parameter watermark: report changes after this instant (nil: from the first poll's time on).
    public init(watermark: Instant? = nil, seen: Set<String> = []) {
        self.watermarkMilliseconds = watermark?.millisecondsSince1970
        self.seen = seen
    }

    /// The newest `SystemModstamp` seen.
    public var watermark: Instant? {
        get { watermarkMilliseconds.map(Instant.init(millisecondsSince1970:)) }
        set { watermarkMilliseconds = newValue?.millisecondsSince1970 }
    }

    static func key(id: String, stamp: Instant) -> String { "\(id)@\(stamp.millisecondsSince1970)" }

    static func stamp(ofKey key: String) -> Int64? {
        key.split(separator: "@").last.flatMap { Int64($0) }
    }
}

/// One changed record found by polling.
public struct PolledChange: Sendable, Hashable {
    public var object: String
    /// The record's 18-character Id.
    public var id: String
    /// True for a record created since the previous poll (its `CreatedDate` is after the previous watermark, or equals
    /// its `SystemModstamp`).
    public var isInsert: Bool
    public var systemModstamp: Instant
    /// The record's fields as read (without `attributes`).
    public var record: JSONObject
    /// `poll:<Object>:<Id>:<SystemModstamp>`, stable across polls, for the intake's deduplication.
    public var dedupeKey: String
}

/// What one poll found, and the state to store for the next one.
public struct PollResult: Sendable, Hashable {
    public var changes: [PolledChange]
    public var state: PollerState
    /// True when the poll stopped at `limit` records: poll again soon, more are waiting.
    public var truncated: Bool
}

/// Reads one object's changes by SOQL on `SystemModstamp`, for orgs without triggers or Change Data Capture.
///
/// Each poll asks for records with `SystemModstamp > watermark − overlap`, oldest first, following the result's
/// pages. The overlap re-reads the last few seconds because a transaction that committed late can carry a stamp
/// older than records already read; the (Id, SystemModstamp) pairs reported within the window are kept in the state
/// and skipped, so nothing is reported twice and records sharing a stamp across a page or poll boundary are not
/// lost. The watermark only moves forward.
public struct ChangePoller: Sendable {
    public let client: SalesforceClient
    /// The object's API name.
    public let object: String
    /// Fields to select; nil: every field the describe lists (up to `maxFields`).
    public let fields: [String]?
    /// How far back each poll re-reads.
    public let overlap: Duration
    /// The most records one poll reads (SOQL `LIMIT`; pages of up to 2,000 are followed).
    public let limit: Int
    /// The most fields selected from describe (long SELECT lists slow the query and can exceed the URL length).
    public let maxFields: Int
    private let now: @Sendable () -> Date

    /// - Parameters:
    ///   - client: the org's client.
    ///   - object: the object polled, e.g. `Case`.
    ///   - fields: the fields to read; nil for all from describe.
    ///   - overlap: the window re-read on every poll (default 5 s).
    ///   - limit: records per poll (default 2,000).
    ///   - maxFields: cap on the fields taken from describe (default 150).
    ///   - now: the clock that sets the first watermark.
    public init(
        client: SalesforceClient, object: String, fields: [String]? = nil, overlap: Duration = .seconds(5), limit: Int = 2_000, maxFields: Int = 150,
        now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.client = client
        self.object = object
        self.fields = fields
        self.overlap = overlap
        self.limit = max(1, limit)
        self.maxFields = max(3, maxFields)
        self.now = now
    }

    /// Reads the changes after `state` and returns them with the state to store next.
    ///
    /// The first poll (no watermark) starts from now: it reports nothing and sets the watermark, so history is not
    /// replayed as a flood of changes. Start from a given instant with `PollerState(watermark:)`.
    public func poll(_ state: PollerState) async throws(SalesforceError) -> PollResult {
        guard let watermark = state.watermark else {
            return PollResult(changes: [], state: PollerState(watermark: Instant(now())), truncated: false)
        }
        let overlapMilliseconds = Int64(overlap.components.seconds) * 1000 + overlap.components.attoseconds / 1_000_000_000_000_000
        let lowerBound = Instant(millisecondsSince1970: watermark.millisecondsSince1970 - overlapMilliseconds)
        let select = try await selectList()
        let base = "SELECT \(select.joined(separator: ", ")) FROM \(object) WHERE "
        var seen = state.seen
        var changes: [PolledChange] = []
        var newest = watermark
        var truncated = false

        /// Reports the records not seen yet; returns how many were new and the last record's stamp.
        func take(_ records: [JSONObject]) -> (fresh: Int, last: Instant?) {
            var fresh = 0
            var last: Instant?
            for var record in records {
                guard let rawId = record["Id"]?.stringValue, let stampText = record["SystemModstamp"]?.stringValue,
                    let stamp = SalesforceDateTime.parse(stampText)
                else { continue }
                let id = SalesforceId.normalized(rawId)
                last = stamp
                newest = max(newest, stamp)
                guard seen.insert(PollerState.key(id: id, stamp: stamp)).inserted else { continue }
                fresh += 1
                record["attributes"] = nil
                let created = record["CreatedDate"]?.stringValue.flatMap(SalesforceDateTime.parse)
                let isInsert = created.map { $0 == stamp || $0 > watermark } ?? false
                changes.append(
                    PolledChange(
                        object: object, id: id, isInsert: isInsert, systemModstamp: stamp, record: record, dedupeKey: "poll:\(object):\(id):\(stamp.iso8601)"))
            }
            return (fresh, last)
        }

        var condition = "SystemModstamp > \(SalesforceDateTime.soqlLiteral(lowerBound))"
        for _ in 0..<4 {
            let records = try await client.query(base + condition + " ORDER BY SystemModstamp ASC, Id ASC LIMIT \(limit)", maxRecords: limit)
            let (fresh, last) = take(records)
            truncated = records.count >= limit
            guard truncated, fresh == 0, let last else { break }
            // A full read with nothing new: more than `limit` records sit inside the overlap window, and the same
            // query would return the same records forever. SOQL literals stop at whole seconds, so the second of the
            // last record is read by Id order, then the poll goes on from the next second.
            let second = SalesforceDateTime.soqlLiteral(last)
            let nextSecond = SalesforceDateTime.soqlLiteral(Instant(millisecondsSince1970: last.millisecondsSince1970 + 1000))
            var afterId: String?
            var inSecond: [JSONObject]
            repeat {
                let idCondition = afterId.map { " AND Id > '\(SalesforceSink.soqlEscape($0))'" } ?? ""
                inSecond = try await client.query(
                    base + "SystemModstamp >= \(second) AND SystemModstamp < \(nextSecond)\(idCondition) ORDER BY Id ASC LIMIT \(limit)", maxRecords: limit)
                _ = take(inSecond)
                afterId = inSecond.last?["Id"]?.stringValue
            } while inSecond.count >= limit && afterId != nil
            condition = "SystemModstamp >= \(nextSecond)"
        }
        // Keep only what the next poll can re-read.
        let nextLowerBound = newest.millisecondsSince1970 - overlapMilliseconds - 1000
        seen = seen.filter { (PollerState.stamp(ofKey: $0) ?? 0) >= nextLowerBound }
        return PollResult(changes: changes, state: PollerState(watermark: newest, seen: seen), truncated: truncated)
    }

    /// `Id`, `SystemModstamp`, `CreatedDate` first, then the given fields or the describe's (compound and binary
    /// fields left out).
    func selectList() async throws(SalesforceError) -> [String] {
        var names: [String] = ["Id", "SystemModstamp", "CreatedDate"]
        var taken = Set(names.map { $0.lowercased() })
        let wanted: [String]
        if let fields {
            wanted = fields
        } else {
            let describe = try await client.describe(object)
            if describe.field(named: "CreatedDate") == nil {
                names.removeAll { $0 == "CreatedDate" }
            }
            let skipped: Set<String> = ["address", "location", "base64", "complexvalue"]
            wanted = describe.fields.filter { !skipped.contains($0.type.lowercased()) }.map(\.name)
        }
        for name in wanted where names.count < maxFields && taken.insert(name.lowercased()).inserted {
            names.append(name)
        }
        return names
    }
}
