import Yams

/// Reads YAML into a positioned ``Node`` with YAML 1.2 scalar rules: only `true`/`false` are booleans
/// (so `value: no` stays the text "no"), quoted scalars are always text, and numbers keep their
/// written form (so `value: 00001026` can still match a case number).
public enum YAMLReader {
    /// Deepest nesting accepted, checked before parsing so hostile input cannot exhaust the stack.
    public static let maximumDepth = 100
    /// Values a document may expand to (aliases can multiply a small file).
    public static let maximumValues = 500_000

    public static func parse(_ text: String) throws(DocumentError) -> Node {
        try checkNesting(text)
        let root: Yams.Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw describe(error)
        } catch {
            throw DocumentError("the YAML could not be read: \(error)")
        }
        guard let root else { throw DocumentError("the document is empty", line: 1) }
        var budget = maximumValues
        return try convert(root, depth: 0, budget: &budget)
    }

    private static func convert(_ node: Yams.Node, depth: Int, budget: inout Int) throws(DocumentError) -> Node {
        budget -= 1
        let line = node.mark?.line
        guard budget > 0 else {
            throw DocumentError("the document expands to more than \(maximumValues) values (check for alias loops)", line: line)
        }
        guard depth < maximumDepth else { throw DocumentError("the document nests deeper than \(maximumDepth) levels", line: line) }
        switch node {
        case .scalar(let scalar):
            return Node(scalarKind(scalar), line: line)
        case .sequence(let sequence):
            var items: [Node] = []
            for item in sequence { items.append(try convert(item, depth: depth + 1, budget: &budget)) }
            return Node(.array(items), line: line)
        case .mapping(let mapping):
            var entries: [Node.Entry] = []
            var seen = Set<String>()
            for (key, value) in mapping {
                guard case .scalar(let keyScalar) = key else {
                    throw DocumentError("a mapping key must be a plain name, not a list or mapping", line: key.mark?.line)
                }
                let name = keyScalar.string
                if name == "<<" {
                    throw DocumentError("merge keys (<<) are not supported; write the keys out", line: key.mark?.line)
                }
                guard seen.insert(name).inserted else {
                    throw DocumentError("duplicate key \"\(name)\"", line: key.mark?.line)
                }
                entries.append(Node.Entry(key: name, keyLine: key.mark?.line, value: try convert(value, depth: depth + 1, budget: &budget)))
            }
            return Node(.object(entries), line: line)
        case .alias(let alias):
            return Node(.string(String(describing: alias)), line: line)
        }
    }

    private static func scalarKind(_ scalar: Yams.Node.Scalar) -> Node.Kind {
        let s = scalar.string
        guard scalar.style == .plain || scalar.style == .any else { return .string(s) }
        if scalar.tag.rawValue == Tag.Name.str.rawValue { return .string(s) }
        switch s {
        case "", "~", "null", "Null", "NULL": return .null
        case "true", "True", "TRUE": return .bool(true)
        case "false", "False", "FALSE": return .bool(false)
        default: break
        }
        if looksNumeric(s), let n = Double(s), n.isFinite {
            // Leading zeros ("00001026") are identifiers, not numbers.
            let digits = s.drop { $0 == "-" || $0 == "+" }
            if digits.count > 1, digits.first == "0", digits.dropFirst().first != "." { return .string(s) }
            return .number(n)
        }
        return .string(s)
    }

    private static func looksNumeric(_ s: String) -> Bool {
        var sawDigit = false
        for (i, c) in s.unicodeScalars.enumerated() {
            switch c {
            case "0"..."9": sawDigit = true
            case "-", "+": if i != 0 { return false }
            case ".", "e", "E": continue
            default: return false
            }
        }
        return sawDigit
    }

    /// Rejects documents that nest too deeply before the recursive composer sees them.
    static func checkNesting(_ text: String) throws(DocumentError) {
        var flowDepth = 0
        var line = 1
        var atLineStart = true
        var indent = 0
        var blockMarkers = 0
        var quote: UInt8? = nil
        var previous: UInt8 = 0x0A
        for c in text.utf8 {
            defer { previous = c }
            if c == 0x0A {
                line += 1
                atLineStart = true
                indent = 0
                blockMarkers = 0
                quote = nil
                continue
            }
            if let q = quote {
                if c == q { quote = nil }
                continue
            }
            if atLineStart {
                if c == 0x20 {
                    indent += 1
                    if indent > maximumDepth * 4 {
                        throw DocumentError("the document nests too deeply (indentation beyond \(maximumDepth * 4) columns)", line: line)
                    }
                    continue
                }
                if c == UInt8(ascii: "-") || c == UInt8(ascii: "?") {
                    blockMarkers += 1
                    if blockMarkers > maximumDepth { throw DocumentError("the document nests deeper than \(maximumDepth) levels", line: line) }
                    continue
                }
                atLineStart = false
            }
            switch c {
            case UInt8(ascii: "\""), UInt8(ascii: "'"):
                // Only a quote at the start of a token opens a quoted scalar ("don't" is plain text).
                if [0x0A, 0x20, UInt8(ascii: "["), UInt8(ascii: "{"), UInt8(ascii: ","), UInt8(ascii: ":"), UInt8(ascii: "-")].contains(previous) {
                    quote = c
                }
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                flowDepth += 1
                if flowDepth > maximumDepth { throw DocumentError("the document nests deeper than \(maximumDepth) levels", line: line) }
            case UInt8(ascii: "]"), UInt8(ascii: "}"):
                flowDepth = max(0, flowDepth - 1)
            default: break
            }
        }
    }

    private static func describe(_ error: YamlError) -> DocumentError {
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            let prefix = context.map { "\($0.text) " } ?? ""
            return DocumentError("invalid YAML: \(prefix)\(problem)", line: mark.line, column: mark.column)
        case .reader(let problem, _, _, _):
            return DocumentError("the YAML could not be read: \(problem)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            return DocumentError("duplicate key \"\(duplicates.joined(separator: "\", \""))\"", line: context.mark.line)
        default:
            return DocumentError("invalid YAML: \(error)")
        }
    }
}
