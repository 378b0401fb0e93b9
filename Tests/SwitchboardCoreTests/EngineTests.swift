import Foundation
import Testing

@testable import SwitchboardCore

@Suite("Rule engine")
struct EngineTests {
    static let twoWay = """
        version: 1
        calendars:
          - name: support-hours
            timeZone: America/New_York
            weekly:
              monday: ["09:00-17:00"]
              tuesday: ["09:00-17:00"]
              wednesday: ["09:00-17:00"]
              thursday: ["09:00-17:00"]
              friday: ["09:00-17:00"]
            holidays: ["2026-12-25"]
        rulesets:
          - name: "SFDC > PD"
            rules:
              - name: create
                object: Case
                runOn: salesforce
                conditions:
                  - { field: Priority, operator: equals, value: High }
                applyTo: new
                actions:
                  - { action: createIncident, service: PSVC001, urgency: high, priority: P1, title: { prefix: "Case ", fields: [CaseNumber, Subject] } }
                  - { action: addResponders, users: [PUSER02], message: "Case {{CaseNumber}} needs you" }
              - name: escalate linked
                object: Case
                runOn: salesforce
                conditions:
                  - { field: IsEscalated, operator: changes, to: true }
                applyTo: linked
                actions:
                  - { action: setPriority, priority: P1 }
                  - { action: setUrgency, urgency: high }
                  - { action: reassign, escalationPolicy: PEP0002 }
                  - { action: runIncidentWorkflow, workflow: PWF0001 }
                  - { action: runAutomationAction, automationAction: PAA0001 }
                  - { action: setField, field: Status, value: Escalated }
              - name: close
                object: Case
                runOn: salesforce
                conditions:
                  - { field: Status, operator: changes, to: Closed }
                applyTo: linked
                actions:
                  - { action: resolve, resolution: "Closed as {{Reason}}" }
              - name: bridge
                object: Case
                runOn: salesforce
                conditions:
                  - { field: Bridge_URL__c, operator: changes }
                applyTo: linked
                actions:
                  - { action: setIncidentConference, field: Bridge_URL__c }
                  - { action: setIncidentDescription, field: Description }
          - name: "PD > SFDC"
            rules:
              - name: ack
                object: Case
                runOn: pagerduty
                conditions:
                  - { field: pagerduty.eventType, operator: equals, value: Acknowledge }
                applyTo: linked
                actions:
                  - { action: setField, field: Status, value: "Working ({{pagerduty.agent}})" }
              - name: new case
                object: Case
                runOn: pagerduty
                match: all
                conditions:
                  - { field: pagerduty.eventType, operator: equals, value: Trigger }
                  - { field: pagerduty.serviceName, operator: equals, value: XYZ }
                applyTo: new
                actions:
                  - { action: createRecord, fields: { Origin: PagerDuty } }
                  - { action: setField, field: Subject, value: "{{pagerduty.title}}" }
                  - { action: setField, field: Status, value: New }
                  - { action: acknowledge }
        """

    let engine: RuleEngine

    init() throws {
        engine = RuleEngine(document: try rules(Self.twoWay))
    }

    @Test("A new high-priority case creates an incident with the custom title, and responders go to that incident")
    func createOnInsert() throws {
        let event = inserted(["Priority": .picklist(["High"]), "CaseNumber": .text("00001026"), "Subject": .text("Printer on fire"), "Description": .text("Smoke")])
        let result = engine.evaluate(event, links: [], now: t0)
        #expect(result.actions.map(\.action) == [.createIncident, .addResponders])
        let create = result.actions[0]
        #expect(create.parameters["title"] == .string("Case 00001026 Printer on fire"))
        #expect(create.parameters["service"] == .string("PSVC001"))
        #expect(create.parameters["priority"] == .string("P1"))
        #expect(create.parameters["description"] == .string("Smoke"))
        #expect(create.parameters["incidentKey"] == .string("sf:\(caseId)"))
        #expect(create.target == .creation)
        #expect(create.recordId == caseId)
        let responders = result.actions[1]
        #expect(responders.target == .createdIncident(object: "Case", recordId: caseId))
        #expect(responders.parameters["message"] == .string("Case 00001026 needs you"))
        #expect(responders.parameters["users"] == .array(["PUSER02"]))
    }

