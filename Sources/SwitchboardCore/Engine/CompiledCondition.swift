import Foundation

/// A rule value prepared once for fast comparisons: its text folded for case-insensitive matching and
/// its readings as number, boolean, date and date-time.
struct Operand: Sendable {
    let text: String
    let folded: String
    let number: Double?
    let boolean: Bool?
    let date: LocalDate?
    let instant: Instant?

    init(_ value: RuleValue) {
        let text = value.text
        self.text = text
        self.folded = text.lowercased()
        switch value {
        case .number(let n, _): number = n
        default: number = Double(text.trimmingCharacters(in: .whitespaces))
        }
        switch text.lowercased() {
        case "true": boolean = true
        case "false": boolean = false
        default: boolean = nil
        }
        date = LocalDate(text)
        instant = Instant(iso8601: text)
    }
}

/// A condition ready to evaluate: operands parsed, regex compiled, calendar resolved. A class, so the hot
/// loop and the verdicts share it instead of copying it.
final class CompiledCondition: Sendable {
    let index: Int
    let condition: Condition
    /// Slot of the field in the evaluation's value cache; `nil` for the event time.
    let slot: Int?
    let pagerDutyField: PagerDutyField?
    let operands: [Operand]
    let from: Operand?
    let to: Operand?
    let pattern: CompiledPattern?
    let calendar: BusinessCalendar?
    let caseSensitive: Bool

    init(index: Int, condition: Condition, slot: Int?, calendars: [String: BusinessCalendar]) {
        self.index = index
        self.condition = condition
        self.slot = slot
        self.pagerDutyField = condition.field.flatMap(PagerDutyField.init(rawValue:))
        self.caseSensitive = condition.caseSensitive
        switch condition.value {
        case .list(let items)?: operands = items.map(Operand.init)
        case .text(let s)? where condition.operator == .in || condition.operator == .notIn:
            operands = s.split(separator: ",").map { Operand(.text($0.trimmingCharacters(in: .whitespaces))) }
        case let v?: operands = [Operand(v)]
        case nil: operands = []
        }
        from = condition.from.map(Operand.init)
        to = condition.to.map(Operand.init)
        if condition.operator == .matches, case .text(let p)? = condition.value {
            pattern = CompiledPattern(p, caseSensitive: condition.caseSensitive)
        } else {
            pattern = nil
        }
        if condition.operator.isBusinessHours, case .text(let name)? = condition.value {
            calendar = calendars[name]
        } else {
            calendar = nil
        }
    }

    // MARK: Comparisons

    func equals(_ r: ResolvedValue, _ o: Operand) -> Bool {
        switch r.value {
        case .null: return false
        case .text(let s): return caseSensitive ? s == o.text : r.folded == o.folded
        case .picklist(let values):
            if values.count == 1 { return caseSensitive ? values[0] == o.text : r.folded == o.folded }
            let exact = caseSensitive
            let fold: (String) -> String = { exact ? $0 : $0.lowercased() }
            return Set(values.map(fold)) == Set(o.text.split(separator: ";").map { fold(String($0)) })
        case .number(let n): return o.number == n
        case .boolean(let b): return o.boolean == b
        case .date(let d): return o.date == d
        case .dateTime(let t):
            if let i = o.instant { return i == t }
            if let d = o.date { return t.utcDate == d }
            return false
        case .reference(let id, let label):
            if id == o.text || SalesforceId.same(id, o.text) { return true }
            if let label { return caseSensitive ? label == o.text : r.foldedLabel == o.folded }
            return !caseSensitive && r.folded == o.folded
        }
    }

    func compare(_ actual: FieldValue, _ o: Operand) -> Int? {
        switch actual {
        case .number(let n):
            guard let m = o.number else { return nil }
            return n < m ? -1 : (n > m ? 1 : 0)
        case .date(let d):
            guard let e = o.date ?? o.instant?.utcDate else { return nil }
            return d < e ? -1 : (d > e ? 1 : 0)
        case .dateTime(let t):
            guard let e = o.instant ?? o.date.map({ Instant(millisecondsSince1970: Int64($0.daysSince1970) * 86_400_000) }) else { return nil }
            return t < e ? -1 : (t > e ? 1 : 0)
        default:
            return nil
        }
    }

    /// A substring test on the value's text, and on a reference's name too.
    private func textTest(_ r: ResolvedValue, _ test: (String, String) -> Bool) -> Bool {
        guard let o = operands.first, r.value != .null else { return false }
        if caseSensitive {
            if case .reference(let id, let label) = r.value { return test(id, o.text) || label.map { test($0, o.text) } == true }
            return test(r.value.text, o.text)
        }
        return test(r.folded, o.folded) || r.foldedLabel.map { test($0, o.folded) } == true
    }

