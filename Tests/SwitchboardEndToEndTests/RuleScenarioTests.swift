import Foundation
import SwitchboardCore
import SwitchboardTestSupport
import Testing

/// Calendars the scenarios share: one always open, one never, so business-hours rules do not depend on the hour.
let calendars = """
    calendars:
      - name: always-open
        timeZone: UTC
        weekly: { monday: ["00:00-24:00"], tuesday: ["00:00-24:00"], wednesday: ["00:00-24:00"], thursday: ["00:00-24:00"], friday: ["00:00-24:00"], saturday: ["00:00-24:00"], sunday: ["00:00-24:00"] }
      - name: never-open
        timeZone: UTC
        weekly: {}
    """

/// One ruleset that pages for the cases (or other records) its conditions pick, with the subject as the title.
func pagingRules(object: String = "Case", match: String = "all", conditions: String, titleField: String = "Subject") -> String {
    """
    version: 1
    \(calendars)
    rulesets:
      - name: scenario
        rules:
          - name: page
            object: \(object)
            runOn: salesforce
            match: \(match)
            conditions: \(conditions)
            applyTo: new
            actions:
              - { action: createIncident, service: Customer Support, title: { prefix: "", fields: [\(titleField)] } }
    """
}

/// Rules the seed's table lists, each shown through public boundaries only: rule builder, condition fields,
/// operators, scopes, actions, rulesets switched on and off.
@Suite("End to end: rules", .serialized)
struct RuleScenarioTests {
    @Test("Rule builder: match all needs every condition, match any one of them", arguments: Backend.allCases)
    func matchAllAndAny(_ backend: Backend) async throws {
        let rules = """
            version: 1
            rulesets:
              - name: builder
                rules:
                  - name: any
                    object: Case
                    runOn: salesforce
                    match: any
                    conditions: [{ field: Priority, operator: equals, value: High }, { field: Subject, operator: contains, value: outage }]
                    applyTo: new
                    actions: [{ action: createIncident, service: Customer Support, title: { prefix: "any: ", fields: [Subject] } }]
                  - name: all
                    object: Case
                    runOn: salesforce
                    match: all
                    conditions: [{ field: Priority, operator: equals, value: Low }, { field: Subject, operator: contains, value: printer }]
                    applyTo: new
                    actions: [{ action: createIncident, service: Customer Support, title: { prefix: "all: ", fields: [Subject] } }]
            """
        try await Stack.run(backend, rules: rules) { s in
            _ = try await s.create("Case", ["Subject": "printer jam", "Priority": "Low"])  // all
            _ = try await s.create("Case", ["Subject": "major outage", "Priority": "Medium"])  // any (one condition)
            _ = try await s.create("Case", ["Subject": "slow login", "Priority": "High"])  // any (the other)
            _ = try await s.create("Case", ["Subject": "printer toner", "Priority": "Medium"])  // all fails on Priority
            _ = try await s.create("Case", ["Subject": "nothing much", "Priority": "Low"])  // neither
            try await s.eventually("three incidents") { try await s.incidents().count >= 3 }
            try await s.settle()
            let titles = Set(try await s.incidents().compactMap { $0["title"]?.stringValue })
            #expect(titles == ["all: printer jam", "any: major outage", "any: slow login"])
        }
    }

    /// Each PagerDuty condition field of the seed, with an incident that matches and one that does not.
    struct FieldCase: Sendable, CustomTestStringConvertible {
        var field: String
        var condition: String
        var testDescription: String { field }
    }

    static let fieldCases: [FieldCase] = [
        FieldCase(field: "pagerduty.eventType", condition: "{ field: pagerduty.eventType, operator: equals, value: Acknowledge }"),
        FieldCase(field: "pagerduty.title", condition: "{ field: pagerduty.title, operator: contains, value: \"[db]\" }"),
        FieldCase(field: "pagerduty.status", condition: "{ field: pagerduty.status, operator: equals, value: Acknowledged }"),
        FieldCase(field: "pagerduty.service", condition: "{ field: pagerduty.service, operator: equals, value: PSVC003 }"),
        FieldCase(field: "pagerduty.serviceName", condition: "{ field: pagerduty.serviceName, operator: equals, value: Payments API }"),
        FieldCase(field: "pagerduty.escalationPolicy", condition: "{ field: pagerduty.escalationPolicy, operator: equals, value: PEP0001 }"),
        FieldCase(field: "pagerduty.escalationPolicyName", condition: "{ field: pagerduty.escalationPolicyName, operator: equals, value: Support On-Call }"),
        FieldCase(field: "pagerduty.priority", condition: "{ field: pagerduty.priority, operator: equals, value: P1 }"),
        FieldCase(field: "pagerduty.urgency", condition: "{ field: pagerduty.urgency, operator: equals, value: low }"),
    ]

