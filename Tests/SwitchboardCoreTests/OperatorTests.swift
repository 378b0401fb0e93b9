import Foundation
import Testing

@testable import SwitchboardCore

/// Every operator on every value type, through the engine.
@Suite("Operators on every value type")
struct OperatorTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var value: FieldValue
        var op: Operator
        var operand: RuleValue?
        var expected: Bool
        var caseSensitive = false
        var testDescription: String { "\(value) \(op.rawValue) \(operand?.text ?? "") → \(expected)" }
    }

    /// Evaluates `X <op> operand` on a Case field holding `value`.
    static func evaluate(_ c: Case) -> Bool {
        let rule = Rule(
            name: "r", object: "Case", runOn: .salesforce,
            conditions: [Condition(field: "X__c", operator: c.op, value: c.operand, caseSensitive: c.caseSensitive)], applyTo: .linked,
            actions: [.setField(field: "Y__c", value: Template("hit"))])
        let engine = RuleEngine(document: RulesDocument(rulesets: [Ruleset(name: "s", rules: [rule])]))
        let result = engine.evaluate(updated(from: [:], to: ["X__c": c.value]), links: [], now: t0)
        return result.rules[0].matched
    }

    static let d = LocalDate("2026-11-24")!
    static let t = Instant(iso8601: "2026-11-24T10:00:00Z")!

    static let text: [Case] = [
        Case(value: .text("Printer on fire"), op: .equals, operand: .text("printer on fire"), expected: true),
        Case(value: .text("Printer on fire"), op: .equals, operand: .text("printer on fire"), expected: false, caseSensitive: true),
        Case(value: .text("Printer on fire"), op: .notEquals, operand: .text("Printer"), expected: true),
        Case(value: .text("Printer on fire"), op: .contains, operand: .text("ON FIRE"), expected: true),
        Case(value: .text("Printer on fire"), op: .notContains, operand: .text("water"), expected: true),
        Case(value: .text("Printer on fire"), op: .startsWith, operand: .text("print"), expected: true),
        Case(value: .text("Printer on fire"), op: .endsWith, operand: .text("fire"), expected: true),
        Case(value: .text("Printer on fire"), op: .endsWith, operand: .text("printer"), expected: false),
        Case(value: .text("Printer on fire"), op: .matches, operand: .text("^printer\\s+on"), expected: true),
        Case(value: .text("Printer on fire"), op: .matches, operand: .text("^fire"), expected: false),
        Case(value: .text("b"), op: .in, operand: .list([.text("a"), .text("B")]), expected: true),
        Case(value: .text("b"), op: .in, operand: .text("a, b, c"), expected: true),
        Case(value: .text("d"), op: .notIn, operand: .list([.text("a"), .text("b")]), expected: true),
        Case(value: .text(""), op: .isBlank, operand: nil, expected: true),
        Case(value: .text("  "), op: .isBlank, operand: nil, expected: true),
        Case(value: .text("x"), op: .isNotBlank, operand: nil, expected: true),
    ]
    static let number: [Case] = [
        Case(value: .number(5), op: .equals, operand: .number(5, written: "5"), expected: true),
        Case(value: .number(5), op: .equals, operand: .text("5.0"), expected: true),
        Case(value: .number(5), op: .notEquals, operand: .number(6, written: "6"), expected: true),
        Case(value: .number(5), op: .greaterThan, operand: .number(4.5, written: "4.5"), expected: true),
        Case(value: .number(5), op: .greaterThan, operand: .number(5, written: "5"), expected: false),
        Case(value: .number(5), op: .greaterOrEqual, operand: .number(5, written: "5"), expected: true),
        Case(value: .number(5), op: .lessThan, operand: .number(10, written: "10"), expected: true),
        Case(value: .number(5), op: .lessOrEqual, operand: .number(4, written: "4"), expected: false),
        Case(value: .number(5), op: .in, operand: .list([.number(1, written: "1"), .number(5, written: "5")]), expected: true),
        Case(value: .number(5), op: .notIn, operand: .list([.number(1, written: "1")]), expected: true),
        Case(value: .number(0), op: .isBlank, operand: nil, expected: false),
        Case(value: .number(0), op: .isNotBlank, operand: nil, expected: true),
    ]
    static let boolean: [Case] = [
        Case(value: .boolean(true), op: .equals, operand: .boolean(true), expected: true),
        Case(value: .boolean(true), op: .equals, operand: .text("TRUE"), expected: true),
        Case(value: .boolean(false), op: .equals, operand: .boolean(true), expected: false),
        Case(value: .boolean(false), op: .notEquals, operand: .boolean(true), expected: true),
        Case(value: .boolean(false), op: .isBlank, operand: nil, expected: false),
        Case(value: .boolean(false), op: .isNotBlank, operand: nil, expected: true),
    ]
    static let date: [Case] = [
        Case(value: .date(d), op: .equals, operand: .text("2026-11-24"), expected: true),
        Case(value: .date(d), op: .notEquals, operand: .text("2026-11-25"), expected: true),
        Case(value: .date(d), op: .greaterThan, operand: .text("2026-11-23"), expected: true),
        Case(value: .date(d), op: .greaterOrEqual, operand: .text("2026-11-25"), expected: false),
        Case(value: .date(d), op: .lessThan, operand: .text("2027-01-01"), expected: true),
        Case(value: .date(d), op: .lessOrEqual, operand: .text("2026-11-24"), expected: true),
        Case(value: .date(d), op: .in, operand: .list([.text("2026-11-24"), .text("2026-12-25")]), expected: true),
        Case(value: .date(d), op: .notIn, operand: .list([.text("2026-12-25")]), expected: true),
        Case(value: .date(d), op: .isNotBlank, operand: nil, expected: true),
    ]
    static let dateTime: [Case] = [
        Case(value: .dateTime(t), op: .equals, operand: .text("2026-11-24T11:00:00+01:00"), expected: true),
        Case(value: .dateTime(t), op: .equals, operand: .text("2026-11-24"), expected: true),
        Case(value: .dateTime(t), op: .notEquals, operand: .text("2026-11-24T10:00:01Z"), expected: true),
        Case(value: .dateTime(t), op: .greaterThan, operand: .text("2026-11-24T09:59:59Z"), expected: true),
        Case(value: .dateTime(t), op: .greaterOrEqual, operand: .text("2026-11-24T10:00:00.000+0000"), expected: true),
        Case(value: .dateTime(t), op: .lessThan, operand: .text("2026-11-25"), expected: true),
        Case(value: .dateTime(t), op: .lessOrEqual, operand: .text("2026-11-24T09:00:00Z"), expected: false),
        Case(value: .dateTime(t), op: .isBlank, operand: nil, expected: false),
    ]
    static let picklist: [Case] = [
        Case(value: .picklist(["High"]), op: .equals, operand: .text("high"), expected: true),
        Case(value: .picklist(["High"]), op: .notEquals, operand: .text("Low"), expected: true),
        Case(value: .picklist(["a", "b"]), op: .equals, operand: .text("b;a"), expected: true),
        Case(value: .picklist(["four", "six"]), op: .contains, operand: .text("six"), expected: true),
        Case(value: .picklist(["four", "six"]), op: .notContains, operand: .text("five"), expected: true),
        Case(value: .picklist(["Escalated"]), op: .startsWith, operand: .text("Esc"), expected: true),
        Case(value: .picklist(["Escalated"]), op: .endsWith, operand: .text("ated"), expected: true),
        Case(value: .picklist(["Escalated"]), op: .matches, operand: .text("^Esc.*d$"), expected: true),
        Case(value: .picklist(["Medium"]), op: .in, operand: .list([.text("High"), .text("Medium")]), expected: true),
        Case(value: .picklist(["Low"]), op: .notIn, operand: .list([.text("High"), .text("Medium")]), expected: true),
        Case(value: .picklist([]), op: .isBlank, operand: nil, expected: true),
    ]
    static let reference: [Case] = [
        Case(value: .reference(id: "001D000000IqhSLIAZ", label: nil), op: .equals, operand: .text("001D000000IqhSL"), expected: true),
        Case(value: .reference(id: "PF9KMXH", label: "API Service"), op: .equals, operand: .text("api service"), expected: true),
        Case(value: .reference(id: "PF9KMXH", label: "API Service"), op: .equals, operand: .text("PF9KMXH"), expected: true),
        Case(value: .reference(id: "PF9KMXH", label: "API Service"), op: .notEquals, operand: .text("PXXXXXX"), expected: true),
        Case(value: .reference(id: "PF9KMXH", label: "API Service"), op: .contains, operand: .text("API"), expected: true),
        Case(value: .reference(id: "PF9KMXH", label: "API Service"), op: .notContains, operand: .text("Billing"), expected: true),
        Case(value: .reference(id: "PF9KMXH", label: "API Service"), op: .startsWith, operand: .text("PF9"), expected: true),
        Case(value: .reference(id: "PF9KMXH", label: "API Service"), op: .endsWith, operand: .text("service"), expected: true),
        Case(value: .reference(id: "PF9KMXH", label: "API Service"), op: .matches, operand: .text("^API"), expected: true),
        Case(value: .reference(id: "PF9KMXH", label: "API Service"), op: .in, operand: .list([.text("PXXXXXX"), .text("PF9KMXH")]), expected: true),
        Case(value: .reference(id: "PF9KMXH", label: "API Service"), op: .notIn, operand: .list([.text("PXXXXXX")]), expected: true),
        Case(value: .reference(id: "PF9KMXH", label: nil), op: .isNotBlank, operand: nil, expected: true),
    ]
    static let null: [Case] = [
        Case(value: .null, op: .equals, operand: .text("x"), expected: false),
        Case(value: .null, op: .notEquals, operand: .text("x"), expected: true),
        Case(value: .null, op: .contains, operand: .text("x"), expected: false),
        Case(value: .null, op: .notContains, operand: .text("x"), expected: true),
        Case(value: .null, op: .startsWith, operand: .text("x"), expected: false),
        Case(value: .null, op: .endsWith, operand: .text("x"), expected: false),
        Case(value: .null, op: .matches, operand: .text(".*"), expected: false),
        Case(value: .null, op: .in, operand: .list([.text("x")]), expected: false),
        Case(value: .null, op: .notIn, operand: .list([.text("x")]), expected: true),
        Case(value: .null, op: .greaterThan, operand: .number(0, written: "0"), expected: false),
        Case(value: .null, op: .lessThan, operand: .number(0, written: "0"), expected: false),
        Case(value: .null, op: .isBlank, operand: nil, expected: true),
        Case(value: .null, op: .isNotBlank, operand: nil, expected: false),
    ]

    @Test("text", arguments: text) func onText(c: Case) { #expect(Self.evaluate(c) == c.expected) }
    @Test("number", arguments: number) func onNumber(c: Case) { #expect(Self.evaluate(c) == c.expected) }
    @Test("boolean", arguments: boolean) func onBoolean(c: Case) { #expect(Self.evaluate(c) == c.expected) }
    @Test("date", arguments: date) func onDate(c: Case) { #expect(Self.evaluate(c) == c.expected) }
    @Test("datetime", arguments: dateTime) func onDateTime(c: Case) { #expect(Self.evaluate(c) == c.expected) }
    @Test("picklist", arguments: picklist) func onPicklist(c: Case) { #expect(Self.evaluate(c) == c.expected) }
    @Test("reference", arguments: reference) func onReference(c: Case) { #expect(Self.evaluate(c) == c.expected) }
    @Test("null", arguments: null) func onNull(c: Case) { #expect(Self.evaluate(c) == c.expected) }

    @Test("changes, with and without from/to, on every type", arguments: [
        (FieldValue.text("a"), FieldValue.text("b"), nil as RuleValue?, nil as RuleValue?, true),
        (.text("a"), .text("a"), nil, nil, false),
        (.text("a"), .text("b"), .text("A"), .text("B"), true),
        (.text("a"), .text("b"), .text("x"), nil, false),
        (.text("a"), .text("b"), nil, .text("c"), false),
        (.number(1), .number(2), nil, .number(2, written: "2"), true),
        (.boolean(false), .boolean(true), .boolean(false), .boolean(true), true),
        (.date(d), .date(d.adding(days: 1)), nil, .text("2026-11-25"), true),
        (.dateTime(t), .dateTime(t), nil, nil, false),
        (.picklist(["New"]), .picklist(["Closed"]), .text("New"), .text("Closed"), true),
        (.reference(id: "001D000000IqhSL", label: nil), .reference(id: "001D000000IqhSLIAZ", label: nil), nil, nil, false),
        (.null, .text("x"), nil, .text("x"), true),
        (.text("x"), .null, nil, nil, true),
        (.text(""), .null, nil, nil, false),
    ])
    func changes(old: FieldValue, new: FieldValue, from: RuleValue?, to: RuleValue?, expected: Bool) {
        let rule = Rule(
            name: "r", object: "Case", runOn: .salesforce, conditions: [Condition(field: "X__c", operator: .changes, from: from, to: to)],
            applyTo: .linked, actions: [.setField(field: "Y__c", value: Template("hit"))])
        let engine = RuleEngine(document: RulesDocument(rulesets: [Ruleset(name: "s", rules: [rule])]))
        let result = engine.evaluate(updated(from: ["X__c": old], to: ["X__c": new]), links: [], now: t0)
        #expect(result.rules[0].matched == expected)
    }
}
