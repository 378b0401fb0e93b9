import Foundation
import Testing

@testable import SwitchboardCore

@Suite("Rules files: reading and validation")
struct RulesLoaderTests {
    static let valid = """
        version: 1
        calendars:
          - name: support-hours
            timeZone: America/New_York
            weekly:
              monday: ["09:00-17:00"]
              friday: ["09:00-13:00", "14:00-17:00"]
            holidays: ["2026-12-25"]
        rulesets:
          - name: "SFDC > PD"
            enabled: true
            rules:
              - name: Page support on high priority cases
                object: Case
                runOn: salesforce
                match: all
                conditions:
                  - { field: Priority, operator: equals, value: High }
                  - { field: CreatedDate, operator: outsideBusinessHours, value: support-hours }
                applyTo: new
                actions:
                  - action: createIncident
                    service: PSERVICE1
                    urgency: high
                    title: { prefix: "Case ", fields: [CaseNumber, Subject] }
          - name: "PD > SFDC"
            enabled: true
            rules:
              - name: Close the case when the incident resolves
                object: Case
                runOn: pagerduty
                match: all
                conditions:
                  - { field: pagerduty.eventType, operator: equals, value: Resolve }
                applyTo: linked
                actions:
                  - { action: setField, field: Status, value: Closed }
        """

    /// The product brief's example, with one line changed at a time.
    static func variant(_ from: String, _ to: String) -> String {
        precondition(valid.contains(from), "fixture text not found: \(from)")
        return valid.replacingOccurrences(of: from, with: to)
    }

    @Test("The product brief's example file validates")
    func productExample() throws {
        let doc = try rules(Self.valid)
        #expect(doc.rulesets.map(\.name) == ["SFDC > PD", "PD > SFDC"])
        #expect(doc.calendars.first?.timeZone.identifier == "America/New_York")
        let rule = try #require(doc.rulesets.first?.rules.first)
        #expect(rule.conditions.count == 2)
        #expect(rule.conditions[1].field == "CreatedDate")
        guard case .createIncident(let spec)? = rule.actions.first else { Issue.record("not a createIncident"); return }
        #expect(spec.title?.fields == ["CaseNumber", "Subject"])
        #expect(spec.urgency == .high)
    }

    @Test("The same file in JSON validates to the same document")
    func jsonEquivalent() throws {
        let yamlDoc = try rules(Self.valid)
        let json = try YAMLReader.parse(Self.valid).jsonValue.serialized(pretty: true)
        let jsonDoc = try RulesLoader().load(json, format: .json)
        #expect(jsonDoc == yamlDoc)
    }

    @Test("The committed examples validate")
    func examples() throws {
        let doc = try RulesLoader().load(try Repository.text("examples/rules/support.yaml"), path: "support.yaml")
        #expect(doc.rulesets.count == 2)
    }

    @Test("An unknown key names its path and line and suggests the near miss")
    func unknownKey() throws {
        let d = problems(Self.variant("match: all\n        conditions:\n          - { field: Priority", "match: all\n        conditons:\n          - { field: Priority"))
        let p = try #require(d.first { $0.path == "rulesets[0].rules[0].conditons" })
        #expect(p.message == "unknown key")
        #expect(p.found == "\"conditons\"")
        #expect(p.suggestion == "\"conditions\"")
        #expect(p.line == 17)
    }

    @Test("createRecord names its org by Id; anything else is refused at its path")
    func createRecordOrg() throws {
        func rules(_ org: String) -> String {
            """
            version: 1
            rulesets:
              - name: cases
                rules:
                  - name: open
                    object: Case
                    runOn: pagerduty
                    conditions: [{ field: pagerduty.eventType, operator: equals, value: Trigger }]
                    applyTo: new
                    actions: [{ action: createRecord, org: "\(org)" }]
            """
        }
        let document = try RulesLoader().load(rules("00D000000000002"))
        guard case .createRecord(_, _, let org) = document.rulesets[0].rules[0].actions[0] else {
            Issue.record("not a createRecord")
            return
        }
        #expect(org == "00D000000000002EAA")
        let d = problems(rules("second org"))
        #expect(d.contains { $0.path == "rulesets[0].rules[0].actions[0].org" && $0.message.contains("org Id") })
    }