    @Test("Each PagerDuty condition field drives a rule: it acts for the incident that matches, not for the other", arguments: Backend.allCases)
    func pagerDutyConditionFields(_ backend: Backend) async throws {
        try await Stack.run(backend) { s in
            for (n, spec) in Self.fieldCases.enumerated() {
                // Fields known when the incident is triggered open a case for it ("new"); the ones that change later
                // (event type, status, priority) mark the case already opened for it ("linked").
                let later = ["pagerduty.eventType", "pagerduty.status", "pagerduty.priority"].contains(spec.field)
                let open = """
                          - name: open a case
                            object: Case
                            runOn: pagerduty
                            conditions: [\(later ? "{ field: pagerduty.title, operator: startsWith, value: \"F\(n) \" }" : spec.condition)]
                            applyTo: new
                            actions:
                              - action: createRecord
                              - { action: setField, field: Subject, value: "{{pagerduty.title}}" }
                              - { action: setField, field: Origin, value: Web }
                              - { action: setField, field: Status, value: New }
                    """
                let mark = """
                          - name: mark the case
                            object: Case
                            runOn: pagerduty
                            conditions: [\(spec.condition)]
                            applyTo: linked
                            actions: [{ action: setField, field: Description, value: matched }]
                    """
                try await s.importRules(
                    """
                    version: 1
                    rulesets:
                      - name: "field \(n)"
                        rules:
                    \(open)
                    \(later ? mark : "")
                    """)
                let yes = "F\(n) yes [db]"
                let no = "F\(n) no"
                // The matching incident differs from the other one only in what the field reads.
                let (yesService, noService) =
                    spec.field.hasPrefix("pagerduty.escalationPolicy")
                    ? ("Customer Support", "XYZ") : (spec.field.hasPrefix("pagerduty.service") ? ("Payments API", "XYZ") : ("XYZ", "XYZ"))
                let matching = try await s.trigger(service: yesService, title: yes, urgency: spec.field == "pagerduty.urgency" ? "low" : "high")
                let other = try await s.trigger(service: noService, title: no, urgency: "high")
                func caseFor(_ title: String) async throws -> JSONValue? { try await s.records("Case").first { $0["Subject"]?.stringValue == title } }
                if later {
                    try await s.eventually("cases for both incidents") {
                        let a = try await caseFor(yes)
                        let b = try await caseFor(no)
                        return a != nil && b != nil
                    }
                    if spec.field == "pagerduty.priority" {
                        try await s.act(matching, "priority", "P1")
                        try await s.act(other, "priority", "P3")
                    } else {
                        try await s.act(matching, "acknowledge")
                    }
                    try await s.eventually("\(spec.field): the matching incident's case marked") { try await caseFor(yes)?["Description"]?.stringValue == "matched" }
                    try await s.settle()
                    #expect(try await caseFor(no)?["Description"]?.stringValue != "matched", "\(spec.field): the other incident's case was marked")
                } else {
                    try await s.eventually("\(spec.field): a case for the matching incident") { try await caseFor(yes) != nil }
                    try await s.settle()
                    #expect(try await caseFor(no) == nil, "\(spec.field): the incident that does not match opened a case")
                    #expect(try await s.records("Case").filter { $0["Subject"]?.stringValue == yes }.count == 1, "\(spec.field): exactly one case")
                }
                let linked = try await s.cliJSON("links", "list", "--incident", matching).arrayValue ?? []
                #expect(linked.count == 1, "\(spec.field): the case is linked to its incident")
            }
        }
    }

    /// One case per operator family that matches, one that does not.
    struct OperatorCase: Sendable, CustomTestStringConvertible {
        var family: String
        var object: String = "Case"
        var condition: String
        var matching: JSONObject
        var other: JSONObject
        var testDescription: String { family }
    }

