import SQLKit

/// One step of a retention purge of a table whose ids grow with time (events, jobs): it reads the next ids in order
/// and deletes the finished rows among those older than the cutoff, so each step is a short transaction whatever
/// the table's size, and rows still open (pending, failed, dead) stay, without being read again at every step.
public struct RetentionStep: Sendable, Hashable {
    public var deleted: Int
    /// Where the next step starts, or nil when the rows ahead are younger than the cutoff (or there are none).
    public var resumeAfter: Int64?

    public init(deleted: Int, resumeAfter: Int64?) {
        self.deleted = deleted
        self.resumeAfter = resumeAfter
    }

    static func run(
        table: String, time: String, finished: [String], before cutoff: Int64, after: Int64, limit: Int, on db: any SQLDatabase
    ) async throws -> RetentionStep {
        let rows = try await db.raw(
            "SELECT id, \(ident: time) AS t FROM \(ident: table) WHERE id > \(bind: after) ORDER BY id LIMIT \(bind: limit)"
        ).all()
        var upTo: Int64?
        var reachedYoung = rows.count < limit
        for row in rows {
            guard try row.decode(column: "t", as: Int64.self) < cutoff else {
                reachedYoung = true
                break
            }
            upTo = try row.decode(column: "id", as: Int64.self)
        }
        guard let upTo else { return RetentionStep(deleted: 0, resumeAfter: nil) }
        let deleted = try await db.raw(
            """
            DELETE FROM \(ident: table) WHERE id > \(bind: after) AND id <= \(bind: upTo) AND status IN (\(binds: finished)) RETURNING id
            """
        ).all().count
        return RetentionStep(deleted: deleted, resumeAfter: reachedYoung ? nil : upTo)
    }
}
