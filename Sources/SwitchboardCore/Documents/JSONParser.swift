/// A strict JSON parser (RFC 8259) that keeps key order and line numbers, refuses duplicate keys, and
/// bounds nesting so hostile input cannot exhaust the stack.
public struct JSONParser {
    /// Deepest nesting accepted; real payloads nest fewer than 10 levels.
    public static let maximumDepth = 128

    private let bytes: [UInt8]
    private var index = 0
    private var line = 1
    private var lineStart = 0

    private init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    /// Parses a whole document. Throws ``DocumentError`` naming the line and column of the problem.
    public static func parse(_ text: String) throws(DocumentError) -> Node {
        try parse(bytes: Array(text.utf8))
    }

    public static func parse(bytes: [UInt8]) throws(DocumentError) -> Node {
        try parse(bytes: bytes, as: Node.self)
    }

    private static func parse<Tree: ParsedJSON>(bytes: [UInt8], as: Tree.Type) throws(DocumentError) -> Tree {
        var parser = JSONParser(bytes: bytes)
        // A UTF-8 byte order mark is tolerated, as most JSON readers do.
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { parser.index = 3 }
        parser.skipWhitespace()
        guard parser.index < bytes.count else { throw DocumentError("the document is empty", line: 1, column: 1) }
        let node: Tree = try parser.parseValue(depth: 0)
        parser.skipWhitespace()
        guard parser.index == bytes.count else {
            throw parser.error("unexpected \(parser.describeCurrent()) after the end of the JSON value")
        }
        return node
    }

    /// Parses without positions (straight into values: no tree of nodes built and converted on the way).
    public static func parseValue(_ text: String) throws(DocumentError) -> JSONValue {
        try parseValue(bytes: Array(text.utf8))
    }

    public static func parseValue(bytes: [UInt8]) throws(DocumentError) -> JSONValue {
        try parse(bytes: bytes, as: JSONValue.self)
    }

    private func error(_ message: String) -> DocumentError {
        DocumentError(message, line: line, column: index - lineStart + 1)
    }