    static let operatorCases: [OperatorCase] = [
        OperatorCase(family: "equals", condition: "{ field: Priority, operator: equals, value: High }", matching: ["Priority": "High"], other: ["Priority": "Low"]),
        OperatorCase(family: "notEquals", condition: "{ field: Priority, operator: notEquals, value: Low }", matching: ["Priority": "Medium"], other: ["Priority": "Low"]),
        OperatorCase(family: "contains", condition: "{ field: Description, operator: contains, value: refund }", matching: ["Description": "asks for a refund now"], other: ["Description": "asks for help"]),
        OperatorCase(family: "notContains", condition: "{ field: Description, operator: notContains, value: test }", matching: ["Description": "real problem"], other: ["Description": "just a test"]),
        OperatorCase(family: "startsWith", condition: "{ field: Description, operator: startsWith, value: URGENT }", matching: ["Description": "URGENT: down"], other: ["Description": "not URGENT"]),
        OperatorCase(family: "endsWith", condition: "{ field: Description, operator: endsWith, value: \"!!\" }", matching: ["Description": "help!!"], other: ["Description": "help"]),
        OperatorCase(family: "matches", condition: "{ field: Description, operator: matches, value: \"^INC-[0-9]{4}$\" }", matching: ["Description": "INC-1234"], other: ["Description": "INC-12"]),
        OperatorCase(family: "in", condition: "{ field: Priority, operator: in, value: [High, Medium] }", matching: ["Priority": "Medium"], other: ["Priority": "Low"]),
        OperatorCase(family: "notIn", condition: "{ field: Priority, operator: notIn, value: [High, Medium] }", matching: ["Priority": "Low"], other: ["Priority": "High"]),
        OperatorCase(
            family: "greaterThan", object: "Opportunity", condition: "{ field: Amount, operator: greaterThan, value: 10000 }",
            matching: ["Name": "big", "StageName": "Prospecting", "CloseDate": "2026-12-31", "Amount": .number(25000)],
            other: ["Name": "small", "StageName": "Prospecting", "CloseDate": "2026-12-31", "Amount": .number(500)]),
        OperatorCase(
            family: "lessOrEqual", object: "Opportunity", condition: "{ field: Amount, operator: lessOrEqual, value: 500 }",
            matching: ["Name": "tiny", "StageName": "Prospecting", "CloseDate": "2026-12-31", "Amount": .number(500)],
            other: ["Name": "huge", "StageName": "Prospecting", "CloseDate": "2026-12-31", "Amount": .number(501)]),
        OperatorCase(family: "isBlank", condition: "{ field: Description, operator: isBlank }", matching: ["Priority": "Low"], other: ["Description": "text"]),
        OperatorCase(family: "isNotBlank", condition: "{ field: Description, operator: isNotBlank }", matching: ["Description": "text"], other: ["Priority": "Low"]),
        OperatorCase(
            family: "outsideBusinessHours", condition: "{ field: CreatedDate, operator: outsideBusinessHours, value: never-open }", matching: ["Priority": "Low"], other: [:]),
        OperatorCase(
            family: "withinBusinessHours", condition: "{ operator: withinBusinessHours, value: always-open }", matching: ["Priority": "Low"], other: [:]),
    ]

    @Test("Each operator family picks the record that matches and leaves the other", arguments: Backend.allCases)
    func operatorFamilies(_ backend: Backend) async throws {
        try await Stack.run(backend) { s in
            for (n, spec) in Self.operatorCases.enumerated() {
                let titleField = spec.object == "Case" ? "Subject" : "Name"
                try await s.importRules(pagingRules(object: spec.object, conditions: "[\(spec.condition)]", titleField: titleField))
                var yes = spec.matching
                yes[titleField] = .string("O\(n) \(spec.family) yes")
                _ = try await s.create(spec.object, yes)
                // The business-hours families have no "other" record: the same rule with the other calendar must not fire.
                if !spec.other.isEmpty {
                    var no = spec.other
                    no[titleField] = .string("O\(n) \(spec.family) no")
                    _ = try await s.create(spec.object, no)
                }
                try await s.eventually("the incident for \(spec.family)") { !(try await s.incidents(titled: "O\(n) \(spec.family) yes")).isEmpty }
                try await s.settle()
                #expect(try await s.incidents(titled: "O\(n) \(spec.family) no").isEmpty, "\(spec.family): the other record paged")
            }
            // The calendars the other way round page nothing.
            try await s.importRules(pagingRules(conditions: "[{ field: CreatedDate, operator: withinBusinessHours, value: never-open }]"))
            _ = try await s.create("Case", ["Subject": "hours never"])
            try await s.importRules(pagingRules(conditions: "[{ operator: outsideBusinessHours, value: always-open }]"))
            _ = try await s.create("Case", ["Subject": "hours always"])
            try await s.settle()
            #expect(try await s.incidents(titled: "hours ").isEmpty)
        }
    }

