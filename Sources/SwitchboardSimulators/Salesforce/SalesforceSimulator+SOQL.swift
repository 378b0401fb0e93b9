import Foundation
import SwitchboardCore

/// A parsed SOQL query: the subset Switchboard uses (no subqueries, aggregates other than `COUNT()`, or date functions).
struct SOQLQuery: Sendable {
    var fields: [[String]] = []
    var isCount = false
    var object = ""
    var condition: SOQLCondition?
    var orderBy: [(path: [String], descending: Bool, nullsFirst: Bool)] = []
    var limit: Int?
    var offset: Int?
}

indirect enum SOQLCondition: Sendable {
    case and(SOQLCondition, SOQLCondition)
    case or(SOQLCondition, SOQLCondition)
    case not(SOQLCondition)
    case compare([String], String, SOQLLiteral)
    case isIn([String], [SOQLLiteral], negated: Bool)
}

enum SOQLLiteral: Sendable, Equatable {
    case string(String)
    case number(Double)
    case bool(Bool)
    case null
    case dateTime(Int64)
    case date(String)
}

/// A query's results kept for `nextRecordsUrl` (Salesforce keeps a cursor on the server too).
struct QueryCursor: Sendable {
    var records: [JSONValue]
    var batchSize: Int
}

struct SOQLError: Error {
    var code: String
    var message: String
}

/// Tokens and a recursive-descent parser for the SOQL subset.
struct SOQLParser {
    enum Token: Equatable {
        case word(String)
        case string(String)
        case literal(String)
        case symbol(String)
    }

    var tokens: [Token]
    var index = 0

    init(_ text: String) throws(SOQLError) {
        tokens = try Self.tokenize(text)
    }

    static func tokenize(_ text: String) throws(SOQLError) -> [Token] {
        let chars = Array(text)
        var out: [Token] = []
        var i = 0
        while i < chars.count {
            let c = chars[i]
            if c.isWhitespace {
                i += 1
            } else if c == "'" {
                var s = ""
                i += 1
                var closed = false
                while i < chars.count {
                    if chars[i] == "\\", i + 1 < chars.count {
                        let e = chars[i + 1]
                        s.append(e == "n" ? "\n" : e == "t" ? "\t" : e == "r" ? "\r" : e)
                        i += 2
                    } else if chars[i] == "'" {
                        closed = true
                        i += 1
                        break
                    } else {
                        s.append(chars[i])
                        i += 1
                    }
                }
                guard closed else { throw SOQLError(code: "MALFORMED_QUERY", message: "unexpected token: unterminated string literal") }
                out.append(.string(s))
            } else if c.isLetter || c == "_" {
                var s = ""
                while i < chars.count, chars[i].isLetter || chars[i].isNumber || chars[i] == "_" || chars[i] == "." {
                    s.append(chars[i])
                    i += 1
                }
                out.append(.word(s))
            } else if c.isNumber || (c == "-" && i + 1 < chars.count && chars[i + 1].isNumber) {
                var s = String(c)
                i += 1
                while i < chars.count, chars[i].isLetter || chars[i].isNumber || ":.+-".contains(chars[i]) {
                    s.append(chars[i])
                    i += 1
                }
                out.append(.literal(s))
            } else if "<>!".contains(c), i + 1 < chars.count, chars[i + 1] == "=" || (c == "<" && chars[i + 1] == ">") {
                out.append(.symbol(String([c, chars[i + 1]])))
                i += 2
            } else if "=<>(),".contains(c) {
                out.append(.symbol(String(c)))
                i += 1
            } else {
                throw SOQLError(code: "MALFORMED_QUERY", message: "unexpected token: '\(c)'")
            }
        }
        return out
    }

    var current: Token? { index < tokens.count ? tokens[index] : nil }

    func describe(_ t: Token?) -> String {
        switch t {
        case .word(let s)?, .literal(let s)?, .symbol(let s)?: "'\(s)'"
        case .string(let s)?: "'\(s)'"
        case nil: "<EOF>"
        }
    }