    private func describeCurrent() -> String {
        guard index < bytes.count else { return "end of input" }
        let c = bytes[index]
        if c >= 0x20 && c < 0x7F { return "'\(Character(UnicodeScalar(c)))'" }
        return "byte 0x\(String(c, radix: 16))"
    }

    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0D: index += 1
            case 0x0A:
                index += 1
                line += 1
                lineStart = index
            default: return
            }
        }
    }

    private mutating func parseValue<Tree: ParsedJSON>(depth: Int) throws(DocumentError) -> Tree {
        guard depth < JSONParser.maximumDepth else {
            throw error("the document nests deeper than \(JSONParser.maximumDepth) levels")
        }
        guard index < bytes.count else { throw error("unexpected end of input, expected a value") }
        let startLine = line
        switch bytes[index] {
        case UInt8(ascii: "{"):
            index += 1
            var entries = Tree.noEntries
            skipWhitespace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
                index += 1
                return Tree.object(entries, line: startLine)
            }
            while true {
                skipWhitespace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else {
                    throw error("expected a quoted key, found \(describeCurrent())")
                }
                let keyLine = line
                let key = try parseString()
                skipWhitespace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else {
                    throw error("expected ':' after key \"\(key)\", found \(describeCurrent())")
                }
                index += 1
                skipWhitespace()
                let value: Tree = try parseValue(depth: depth + 1)
                guard Tree.add(key, line: keyLine, value, to: &entries) else { throw error("duplicate key \"\(key)\"") }
                skipWhitespace()
                guard index < bytes.count else { throw error("unexpected end of input, expected ',' or '}'") }
                if bytes[index] == UInt8(ascii: ",") {
                    index += 1
                    continue
                }
                if bytes[index] == UInt8(ascii: "}") {
                    index += 1
                    return Tree.object(entries, line: startLine)
                }
                throw error("expected ',' or '}', found \(describeCurrent())")
            }
        case UInt8(ascii: "["):
            index += 1
            var items: [Tree] = []
            skipWhitespace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
                index += 1
                return Tree.array(items, line: startLine)
            }
            while true {
                skipWhitespace()
                items.append(try parseValue(depth: depth + 1))
                skipWhitespace()
                guard index < bytes.count else { throw error("unexpected end of input, expected ',' or ']'") }
                if bytes[index] == UInt8(ascii: ",") {
                    index += 1
                    continue
                }
                if bytes[index] == UInt8(ascii: "]") {
                    index += 1
                    return Tree.array(items, line: startLine)
                }
                throw error("expected ',' or ']', found \(describeCurrent())")
            }
        case UInt8(ascii: "\""):
            return Tree.scalar(.string(try parseString()), line: startLine)
        case UInt8(ascii: "t"):
            try expectLiteral("true")
            return Tree.scalar(.bool(true), line: startLine)
        case UInt8(ascii: "f"):
            try expectLiteral("false")
            return Tree.scalar(.bool(false), line: startLine)
        case UInt8(ascii: "n"):
            try expectLiteral("null")
            return Tree.scalar(.null, line: startLine)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return Tree.scalar(.number(try parseNumber()), line: startLine)
        default:
            throw error("unexpected \(describeCurrent()), expected a value")
        }
    }

    private mutating func expectLiteral(_ word: String) throws(DocumentError) {
        let w = Array(word.utf8)
        let count = w.count
        let matches = index + count <= bytes.count && (0..<count).allSatisfy { bytes[index + $0] == w[$0] }
        guard matches else { throw error("unexpected \(describeCurrent()), expected a value") }
        index += count
    }

    private mutating func parseNumber() throws(DocumentError) -> Double {
        let start = index
        if bytes[index] == UInt8(ascii: "-") { index += 1 }
        guard index < bytes.count, isDigit(bytes[index]) else { throw error("invalid number") }
        if bytes[index] == UInt8(ascii: "0") {
            index += 1
        } else {
            while index < bytes.count, isDigit(bytes[index]) { index += 1 }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            guard index < bytes.count, isDigit(bytes[index]) else { throw error("invalid number: digits expected after '.'") }
            while index < bytes.count, isDigit(bytes[index]) { index += 1 }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard index < bytes.count, isDigit(bytes[index]) else { throw error("invalid number: digits expected in exponent") }
            while index < bytes.count, isDigit(bytes[index]) { index += 1 }
        }
        let text = String(decoding: bytes[start..<index], as: UTF8.self)
        guard let value = Double(text), value.isFinite else { throw error("number \(text) is out of range") }
        return value
    }

    private func isDigit(_ c: UInt8) -> Bool { c >= 48 && c <= 57 }

    private mutating func parseString() throws(DocumentError) -> String {
        index += 1  // opening quote
        let start = index
        // Fast path: no escapes.
        var ascii = true
        while index < bytes.count {
            let c = bytes[index]
            if c == UInt8(ascii: "\"") {
                guard let s = ascii ? String(decoding: bytes[start..<index], as: UTF8.self) : Self.validUTF8(bytes[start..<index]) else {
                    throw error("the string is not valid UTF-8")
                }
                index += 1
                return s
            }
            if c == UInt8(ascii: "\\") { break }
            if c < 0x20 { throw error("control character in string (escape it as \\u00\(String(c, radix: 16)))") }
            if c >= 0x80 { ascii = false }
            index += 1
        }
        var buffer = Array(bytes[start..<index])
        while index < bytes.count {
            let c = bytes[index]
            switch c {
            case UInt8(ascii: "\""):
                index += 1
                guard let s = Self.validUTF8(buffer[...]) else { throw error("the string is not valid UTF-8") }
                return s
            case UInt8(ascii: "\\"):
                index += 1
                guard index < bytes.count else { throw error("unterminated escape") }
                let e = bytes[index]
                index += 1
                switch e {
                case UInt8(ascii: "\""): buffer.append(0x22)
                case UInt8(ascii: "\\"): buffer.append(0x5C)
                case UInt8(ascii: "/"): buffer.append(0x2F)
                case UInt8(ascii: "b"): buffer.append(0x08)
                case UInt8(ascii: "f"): buffer.append(0x0C)
                case UInt8(ascii: "n"): buffer.append(0x0A)
                case UInt8(ascii: "r"): buffer.append(0x0D)
                case UInt8(ascii: "t"): buffer.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try parseHex4()
                    if (0xD800..<0xDC00).contains(scalar) {
                        guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") else {
                            throw error("unpaired surrogate in \\u escape")
                        }
                        index += 2
                        let low = try parseHex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw error("invalid low surrogate in \\u escape") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00..<0xE000).contains(scalar) {
                        throw error("unpaired surrogate in \\u escape")
                    }
                    guard let u = UnicodeScalar(scalar) else { throw error("invalid \\u escape") }
                    buffer.append(contentsOf: Array(String(Character(u)).utf8))
                default:
                    throw error("invalid escape '\\\(Character(UnicodeScalar(e)))'")
                }
            default:
                if c < 0x20 { throw error("control character in string") }
                buffer.append(c)
                index += 1
            }
        }
        throw error("unterminated string")
    }

    /// The text of UTF-8 bytes, or nil when they are not valid UTF-8. (`String(validating:as:)` is not specialised for
    /// byte slices: its generic path looked up type metadata for every string, a third of the parser's time.) Decoding
    /// replaces invalid sequences with U+FFFD, so the bytes come back unchanged exactly when they were valid.
    private static func validUTF8(_ bytes: ArraySlice<UInt8>) -> String? {
        let text = String(decoding: bytes, as: UTF8.self)
        return text.utf8.elementsEqual(bytes) ? text : nil
    }

    private mutating func parseHex4() throws(DocumentError) -> UInt32 {
        guard index + 4 <= bytes.count else { throw error("truncated \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[index]
            let d: UInt32
            switch c {
            case 48...57: d = UInt32(c - 48)
            case 65...70: d = UInt32(c - 55)
            case 97...102: d = UInt32(c - 87)
            default: throw error("invalid hex digit in \\u escape")
            }
            v = v * 16 + d
            index += 1
        }
        return v
    }
}