    @Test("changes, with from and to: an update that moves the field acts on the linked incident; another does not", arguments: Backend.allCases)
    func changesOperator(_ backend: Backend) async throws {
        let rules = """
            version: 1
            rulesets:
              - name: changes
                rules:
                  - name: page
                    object: Case
                    runOn: salesforce
                    conditions: [{ field: Priority, operator: equals, value: High }]
                    applyTo: new
                    actions: [{ action: createIncident, service: Customer Support, title: { fields: [Subject] } }]
                  - name: escalated
                    object: Case
                    runOn: salesforce
                    conditions: [{ field: Status, operator: changes, from: New, to: Escalated }]
                    applyTo: linked
                    actions: [{ action: setPriority, priority: P1 }]
                  - name: closed
                    object: Case
                    runOn: salesforce
                    conditions: [{ field: Status, operator: changes, to: Closed }]
                    applyTo: linked
                    actions: [{ action: resolve }]
            """
        try await Stack.run(backend, rules: rules) { s in
            let a = try await s.create("Case", ["Subject": "changes A", "Priority": "High", "Status": "New"])
            let b = try await s.create("Case", ["Subject": "changes B", "Priority": "High", "Status": "New"])
            try await s.eventually("both incidents") { try await s.links().count == 2 }
            try await s.update("Case", a, ["Status": "Escalated"])
            try await s.update("Case", b, ["Status": "Working"])
            let incidentA = try #require(try await s.links(record: a).first?["incident"]?.stringValue)
            let incidentB = try #require(try await s.links(record: b).first?["incident"]?.stringValue)
            try await s.eventually("priority P1 on A's incident") { try await s.incident(incidentA)["priority"]?["summary"]?.stringValue == "P1" }
            try await s.settle()
            #expect(try await s.incident(incidentB)["priority"]?["summary"]?.stringValue != "P1")
            // Working → Escalated is not "from New": nothing.
            try await s.update("Case", b, ["Status": "Escalated"])
            // Closing B resolves its incident (to: only).
            try await s.settle()
            #expect(try await s.incident(incidentB)["priority"]?["summary"]?.stringValue != "P1")
            try await s.update("Case", b, ["Status": "Closed", "Subject": "changes B"])
            try await s.eventually("B's incident resolved") { try await s.incident(incidentB)["status"]?.stringValue == "resolved" }
            #expect(try await s.incident(incidentA)["status"]?.stringValue == "triggered")
        }
    }

    @Test("Scopes: new ignores updates; linked acts on every incident linked to the record", arguments: Backend.allCases)
    func scopes(_ backend: Backend) async throws {
        let rules = """
            version: 1
            rulesets:
              - name: scopes
                rules:
                  - name: page new cases
                    object: Case
                    runOn: salesforce
                    conditions: [{ field: Priority, operator: equals, value: High }]
                    applyTo: new
                    actions: [{ action: createIncident, service: Customer Support, title: { fields: [Subject] } }]
                  - name: acknowledge linked
                    object: Case
                    runOn: salesforce
                    conditions: [{ field: Status, operator: changes, to: Working }]
                    applyTo: linked
                    actions: [{ action: acknowledge }]
            """
        try await Stack.run(backend, rules: rules) { s in
            // An update that makes a case High is not a new case: "new" does not page it.
            let updated = try await s.create("Case", ["Subject": "scope updated", "Priority": "Low"])
            try await s.update("Case", updated, ["Priority": "High"])
            let paged = try await s.create("Case", ["Subject": "scope new", "Priority": "High"])
            try await s.eventually("the new case's incident") { try await s.links(record: paged).count == 1 }
            try await s.settle()
            #expect(try await s.links(record: updated).isEmpty)
            #expect(try await s.incidents(titled: "scope updated").isEmpty)
            // A second incident linked by hand: "linked" acts on both.
            let first = try #require(try await s.links(record: paged).first?["incident"]?.stringValue)
            let second = try await s.trigger(service: "XYZ", title: "scope second")
            try await s.cli("links", "add", "--incident", second, "--object", "Case", "--record", paged)
            try await s.update("Case", paged, ["Status": "Working"])
            try await s.eventually("both linked incidents acknowledged") {
                let a = try await s.incident(first)["status"]?.stringValue
                let b = try await s.incident(second)["status"]?.stringValue
                return a == "acknowledged" && b == "acknowledged"
            }
        }
    }

