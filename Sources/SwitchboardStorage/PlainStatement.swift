import Logging
import NIOCore
import SQLKit
import SQLiteKit

/// A text, integer or null value of a statement built from plain values.
enum PlainValue: Sendable, Hashable {
    case text(String)
    case integer(Int64)
    case null

    init(_ text: String?) { self = text.map(PlainValue.text) ?? .null }
    init(_ integer: Int64?) { self = integer.map(PlainValue.integer) ?? .null }

    var text: String? {
        switch self {
        case .text(let s): s
        case .integer(let i): String(i)
        case .null: nil
        }
    }

    var integer: Int64? {
        switch self {
        case .integer(let i): i
        case .text(let s): Int64(s)
        case .null: nil
        }
    }
}

/// A statement whose values are all text, integers or nulls: on SQLite it is bound straight to SQLite's own
/// connection; elsewhere it runs through SQLKit like any other.
///
/// For the statements run for every delivery (the intake's inserts). Through SQLKit each value is boxed,
/// serialised and encoded by dynamic casts: at full intake that was a fifth of SQLite's writer thread, which every
/// commit waits for.
struct PlainStatement {
    private enum Part {
        case sql(String)
        case value(PlainValue)
    }

    private var parts: [Part] = []

    init(_ sql: String) { parts.append(.sql(sql)) }

    mutating func sql(_ text: String) { parts.append(.sql(text)) }

    mutating func value(_ value: PlainValue) { parts.append(.value(value)) }

    /// Values separated by commas and put in parentheses: one row of a VALUES list.
    mutating func row(_ values: [PlainValue], then literal: String? = nil) {
        sql("(")
        for (i, v) in values.enumerated() {
            if i > 0 { sql(", ") }
            value(v)
        }
        sql(literal.map { ", " + $0 + ")" } ?? ")")
    }

    func run(on db: any SQLDatabase) async throws {
        _ = try await rows(on: db, columns: [])
    }

    /// The rows the statement returns, each with the named columns' values in that order.
    func rows(on db: any SQLDatabase, columns: [String]) async throws -> [[PlainValue]] {
        if let session = db as? SQLiteSession {
            var text = ""
            var binds: [SQLiteData] = []
            for part in parts {
                switch part {
                case .sql(let s): text += s
                case .value(let v):
                    text += "?"
                    switch v {
                    case .text(let s): binds.append(.text(s))
                    case .integer(let i): binds.append(.integer(Int(i)))
                    case .null: binds.append(.null)
                    }
                }
            }
            let rows = try await session.connection.query(text, binds)
            return rows.map { row in
                columns.map { name in
                    switch row.column(name) {
                    case .text(let s): .text(s)
                    case .integer(let i): .integer(Int64(i))
                    case .float(let f): .text(String(f))
                    case .blob, .null, .none: .null
                    }
                }
            }
        }
        var query = SQLQueryString("")
        for part in parts {
            switch part {
            case .sql(let s): query.appendLiteral(s)
            case .value(.text(let s)): query += "\(bind: s)"
            case .value(.integer(let i)): query += "\(bind: i)"
            case .value(.null): query.appendLiteral("NULL")
            }
        }
        return try await db.raw(query).all().map { row in
            try columns.map { name in
                if try row.decodeNil(column: name) { return .null }
                if let i = try? row.decode(column: name, as: Int64.self) { return .integer(i) }
                return .text(try row.decode(column: name, as: String.self))
            }
        }
    }
}

/// One of `SQLiteDatabase`'s connections as SQLKit sees it, with SQLite's own connection beside it for
/// `PlainStatement`. Text and integer values go to and from SQLite directly; others (and anything unexpected) through
/// SQLKit's encoder and decoder, as before. (Their generic paths look up type metadata and conformances for every
/// value: a tenth of the reader thread's time, claiming a batch of events.)
struct SQLiteSession: SQLDatabase {
    let connection: SQLiteConnection
    private let base: any SQLDatabase
    private static let encoder = SQLiteDataEncoder()
    private static let decoder = SQLiteDataDecoder()

    init(_ connection: SQLiteConnection) {
        self.connection = connection
        base = connection.sql(encoder: Self.encoder, decoder: Self.decoder)
    }

    var logger: Logger { base.logger }
    var eventLoop: any EventLoop { base.eventLoop }
    var version: (any SQLDatabaseReportedVersion)? { base.version }
    var dialect: any SQLDialect { base.dialect }
    var queryLogLevel: Logger.Level? { base.queryLogLevel }

    func execute(sql query: any SQLExpression, _ onRow: @escaping @Sendable (any SQLRow) -> Void) -> EventLoopFuture<Void> {
        base.execute(sql: query, onRow)
    }

    func execute(sql query: any SQLExpression, _ onRow: @escaping @Sendable (any SQLRow) -> Void) async throws {
        let (sql, binds) = serialize(query)
        if let level = queryLogLevel { logger.log(level: level, "Executing query", metadata: ["sql": .string(sql)]) }
        let data = try binds.map { value -> SQLiteData in
            switch value {
            case let text as String: .text(text)
            case let integer as Int64: .integer(Int(integer))
            case let integer as Int: .integer(integer)
            default: try Self.encoder.encode(value)
            }
        }
        try await connection.query(sql, data) { onRow(SessionRow(row: $0)) }
    }

    func withSession<R>(_ closure: @escaping @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        try await closure(self)
    }

    private struct SessionRow: SQLRow {
        let row: SQLiteRow

        var allColumns: [String] { row.columns.map(\.name) }

        func contains(column: String) -> Bool { row.column(column) != nil }

        func decodeNil(column: String) throws -> Bool { (row.column(column) ?? .null) == .null }

        func decode<D: Decodable>(column: String, as type: D.Type) throws -> D {
            let data = row.column(column)
            switch data {
            case .text(let text):
                if let value = text as? D { return value }
            case .integer(let integer):
                if D.self == Int64.self || D.self == Int64?.self, let value = Int64(integer) as? D { return value }
                if D.self == Int.self || D.self == Int?.self, let value = integer as? D { return value }
            case .null:
                if D.self == String?.self || D.self == Int64?.self || D.self == Int?.self, let value = Optional<Never>.none as? D { return value }
            default: break
            }
            return try row.sql(decoder: SQLiteSession.decoder).decode(column: column, as: D.self)
        }
    }
}