/// What the parser builds: nodes with their lines (documents, whose errors name a line) or plain values (payloads).
protocol ParsedJSON {
    associatedtype Entries
    static var noEntries: Entries { get }
    static func scalar(_ value: JSONScalar, line: Int) -> Self
    static func array(_ items: [Self], line: Int) -> Self
    static func object(_ entries: Entries, line: Int) -> Self
    /// Adds an object's entry; false when the key is there already.
    static func add(_ key: String, line: Int, _ value: Self, to entries: inout Entries) -> Bool
}

enum JSONScalar {
    case null, bool(Bool), number(Double), string(String)
}

extension Node: ParsedJSON {
    struct Entries {
        var list: [Entry] = []
        var seen = Set<String>()
    }

    static var noEntries: Entries { Entries() }

    static func scalar(_ value: JSONScalar, line: Int) -> Node {
        switch value {
        case .null: Node(.null, line: line)
        case .bool(let b): Node(.bool(b), line: line)
        case .number(let n): Node(.number(n), line: line)
        case .string(let s): Node(.string(s), line: line)
        }
    }

    static func array(_ items: [Node], line: Int) -> Node { Node(.array(items), line: line) }
    static func object(_ entries: Entries, line: Int) -> Node { Node(.object(entries.list), line: line) }

    static func add(_ key: String, line: Int, _ value: Node, to entries: inout Entries) -> Bool {
        guard entries.seen.insert(key).inserted else { return false }
        entries.list.append(Entry(key: key, keyLine: line, value: value))
        return true
    }
}

extension JSONValue: ParsedJSON {
    static var noEntries: JSONObject { JSONObject() }

    static func scalar(_ value: JSONScalar, line: Int) -> JSONValue {
        switch value {
        case .null: .null
        case .bool(let b): .bool(b)
        case .number(let n): .number(n)
        case .string(let s): .string(s)
        }
    }

    static func array(_ items: [JSONValue], line: Int) -> JSONValue { .array(items) }
    static func object(_ entries: JSONObject, line: Int) -> JSONValue { .object(entries) }

    static func add(_ key: String, line: Int, _ value: JSONValue, to entries: inout JSONObject) -> Bool {
        entries.insertNew(key, value)
    }
}