    @Test("An unknown operator is reported at rulesets[i].rules[j].conditions[k].operator")
    func unknownOperator() throws {
        let d = problems(Self.variant("operator: equals, value: High", "operator: equal, value: High"))
        let p = try #require(d.first)
        #expect(p.path == "rulesets[0].rules[0].conditions[0].operator")
        #expect(p.found == "\"equal\"")
        #expect(p.suggestion == "\"equals\"")
        #expect(p.expected?.contains("notEquals") == true)
        #expect(p.line == 18)
        #expect(p.description.contains("rulesets[0].rules[0].conditions[0].operator (line 18): unknown value"))
    }

    @Test("Unknown fields are refused with a suggestion; custom fields are allowed")
    func unknownFields() throws {
        let d = problems(Self.variant("field: Priority,", "field: Priorty,"))
        #expect(d.first?.path == "rulesets[0].rules[0].conditions[0].field")
        #expect(d.first?.suggestion == "\"Priority\"")
        _ = try rules(Self.variant("field: Priority, operator: equals, value: High", "field: Tier__c, operator: equals, value: Gold"))
        let pd = problems(Self.variant("field: pagerduty.eventType", "field: pagerduty.evenType"))
        #expect(pd.first?.suggestion == "\"pagerduty.eventType\"")
        let wrongSide = problems(Self.variant("field: pagerduty.eventType", "field: Status"))
        #expect(wrongSide.first?.message.contains("PagerDuty fields") == true)
    }

    @Test("Operators that make no sense for a field's type are refused", arguments: [
        ("field: Priority, operator: equals, value: High", "field: IsEscalated, operator: greaterThan, value: 1"),
        ("field: Priority, operator: equals, value: High", "field: CreatedDate, operator: contains, value: 2026"),
        ("field: Priority, operator: equals, value: High", "field: Subject, operator: withinBusinessHours, value: support-hours"),
        ("field: Priority, operator: equals, value: High", "field: Subject, operator: lessThan, value: b"),
        ("field: pagerduty.eventType, operator: equals, value: Resolve", "field: pagerduty.title, operator: greaterOrEqual, value: x"),
    ])
    func operatorTypes(from: String, to: String) throws {
        let d = problems(Self.variant(from, to))
        let p = try #require(d.first)
        #expect(p.path.hasSuffix(".operator"))
        #expect(p.message.contains("makes no sense"))
    }

    @Test("Regular expressions that do not compile or can backtrack forever are refused")
    func regexes() throws {
        let bad = problems(Self.variant("operator: equals, value: High", "operator: matches, value: \"Hi(gh\""))
        #expect(bad.first?.message.contains("invalid regular expression") == true)
        #expect(bad.first?.path == "rulesets[0].rules[0].conditions[0].value")
        let evil = problems(Self.variant("operator: equals, value: High", "operator: matches, value: \"(a+)+$\""))
        #expect(evil.first?.message.contains("exponential") == true)
        _ = try rules(Self.variant("operator: equals, value: High", "operator: matches, value: \"^(High|Urgent)$\""))
    }

    @Test("More than three title fields are refused")
    func titleFields() throws {
        let d = problems(Self.variant("fields: [CaseNumber, Subject]", "fields: [CaseNumber, Subject, Priority, Status]"))
        let p = try #require(d.first)
        #expect(p.path == "rulesets[0].rules[0].actions[0].title.fields")
        #expect(p.found == "4 fields")
    }

