import Foundation
import Logging
import SwitchboardCore
import SwitchboardSimulators
import SwitchboardStorage
import SwitchboardTestSupport
import Testing

/// The seed FAQ's two examples and the walkthrough's object mappings, in one set of rules.
let faqRules = """
    version: 1
    \(calendars)
    rulesets:
      - name: "SFDC > PD"
        rules:
          - name: Page support on high priority cases after hours
            object: Case
            runOn: salesforce
            conditions:
              - { field: Priority, operator: equals, value: High }
              - { field: CreatedDate, operator: outsideBusinessHours, value: never-open }
            applyTo: new
            actions:
              - action: createIncident
                service: Customer Support
                urgency: high
                title: { prefix: "Case ", fields: [CaseNumber, Subject] }
      - name: "PD > SFDC"
        rules:
          - name: Open a case for incidents on XYZ
            object: Case
            runOn: pagerduty
            conditions:
              - { field: pagerduty.eventType, operator: equals, value: Trigger }
              - { field: pagerduty.serviceName, operator: equals, value: XYZ }
            applyTo: new
            actions:
              - action: createRecord
              - { action: setField, field: Subject, value: "{{pagerduty.title}}" }
              - { action: setField, field: Status, value: New }
              - { action: setField, field: Origin, value: Web }
              - { action: setField, field: Priority, value: High }
          - name: Follow acknowledgements
            object: Case
            runOn: pagerduty
            conditions: [{ field: pagerduty.eventType, operator: equals, value: Acknowledge }]
            applyTo: linked
            actions: [{ action: setField, field: Status, value: Working }]
          - name: Close the case when the incident resolves
            object: Case
            runOn: pagerduty
            conditions: [{ field: pagerduty.eventType, operator: equals, value: Resolve }]
            applyTo: linked
            actions: [{ action: setField, field: Status, value: Closed }]
    """

