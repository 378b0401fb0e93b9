import SQLKit

/// A stored version of the rules document.
public struct RulesVersion: Sendable, Hashable {
    public var version: Int
    /// The rules file, as imported (YAML or JSON).
    public var document: String
    public var author: String
    public var comment: String?
    public var createdAt: Int64

    init(row: any SQLRow) throws {
        version = try row.decode(column: "version", as: Int.self)
        document = try row.decode(column: "document", as: String.self)
        author = try row.decode(column: "author", as: String.self)
        comment = try row.decode(column: "comment", as: String?.self)
        createdAt = try row.decode(column: "created_at", as: Int64.self)
    }
}

/// Rules as versioned code: every change is a new version, none is ever overwritten.
public enum RulesStore {
    /// Saves a new version; returns its number.
    public static func save(document: String, author: String, comment: String?, now: Int64, on db: any SQLDatabase) async throws -> Int {
        let row = try await db.raw(
            """
            INSERT INTO rules_versions (document, author, comment, created_at)
            VALUES (\(bind: document), \(bind: author), \(bind: comment), \(bind: now)) RETURNING version
            """
        ).first()
        guard let row else { throw DatabaseError("saving the rules returned no version") }
        return try row.decode(column: "version", as: Int.self)
    }

    public static func current(on db: any SQLDatabase) async throws -> RulesVersion? {
        try await db.raw("SELECT * FROM rules_versions ORDER BY version DESC LIMIT 1").first().map(RulesVersion.init(row:))
    }

    public static func currentVersionNumber(on db: any SQLDatabase) async throws -> Int? {
        try await db.raw("SELECT MAX(version) AS v FROM rules_versions").first()?.decode(column: "v", as: Int?.self)
    }

    public static func version(_ n: Int, on db: any SQLDatabase) async throws -> RulesVersion? {
        try await db.raw("SELECT * FROM rules_versions WHERE version = \(bind: n)").first().map(RulesVersion.init(row:))
    }

    public static func history(limit: Int = 100, on db: any SQLDatabase) async throws -> [RulesVersion] {
        try await db.raw("SELECT * FROM rules_versions ORDER BY version DESC LIMIT \(bind: limit)").all().map(RulesVersion.init(row:))
    }
}