    @Test("A text parameter refuses numbers and booleans, as the schema does; a field value takes any scalar")
    func textParameters() throws {
        for (key, scalar) in [("description", "42"), ("description", "true"), ("conferenceNumber", "5551234"), ("conferenceUrl", "false")] {
            let d = problems(Self.variant("urgency: high\n", "urgency: high\n            \(key): \(scalar)\n"))
            let p = try #require(d.first, "\(key): \(scalar) was accepted")
            #expect(p.path == "rulesets[0].rules[0].actions[0].\(key)")
            #expect(p.message == "wrong type")
            #expect(d.count == 1)
        }
        for scalar in ["42", "true", "null", "\"Closed {{pagerduty.status}}\""] {
            _ = try rules(Self.variant("value: Closed }", "value: \(scalar) }"))
        }
    }

    @Test("A condition value that is a mapping, a title's prefix or separator or a listed id that is not text, are refused at their path")
    func nonTextParts() throws {
        let cases: [(from: String, to: String, path: String)] = [
            ("operator: equals, value: High }", "operator: equals, value: { a: 1 } }", "rulesets[0].rules[0].conditions[0].value"),
            ("operator: equals, value: High }", "operator: in, value: [High, { a: 1 }] }", "rulesets[0].rules[0].conditions[0].value[1]"),
            ("prefix: \"Case \", fields", "prefix: 7, fields", "rulesets[0].rules[0].actions[0].title.prefix"),
            ("prefix: \"Case \", fields", "separator: true, fields", "rulesets[0].rules[0].actions[0].title.separator"),
            ("{ action: setField, field: Status, value: Closed }", "{ action: addResponders, users: [PUSER1, 7] }", "rulesets[1].rules[0].actions[0].users[1]"),
        ]
        for (from, to, path) in cases {
            let d = problems(Self.variant(from, to))
            #expect(d.map(\.path) == [path], "\(to)")
            #expect(d.first?.message == "wrong type")
        }
        _ = try rules(Self.variant("prefix: \"Case \", fields", "prefix: \"\", separator: \" - \", fields"))
    }

    @Test("Run Response Play is refused as deprecated, pointing to incident workflows")
    func responsePlay() throws {
        let d = problems(Self.variant("{ action: setField, field: Status, value: Closed }", "{ action: runResponsePlay, responsePlay: P1 }"))
        let p = try #require(d.first)
        #expect(p.path == "rulesets[1].rules[0].actions[0].action")
        #expect(p.message.contains("deprecated"))
        #expect(p.suggestion == "\"runIncidentWorkflow\"")
    }