/// The seed's walkthrough, FAQ and object mappings, each as a user meets it, through public boundaries only.
@Suite("End to end: the seed's walkthrough, FAQ and mappings", .serialized)
struct SeedScenarioTests {
    @Test("Connections: PagerDuty (key, region, integration user, webhook) and an org, as the summary shows them", arguments: Backend.allCases)
    func connections(_ backend: Backend) async throws {
        try await Stack.run(backend) { s in
            let summary = try await s.cliJSON("status")
            #expect(summary["pagerDuty"]?["from"]?.stringValue == Stack.integrationUser)
            #expect(summary["pagerDuty"]?["region"]?.stringValue == "us")
            #expect(summary["pagerDuty"]?["webhook"]?.stringValue?.hasSuffix("active") == true)
            #expect(summary["salesforce"]?.arrayValue?.first?["orgId"]?.stringValue == s.salesforceOptions.orgId)
            #expect(summary["salesforce"]?.arrayValue?.first?["apiBudget"]?["max"] != nil)
            #expect(summary["ruleEngine"] == .bool(true))
            let subscriptions = try await s.pagerDutyState()["subscriptions"]?.arrayValue ?? []
            #expect(subscriptions.count == 1)
            #expect(subscriptions.first?["delivery_method"]?["url"]?.stringValue == s.switchboardURL + "/webhooks/pagerduty")
            // The running server reports the org it captures from.
            let status = try JSONParser.parseValue(try #require(await HTTP.get(s.switchboardURL + "/status")).body)
            #expect(status["salesforce"]?.arrayValue?.first?["capture"]?.stringValue == "trigger", "\(status)")
        }
    }

    @Test("Test ruleset: trigger an incident in PagerDuty, find the signed delivery in the logs", arguments: Backend.allCases)
    func testRuleset(_ backend: Backend) async throws {
        try await Stack.run(backend, rules: faqRules) { s in
            let id = try await s.trigger(service: "Customer Support", title: "Is the integration working?")
            try await s.eventually("the delivery in the logs") { !(try await s.logs("--category", "intake", "--incident", id)).isEmpty }
            let entry = try #require(try await s.logs("--category", "intake", "--incident", id).first)
            #expect(entry["message"]?.stringValue?.contains("incident.triggered") == true)
            #expect(entry["payload"]?.stringValue?.contains("Is the integration working?") == true)
            let events = try await s.cliJSON("events", "list").arrayValue ?? []
            #expect(events.contains { $0["source"]?.stringValue == "pagerduty" })
        }
    }

    @Test("FAQ: a high-priority case after hours pages on-call; the case follows the incident; notes reach Feed and Comments", arguments: Backend.allCases)
    func afterHoursRoundTrip(_ backend: Backend) async throws {
        try await Stack.run(backend, rules: faqRules, settings: [("mapping.notesToFeed", "true"), ("mapping.notesToComment", "true")]) { s in
            let caseId = try await s.create("Case", ["Subject": "Checkout fails for EU customers", "Priority": "High", "Status": "New", "Origin": "Web"])
            let quiet = try await s.create("Case", ["Subject": "Password reset", "Priority": "Low", "Status": "New", "Origin": "Web"])
            try await s.eventually("the incident") { try await s.links(record: caseId).count == 1 }
            let id = try #require(try await s.links(record: caseId).first?["incident"]?.stringValue)
            let number = try #require(try await s.record("Case", caseId)?["CaseNumber"]?.stringValue)
            #expect(try await s.incident(id)["title"]?.stringValue == "Case \(number) Checkout fails for EU customers")
            try await s.act(id, "acknowledge")
            try await s.eventually("the case is Working") { try await s.record("Case", caseId)?["Status"]?.stringValue == "Working" }
            try await s.act(id, "note", "Rolled back the 14:02 deploy")
            try await s.eventually("the note in the Feed and as a Comment") {
                let feed = try await s.children("FeedItem", of: caseId).contains { $0["Body"]?.stringValue?.contains("Rolled back the 14:02 deploy") == true }
                let comment = try await s.children("CaseComment", of: caseId).contains { $0["CommentBody"]?.stringValue?.contains("Rolled back the 14:02 deploy") == true }
                return feed && comment
            }
            try await s.act(id, "resolve")
            try await s.eventually("the case closes") { try await s.record("Case", caseId)?["Status"]?.stringValue == "Closed" }
            try await s.settle()
            #expect(try await s.links(record: quiet).isEmpty)
            #expect(try await s.incidents().count == 1)
            // The comment Switchboard wrote did not come back as a second note.
            #expect(try await s.notes(id).count == 1)
            #expect(try await s.deadLetters().isEmpty)
        }
    }

    @Test("FAQ: an incident on XYZ opens a case with every required field, linked", arguments: Backend.allCases)
    func caseForXYZ(_ backend: Backend) async throws {
        try await Stack.run(backend, rules: faqRules) { s in
            let id = try await s.trigger(service: "XYZ", title: "Payments API returning 500s", user: "ravi@example.com")
            _ = try await s.trigger(service: "Customer Support", title: "Not on XYZ")
            try await s.eventually("the case") { try await s.cliJSON("links", "list", "--incident", id).arrayValue?.count == 1 }
            let link = try #require(try await s.cliJSON("links", "list", "--incident", id).arrayValue?.first)
            let recordId = try #require(link["record"]?.stringValue)
            let record = try #require(try await s.record("Case", recordId))
            #expect(record["Subject"]?.stringValue == "Payments API returning 500s")
            #expect(record["Status"]?.stringValue == "New")
            #expect(record["Origin"]?.stringValue == "Web")
            #expect(record["Priority"]?.stringValue == "High")
            try await s.settle()
            #expect(try await s.records("Case").count == 1, "one case, for XYZ only; the create's own trigger post was an echo")
            try await s.act(id, "resolve")
            try await s.eventually("closed") { try await s.record("Case", recordId)?["Status"]?.stringValue == "Closed" }
        }
    }

    @Test("Object mappings: notes to the Case Feed only, then to Case Comments only", arguments: Backend.allCases)
    func noteMappings(_ backend: Backend) async throws {
        try await Stack.run(backend, rules: faqRules, settings: [("mapping.notesToFeed", "true")]) { s in
            let caseId = try await s.create("Case", ["Subject": "Mapping", "Priority": "High"])
            try await s.eventually("the incident") { try await s.links(record: caseId).count == 1 }
            let id = try #require(try await s.links(record: caseId).first?["incident"]?.stringValue)
            try await s.act(id, "note", "first note")
            try await s.eventually("the Feed post") { try await s.children("FeedItem", of: caseId).count == 1 }
            try await s.cli("settings", "set", "mapping.notesToFeed", "false")
            try await s.cli("settings", "set", "mapping.notesToComment", "true")
            try await Task.sleep(for: .milliseconds(1200))
            try await s.act(id, "note", "second note")
            try await s.eventually("the Comment") { try await s.children("CaseComment", of: caseId).count == 1 }
            try await s.settle()
            #expect(try await s.children("FeedItem", of: caseId).count == 1)
            #expect(try await s.children("CaseComment", of: caseId).first?["CommentBody"]?.stringValue?.contains("second note") == true)
            let mappings = try await s.cliJSON("status")["mappings"]
            #expect(mappings?["notesToFeed"] == .bool(false))
            #expect(mappings?["notesToComment"] == .bool(true))
        }
    }

    @Test("Object mappings: the case description becomes the new incident's, unless switched off", arguments: Backend.allCases)
    func descriptionSync(_ backend: Backend) async throws {
        try await Stack.run(backend, rules: pagingRules(conditions: "[{ field: Priority, operator: equals, value: High }]")) { s in
            let synced = try await s.create("Case", ["Subject": "desc on", "Priority": "High", "Description": "Customers in the EU cannot pay"])
            try await s.eventually("the incident") { try await s.links(record: synced).count == 1 }
            let first = try #require(try await s.links(record: synced).first?["incident"]?.stringValue)
            #expect(try await s.incident(first)["body"]?["details"]?.stringValue == "Customers in the EU cannot pay")
            try await s.cli("settings", "set", "mapping.syncDescription", "false")
            try await Task.sleep(for: .milliseconds(1200))
            let unsynced = try await s.create("Case", ["Subject": "desc off", "Priority": "High", "Description": "Not copied"])
            try await s.eventually("the second incident") { try await s.links(record: unsynced).count == 1 }
            let second = try #require(try await s.links(record: unsynced).first?["incident"]?.stringValue)
            #expect(try await s.incident(second)["body"]?["details"]?.stringValue != "Not copied")
        }
    }

    @Test("Triggers on case comments: a new comment becomes a note on the linked incident, and nothing echoes", arguments: Backend.allCases)
    func caseCommentsBecomeNotes(_ backend: Backend) async throws {
        try await Stack.run(backend, rules: faqRules, settings: [("mapping.notesToComment", "true")]) { s in
            let caseId = try await s.create("Case", ["Subject": "Comments", "Priority": "High"])
            try await s.eventually("the incident") { try await s.links(record: caseId).count == 1 }
            let id = try #require(try await s.links(record: caseId).first?["incident"]?.stringValue)
            // PagerDuty answers late: the note's webhook comes back before Switchboard has recorded its own write.
            let slow = await HTTP.send("POST", s.pagerDutyURL + "/_simulator/delay", json: #"{"milliseconds": 700, "after": true}"#)
            #expect(slow?.status == 200)
            _ = try await s.create("CaseComment", ["ParentId": .string(caseId), "CommentBody": "Customer confirms it started at 14:00"])
            try await s.eventually("the note") { try await s.notes(id).contains("Customer confirms it started at 14:00") }
            try await s.settle()
            _ = await HTTP.send("POST", s.pagerDutyURL + "/_simulator/delay", json: #"{"milliseconds": 0, "after": true}"#)
            // The note's webhook was Switchboard's own: no Case Comment copied back.
            #expect(try await s.children("CaseComment", of: caseId).count == 1)
            #expect(try await s.notes(id).count == 1)
            // A comment on a case with no incident goes nowhere; switched off, comments are not copied.
            let lonely = try await s.create("Case", ["Subject": "No incident", "Priority": "Low"])
            _ = try await s.create("CaseComment", ["ParentId": .string(lonely), "CommentBody": "nobody hears this"])
            try await s.cli("settings", "set", "mapping.commentsToNotes", "false")
            try await Task.sleep(for: .milliseconds(1200))
            _ = try await s.create("CaseComment", ["ParentId": .string(caseId), "CommentBody": "not copied"])
            try await s.settle()
            #expect(try await s.notes(id) == ["Customer confirms it started at 14:00"])
            #expect(try await s.deadLetters().isEmpty)
        }
    }

    @Test("The Incident object instead of Case, and Opportunity through the generic trigger", arguments: Backend.allCases)
    func otherObjects(_ backend: Backend) async throws {
        let rules = """
            version: 1
            rulesets:
              - name: objects
                rules:
                  - name: page incidents
                    object: Incident
                    runOn: salesforce
                    conditions: [{ field: Priority, operator: equals, value: Critical }]
                    applyTo: new
                    actions: [{ action: createIncident, service: Customer Support, title: { prefix: "Incident ", fields: [Subject] } }]
                  - name: page deals
                    object: Opportunity
                    runOn: salesforce
                    conditions: [{ field: StageName, operator: equals, value: Needs Analysis }]
                    applyTo: new
                    actions: [{ action: createIncident, service: Customer Support, title: { prefix: "Deal ", fields: [Name] } }]
                  - name: close incidents
                    object: Incident
                    runOn: pagerduty
                    conditions: [{ field: pagerduty.eventType, operator: equals, value: Resolve }]
                    applyTo: linked
                    actions: [{ action: setField, field: Status, value: Resolved }]
                  - name: close deals
                    object: Opportunity
                    runOn: pagerduty
                    conditions: [{ field: pagerduty.eventType, operator: equals, value: Resolve }]
                    applyTo: linked
                    actions: [{ action: setField, field: StageName, value: Closed Won }]
            """
        try await Stack.run(backend, rules: rules) { s in
            let incident = try await s.create("Incident", ["Subject": "VPN down", "Priority": "Critical", "Status": "New", "Description": "The Paris office is offline"])
            let deal = try await s.create("Opportunity", ["Name": "Renewal ACME", "StageName": "Needs Analysis", "CloseDate": "2026-12-31"])
            try await s.eventually("both paged") { try await s.links().count == 2 }
            for (object, id, field, closed) in [("Incident", incident, "Status", "Resolved"), ("Opportunity", deal, "StageName", "Closed Won")] {
                let link = try #require(try await s.links(record: id).first)
                #expect(link["object"]?.stringValue == object)
                try await s.act(try #require(link["incident"]?.stringValue), "resolve")
                try await s.eventually("the \(object) closed") { try await s.record(object, id)?[field]?.stringValue == closed }
            }
            #expect(Set(try await s.incidents().compactMap { $0["title"]?.stringValue }) == ["Incident VPN down", "Deal Renewal ACME"])
            // The seed's "sync Salesforce Incident description to PagerDuty Incident description".
            #expect(try await s.incidents(titled: "Incident VPN down").first?["body"]?["details"]?.stringValue == "The Paris office is offline")
        }
    }

    @Test("Logger: levels apply when writing; retention deletes what is older", arguments: Backend.allCases)
    func logger(_ backend: Backend) async throws {
        try await Stack.run(backend, rules: pagingRules(conditions: "[{ field: Priority, operator: equals, value: High }]"), settings: [("log.level", "error")]) { s in
            // Error level (set before the server started): a delivery and a decision are not logged; a failure is.
            _ = try await s.create("Case", ["Subject": "quiet", "Priority": "High"])
            try await s.eventually("the incident") { try await s.incidents().count == 1 }
            try await s.settle()
            let quiet = try await s.logs()
            #expect(quiet.allSatisfy { $0["level"]?.stringValue == "error" }, "\(quiet.map { $0["message"] ?? .null })")
            let refused = try #require(await HTTP.post(s.switchboardURL + "/webhooks/pagerduty", #"{"event": {}}"#))
            #expect(refused.status == 400, "unsigned")
            try await s.eventually("the refused delivery logged as an error") { !(try await s.logs("--level", "error")).isEmpty }

            // Debug: even a case no rule matches is logged, with the reason.
            try await s.cli("settings", "set", "log.level", "debug")
            // The server re-reads the logger settings every 2 s: cases created until then may go unlogged.
            var low = ""
            try await s.eventually("the debug entry") {
                low = try await s.create("Case", ["Subject": "debug me", "Priority": "Low"])
                try await Task.sleep(for: .milliseconds(500))
                return try await s.logs("--record", low).contains {
                    $0["level"]?.stringValue == "debug" && $0["message"]?.stringValue?.contains("no rule matched") == true
                }
            }
            let before = Set(try await s.logs().compactMap { $0["id"] })

            // Retention: entries older than the interval go. Time passing is simulated by back-dating every entry.
            try await s.backdateLogs(days: 10)
            let fresh = try await s.create("Case", ["Subject": "after backdating", "Priority": "Low"])
            try await s.eventually("a fresh entry") { !(try await s.logs("--record", fresh)).isEmpty }
            try await s.cli("settings", "set", "log.retentionDays", "7")
            try await s.eventually("the old entries deleted") { try await s.logs("--record", low).isEmpty }
            let after = try await s.logs()
            #expect(after.allSatisfy { !before.contains($0["id"] ?? .null) }, "every entry from before the back-dating is gone")
            #expect(!(try await s.logs("--record", fresh)).isEmpty, "recent entries stay")
            #expect(after.contains { $0["category"]?.stringValue == "retention" && $0["message"]?.stringValue?.contains("older than 7 days") == true })
        }
    }

    @Test("Remove extension: the engine stops, the webhook subscription goes, the org is forgotten", arguments: Backend.allCases)
    func removeExtension(_ backend: Backend) async throws {
        try await Stack.run(backend, rules: faqRules) { s in
            try await s.cli("pagerduty", "disconnect")
            #expect(try await s.pagerDutyState()["subscriptions"]?.arrayValue?.isEmpty == true)
            let summary = try await s.cliJSON("status")
            #expect(summary["ruleEngine"] == .bool(false))
            #expect(summary["pagerDuty"] == .null)
            try await Task.sleep(for: .milliseconds(1200))
            _ = try await s.create("Case", ["Subject": "after removal", "Priority": "High"])
            try await s.settle()
            #expect(try await s.incidents().isEmpty)

            try await s.cli("salesforce", "disconnect", "--org-id", s.salesforceOptions.orgId)
            #expect((try await s.cliJSON("status"))["salesforce"]?.arrayValue?.isEmpty == true)
            // The org's posts are refused once the running server has read the connections again (every 5 s).
            try await s.eventually("the org's posts refused", seconds: 15) {
                _ = try await s.create("Case", ["Subject": "refused", "Priority": "Low"])
                try await s.settle()
                let posts = try JSONParser.parseValue(try #require(await HTTP.get(s.salesforceURL + "/_simulator/trigger-posts")).body).arrayValue ?? []
                return posts.last?["status"] == .number(401)
            }
            #expect(!(try await s.logs("--level", "error", "--search", "is not connected")).isEmpty)
        }
    }

    @Test("Several Salesforce orgs on one PagerDuty account: each case pages, each closes in its own org", arguments: Backend.allCases)
    func severalOrgs(_ backend: Backend) async throws {
        try await Stack.run(backend, rules: faqRules) { s in
            var options = SalesforceSimulator.Options(orgId: "00D000000000002EAA", triggerSecret: "second-org-secret")
            options.consumerKey = "SECOND_ORG_KEY"
            let second = SalesforceSimulator(options: options)
            try await second.start()
            do {
                try await s.cli(
                    "salesforce", "connect", "--login-url", second.baseURL, "--auth", "client-credentials", "--consumer-key", options.consumerKey,
                    "--client-secret", options.clientSecret, "--trigger-secret", options.triggerSecret, "--capture", "trigger")
                let capture = await HTTP.send("POST", second.baseURL + "/_simulator/capture", json: #"{"mode":"trigger","url":"\#(s.switchboardURL)/webhooks/salesforce"}"#)
                #expect(capture?.status == 200)
                // Incidents on Payments API open a case in the second org, which the rule names.
                try await s.importRules(
                    faqRules + """

                              - name: Open a case in the second org for Payments API
                                object: Case
                                runOn: pagerduty
                                conditions: [{ field: pagerduty.serviceName, operator: equals, value: Payments API }]
                                applyTo: new
                                actions:
                                  - { action: createRecord, org: \(options.orgId) }
                                  - { action: setField, field: Subject, value: "{{pagerduty.title}}" }
                                  - { action: setField, field: Status, value: New }
                                  - { action: setField, field: Origin, value: Web }
                        """)
                let first = try await s.create("Case", ["Subject": "org one", "Priority": "High"])
                let created = try #require(await HTTP.send("POST", second.baseURL + "/_simulator/records/Case", json: #"{"Subject":"org two","Priority":"High"}"#))
                let other = try #require(try JSONParser.parseValue(created.body)["id"]?.stringValue)
                try await s.eventually("both paged") { try await s.links().count == 2 }
                #expect(try await s.links(record: other).first?["org"]?.stringValue == options.orgId)
                for link in try await s.links() { try await s.act(try #require(link["incident"]?.stringValue), "resolve") }
                try await s.eventually("both closed in their own org") {
                    let one = try await s.record("Case", first)?["Status"]?.stringValue
                    let reply = await HTTP.get(second.baseURL + "/_simulator/records/Case/\(other)")
                    let two = reply.flatMap { try? JSONParser.parseValue($0.body)["Status"]?.stringValue }
                    return one == "Closed" && two == "Closed"
                }
                let payments = try await s.trigger(service: "Payments API", title: "Card payments failing")
                try await s.eventually("a case in the second org") {
                    let reply = await HTTP.get(second.baseURL + "/_simulator/records/Case")
                    let cases = reply.flatMap { try? JSONParser.parseValue($0.body).arrayValue } ?? []
                    return cases.contains { $0["Subject"]?.stringValue == "Card payments failing" }
                }
                #expect(try await s.cliJSON("links", "list", "--incident", payments).arrayValue?.first?["org"]?.stringValue == options.orgId)
                #expect(try await s.records("Case").allSatisfy { $0["Subject"]?.stringValue != "Card payments failing" }, "not in the first org")
                #expect(try await s.deadLetters().isEmpty)
            } catch {
                await second.stop()
                throw error
            }
            await second.stop()
        }
    }
}

extension Stack {
    /// Moves every integration log entry `days` into the past, as if that much time had gone by.
    func backdateLogs(days: Int) async throws {
        var logger = Logger(label: "backdate")
        logger.logLevel = .critical
        let url = try #require(environment["SWITCHBOARD_DATABASE_URL"])
        try await withDatabase(url: url, logger: logger) { db in
            try await db.transaction { sql in
                try await sql.raw("UPDATE logs SET at = at - \(unsafeRaw: String(Int64(days) * 86_400_000))").run()
            }
        }
    }
}
