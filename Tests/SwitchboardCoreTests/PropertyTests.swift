import Foundation
import PropertyBased
import Testing

@testable import SwitchboardCore

/// Invariants checked on generated inputs.
@Suite("Properties")
struct PropertyTests {
    /// Pieces of rules files, shuffled into mostly-invalid documents that still look like rules.
    static let tokens = [
        "version: 1\n", "rulesets:\n", "calendars:\n", "  - ", "    ", "name: x\n", "rules:\n", "object: Case\n", "runOn: salesforce\n",
        "runOn: pagerduty\n", "applyTo: new\n", "applyTo: linked\n", "match: any\n", "conditions:\n", "actions:\n", "{ field: Priority, ",
        "operator: equals, ", "operator: matches, ", "operator: changes, ", "value: High }\n", "value: \"(a\" }\n", "value: [1, 2] }\n",
        "- { action: createIncident, service: P }\n", "- { action: setField, field: Status, value: \"{{pagerduty.title}}\" }\n",
        "title: { prefix: x, fields: [A, B, C, D] }\n", "timeZone: Mars/Base\n", "weekly: { monday: [\"09:00-17:00\"] }\n", "[", "]", "{", "}",
        ":", ",", "-", "'", "\"", "&a ", "*a ", "!!str ", "? ", "|\n", ">\n", "\t", "\n", " ", "null", "~", "\u{FEFF}", "😀", "é", "\\u0000",
        "{{", "}}", "#", "%YAML 1.2\n", "---\n", "...\n",
    ]

    static let documents = Gen.int(in: 0..<tokens.count).array(of: 0...60).map { $0.map { tokens[$0] }.joined() }

    @Test("Validation never crashes on arbitrary YAML or JSON input")
    func validationNeverCrashes() async {
        await propertyCheck(count: 600, input: Self.documents) { text in
            for format in [RulesLoader.Format.yaml, .json] {
                do {
                    _ = try RulesLoader().load(text, format: format)
                } catch let error as RulesValidationError {
                    #expect(!error.diagnostics.isEmpty)
                    #expect(error.diagnostics.allSatisfy { !$0.message.isEmpty })
                } catch {
                    Issue.record("unexpected error type: \(error)")
                }
            }
        }
    }

    @Test("Validation never crashes on random bytes")
    func randomBytes() async {
        await propertyCheck(count: 400, input: Gen<UInt8>.value(in: 0...255).array(of: 0...300)) { bytes in
            let text = String(decoding: bytes, as: UTF8.self)
            _ = try? RulesLoader().load(text, format: .yaml)
            _ = try? RulesLoader().load(text, format: .json)
            _ = try? DryRun.events(fromJSON: text)
        }
    }

    @Test("Single-character mutations of a valid file never crash the loader")
    func mutations() async throws {
        let valid = Array(try Repository.text("examples/rules/support.yaml").unicodeScalars)
        let replacements: [UnicodeScalar] = [":", "-", " ", "\n", "[", "{", "\"", "'", "x", "\t", "#"]
        await propertyCheck(count: 400, input: Gen.int(in: 0..<valid.count), Gen.int(in: 0..<replacements.count)) { position, r in
            var scalars = valid
            scalars[position] = replacements[r]
            var text = ""
            text.unicodeScalars.append(contentsOf: scalars)
            _ = try? RulesLoader().load(text, format: .yaml)
        }
    }

    static let anyText = Gen.int(in: 0..<8).array(of: 0...1500).map { picks -> String in
        let pieces = ["a", "é", "😀", "e\u{301}", "👩‍👩‍👧‍👦", "🇫🇷", " ", "中"]
        return picks.map { pieces[$0] }.joined()
    }

    @Test("A title is never longer than 1,024 characters and never splits a character")
    func titleLength() async {
        await propertyCheck(count: 300, input: Self.anyText, Self.anyText) { prefix, subject in
            let record = caseRecord(["Subject": .text(subject), "CaseNumber": .text("00001026")])
            let title = TitleBuilder.title(IncidentTitle(prefix: String(prefix.prefix(50)), fields: ["CaseNumber", "Subject"]), record: record)
            #expect(title.unicodeScalars.count <= IncidentTitle.maximumLength)
            #expect(!title.isEmpty)
            let full = String(prefix.prefix(50)) + "00001026 " + subject
            #expect(Array(full.prefix(title.count)) == Array(title))
        }
    }

    static let operators: [Operator] = [.equals, .notEquals, .contains, .notContains, .startsWith, .endsWith, .in, .notIn, .isBlank, .isNotBlank]
    static let words = ["High", "high", "Low", "", "Printer on fire", "printer", "fire", "Medium"]

    @Test("`any` over one condition equals `all` over it")
    func anyEqualsAll() async {
        let input = Gen.int(in: 0..<Self.operators.count)
        await propertyCheck(count: 300, input: input, Gen.int(in: 0..<Self.words.count), Gen.int(in: 0..<Self.words.count)) { o, v, a in
            let op = Self.operators[o]
            let condition = Condition(field: "Subject", operator: op, value: op.takesValue ? .text(Self.words[v].isEmpty ? "x" : Self.words[v]) : nil)
            func engine(_ match: Match) -> RuleEngine {
                RuleEngine(document: RulesDocument(rulesets: [Ruleset(name: "s", rules: [
                    Rule(name: "r", object: "Case", runOn: .salesforce, match: match, conditions: [condition], applyTo: .linked, actions: [.acknowledge])
                ])]))
            }
            let event = updated(from: [:], to: ["Subject": Self.words[a].isEmpty ? .null : .text(Self.words[a])])
            #expect(engine(.any).evaluate(event, links: [], now: t0).rules[0].matched == engine(.all).evaluate(event, links: [], now: t0).rules[0].matched)
        }
    }

    @Test("The engine is deterministic: same event, same links in any order, same output")
    func deterministic() async throws {
        let engine = RuleEngine(document: try RulesLoader().load(try Repository.text("examples/rules/support.yaml"), format: .yaml))
        let statuses = ["New", "Working", "Closed", "Escalated"]
        let input = Gen.int(in: 0..<4).array(of: 2...2).map { ($0[0], $0[1]) }
        await propertyCheck(count: 200, input: input, Gen.int(in: 0...6)) { pair, linkCount in
            let event = updated(
                from: ["Status": .picklist([statuses[pair.0]]), "Conference_URL__c": .text("a")],
                to: ["Status": .picklist([statuses[pair.1]]), "Conference_URL__c": .text(pair.0 == pair.1 ? "a" : "b"), "CaseNumber": .text("1")])
            let links = (0..<linkCount).map { Link(incidentId: "PI\($0)", object: "Case", recordId: caseId) }
            let first = engine.evaluate(event, links: links, now: t0)
            #expect(engine.evaluate(event, links: links.reversed(), now: t0) == first)
            #expect(first.actions.count == (pair.1 == 2 && pair.0 != 2 ? linkCount : 0) + (pair.0 != pair.1 ? linkCount : 0))
        }
    }
}