    func unexpected() -> SOQLError { SOQLError(code: "MALFORMED_QUERY", message: "unexpected token: \(describe(current))") }

    func isKeyword(_ k: String) -> Bool {
        if case .word(let w)? = current { return w.uppercased() == k }
        return false
    }

    mutating func keyword(_ k: String) throws(SOQLError) {
        guard isKeyword(k) else { throw unexpected() }
        index += 1
    }

    mutating func symbol(_ s: String) -> Bool {
        if current == .symbol(s) {
            index += 1
            return true
        }
        return false
    }

    mutating func name() throws(SOQLError) -> String {
        guard case .word(let w)? = current else { throw unexpected() }
        index += 1
        return w
    }

    mutating func integer() throws(SOQLError) -> Int {
        guard case .literal(let s)? = current, let n = Int(s), n >= 0 else { throw unexpected() }
        index += 1
        return n
    }

    static let reserved: Set<String> = [
        "FROM", "WHERE", "ORDER", "LIMIT", "OFFSET", "AND", "OR", "NOT", "IN", "GROUP", "HAVING", "WITH", "FOR", "USING",
    ]

    mutating func parse() throws(SOQLError) -> SOQLQuery {
        var q = SOQLQuery()
        try keyword("SELECT")
        if isKeyword("COUNT") {
            index += 1
            guard symbol("("), symbol(")") else { throw unexpected() }
            q.isCount = true
        } else {
            repeat {
                if current == .symbol("(") { throw SOQLError(code: "MALFORMED_QUERY", message: "subqueries are not supported by this simulator") }
                let field = try name()
                if Self.reserved.contains(field.uppercased()) { throw SOQLError(code: "MALFORMED_QUERY", message: "unexpected token: '\(field)'") }
                if current == .symbol("(") { throw SOQLError(code: "MALFORMED_QUERY", message: "unsupported function: \(field)") }
                q.fields.append(field.split(separator: ".").map(String.init))
            } while symbol(",")
        }
        try keyword("FROM")
        q.object = try name()
        if isKeyword("WHERE") {
            index += 1
            q.condition = try expression()
        }
        if isKeyword("ORDER") {
            index += 1
            try keyword("BY")
            repeat {
                let path = try name().split(separator: ".").map(String.init)
                var descending = false
                if isKeyword("ASC") {
                    index += 1
                } else if isKeyword("DESC") {
                    descending = true
                    index += 1
                }
                // Salesforce puts nulls first when ascending and last when descending, unless told.
                var nullsFirst = !descending
                if isKeyword("NULLS") {
                    index += 1
                    if isKeyword("FIRST") {
                        nullsFirst = true
                    } else if isKeyword("LAST") {
                        nullsFirst = false
                    } else {
                        throw unexpected()
                    }
                    index += 1
                }
                q.orderBy.append((path, descending, nullsFirst))
            } while symbol(",")
        }
        if isKeyword("LIMIT") {
            index += 1
            q.limit = try integer()
        }
        if isKeyword("OFFSET") {
            index += 1
            q.offset = try integer()
        }
        guard current == nil else { throw unexpected() }
        return q
    }

    mutating func expression() throws(SOQLError) -> SOQLCondition {
        var left = try conjunction()
        while isKeyword("OR") {
            index += 1
            left = .or(left, try conjunction())
        }
        return left
    }

    mutating func conjunction() throws(SOQLError) -> SOQLCondition {
        var left = try factor()
        while isKeyword("AND") {
            index += 1
            left = .and(left, try factor())
        }
        return left
    }

