/// One problem found in a rules file: where, what was found, what was expected, and a suggestion.
public struct Diagnostic: Sendable, Hashable, CustomStringConvertible {
    /// The path of the offending value, e.g. `rulesets[0].rules[2].conditions[1].operator`.
    public var path: String
    /// The line in the file, when known.
    public var line: Int?
    public var message: String
    public var found: String?
    public var expected: String?
    public var suggestion: String?

    public init(path: String, line: Int?, message: String, found: String? = nil, expected: String? = nil, suggestion: String? = nil) {
        self.path = path
        self.line = line
        self.message = message
        self.found = found
        self.expected = expected
        self.suggestion = suggestion
    }

    /// `rulesets[0].rules[2].conditions[1].operator (line 14): unknown operator; found "equal"; expected one of …; did you mean "equals"?`
    public var description: String {
        var out = path.isEmpty ? "(document)" : path
        if let line { out += " (line \(line))" }
        out += ": " + message
        if let found { out += "; found \(found)" }
        if let expected { out += "; expected \(expected)" }
        if let suggestion { out += "; did you mean \(suggestion)?" }
        return out
    }

    public var jsonValue: JSONValue {
        var o: JSONObject = ["path": .string(path), "message": .string(message)]
        o["line"] = line.map { .number(Double($0)) } ?? .null
        if let found { o["found"] = .string(found) }
        if let expected { o["expected"] = .string(expected) }
        if let suggestion { o["suggestion"] = .string(suggestion) }
        return .object(o)
    }
}

/// A rules file that could not be accepted, with every problem found.
public struct RulesValidationError: Error, Sendable, CustomStringConvertible {
    public var diagnostics: [Diagnostic]

    public init(_ diagnostics: [Diagnostic]) {
        self.diagnostics = diagnostics
    }

    public var description: String {
        let count = diagnostics.count
        return "the rules file has \(count) problem\(count == 1 ? "" : "s"):\n" + diagnostics.map { "  - \($0)" }.joined(separator: "\n")
    }
}

/// Suggests the closest known name for a near-miss ("Priorty" → "Priority").
enum NearMiss {
    static func suggest(_ input: String, among candidates: some Sequence<String>) -> String? {
        let lowered = input.lowercased()
        var best: (String, Int)?
        for candidate in candidates {
            let c = candidate.lowercased()
            if c == lowered { return candidate }
            let d = distance(Array(lowered.unicodeScalars), Array(c.unicodeScalars), limit: 3)
            if d <= max(1, min(3, c.count / 3)), d < (best?.1 ?? Int.max) { best = (candidate, d) }
        }
        return best?.0
    }

    /// Levenshtein distance, giving up (returning `limit + 1`) once it exceeds `limit`.
    static func distance(_ a: [Unicode.Scalar], _ b: [Unicode.Scalar], limit: Int) -> Int {
        if abs(a.count - b.count) > limit { return limit + 1 }
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        var current = Array(repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            var rowMin = current[0]
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
                rowMin = min(rowMin, current[j])
            }
            if rowMin > limit { return limit + 1 }
            swap(&previous, &current)
        }
        return previous[b.count]
    }
}