    @Test("No incident is created when the record already has one linked")
    func createOnlyIfNoneLinked() {
        let event = inserted(["Priority": .picklist(["High"])])
        let result = engine.evaluate(event, links: [Link(incidentId: "PEXIST1", object: "Case", recordId: caseId)], now: t0)
        #expect(result.actions.isEmpty)
        let verdict = result.rule("create")
        #expect(verdict?.matched == true)
        #expect(verdict?.skippedActions.first?.reason.contains("PEXIST1") == true)
    }

    @Test("applyTo new ignores updates; applyTo linked acts on every linked incident")
    func scopes() throws {
        let update = updated(from: ["Priority": .picklist(["High"]), "IsEscalated": .boolean(false)], to: ["Priority": .picklist(["High"]), "IsEscalated": .boolean(true)])
        let links = [Link(incidentId: "PB00002", object: "Case", recordId: caseId), Link(incidentId: "PA00001", object: "Case", recordId: caseId),
                     Link(incidentId: "POTHER1", object: "Case", recordId: "5003000000D8cuJAAR")]
        let result = engine.evaluate(update, links: links, now: t0)
        #expect(result.rule("create")?.considered == false)
        #expect(result.rule("create")?.reason?.contains("new records only") == true)
        let linked = result.actions.filter { $0.rule == "escalate linked" }
        // Five incident actions on each of the two linked incidents (sorted), then the record's own field.
        #expect(linked.map(\.action) == [.setPriority, .setPriority, .setUrgency, .setUrgency, .reassign, .reassign, .runIncidentWorkflow, .runIncidentWorkflow,
                                         .runAutomationAction, .runAutomationAction, .setField])
        #expect(linked.prefix(2).map(\.incidentId) == ["PA00001", "PB00002"])
        #expect(linked[4].parameters["escalationPolicy"] == .string("PEP0002"))
        #expect(linked.last?.target == .record(object: "Case", id: caseId))
        #expect(linked.last?.parameters["value"] == .string("Escalated"))
        // Without links, the linked rule matches but has nothing to act on.
        let alone = engine.evaluate(update, links: [], now: t0)
        #expect(alone.actions.filter { $0.action != .setField }.isEmpty)
        #expect(alone.rule("escalate linked")?.skippedActions.first?.reason == "the record has no linked incidents")
    }

    @Test("Closing the case resolves linked incidents with a resolution note")
    func resolve() {
        let result = engine.evaluate(
            updated(from: ["Status": .picklist(["Working"])], to: ["Status": .picklist(["Closed"]), "Reason": .text("Fixed")]),
            links: [Link(incidentId: "PA00001", object: "Case", recordId: caseId)], now: t0)
        #expect(result.actions.map(\.action) == [.resolve])
        #expect(result.actions[0].parameters["resolution"] == .string("Closed as Fixed"))
        #expect(result.actions[0].incidentId == "PA00001")
    }

    @Test("Conference bridge and description are taken from the record's fields")
    func bridge() {
        let result = engine.evaluate(
            updated(from: [:], to: ["Bridge_URL__c": .text("https://meet.example.com/x"), "Description": .text("Printer smoke")]),
            links: [Link(incidentId: "PA00001", object: "Case", recordId: caseId)], now: t0)
        #expect(result.actions.map(\.action) == [.setIncidentConference, .setIncidentDescription])
        #expect(result.actions[0].parameters["conferenceUrl"] == .string("https://meet.example.com/x"))
        #expect(result.actions[1].parameters["description"] == .string("Printer smoke"))
    }

    @Test("An acknowledgement updates every linked case, with templates over incident fields")
    func acknowledge() throws {
        var body = webhook("incident.acknowledged", status: "acknowledged")
        if case .object(var o) = body, case .object(var e)? = o["event"] {
            e["agent"] = .object(["id": "PUSER01", "type": "user_reference", "summary": "Maeve"])
            o["event"] = .object(e)
            body = .object(o)
        }
        let links = [Link(incidentId: "PINC001", object: "Case", recordId: caseId), Link(incidentId: "PINC001", object: "Incident", recordId: "0Ux000000000001AAA")]
        let result = engine.evaluate(try pdEvent(body), links: links, now: t0)
        #expect(result.actions.count == 1)
        #expect(result.actions[0].target == .record(object: "Case", id: caseId))
        #expect(result.actions[0].parameters["value"] == .string("Working (Maeve)"))
    }

    @Test("An incident triggered on XYZ creates a Case with the setField values folded in, then acknowledges")
    func createRecord() throws {
        let result = engine.evaluate(try pdEvent(webhook("incident.triggered")), links: [], now: t0)
        #expect(result.actions.map(\.action) == [.createRecord, .acknowledge])
        let create = result.actions[0]
        #expect(create.parameters["object"] == .string("Case"))
        #expect(create.parameters["fields"] == .object(["Origin": "PagerDuty", "Subject": "Checkout is down", "Status": "New"]))
        #expect(result.actions[1].incidentId == "PINC001")
        // The same event on another service does nothing; a non-trigger event is not considered for `new`.
        #expect(engine.evaluate(try pdEvent(webhook("incident.triggered", service: ("PSVC002", "ABC"))), links: [], now: t0).actions.isEmpty)
        let ack = engine.evaluate(try pdEvent(webhook("incident.acknowledged")), links: [], now: t0)
        #expect(ack.rule("new case")?.considered == false)
        // A case already linked to the incident is not created twice.
        let linked = engine.evaluate(try pdEvent(webhook("incident.triggered")), links: [Link(incidentId: "PINC001", object: "Case", recordId: caseId)], now: t0)
        #expect(linked.actions.map(\.action) == [.acknowledge])
    }

    @Test("PagerDuty `changes` compares with the previous snapshot, or trusts the event type without one")
    func pagerDutyChanges() throws {
        let doc = try rules("""
            rulesets:
              - name: s
                rules:
                  - name: priority raised
                    object: Case
                    runOn: pagerduty
                    conditions: [{ field: pagerduty.priority, operator: changes, to: P1 }]
                    applyTo: linked
                    actions: [{ action: setField, field: Priority, value: High }]
                  - name: urgency changed
                    object: Case
                    runOn: pagerduty
                    conditions: [{ field: pagerduty.urgency, operator: changes, from: low, to: high }]
                    applyTo: linked
                    actions: [{ action: setField, field: Priority, value: Medium }]
            """)
        let engine = RuleEngine(document: doc)
        let links = [Link(incidentId: "PINC001", object: "Case", recordId: caseId)]
        var before = IncidentSnapshot(id: "PINC001", title: "Checkout is down", status: "triggered")
        before.priority = PagerDutyReference(id: "PPRI003", summary: "P3")
        before.urgency = "low"
        let withSnapshot = engine.evaluate(try pdEvent(webhook("incident.priority_updated"), previous: before), links: links, now: t0)
        #expect(withSnapshot.rule("priority raised")?.matched == true)
        #expect(withSnapshot.rule("urgency changed")?.matched == true)
        before.priority = PagerDutyReference(id: "PPRI001", summary: "P1")
        let unchanged = engine.evaluate(try pdEvent(webhook("incident.priority_updated"), previous: before), links: links, now: t0)
        #expect(unchanged.rule("priority raised")?.matched == false)
        let noSnapshot = engine.evaluate(try pdEvent(webhook("incident.priority_updated")), links: links, now: t0)
        #expect(noSnapshot.rule("priority raised")?.matched == true)
        #expect(noSnapshot.rule("urgency changed")?.matched == false)
        #expect(noSnapshot.rule("priority raised")?.conditions.first?.note?.contains("no earlier snapshot") == true)
    }

    @Test("Each seed PagerDuty condition field can drive a rule", arguments: [
        ("pagerduty.eventType", "equals", "Acknowledge"), ("pagerduty.title", "contains", "checkout"), ("pagerduty.status", "equals", "Acknowledged"),
        ("pagerduty.service", "equals", "PSVC001"), ("pagerduty.serviceName", "equals", "XYZ"), ("pagerduty.escalationPolicy", "equals", "PEP0001"),
        ("pagerduty.escalationPolicyName", "startsWith", "Def"), ("pagerduty.priority", "equals", "P1"), ("pagerduty.urgency", "equals", "high"),
    ])
    func seedFields(field: String, op: String, value: String) throws {
        let doc = try rules("""
            rulesets:
              - name: s
                rules:
                  - name: r
                    object: Case
                    runOn: pagerduty
                    conditions: [{ field: \(field), operator: \(op), value: "\(value)" }]
                    applyTo: linked
                    actions: [{ action: setField, field: Status, value: Working }]
            """)
        let engine = RuleEngine(document: doc)
        let links = [Link(incidentId: "PINC001", object: "Case", recordId: caseId)]
        #expect(engine.evaluate(try pdEvent(webhook("incident.acknowledged", status: "acknowledged")), links: links, now: t0).actions.count == 1)
        let other = webhook(
            "incident.resolved", status: "resolved", title: "Billing slow", service: ("PSVC009", "ABC"), policy: ("PEP0009", "Ops"),
            priority: ("PPRI005", "P5"), urgency: "low")
        #expect(engine.evaluate(try pdEvent(other), links: links, now: t0).actions.isEmpty)
    }

    @Test("match any passes on one condition; match all needs every one; later conditions are marked skipped")
    func matchModes() throws {
        func doc(_ match: String) throws -> RuleEngine {
            RuleEngine(document: try rules("""
                rulesets:
                  - name: s
                    rules:
                      - name: r
                        object: Case
                        runOn: salesforce
                        match: \(match)
                        conditions:
                          - { field: Priority, operator: equals, value: High }
                          - { field: Origin, operator: equals, value: Web }
                        applyTo: linked
                        actions: [{ action: setField, field: Status, value: Escalated }]
                """))
        }
        let event = updated(from: [:], to: ["Priority": .picklist(["High"]), "Origin": .picklist(["Phone"])])
        let any = try doc("any").evaluate(event, links: [], now: t0)
        #expect(any.rules[0].matched)
        #expect(any.rules[0].conditions.map(\.outcome) == [.passed, .skipped])
        let all = try doc("all").evaluate(event, links: [], now: t0)
        #expect(!all.rules[0].matched)
        #expect(all.rules[0].conditions.map(\.outcome) == [.passed, .failed])
    }

    @Test("Disabled rulesets and rules never fire")
    func disabled() throws {
        let text = """
            rulesets:
              - name: off
                enabled: false
                rules:
                  - { name: a, object: Case, runOn: salesforce, applyTo: linked, actions: [{ action: setField, field: Status, value: X }] }
              - name: on
                rules:
                  - { name: b, enabled: false, object: Case, runOn: salesforce, applyTo: linked, actions: [{ action: setField, field: Status, value: X }] }
                  - { name: c, object: Case, runOn: salesforce, applyTo: linked, actions: [{ action: setField, field: Status, value: Y }] }
            """
        let result = RuleEngine(document: try rules(text)).evaluate(updated(from: [:], to: [:]), links: [], now: t0)
        #expect(result.actions.map(\.rule) == ["c"])
        #expect(result.rule("a")?.reason == "the ruleset is disabled")
        #expect(result.rule("b")?.reason == "the rule is disabled")
    }

    @Test("setField is skipped when the record already holds the value (no pointless write, no loop)")
    func setFieldNoOp() throws {
        let doc = try rules("""
            rulesets:
              - name: s
                rules:
                  - { name: r, object: Case, runOn: salesforce, applyTo: linked, actions: [{ action: setField, field: Status, value: Escalated }] }
            """)
        let result = RuleEngine(document: doc).evaluate(updated(from: [:], to: ["Status": .picklist(["Escalated"])]), links: [], now: t0)
        #expect(result.actions.isEmpty)
        #expect(result.rules[0].skippedActions.first?.reason == "Status already is \"Escalated\"")
    }

    @Test("Rules for other objects and directions are not considered; the Incident object and custom objects work alike")
    func objects() throws {
        let doc = try rules("""
            rulesets:
              - name: s
                rules:
                  - name: incidents
                    object: Incident
                    runOn: salesforce
                    conditions: [{ field: Priority, operator: equals, value: Critical }]
                    applyTo: new
                    actions: [{ action: createIncident, service: PSVC001 }]
                  - name: custom
                    object: Outage__c
                    runOn: salesforce
                    conditions: [{ field: Severity__c, operator: greaterOrEqual, value: 3 }]
                    applyTo: new
                    actions: [{ action: createIncident, service: PSVC002, title: "Outage {{Name}} ({{Severity__c}})" }]
            """)
        let engine = RuleEngine(document: doc)
        let incident = engine.evaluate(inserted(["Priority": .picklist(["Critical"]), "Subject": .text("Email down")], object: "Incident", id: "0Ux000000000001AAA"), links: [], now: t0)
        #expect(incident.actions.map(\.parameters["title"]) == [.string("Email down")])
        #expect(incident.rule("custom")?.reason?.contains("Outage__c") == true)
        let custom = engine.evaluate(inserted(["Severity__c": .number(4), "Name": .text("EU-1")], object: "Outage__c", id: "a01000000000001AAA"), links: [], now: t0)
        #expect(custom.actions.first?.parameters["title"] == .string("Outage EU-1 (4)"))
        #expect(engine.evaluate(inserted(["Priority": .picklist(["Critical"])]), links: [], now: t0).actions.isEmpty)
    }

    @Test("The engine is deterministic: the same input gives the same output")
    func deterministic() throws {
        let event = updated(from: ["IsEscalated": .boolean(false)], to: ["IsEscalated": .boolean(true), "Status": .picklist(["Closed"])])
        let links = (0..<20).map { Link(incidentId: "P\($0 * 7 % 20)", object: "Case", recordId: caseId) }
        let first = engine.evaluate(event, links: links, now: t0)
        for _ in 0..<10 {
            #expect(engine.evaluate(event, links: links.shuffled(), now: t0) == first)
        }
    }
}