    @Test("Wrong types and missing keys are each reported")
    func typesAndMissing() throws {
        let d = problems("""
            version: 2
            calendars: {}
            rulesets:
              - name: x
                enabled: "yes"
                rules:
                  - name: r
                    object: Case
                    runOn: salesforce
                    applyTo: everything
                    actions: []
              - name: x
                rules:
                  - name: s
                    runOn: pagerduty
                    applyTo: linked
                    actions: [{ action: setUrgency, urgency: medium }]
            """)
        let paths = Set(d.map(\.path))
        #expect(paths.isSuperset(of: [
            "version", "calendars", "rulesets[0].enabled", "rulesets[0].rules[0].applyTo", "rulesets[0].rules[0].actions", "rulesets[1].name",
            "rulesets[1].rules[0].object", "rulesets[1].rules[0].actions[0].urgency",
        ]))
        #expect(d.first { $0.path == "rulesets[0].enabled" }?.expected == "true or false")
    }

    @Test("Calendars are checked: time zone, hours, holidays, references")
    func calendars() throws {
        let tz = problems(Self.variant("timeZone: America/New_York", "timeZone: America/New_Yrok"))
        #expect(tz.first?.path == "calendars[0].timeZone")
        #expect(tz.first?.suggestion == "\"America/New_York\"")
        let hours = problems(Self.variant("monday: [\"09:00-17:00\"]", "monday: [\"9-5\"]"))
        #expect(hours.first?.path == "calendars[0].weekly.monday[0]")
        let day = problems(Self.variant("monday: [", "mondy: ["))
        #expect(day.first?.suggestion == "\"monday\"")
        let holiday = problems(Self.variant("holidays: [\"2026-12-25\"]", "holidays: [\"25/12/2026\"]"))
        #expect(holiday.first?.path == "calendars[0].holidays[0]")
        let reference = problems(Self.variant("value: support-hours", "value: support-hour"))
        #expect(reference.first?.message == "unknown calendar")
        #expect(reference.first?.suggestion == "\"support-hours\"")
    }

    @Test("PagerDuty values outside their fixed set are refused")
    func pagerDutyValues() throws {
        let d = problems(Self.variant("operator: equals, value: Resolve", "operator: equals, value: Resolved"))
        #expect(d.first?.expected?.contains("Trigger, Acknowledge, Resolve, Assign, Escalate, Custom, Delegate") == true)
        #expect(d.first?.suggestion == "\"Resolve\"")
    }

    @Test("Actions are checked: unknown names, parameters, read-only fields, placement")
    func actions() throws {
        let unknown = problems(Self.variant("{ action: setField, field: Status, value: Closed }", "{ action: setFeild, field: Status, value: Closed }"))
        #expect(unknown.first?.suggestion == "\"setField\"")
        let param = problems(Self.variant("service: PSERVICE1", "servce: PSERVICE1"))
        #expect(param.contains { $0.path == "rulesets[0].rules[0].actions[0].servce" && $0.suggestion == "\"service\"" })
        #expect(param.contains { $0.path == "rulesets[0].rules[0].actions[0].service" && $0.message.contains("missing") })
        let readOnly = problems(Self.variant("field: Status, value: Closed", "field: CaseNumber, value: Closed"))
        #expect(readOnly.first?.message.contains("read-only") == true)
        let placement = problems(Self.variant("{ action: setField, field: Status, value: Closed }", "{ action: createIncident, service: P1 }"))
        #expect(placement.first?.message.contains("runOn: salesforce") == true)
        let template = problems(Self.variant("field: Status, value: Closed", "field: Status, value: \"{{pagerduty.titel}}\""))
        #expect(template.first?.suggestion == "\"pagerduty.title\"")
        let both = problems(Self.variant("urgency: high\n", "urgency: high\n            escalationPolicy: PEP\n            assignee: PUSER\n"))
        #expect(both.first?.message.contains("not both") == true)
    }

    @Test("Operand rules: values where needed, none where not, from/to only for changes")
    func operands() throws {
        #expect(problems(Self.variant("operator: equals, value: High", "operator: isBlank, value: High")).first?.message.contains("takes no value") == true)
        #expect(problems(Self.variant("operator: equals, value: High", "operator: equals")).first?.message.contains("missing required key `value`") == true)
        #expect(problems(Self.variant("operator: equals, value: High", "operator: changes, value: High")).first?.suggestion == "to: High")
        #expect(problems(Self.variant("operator: equals, value: High", "operator: equals, value: High, to: Low")).first?.path.hasSuffix(".to") == true)
        _ = try rules(Self.variant("operator: equals, value: High", "operator: changes, from: Low, to: High"))
        _ = try rules(Self.variant("operator: equals, value: High", "operator: in, value: [High, Medium]"))
        #expect(problems(Self.variant("field: Priority, operator: equals, value: High", "field: IsEscalated, operator: equals, value: maybe")).first?.message == "not a boolean")
    }

    @Test("Oversized and malformed files give one clear diagnostic")
    func oversized() {
        let big = String(repeating: "#", count: RulesLoader.maximumSize + 1)
        #expect(problems(big).first?.message == "the rules file is too large")
        #expect(problems("rulesets: [").first?.line != nil)
        #expect(problems("{\"rulesets\": [}", format: .json).first?.message.contains("expected a value") == true)
        #expect(problems("- just\n- a list").first?.expected?.contains("a mapping") == true)
    }
}
