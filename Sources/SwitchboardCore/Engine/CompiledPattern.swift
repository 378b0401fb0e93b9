import Foundation

/// A compiled `matches` pattern. NSRegularExpression is immutable once built and safe to share between
/// threads, which the compiler cannot see.
final class CompiledPattern: @unchecked Sendable {
    let source: String
    private let regex: NSRegularExpression

    /// Text beyond this many UTF-16 units is not searched, so one huge field cannot stall evaluation.
    static let maximumSubjectLength = 65_536

    init?(_ source: String, caseSensitive: Bool) {
        guard CompiledPattern.problem(with: source) == nil,
            let regex = try? NSRegularExpression(pattern: source, options: caseSensitive ? [] : [.caseInsensitive])
        else { return nil }
        self.source = source
        self.regex = regex
    }

    func matches(_ text: String) -> Bool {
        let ns = text as NSString
        let length = min(ns.length, CompiledPattern.maximumSubjectLength)
        return regex.firstMatch(in: text, options: [], range: NSRange(location: 0, length: length)) != nil
    }

    /// Why a pattern cannot be used: it does not compile, or it nests quantifiers (`(a+)+`), which can take
    /// exponential time on some inputs.
    static func problem(with pattern: String) -> String? {
        do {
            _ = try NSRegularExpression(pattern: pattern)
        } catch {
            return "it does not compile (\(pattern.isEmpty ? "empty pattern" : "check brackets, escapes and quantifiers"))"
        }
        if pattern.isEmpty { return "the pattern is empty" }
        if hasNestedQuantifier(pattern) {
            return "a quantified group contains a quantifier, e.g. (a+)+, which can take exponential time; simplify it"
        }
        return nil
    }

    /// Finds a group that contains a quantifier and is itself followed by one.
    static func hasNestedQuantifier(_ pattern: String) -> Bool {
        let chars = Array(pattern)
        var stack: [Bool] = []  // per open group: does it contain a quantifier?
        var i = 0
        var inClass = false
        while i < chars.count {
            let c = chars[i]
            if c == "\\" {
                i += 2
                continue
            }
            if inClass {
                if c == "]" { inClass = false }
                i += 1
                continue
            }
            switch c {
            case "[": inClass = true
            case "(": stack.append(false)
            case ")":
                let inner = stack.popLast() ?? false
                let next: Character? = i + 1 < chars.count ? chars[i + 1] : nil
                let quantified = next == "*" || next == "+" || next == "{"
                if inner && quantified { return true }
                if inner, !stack.isEmpty { stack[stack.count - 1] = true }
                if quantified, !stack.isEmpty { stack[stack.count - 1] = true }
            case "*", "+", "{":
                if !stack.isEmpty { stack[stack.count - 1] = true }
            default: break
            }
            i += 1
        }
        return false
    }
}