@Suite("Business hours")
struct BusinessHoursTests {
    static let calendar = BusinessCalendar(
        name: "ny", timeZone: TimeZone(identifier: "America/New_York")!,
        weekly: [.monday: [.init(start: 540, end: 1020)], .friday: [.init(start: 540, end: 780), .init(start: 840, end: 1020)],
                 .saturday: [.init(start: 1320, end: 120)]],
        holidays: [LocalDate("2026-12-25")!])

    @Test("Open hours follow the local clock across a DST change", arguments: [
        // 13:30Z is 08:30 EST on Monday 2026-03-02 (closed) but 09:30 EDT on Monday 2026-03-09 (open).
        ("2026-03-02T13:30:00Z", false), ("2026-03-09T13:30:00Z", true),
        // 21:30Z is 17:30 EDT on Monday 2026-10-26 (closed) but 16:30 EST on Monday 2026-11-02 (open), the day after DST ends.
        ("2026-10-26T21:30:00Z", false), ("2026-11-02T21:30:00Z", true), ("2026-11-02T22:00:00Z", false), ("2026-10-26T20:59:00Z", true),
        ("2026-10-26T21:00:00Z", false),
    ])
    func dst(when: String, open: Bool) {
        #expect(Self.calendar.isOpen(at: Instant(iso8601: when)!) == open)
    }

