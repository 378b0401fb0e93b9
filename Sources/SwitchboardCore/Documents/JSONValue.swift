/// A JSON value that keeps the order of object keys, for payloads and for machine-readable output.
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    public subscript(key: String) -> JSONValue? {
        if case .object(let o) = self { return o[key] }
        return nil
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    public var objectValue: JSONObject? {
        if case .object(let o) = self { return o }
        return nil
    }

    public var arrayValue: [JSONValue]? {
        if case .array(let a) = self { return a }
        return nil
    }

    public var isNull: Bool { self == .null }
}

/// A JSON object whose keys keep the order they were written in.
public struct JSONObject: Sendable, Hashable, ExpressibleByDictionaryLiteral {
    private var list: [(key: String, value: JSONValue)] = []
    /// Positions by key, kept for larger objects only: a small one is searched in order, which costs less than
    /// hashing every key of every object parsed (a fifth of the parser's time).
    private var index: [String: Int]?
    private static let indexedFrom = 12

    public init() {}

    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        for (k, v) in elements { self[k] = v }
    }

    public var keys: [String] { list.map(\.key) }

    public var entries: [(key: String, value: JSONValue)] { list }

    public var count: Int { list.count }
    public var isEmpty: Bool { list.isEmpty }

    private func position(of key: String) -> Int? {
        if let index { return index[key] }
        return list.firstIndex { $0.key == key }
    }

    public subscript(key: String) -> JSONValue? {
        get { position(of: key).map { list[$0].value } }
        set {
            if let i = position(of: key) {
                if let newValue {
                    list[i].value = newValue
                } else {
                    list.remove(at: i)
                    reindex()
                }
            } else if let newValue {
                append(key, newValue)
            }
        }
    }

    /// Adds a key that is not there yet; false (and nothing changed) when it is.
    mutating func insertNew(_ key: String, _ value: JSONValue) -> Bool {
        guard position(of: key) == nil else { return false }
        append(key, value)
        return true
    }

    private mutating func append(_ key: String, _ value: JSONValue) {
        list.append((key, value))
        if index != nil {
            index?[key] = list.count - 1
        } else if list.count >= Self.indexedFrom {
            reindex()
        }
    }

    private mutating func reindex() {
        guard list.count >= Self.indexedFrom else {
            index = nil
            return
        }
        var positions: [String: Int] = [:]
        positions.reserveCapacity(list.count)
        for (i, entry) in list.enumerated() { positions[entry.key] = i }
        index = positions
    }

    /// Equal when they hold the same keys with equal values, in any order.
    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        lhs.count == rhs.count && lhs.list.allSatisfy { rhs[$0.key] == $0.value }
    }

    /// Independent of the keys' order, as equality is.
    public func hash(into hasher: inout Hasher) {
        var combined = 0
        for (key, value) in list {
            var entry = Hasher()
            entry.combine(key)
            entry.combine(value)
            combined ^= entry.finalize()
        }
        hasher.combine(list.count)
        hasher.combine(combined)
    }
}

extension JSONValue {
    /// Serialises the value. `pretty` indents with two spaces; keys keep their order.
    public func serialized(pretty: Bool = false) -> String {
        var out = ""
        write(to: &out, pretty: pretty, indent: 0)
        return out
    }

    private func write(to out: inout String, pretty: Bool, indent: Int) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .number(let n): out += n.isFinite ? FieldValue.format(number: n) : "null"
        case .string(let s): JSONValue.writeString(s, to: &out)
        case .array(let items):
            if items.isEmpty {
                out += "[]"
                return
            }
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += "," }
                if pretty { out += "\n" + String(repeating: "  ", count: indent + 1) }
                item.write(to: &out, pretty: pretty, indent: indent + 1)
            }
            if pretty { out += "\n" + String(repeating: "  ", count: indent) }
            out += "]"
        case .object(let object):
            if object.isEmpty {
                out += "{}"
                return
            }
            out += "{"
            // Keys in order, each looked up once; no array of entries is built for every object written.
            var first = true
            for key in object.keys {
                guard let value = object[key] else { continue }
                if !first { out += "," }
                first = false
                if pretty { out += "\n" + String(repeating: "  ", count: indent + 1) }
                JSONValue.writeString(key, to: &out)
                out += pretty ? ": " : ":"
                value.write(to: &out, pretty: pretty, indent: indent + 1)
            }
            if pretty { out += "\n" + String(repeating: "  ", count: indent) }
            out += "}"
        }
    }

    static func writeString(_ s: String, to out: inout String) {
        out += "\""
        // Text between the bytes that need escaping is appended in runs (those bytes are ASCII, so never inside a
        // multi-byte character); text with none, the usual case, is appended whole.
        var text = s
        var escaped = false
        text.withUTF8 { bytes in
            var run = 0
            for i in bytes.indices {
                let byte = bytes[i]
                guard byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte < 0x20 else { continue }
                escaped = true
                if run < i { out += String(decoding: UnsafeBufferPointer(rebasing: bytes[run..<i]), as: UTF8.self) }
                switch byte {
                case UInt8(ascii: "\""): out += "\\\""
                case UInt8(ascii: "\\"): out += "\\\\"
                case 0x0A: out += "\\n"
                case 0x0D: out += "\\r"
                case 0x09: out += "\\t"
                default:
                    let hex = String(byte, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                }
                run = i + 1
            }
            if escaped, run < bytes.count { out += String(decoding: UnsafeBufferPointer(rebasing: bytes[run...]), as: UTF8.self) }
        }
        if !escaped { out += s }
        out += "\""
    }
}

extension JSONValue: ExpressibleByStringLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
}