    mutating func factor() throws(SOQLError) -> SOQLCondition {
        if isKeyword("NOT") {
            index += 1
            return .not(try factor())
        }
        if symbol("(") {
            let inner = try expression()
            guard symbol(")") else { throw unexpected() }
            return inner
        }
        let path = try name().split(separator: ".").map(String.init)
        if isKeyword("NOT") {
            index += 1
            try keyword("IN")
            return .isIn(path, try list(), negated: true)
        }
        if isKeyword("IN") {
            index += 1
            return .isIn(path, try list(), negated: false)
        }
        if isKeyword("LIKE") {
            index += 1
            return .compare(path, "LIKE", try literal())
        }
        guard case .symbol(let op)? = current, ["=", "!=", "<>", "<", "<=", ">", ">="].contains(op) else { throw unexpected() }
        index += 1
        return .compare(path, op == "<>" ? "!=" : op, try literal())
    }

    mutating func list() throws(SOQLError) -> [SOQLLiteral] {
        guard symbol("(") else { throw unexpected() }
        var values: [SOQLLiteral] = []
        repeat { values.append(try literal()) } while symbol(",")
        guard symbol(")") else { throw unexpected() }
        return values
    }

    mutating func literal() throws(SOQLError) -> SOQLLiteral {
        guard let token = current else { throw unexpected() }
        index += 1
        switch token {
        case .string(let s): return .string(s)
        case .word(let w):
            switch w.lowercased() {
            case "true": return .bool(true)
            case "false": return .bool(false)
            case "null": return .null
            default:
                throw SOQLError(code: "MALFORMED_QUERY", message: "unexpected token: '\(w)' (date literals and bind variables are not supported)")
            }
        case .literal(let s):
            if s.contains("T"), let ms = SalesforceOrg.parseDateTime(s) { return .dateTime(ms) }
            if s.count == 10, let d = LocalDate(s) { return .date(d.description) }
            if let n = Double(s) { return .number(n) }
            throw SOQLError(code: "MALFORMED_QUERY", message: "line 1:0 no viable alternative at character '\(s)'")
        case .symbol: throw SOQLError(code: "MALFORMED_QUERY", message: "unexpected token: \(describe(token))")
        }
    }
}

extension SalesforceSimulator {
    static func soqlError(_ query: String, _ e: SOQLError) -> SalesforceReply {
        .errors(400, e.code, "\n\(query)\n^\nERROR at Row:1:Column:1\n\(e.message)")
    }

    /// `GET query?q=`: parse, check names against the schema, filter, sort, then page.
    func runQuery(_ s: inout State, _ text: String, context: CallContext) -> SalesforceReply {
        let q: SOQLQuery
        do {
            var parser = try SOQLParser(text)
            q = try parser.parse()
        } catch {
            return Self.soqlError(text, error)
        }
        guard let type = s.org.type(q.object) else {
            return Self.soqlError(
                text,
                SOQLError(
                    code: "INVALID_TYPE",
                    message:
                        "sObject type '\(q.object)' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names."
                ))
        }
        do {
            var selected: [[String]] = []
            var seen: Set<String> = []
            for path in q.fields {
                let resolved = try resolve(s, type, path)
                let key = resolved.joined(separator: ".").lowercased()
                guard seen.insert(key).inserted else {
                    throw SOQLError(code: "MALFORMED_QUERY", message: "duplicate field selected: \(path.joined(separator: "."))")
                }
                selected.append(resolved)
            }
            if let condition = q.condition { try validate(s, type, condition) }
            let orders = try q.orderBy.map { (try resolve(s, type, $0.path), $0.descending, $0.nullsFirst) }
            var rows = (s.org.order[type.name] ?? []).compactMap { s.org.records[type.name]?[$0] }
            if let condition = q.condition { rows = rows.filter { matches(s, type, $0, condition) } }
            if !orders.isEmpty {
                rows = rows.enumerated().sorted { a, b in
                    for (path, descending, nullsFirst) in orders {
                        let x = value(s, type, a.element, path), y = value(s, type, b.element, path)
                        if x == y { continue }
                        if x == .null { return nullsFirst }
                        if y == .null { return !nullsFirst }
                        let less = Self.less(x, y)
                        if less == Self.less(y, x) { continue }
                        return descending ? !less : less
                    }
                    return a.offset < b.offset
                }.map(\.element)
            }
            if let offset = q.offset { rows = Array(rows.dropFirst(offset)) }
            if let limit = q.limit { rows = Array(rows.prefix(limit)) }
            if q.isCount {
                return SalesforceReply(
                    status: 200, body: .object(["totalSize": .number(Double(rows.count)), "done": .bool(true), "records": .array([])]))
            }
            let records = rows.map { JSONValue.object(project(s, type, $0, selected, version: context.version)) }
            return page(&s, records, from: 0, batchSize: context.batchSize, cursor: nil, version: context.version)
        } catch let e as SOQLError {
            return Self.soqlError(text, e)
        } catch {
            return .errors(400, "MALFORMED_QUERY", "\(error)")
        }
    }