    @Test("Split days, holidays, closed days and overnight hours", arguments: [
        ("2026-11-27T18:30:00Z", false),  // Friday 13:30 EST: lunch break
        ("2026-11-27T19:00:00Z", true),  // Friday 14:00 EST
        ("2026-12-25T15:00:00Z", false),  // Christmas, a Friday, 10:00 EST
        ("2026-11-24T15:00:00Z", false),  // Tuesday: no hours
        ("2026-11-29T04:00:00Z", true),  // Saturday 23:00 EST, overnight into Sunday
        ("2026-11-29T06:30:00Z", true),  // Sunday 01:30 EST, still Saturday's night
        ("2026-11-29T07:00:00Z", false),  // Sunday 02:00 EST
    ])
    func days(when: String, open: Bool) {
        #expect(Self.calendar.isOpen(at: Instant(iso8601: when)!) == open)
    }

    @Test("Within and outside business hours in rules, with and without a field")
    func conditions() throws {
        let doc = try rules("""
            calendars:
              - { name: support, timeZone: Europe/Berlin, weekly: { tuesday: ["09:00-17:00"] } }
            rulesets:
              - name: s
                rules:
                  - name: after hours by field
                    object: Case
                    runOn: salesforce
                    conditions: [{ field: CreatedDate, operator: outsideBusinessHours, value: support }]
                    applyTo: new
                    actions: [{ action: createIncident, service: P1 }]
                  - name: in hours by event time
                    object: Case
                    runOn: salesforce
                    conditions: [{ operator: withinBusinessHours, value: support }]
                    applyTo: new
                    actions: [{ action: setField, field: Status, value: Working }]
            """)
        let engine = RuleEngine(document: doc)
        // Tuesday 2026-11-24 15:00Z is 16:00 in Berlin: open. 17:00Z is 18:00: closed.
        let event = inserted(["CreatedDate": .dateTime(Instant(iso8601: "2026-11-24T17:00:00Z")!)])
        let result = engine.evaluate(event, links: [], now: Instant(iso8601: "2026-11-24T15:00:00Z")!)
        #expect(result.rule("after hours by field")?.matched == true)
        #expect(result.rule("in hours by event time")?.matched == true)
        #expect(result.rule("after hours by field")?.conditions.first?.note?.contains("18:00 in Europe/Berlin is closed") == true)
    }
}

