/// A parsed YAML or JSON document that remembers where each value was written, so that errors can
/// name the line.
public struct Node: Sendable, Hashable {
    public enum Kind: Sendable, Hashable {
        case null
        case bool(Bool)
        case number(Double)
        case string(String)
        case array([Node])
        case object([Entry])
    }

    public struct Entry: Sendable, Hashable {
        public var key: String
        public var keyLine: Int?
        public var value: Node
    }

    public var kind: Kind
    /// 1-based line, when the source had lines to speak of.
    public var line: Int?

    public init(_ kind: Kind, line: Int? = nil) {
        self.kind = kind
        self.line = line
    }

    public subscript(key: String) -> Node? {
        if case .object(let entries) = kind { return entries.first { $0.key == key }?.value }
        return nil
    }

    /// A short name for the kind of value, for error messages ("a list", "a number").
    public var kindDescription: String {
        switch kind {
        case .null: "null"
        case .bool: "a boolean"
        case .number: "a number"
        case .string: "a string"
        case .array: "a list"
        case .object: "a mapping"
        }
    }

    /// The value without positions.
    public var jsonValue: JSONValue {
        switch kind {
        case .null: return .null
        case .bool(let b): return .bool(b)
        case .number(let n): return .number(n)
        case .string(let s): return .string(s)
        case .array(let items): return .array(items.map(\.jsonValue))
        case .object(let entries):
            var o = JSONObject()
            for e in entries { o[e.key] = e.value.jsonValue }
            return .object(o)
        }
    }

    /// A compact rendering of a scalar for messages.
    public var scalarText: String? {
        switch kind {
        case .null: "null"
        case .bool(let b): b ? "true" : "false"
        case .number(let n): FieldValue.format(number: n)
        case .string(let s): s
        default: nil
        }
    }
}

/// Why a document could not be read at all (as opposed to read and found invalid).
public struct DocumentError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String
    public var line: Int?
    public var column: Int?

    public init(_ message: String, line: Int? = nil, column: Int? = nil) {
        self.message = message
        self.line = line
        self.column = column
    }

    public var description: String {
        guard let line else { return message }
        if let column { return "line \(line), column \(column): \(message)" }
        return "line \(line): \(message)"
    }
}