    /// A page of results; when more remain, a cursor and `nextRecordsUrl` (`/query/01g…-2000`).
    func page(_ s: inout State, _ records: [JSONValue], from offset: Int, batchSize: Int, cursor: String?, version: String) -> SalesforceReply {
        let end = min(records.count, offset + batchSize)
        var body: JSONObject = ["totalSize": .number(Double(records.count)), "done": .bool(end >= records.count)]
        if end < records.count {
            let locator: String
            if let cursor {
                locator = cursor
            } else {
                s.cursorCounter += 1
                locator = SalesforceOrg.makeId(prefix: "01g", counter: s.cursorCounter)
                s.cursors[locator] = QueryCursor(records: records, batchSize: batchSize)
                s.cursorOrder.append(locator)
                // Salesforce caps open cursors per user; the oldest go first.
                while s.cursorOrder.count > 50 { s.cursors[s.cursorOrder.removeFirst()] = nil }
            }
            body["nextRecordsUrl"] = .string("/services/data/v\(version)/query/\(locator)-\(end)")
        }
        body["records"] = .array(Array(records[min(offset, records.count)..<end]))
        return SalesforceReply(status: 200, body: .object(body))
    }

    /// `GET query/01g…-2000`: the next page of a cursor.
    func queryMore(_ s: inout State, _ locator: String, version: String) -> SalesforceReply {
        let parts = locator.split(separator: "-")
        guard parts.count == 2, let offset = Int(parts[1]), let cursor = s.cursors[String(parts[0])] else {
            return .errors(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        }
        return page(&s, cursor.records, from: offset, batchSize: cursor.batchSize, cursor: String(parts[0]), version: version)
    }

    /// Canonical names for `Field` or `Relationship.Field` (one level of parent relationship).
    func resolve(_ s: State, _ type: SalesforceObjectType, _ path: [String]) throws -> [String] {
        func noColumn(_ name: String, _ entity: String) -> SOQLError {
            SOQLError(
                code: "INVALID_FIELD",
                message:
                    "No such column '\(name)' on entity '\(entity)'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names."
            )
        }
        if path.count == 1 {
            guard let field = type.field(path[0]) else { throw noColumn(path[0], type.name) }
            return [field.name]
        }
        guard path.count == 2, let relation = type.relationship(path[0]) else {
            throw SOQLError(code: "INVALID_FIELD", message: "Didn't understand relationship '\(path[0])' in field path.")
        }
        // A polymorphic parent (Owner) exposes the fields every target shares; the simulator looks at the first.
        guard let parent = relation.referenceTo.compactMap({ s.org.type($0) }).first(where: { $0.field(path[1]) != nil }) else {
            throw noColumn(path[1], relation.referenceTo.first ?? path[0])
        }
        return [relation.relationshipName ?? path[0], parent.field(path[1])?.name ?? path[1]]
    }

    func validate(_ s: State, _ type: SalesforceObjectType, _ condition: SOQLCondition) throws {
        switch condition {
        case .and(let a, let b), .or(let a, let b):
            try validate(s, type, a)
            try validate(s, type, b)
        case .not(let a): try validate(s, type, a)
        case .compare(let path, let op, let literal):
            try check(s, type, path, literal, op: op)
        case .isIn(let path, let literals, _):
            for literal in literals { try check(s, type, path, literal, op: "IN") }
        }
    }

    func fieldOf(_ s: State, _ type: SalesforceObjectType, _ path: [String]) throws -> SalesforceField? {
        let resolved = try resolve(s, type, path)
        if resolved.count == 1 { return type.field(resolved[0]) }
        return type.relationship(resolved[0]).flatMap { rel in rel.referenceTo.compactMap { s.org.type($0)?.field(resolved[1]) }.first }
    }

    /// A literal must suit the field: unquoted date-times for datetime fields, quoted text for text, and so on.
    func check(_ s: State, _ type: SalesforceObjectType, _ path: [String], _ literal: SOQLLiteral, op: String) throws {
        guard let field = try fieldOf(s, type, path) else { return }
        let name = path.joined(separator: ".")
        func wrong(_ expected: String) -> SOQLError {
            SOQLError(
                code: "INVALID_QUERY_FILTER_OPERATOR",
                message: "value of filter criterion for field '\(name)' must be of type \(expected) and should not be enclosed in quotes")
        }
        if literal == .null { return }
        switch field.type {
        case "datetime": guard case .dateTime = literal else { throw wrong("dateTime") }
        case "date": guard case .date = literal else { throw wrong("date") }
        case "boolean": guard case .bool = literal else { throw wrong("boolean") }
        case "double", "currency", "percent", "int": guard case .number = literal else { throw wrong("double") }
        case "id", "reference":
            guard case .string(let text) = literal else {
                throw SOQLError(code: "INVALID_QUERY_FILTER_OPERATOR", message: "invalid ID field: \(name)")
            }
            if op != "LIKE", SalesforceOrg.canonicalId(text) == nil {
                throw SOQLError(code: "INVALID_QUERY_FILTER_OPERATOR", message: "invalid ID field: \(text)")
            }
        default:
            guard case .string = literal else {
                throw SOQLError(
                    code: "INVALID_QUERY_FILTER_OPERATOR",
                    message: "value of filter criterion for field '\(name)' must be of type string and should be enclosed in quotes")
            }
        }
        if op == "LIKE", !field.isText, field.type != "id", field.type != "reference" {
            throw SOQLError(code: "INVALID_QUERY_FILTER_OPERATOR", message: "invalid operator on \(field.type) field: \(name)")
        }
    }

    /// A field's value as a comparable literal (`Relationship.Field` follows the parent Id).
    func value(_ s: State, _ type: SalesforceObjectType, _ record: JSONObject, _ path: [String]) -> SOQLLiteral {
        var current = record
        var currentType = type
        if path.count == 2 {
            guard let rel = type.relationship(path[0]), let parentId = record[rel.name]?.stringValue, let parent = s.org.find(parentId) else {
                return .null
            }
            current = parent.record
            currentType = parent.type
        }
        guard let field = currentType.field(path[path.count - 1]), let raw = current[field.name] else { return .null }
        switch raw {
        case .null: return .null
        case .bool(let b): return .bool(b)
        case .number(let n): return .number(n)
        case .string(let text):
            if field.type == "datetime" { return SalesforceOrg.parseDateTime(text).map(SOQLLiteral.dateTime) ?? .null }
            if field.type == "date" { return .date(text) }
            return .string(text)
        default: return .null
        }
    }

    static func less(_ a: SOQLLiteral, _ b: SOQLLiteral) -> Bool {
        switch (a, b) {
        case (.string(let x), .string(let y)): x.lowercased() < y.lowercased()
        case (.number(let x), .number(let y)): x < y
        case (.dateTime(let x), .dateTime(let y)): x < y
        case (.date(let x), .date(let y)): x < y
        case (.bool(let x), .bool(let y)): !x && y
        default: false
        }
    }

    /// Equality as SOQL has it: text case-insensitively, Ids in either length.
    static func equal(_ a: SOQLLiteral, _ b: SOQLLiteral) -> Bool {
        switch (a, b) {
        case (.string(let x), .string(let y)):
            if let i = SalesforceOrg.canonicalId(x), let j = SalesforceOrg.canonicalId(y), x.count >= 15 {
                return i == j || x.lowercased() == y.lowercased()
            }
            return x.lowercased() == y.lowercased()
        default: return a == b
        }
    }

    func matches(_ s: State, _ type: SalesforceObjectType, _ record: JSONObject, _ condition: SOQLCondition) -> Bool {
        switch condition {
        case .and(let a, let b): return matches(s, type, record, a) && matches(s, type, record, b)
        case .or(let a, let b): return matches(s, type, record, a) || matches(s, type, record, b)
        case .not(let a): return !matches(s, type, record, a)
        case .isIn(let path, let literals, let negated):
            let v = value(s, type, record, path)
            let found = literals.contains { Self.equal(v, $0) }
            return negated ? !found : found
        case .compare(let path, let op, let literal):
            let v = value(s, type, record, path)
            switch op {
            case "=": return Self.equal(v, literal)
            case "!=": return !Self.equal(v, literal)
            case "LIKE":
                guard case .string(let text) = v, case .string(let pattern) = literal else { return false }
                return Self.like(text.lowercased(), pattern.lowercased())
            default:
                // Comparisons with null are never true.
                if v == .null || literal == .null { return false }
                switch op {
                case "<": return Self.less(v, literal)
                case "<=": return Self.less(v, literal) || Self.equal(v, literal)
                case ">": return Self.less(literal, v)
                case ">=": return Self.less(literal, v) || Self.equal(v, literal)
                default: return false
                }
            }
        }
    }

    /// `%` matches any run, `_` one character.
    static func like(_ text: String, _ pattern: String) -> Bool {
        let t = Array(text), p = Array(pattern)
        var memo: [Int: Bool] = [:]
        func go(_ i: Int, _ j: Int) -> Bool {
            let key = i * (p.count + 1) + j
            if let known = memo[key] { return known }
            let result: Bool
            if j == p.count {
                result = i == t.count
            } else if p[j] == "%" {
                result = go(i, j + 1) || (i < t.count && go(i + 1, j))
            } else {
                result = i < t.count && (p[j] == "_" || p[j] == t[i]) && go(i + 1, j + 1)
            }
            memo[key] = result
            return result
        }
        return go(0, 0)
    }

    /// A result row: `attributes`, then the selected fields in order; parent fields nest under the relationship.
    func project(_ s: State, _ type: SalesforceObjectType, _ record: JSONObject, _ paths: [[String]], version: String) -> JSONObject {
        let id = record["Id"]?.stringValue ?? ""
        var out: JSONObject = [
            "attributes": .object(["type": .string(type.name), "url": .string("/services/data/v\(version)/sobjects/\(type.name)/\(id)")])
        ]
        for path in paths {
            if path.count == 1 {
                out[path[0]] = record[path[0]] ?? .null
                continue
            }
            guard let rel = type.relationship(path[0]), let parentId = record[rel.name]?.stringValue, let parent = s.org.find(parentId) else {
                if out[path[0]] == nil { out[path[0]] = .null }
                continue
            }
            var nested =
                out[path[0]]?.objectValue
                ?? [
                    "attributes": .object([
                        "type": .string(parent.type.name), "url": .string("/services/data/v\(version)/sobjects/\(parent.type.name)/\(parentId)"),
                    ])
                ]
            nested[path[1]] = parent.type.field(path[1]).flatMap { parent.record[$0.name] } ?? .null
            out[path[0]] = .object(nested)
        }
        return out
    }
}
