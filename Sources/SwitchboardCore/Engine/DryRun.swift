/// A dry run: rules evaluated against a sample event, explained condition by condition. Used by
/// `switchboard rules test` and, later, by event replay.
public struct DryRun: Sendable {
    /// Event files larger than this are refused (a Salesforce batch of 200 full records stays far below).
    public static let maximumEventSize = 8 * 1024 * 1024

    public struct Item: Sendable {
        public var event: RuleEvent
        public var evaluation: Evaluation
    }

    public var items: [Item]

    /// Reads an event file: a Salesforce trigger payload (`{"object", "isInsert", "old", "new"}`) or a
    /// PagerDuty webhook v3 body (`{"event": {...}}`). A trigger batch gives one event per record.
    public static func events(fromJSON text: String, previousIncident: IncidentSnapshot? = nil, schemas: SchemaCatalog = .standard) throws(DocumentError) -> [RuleEvent] {
        guard text.utf8.count <= maximumEventSize else {
            throw DocumentError("the event is \(text.utf8.count) bytes; the limit is \(maximumEventSize) bytes")
        }
        let value = try JSONParser.parseValue(text)
        guard let object = value.objectValue else {
            throw DocumentError("the event must be a JSON object: a Salesforce trigger payload or a PagerDuty webhook v3 body")
        }
        if object["event"] != nil {
            return [.pagerDuty(try PagerDutyEvent(webhook: value, previous: previousIncident))]
        }
        if object["isInsert"] != nil || object["new"] != nil || object["newMap"] != nil {
            return try SalesforceTriggerPayload.decode(value, schemas: schemas).map(RuleEvent.salesforce)
        }
        throw DocumentError(
            "the event is neither a Salesforce trigger payload ({\"object\", \"isInsert\", \"old\", \"new\"}) nor a PagerDuty webhook v3 body ({\"event\": {...}})")
    }

    /// Reads a links file: `[{"incident": "PXXXX", "object": "Case", "record": "500…"}]`.
    public static func links(fromJSON text: String) throws(DocumentError) -> [Link] {
        let value = try JSONParser.parseValue(text)
        guard let items = value.arrayValue else { throw DocumentError("links must be a JSON array of {\"incident\", \"object\", \"record\"}") }
        var links: [Link] = []
        for (i, item) in items.enumerated() {
            guard let o = item.objectValue else { throw DocumentError("links[\(i)] must be an object with incident, object and record") }
            for key in o.keys where !["incident", "object", "record", "org"].contains(key) {
                throw DocumentError("links[\(i)] has an unknown key \"\(key)\"; expected incident, object, record (and optionally org)")
            }
            guard let incident = o["incident"]?.stringValue, !incident.isEmpty else { throw DocumentError("links[\(i)].incident must be an incident id") }
            guard let object = o["object"]?.stringValue, SalesforceTriggerPayload.isValidObjectName(object) else {
                throw DocumentError("links[\(i)].object must be a Salesforce object name such as Case")
            }
            guard let record = o["record"]?.stringValue, !record.isEmpty else { throw DocumentError("links[\(i)].record must be a record Id") }
            links.append(Link(incidentId: incident, object: object, recordId: record, orgId: o["org"]?.stringValue))
        }
        return links
    }

    /// Reads a previous incident snapshot: a REST `{"incident": {...}}`, a webhook body, or the incident itself.
    public static func incident(fromJSON text: String) throws(DocumentError) -> IncidentSnapshot {
        let value = try JSONParser.parseValue(text)
        let candidate = value["incident"] ?? value["event"]?["data"] ?? value
        guard let snapshot = IncidentSnapshot(json: candidate) else {
            throw DocumentError("the previous incident must be a PagerDuty incident with an id")
        }
        return snapshot
    }

    public init(engine: RuleEngine, events: [RuleEvent], links: [Link], now: Instant) {
        items = events.map { Item(event: $0, evaluation: engine.evaluate($0, links: links, now: now)) }
    }

    public var actions: [PlannedAction] { items.flatMap(\.evaluation.actions) }

    /// `{"actions": [...], "rules": [...], "events": [...]}`.
    public var jsonValue: JSONValue {
        .object([
            "actions": .array(actions.map(\.jsonValue)),
            "rules": .array(items.flatMap(\.evaluation.rules).map(\.jsonValue)),
            "events": .array(items.map { DryRun.describe($0.event) }),
        ])
    }

    static func describe(_ event: RuleEvent) -> JSONValue {
        switch event {
        case .salesforce(let c):
            return .object(["source": "salesforce", "object": .string(c.object), "record": .string(c.recordId), "isInsert": .bool(c.isInsert)])
        case .pagerDuty(let e):
            return .object([
                "source": "pagerduty", "id": .string(e.id), "eventName": .string(e.eventName), "eventType": .string(e.eventType.rawValue),
                "incident": e.incidentId.map(JSONValue.string) ?? .null,
            ])
        }
    }

    /// The human explanation, rule by rule and condition by condition.
    public var text: String {
        var out = ""
        for item in items {
            switch item.event {
            case .salesforce(let c):
                out += "Event: \(c.object) \(c.recordId) \(c.isInsert ? "created" : "updated")\n"
            case .pagerDuty(let e):
                out += "Event: \(e.eventName) (Event Type \(e.eventType.rawValue)) on incident \(e.incidentId ?? "-")\n"
            }
            var lastRuleset: String?
            for rule in item.evaluation.rules {
                if rule.ruleset != lastRuleset {
                    out += "  Ruleset \"\(rule.ruleset)\"\n"
                    lastRuleset = rule.ruleset
                }
                guard rule.considered else {
                    out += "    - Rule \"\(rule.rule)\": not applicable, \(rule.reason ?? "")\n"
                    continue
                }
                out += "    \(rule.matched ? "✓" : "✗") Rule \"\(rule.rule)\" \(rule.matched ? "matched" : "did not match")"
                out += rule.conditions.isEmpty ? " (no conditions)\n" : "\n"
                for c in rule.conditions {
                    let mark = c.outcome == .passed ? "✓" : (c.outcome == .failed ? "✗" : "·")
                    out += "        \(mark) condition \(c.index + 1): \(c.explanation)\n"
                }
                for s in rule.skippedActions {
                    out += "        skipped \(s.action.rawValue): \(s.reason)\n"
                }
                for w in rule.warnings {
                    out += "        warning: \(w)\n"
                }
            }
        }
        let all = actions
        out += all.isEmpty ? "No actions planned.\n" : "Planned actions (\(all.count)):\n"
        for (i, a) in all.enumerated() {
            var target: String
            switch a.target {
            case .incident(let id): target = "incident \(id)"
            case .createdIncident(let object, let id): target = "the incident created for \(object) \(id)"
            case .record(let object, let id): target = "\(object) \(id)"
            case .creation: target = a.action == .createIncident ? "a new incident for \(a.sourceObject) \(a.sourceId)" : "a new record from incident \(a.sourceId)"
            }
            let params = a.parameters.entries.map { "\($0.key)=\($0.value.serialized())" }.joined(separator: " ")
            out += "  \(i + 1). \(a.action.rawValue) on \(target) [\(a.ruleset) / \(a.rule)]\(params.isEmpty ? "" : ": " + params)\n"
        }
        return out
    }
}