@Suite("Incident titles")
struct TitleTests {
    @Test("Prefix plus up to three fields; blank fields are left out")
    func custom() {
        let record = caseRecord(["CaseNumber": .text("00001026"), "Subject": .text("Printer on fire"), "Priority": .picklist(["High"])])
        #expect(TitleBuilder.title(IncidentTitle(prefix: "Case ", fields: ["CaseNumber", "Subject"]), record: record) == "Case 00001026 Printer on fire")
        #expect(TitleBuilder.title(IncidentTitle(prefix: "[SF] ", fields: ["Priority", "Missing__c", "Subject"], separator: " | "), record: record) == "[SF] High | Printer on fire")
        #expect(TitleBuilder.title(nil, record: record) == "Printer on fire")
        #expect(TitleBuilder.title(nil, record: caseRecord(["CaseNumber": .text("00001026")])) == "Case 00001026")
        #expect(TitleBuilder.title(IncidentTitle(template: Template("{{CaseNumber}}: {{ Subject }}")), record: record) == "00001026: Printer on fire")
    }

    @Test("Titles are truncated to 1,024 characters without splitting a character", arguments: [
        String(repeating: "a", count: 2000), String(repeating: "é", count: 1500), String(repeating: "😀", count: 1100),
        String(repeating: "e\u{301}", count: 600), String(repeating: "👩‍👩‍👧‍👦", count: 300), "x" + String(repeating: "🇫🇷", count: 700),
    ])
    func truncation(subject: String) {
        let title = TitleBuilder.title(IncidentTitle(prefix: "Case ", fields: ["Subject"]), record: caseRecord(["Subject": .text(subject)]))
        #expect(title.unicodeScalars.count <= 1024)
        #expect(title.count <= 1024)
        #expect(title.unicodeScalars.count > 1024 - 12)
        #expect(("Case " + subject).hasPrefix(title))
        // Every character of the title is a whole character of the source.
        #expect(Array(("Case " + subject).prefix(title.count)) == Array(title))
    }

    @Test("A short title is left alone")
    func short() {
        #expect(TitleBuilder.truncate("Short") == "Short")
        #expect(TitleBuilder.truncate(String(repeating: "a", count: 1024)).count == 1024)
    }
}