    @Test("No echoes: Switchboard's own acknowledgement does not fire the PagerDuty rules back, even when PagerDuty answers late", arguments: Backend.allCases)
    func noEchoWhenPagerDutyAnswersLate(_ backend: Backend) async throws {
        let rules = """
            version: 1
            rulesets:
              - name: two way
                rules:
                  - name: page
                    object: Case
                    runOn: salesforce
                    conditions: [{ field: Priority, operator: equals, value: High }]
                    applyTo: new
                    actions: [{ action: createIncident, service: Customer Support, title: { fields: [Subject] } }]
                  - name: acknowledge when escalated
                    object: Case
                    runOn: salesforce
                    conditions: [{ field: Status, operator: changes, to: Escalated }]
                    applyTo: linked
                    actions: [{ action: acknowledge }]
                  - name: follow acknowledgements
                    object: Case
                    runOn: pagerduty
                    conditions: [{ field: pagerduty.eventType, operator: equals, value: Acknowledge }]
                    applyTo: linked
                    actions: [{ action: setField, field: Status, value: Working }]
            """
        try await Stack.run(backend, rules: rules) { s in
            let caseId = try await s.create("Case", ["Subject": "echo check", "Priority": "High", "Status": "New"])
            try await s.eventually("the incident") { try await s.links(record: caseId).count == 1 }
            let id = try #require(try await s.links(record: caseId).first?["incident"]?.stringValue)
            try await s.settle()
            // The acknowledgement's webhook reaches Switchboard before PagerDuty's answer to Switchboard does.
            let slow = await HTTP.send("POST", s.pagerDutyURL + "/_simulator/delay", json: #"{"milliseconds": 700, "after": true}"#)
            #expect(slow?.status == 200)
            try await s.update("Case", caseId, ["Status": "Escalated"])
            try await s.eventually("acknowledged") { try await s.incident(id)["status"]?.stringValue == "acknowledged" }
            try await s.settle()
            #expect(try await s.record("Case", caseId)?["Status"]?.stringValue == "Escalated", "the case was not moved back to Working by Switchboard's own acknowledgement")
            #expect(!(try await s.logs("--search", "echo of Switchboard's own incident.acknowledged")).isEmpty)
            // A person's acknowledgement of another case's incident still follows.
            let other = try await s.create("Case", ["Subject": "echo person", "Priority": "High", "Status": "New"])
            try await s.eventually("the second incident") { try await s.links(record: other).count == 1 }
            try await s.act(try #require(try await s.links(record: other).first?["incident"]?.stringValue), "acknowledge")
            try await s.eventually("the person's acknowledgement followed") { try await s.record("Case", other)?["Status"]?.stringValue == "Working" }
        }
    }

    static let everyActionRules = """
        version: 1
        rulesets:
          - name: "SFDC > PD"
            rules:
              - name: page
                object: Case
                runOn: salesforce
                conditions: [{ field: Priority, operator: equals, value: High }]
                applyTo: new
                actions:
                  - action: createIncident
                    service: Customer Support
                    urgency: high
                    priority: P2
                    escalationPolicy: Support On-Call
                    title: { prefix: "Case ", fields: [CaseNumber, Subject] }
                    conferenceUrl: "https://meet.example.com/{{CaseNumber}}"
              - name: act on incidents
                object: Case
                runOn: salesforce
                conditions: [{ field: Reason, operator: changes, to: Breakdown }]
                applyTo: linked
                actions:
                  - { action: acknowledge }
                  - { action: setPriority, priority: P1 }
                  - { action: setUrgency, urgency: low }
                  - { action: reassign, users: [ravi@example.com] }
                  - { action: addResponders, users: [Ravi Engineer], escalationPolicies: [Engineering On-Call], message: "Case {{CaseNumber}} needs you" }
                  - { action: runIncidentWorkflow, workflow: Major incident response }
                  - { action: runAutomationAction, automationAction: Restart checkout pods }
                  - { action: setIncidentConference, field: SuppliedName }
                  - { action: setIncidentDescription, field: Description }
              - name: hand over
                object: Case
                runOn: salesforce
                conditions: [{ field: Type, operator: changes, to: Problem }]
                applyTo: linked
                actions: [{ action: reassign, escalationPolicy: Engineering On-Call }]
              - name: close
                object: Case
                runOn: salesforce
                conditions: [{ field: Status, operator: changes, to: Closed }]
                applyTo: linked
                actions: [{ action: resolve, resolution: "Case closed in Salesforce" }]
        """

    @Test("Every PagerDuty action, from a case to the incident, through both real APIs", arguments: Backend.allCases)
    func everyPagerDutyAction(_ backend: Backend) async throws {
        try await Stack.run(backend, rules: Self.everyActionRules) { s in
            let caseId = try await s.create("Case", ["Subject": "Checkout down", "Priority": "High", "Description": "Cart fails"])
            try await s.eventually("the incident") { try await s.links(record: caseId).count == 1 }
            let id = try #require(try await s.links(record: caseId).first?["incident"]?.stringValue)
            let number = try #require(try await s.record("Case", caseId)?["CaseNumber"]?.stringValue)
            let created = try await s.incident(id)
            #expect(created["title"]?.stringValue == "Case \(number) Checkout down")
            #expect(created["urgency"]?.stringValue == "high")
            #expect(created["priority"]?["summary"]?.stringValue == "P2")
            #expect(created["escalation_policy"]?["id"]?.stringValue == "PEP0001")
            #expect(created["body"]?["details"]?.stringValue == "Cart fails")
            #expect(created["conference_bridge"]?["conference_url"]?.stringValue == "https://meet.example.com/\(number)")

            try await s.update("Case", caseId, ["Reason": "Breakdown", "SuppliedName": "https://zoom.example.com/j/42", "Description": "Root cause: bad deploy"])
            try await s.eventually("every action carried out") {
                let i = try await s.incident(id)
                let noted = try await s.notes(id).contains { $0.contains("Root cause: bad deploy") }
                return i["status"]?.stringValue == "acknowledged" && i["priority"]?["summary"]?.stringValue == "P1" && i["urgency"]?.stringValue == "low"
                    && i["conference_bridge"]?["conference_url"]?.stringValue == "https://zoom.example.com/j/42" && noted
            }
            try await s.settle()
            let after = try await s.incident(id)
            #expect(after["assignments"]?.arrayValue?.contains { $0["assignee"]?["id"]?.stringValue == "PUSER03" } == true)
            let requests = try await s.pagerDutyState()
            #expect(requests["deliveries"]?.arrayValue?.contains { $0["eventType"]?.stringValue == "incident.responder.added" } == true)
            #expect(requests["deliveries"]?.arrayValue?.contains { $0["eventType"]?.stringValue == "incident.workflow.started" } == true)
            #expect(try await s.deadLetters().isEmpty)

            try await s.update("Case", caseId, ["Type": "Problem"])
            try await s.eventually("reassigned to the engineering policy") { try await s.incident(id)["escalation_policy"]?["id"]?.stringValue == "PEP0002" }
            try await s.update("Case", caseId, ["Status": "Closed"])
            try await s.eventually("resolved") { try await s.incident(id)["status"]?.stringValue == "resolved" }
            try await s.settle()
            // Switchboard's own writes came back as webhooks and were recognised: no rule fired on them.
            let echoes = try await s.logs("--search", "echo of Switchboard's own")
            #expect(!echoes.isEmpty)
            #expect(try await s.deadLetters().isEmpty)
        }
    }

    @Test("Rulesets switched off and on, and the rule engine switch, from the command line", arguments: Backend.allCases)
    func switches(_ backend: Backend) async throws {
        try await Stack.run(backend, rules: pagingRules(conditions: "[{ field: Priority, operator: equals, value: High }]")) { s in
            try await s.cli("rules", "disable", "scenario")
            try await Task.sleep(for: .milliseconds(1200))  // a running server re-reads its switches every second
            _ = try await s.create("Case", ["Subject": "switch off", "Priority": "High"])
            try await s.settle()
            #expect(try await s.incidents(titled: "switch off").isEmpty)
            try await s.cli("rules", "enable", "scenario")
            try await Task.sleep(for: .milliseconds(1200))
            _ = try await s.create("Case", ["Subject": "switch on", "Priority": "High"])
            try await s.eventually("paged again") { !(try await s.incidents(titled: "switch on")).isEmpty }

            try await s.cli("settings", "set", "engine.enabled", "false")
            try await Task.sleep(for: .milliseconds(1200))
            _ = try await s.create("Case", ["Subject": "engine off", "Priority": "High"])
            try await s.settle()
            #expect(try await s.incidents(titled: "engine off").isEmpty)
            #expect(!(try await s.logs("--search", "the rule engine is disabled")).isEmpty)
            let summary = try await s.cliJSON("status")
            #expect(summary["ruleEngine"] == .bool(false))
            try await s.cli("settings", "set", "engine.enabled", "true")
            try await Task.sleep(for: .milliseconds(1200))
            _ = try await s.create("Case", ["Subject": "engine on", "Priority": "High"])
            try await s.eventually("paged with the engine on") { !(try await s.incidents(titled: "engine on")).isEmpty }
            // Both switches are in the audit trail of `rules list`/`status`.
            let listed = try await s.cliJSON("rules", "list")
            #expect(listed["rulesets"]?.arrayValue?.first?["enabled"] == .bool(true))
        }
    }

    @Test("Custom title: the preview from `rules test` is the incident's title, truncated to 1,024 characters", arguments: Backend.allCases)
    func titlePreviewAndTruncation(_ backend: Backend) async throws {
        let rules = """
            version: 1
            rulesets:
              - name: titles
                rules:
                  - name: page
                    object: Case
                    runOn: salesforce
                    conditions: [{ field: Priority, operator: equals, value: High }]
                    applyTo: new
                    actions: [{ action: createIncident, service: Customer Support, title: { prefix: "SEV ", fields: [Subject, Description] } }]
            """
        try await Stack.run(backend, rules: rules) { s in
            let description = String(repeating: "long text ", count: 150)
            let caseId = try await s.create("Case", ["Subject": "Title check", "Priority": "High", "Description": .string(description)])
            try await s.eventually("the incident") { try await s.links(record: caseId).count == 1 }
            let id = try #require(try await s.links(record: caseId).first?["incident"]?.stringValue)
            let title = try #require(try await s.incident(id)["title"]?.stringValue)
            #expect(title.count == 1024)
            #expect(title.hasPrefix("SEV Title check long text"))
            // The preview: the same rules and the same record, dry-run from the command line.
            let record = try #require(try await s.record("Case", caseId)?.objectValue)
            let rulesFile = s.dir.file("titles.yaml")
            try rules.write(toFile: rulesFile, atomically: true, encoding: .utf8)
            let eventFile = s.dir.file("case.json")
            var attributed = record
            attributed["attributes"] = .object(["type": "Case"])
            try JSONValue.object(["object": "Case", "isInsert": .bool(true), "old": .null, "new": .object([caseId: .object(attributed)])]).serialized()
                .write(toFile: eventFile, atomically: true, encoding: .utf8)
            let preview = try JSONParser.parseValue(try await s.cli("rules", "test", "--rules", rulesFile, "--event", eventFile, "--json"))
            #expect(preview["actions"]?.arrayValue?.first?["parameters"]?["title"]?.stringValue == title)
        }
    }

    @Test("Run Response Play is refused at import, pointing to incident workflows", arguments: [Backend.sqlite])
    func responsePlayRefused(_ backend: Backend) async throws {
        try await Stack.run(backend) { s in
            let file = s.dir.file("play.yaml")
            try """
                version: 1
                rulesets:
                  - name: plays
                    rules:
                      - name: play
                        object: Case
                        runOn: salesforce
                        conditions: [{ field: Priority, operator: equals, value: High }]
                        applyTo: linked
                        actions: [{ action: runResponsePlay, responsePlay: Major }]
                """.write(toFile: file, atomically: true, encoding: .utf8)
            let result = try await s.cliResult("rules", "import", file)
            #expect(result.status == 1)
            #expect(result.output.contains("runIncidentWorkflow"), "\(result.output)")
            #expect(try await s.cliResult("rules", "list").status == 1, "nothing was stored")
        }
    }
}
