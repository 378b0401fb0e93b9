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

    Benchmark("compile: 1,000 rules") { benchmark in
        let document = BenchmarkFixtures.rules(count: 1000)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            blackHole(RuleEngine(document: document))
        }
    }
}

enum BenchmarkFixtures {
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