    /// Evaluates every operator but `changes` and the business-hours ones.
    func test(_ r: ResolvedValue) -> Bool {
        switch condition.operator {
        case .equals: return operands.first.map { equals(r, $0) } ?? false
        case .notEquals: return !(operands.first.map { equals(r, $0) } ?? false)
        case .in: return operands.contains { equals(r, $0) }
        case .notIn: return !operands.contains { equals(r, $0) }
        case .contains: return textTest(r, UTF8Text.contains)
        case .notContains: return !textTest(r, UTF8Text.contains)
        case .startsWith: return textTest(r, UTF8Text.hasPrefix)
        case .endsWith: return textTest(r, UTF8Text.hasSuffix)
        case .matches:
            guard let pattern, r.value != .null else { return false }
            if case .reference(let id, let label) = r.value { return pattern.matches(id) || label.map(pattern.matches) == true }
            return pattern.matches(r.value.text)
        case .greaterThan: return operands.first.flatMap { compare(r.value, $0) }.map { $0 > 0 } ?? false
        case .greaterOrEqual: return operands.first.flatMap { compare(r.value, $0) }.map { $0 >= 0 } ?? false
        case .lessThan: return operands.first.flatMap { compare(r.value, $0) }.map { $0 < 0 } ?? false
        case .lessOrEqual: return operands.first.flatMap { compare(r.value, $0) }.map { $0 <= 0 } ?? false
        case .isBlank: return r.value.isBlank
        case .isNotBlank: return !r.value.isBlank
        case .changes, .withinBusinessHours, .outsideBusinessHours: return false
        }
    }

    /// `changes`: the value differs, and matches `from` before and `to` after when given.
    func changed(from old: ResolvedValue, to new: ResolvedValue) -> Bool {
        guard !same(old.value, new.value) else { return false }
        if let from, !(old.value == .null ? from.text.isEmpty : equals(old, from)) { return false }
        if let to, !equals(new, to) { return false }
        return true
    }

    private func same(_ a: FieldValue, _ b: FieldValue) -> Bool {
        if a.isBlank && b.isBlank { return true }
        if case .reference(let x, _) = a, case .reference(let y, _) = b { return SalesforceId.same(x, y) }
        return a == b
    }
}

/// A field's value for one evaluation, with its case-folded text computed once for all conditions. A class,
/// so conditions and verdicts share one copy.
final class ResolvedValue: Sendable {
    let value: FieldValue
    let folded: String
    let foldedLabel: String?

    static let null = ResolvedValue(.null)

    init(_ value: FieldValue) {
        self.value = value
        switch value {
        case .text(let s): folded = s.lowercased()
        case .picklist(let v): folded = v.count == 1 ? v[0].lowercased() : v.joined(separator: ";").lowercased()
        case .reference(let id, _): folded = id.lowercased()
        default: folded = ""
        }
        if case .reference(_, let label?) = value { foldedLabel = label.lowercased() } else { foldedLabel = nil }
    }
}

/// Byte-level text tests on UTF-8, for the hot path: no bridging, no allocation.
enum UTF8Text {
    static func contains(_ haystack: String, _ needle: String) -> Bool {
        var h = haystack, n = needle
        return h.withUTF8 { hb in
            n.withUTF8 { nb in
                if nb.isEmpty { return true }
                guard nb.count <= hb.count else { return false }
                let first = nb[0]
                var i = 0
                let last = hb.count - nb.count
                while i <= last {
                    if hb[i] == first {
                        var j = 1
                        while j < nb.count && hb[i + j] == nb[j] { j += 1 }
                        if j == nb.count { return true }
                    }
                    i += 1
                }
                return false
            }
        }
    }

    static func hasPrefix(_ s: String, _ prefix: String) -> Bool {
        var a = s, b = prefix
        return a.withUTF8 { ab in b.withUTF8 { bb in bb.count <= ab.count && (0..<bb.count).allSatisfy { ab[$0] == bb[$0] } } }
    }

    static func hasSuffix(_ s: String, _ suffix: String) -> Bool {
        var a = s, b = suffix
        return a.withUTF8 { ab in
            b.withUTF8 { bb in
                let offset = ab.count - bb.count
                return offset >= 0 && (0..<bb.count).allSatisfy { ab[offset + $0] == bb[$0] }
            }
        }
    }
}
