import Benchmark
import SwitchboardCore

/// One Case update against 1,000 enabled rules of 5 conditions each (the goal: under 1 ms per event).
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(metrics: [.wallClock, .cpuTotal, .mallocCountTotal, .throughput], maxDuration: .seconds(5))

    let engine = RuleEngine(document: BenchmarkFixtures.rules(count: 1000))
    let event = BenchmarkFixtures.caseUpdate()
    let links = [Link(incidentId: "PINC001", object: "Case", recordId: "5003000000D8cuIAAR")]
    let now = Instant(millisecondsSince1970: 1_795_000_000_000)

    Benchmark("evaluate: 1 event × 1,000 rules × 5 conditions") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(engine.evaluate(event, links: links, now: now))
        }
    }

    // Every delivery is parsed at intake and again when it is decided.
    let delivery = Array(BenchmarkFixtures.pagerDutyDelivery.utf8)
    Benchmark("parse: one PagerDuty webhook delivery (\(delivery.count) bytes) into values") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(try? JSONParser.parseValue(bytes: delivery))
        }
    }

    Benchmark("compile: 1,000 rules") { benchmark in
        let document = BenchmarkFixtures.rules(count: 1000)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            blackHole(RuleEngine(document: document))
        }
    }
}

enum BenchmarkFixtures {
    /// A webhook v3 delivery shaped like PagerDuty's incident.triggered.
    static let pagerDutyDelivery = """
        {"event":{"id":"01DEN1HNLBC1VITK192ETJ1MPJ","event_type":"incident.triggered","resource_type":"incident",\
        "occurred_at":"2026-11-24T03:00:00.000Z","agent":{"html_url":"https://acme.pagerduty.com/users/PLH1HKV",\
        "id":"PLH1HKV","self":"https://api.pagerduty.com/users/PLH1HKV","summary":"Tenex Engineer","type":"user_reference"},\
        "client":{"name":"PagerDuty"},"data":{"id":"PGR0VU2","type":"incident","self":"https://api.pagerduty.com/incidents/PGR0VU2",\
        "html_url":"https://acme.pagerduty.com/incidents/PGR0VU2","number":2,"status":"triggered","incident_key":"d3640fbd41094207a1c11e58e46b1662",\
        "created_at":"2026-11-24T03:00:00Z","title":"A little bump in the road","service":{"html_url":"https://acme.pagerduty.com/services/PF9KMXH",\
        "id":"PF9KMXH","self":"https://api.pagerduty.com/services/PF9KMXH","summary":"API Service","type":"service_reference"},\
        "assignees":[{"html_url":"https://acme.pagerduty.com/users/PTUXL6G","id":"PTUXL6G","self":"https://api.pagerduty.com/users/PTUXL6G",\
        "summary":"User 123","type":"user_reference"}],"escalation_policy":{"html_url":"https://acme.pagerduty.com/escalation_policies/PUS0KTE",\
        "id":"PUS0KTE","self":"https://api.pagerduty.com/escalation_policies/PUS0KTE","summary":"Default","type":"escalation_policy_reference"},\
        "teams":[],"priority":{"html_url":"https://acme.pagerduty.com/account/incident_priorities","id":"PSO75BM","self":"https://api.pagerduty.com/priorities/PSO75BM",\
        "summary":"P1","type":"priority_reference"},"urgency":"high","conference_bridge":null,"resolve_reason":null}}}
        """

    /// Rules that all look at Case and mostly pass their first conditions, so most conditions are evaluated.
    static func rules(count: Int) -> RulesDocument {
        let calendar = BusinessCalendar(
            name: "support-hours", timeZone: TimeZone(identifier: "America/New_York") ?? .gmt,
            weekly: [.monday: [.init(start: 540, end: 1020)], .tuesday: [.init(start: 540, end: 1020)]])
        var rules: [Rule] = []
        for i in 0..<count {
            let conditions = [
                Condition(field: "Priority", operator: .in, value: .list([.text("High"), .text("Medium")])),
                Condition(field: "Subject", operator: .contains, value: .text("printer")),
                Condition(field: "Status", operator: .changes, to: .text("Escalated")),
                Condition(field: "Origin", operator: .notEquals, value: .text("Web")),
                Condition(field: "Subject", operator: .startsWith, value: .text("Rule \(i)")),
            ]
            rules.append(
                Rule(
                    name: "rule \(i)", object: "Case", runOn: .salesforce, match: .all, conditions: conditions, applyTo: .linked,
                    actions: [.setPriority("P1")]))
        }
        return RulesDocument(calendars: [calendar], rulesets: [Ruleset(name: "benchmark", rules: rules)])
    }

    static func caseUpdate() -> RuleEvent {
        let id = "5003000000D8cuIAAR"
        let old = SalesforceRecord(
            object: "Case", id: id,
            fields: ["Priority": .picklist(["High"]), "Subject": .text("Rule 7 printer on fire"), "Status": .picklist(["New"]), "Origin": .picklist(["Phone"])])
        let new = SalesforceRecord(
            object: "Case", id: id,
            fields: ["Priority": .picklist(["High"]), "Subject": .text("Rule 7 printer on fire"), "Status": .picklist(["Escalated"]), "Origin": .picklist(["Phone"])])
        return .salesforce(SalesforceChange(object: "Case", isInsert: false, old: old, new: new))
    }
}

import Foundation
