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

/// A condition ready to evaluate: operands parsed, regex compiled, calendar resolved.
struct CompiledCondition: Sendable {
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

    /// Text comparison that ignores case unless the condition says otherwise.
    private func fold(_ s: String) -> String { caseSensitive ? s : s.lowercased() }
    private func operandText(_ o: Operand) -> String { caseSensitive ? o.text : o.folded }

    func equals(_ actual: FieldValue, _ o: Operand) -> Bool {
        switch actual {
        case .null: return false
        case .text(let s): return caseSensitive ? s == o.text : (s == o.text || s.lowercased() == o.folded)
        case .picklist(let values):
            if values.count == 1 { return caseSensitive ? values[0] == o.text : values[0].lowercased() == o.folded }
            let wanted = Set(o.text.split(separator: ";").map { fold(String($0)) })
            return Set(values.map(fold)) == wanted
        case .number(let n): return o.number == n
        case .boolean(let b): return o.boolean == b
        case .date(let d): return o.date == d
        case .dateTime(let t):
            if let i = o.instant { return i == t }
            if let d = o.date { return t.utcDate == d }
            return false
        case .reference(let id, let label):
            if id == o.text || SalesforceId.same(id, o.text) { return true }
            if let label { return caseSensitive ? label == o.text : label.lowercased() == o.folded }
            return !caseSensitive && id.lowercased() == o.folded
        }
    }

    /// Texts a string operator looks at: a reference is matched on its id and its name.
    private func texts(_ actual: FieldValue) -> [String] {
        switch actual {
        case .null: []
        case .reference(let id, let label?): [id, label]
        default: [actual.text]
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

    /// Evaluates every operator but `changes` and the business-hours ones.
    func test(_ actual: FieldValue) -> Bool {
        switch condition.operator {
        case .equals: return operands.first.map { equals(actual, $0) } ?? false
        case .notEquals: return !(operands.first.map { equals(actual, $0) } ?? false)
        case .in: return operands.contains { equals(actual, $0) }
        case .notIn: return !operands.contains { equals(actual, $0) }
        case .contains, .notContains, .startsWith, .endsWith:
            guard let o = operands.first else { return false }
            let needle = operandText(o)
            let hit = texts(actual).contains { s in
                let hay = fold(s)
                switch condition.operator {
                case .contains, .notContains: return hay.contains(needle)
                case .startsWith: return hay.hasPrefix(needle)
                default: return hay.hasSuffix(needle)
                }
            }
            return condition.operator == .notContains ? !hit : hit
        case .matches:
            guard let pattern else { return false }
            return texts(actual).contains { pattern.matches($0) }
        case .greaterThan: return operands.first.flatMap { compare(actual, $0) }.map { $0 > 0 } ?? false
        case .greaterOrEqual: return operands.first.flatMap { compare(actual, $0) }.map { $0 >= 0 } ?? false
        case .lessThan: return operands.first.flatMap { compare(actual, $0) }.map { $0 < 0 } ?? false
        case .lessOrEqual: return operands.first.flatMap { compare(actual, $0) }.map { $0 <= 0 } ?? false
        case .isBlank: return actual.isBlank
        case .isNotBlank: return !actual.isBlank
        case .changes, .withinBusinessHours, .outsideBusinessHours: return false
        }
    }

    /// `changes`: the value differs, and matches `from` before and `to` after when given.
    func changed(from old: FieldValue, to new: FieldValue) -> Bool {
        guard !same(old, new) else { return false }
        if let from, !(old == .null ? from.text.isEmpty : equals(old, from)) { return false }
        if let to, !equals(new, to) { return false }
        return true
    }

    private func same(_ a: FieldValue, _ b: FieldValue) -> Bool {
        if a.isBlank && b.isBlank { return true }
        if case .reference(let x, _) = a, case .reference(let y, _) = b { return SalesforceId.same(x, y) }
        return a == b
    }
}
