/// The rule engine: a pure function from an event, the links, the rulesets and the time to the actions
/// to take, in a deterministic order, with a verdict for every condition evaluated.
///
/// Build it once per rules version (it compiles patterns and operands) and evaluate many events.
public struct RuleEngine: Sendable {
    public let document: RulesDocument
    public let settings: EngineSettings
    private let rules: [CompiledRule]
    private let slotCount: Int
    private let schemas: SchemaCatalog

    final class CompiledRule: Sendable {
        let ruleset: String
        let rule: Rule
        let disabledReason: String?
        let objectKey: String
        let conditions: [CompiledCondition]

        init(ruleset: String, rule: Rule, disabledReason: String?, objectKey: String, conditions: [CompiledCondition]) {
            self.ruleset = ruleset
            self.rule = rule
            self.disabledReason = disabledReason
            self.objectKey = objectKey
            self.conditions = conditions
        }
    }

    public init(document: RulesDocument, schemas: SchemaCatalog = .standard, settings: EngineSettings = EngineSettings()) {
        self.document = document
        self.settings = settings
        self.schemas = schemas
        var calendars: [String: BusinessCalendar] = [:]
        for c in document.calendars { calendars[c.name] = c }
        var slots: [String: Int] = [:]
        var compiled: [CompiledRule] = []
        for ruleset in document.rulesets {
            for rule in ruleset.rules {
                let conditions = rule.conditions.enumerated().map { i, c in
                    var slot: Int?
                    if let f = c.field {
                        let key = f.lowercased()
                        if let s = slots[key] {
                            slot = s
                        } else {
                            slot = slots.count
                            slots[key] = slots.count
                        }
                    }
                    return CompiledCondition(index: i, condition: c, slot: slot, calendars: calendars)
                }
                let reason: String? =
                    !ruleset.enabled ? "the ruleset is disabled" : (!rule.enabled ? "the rule is disabled" : nil)
                compiled.append(CompiledRule(ruleset: ruleset.name, rule: rule, disabledReason: reason, objectKey: rule.object.lowercased(), conditions: conditions))
            }
        }
        self.rules = compiled
        self.slotCount = slots.count
    }

    /// Evaluates one event.
    /// - Parameters:
    ///   - event: a Salesforce record change or a PagerDuty webhook event.
    ///   - links: the links between incidents and records that concern the event.
    ///   - now: the evaluation time; the event's own time for field-less business-hours conditions when the
    ///     event does not carry one (Salesforce changes).
    public func evaluate(_ event: RuleEvent, links: [Link], now: Instant) -> Evaluation {
        var state = Evaluator(engine: self, event: event, links: links, now: now, slotCount: slotCount)
        for rule in rules { state.run(rule) }
        return Evaluation(actions: state.actions, rules: state.verdicts)
    }

    // MARK: - One evaluation

    private struct Evaluator {
        let engine: RuleEngine
        let event: RuleEvent
        let links: [Link]
        let now: Instant
        var cache: [ResolvedValue?]
        var oldCache: [ResolvedValue?]
        let subject: String
        var actions: [PlannedAction] = []
        var verdicts: [RuleVerdict] = []
        /// Incidents this evaluation creates, by record (key: lowercased object + record id), with the creating ruleset.
        var createdIncidents: [String: String] = [:]
        /// Records this evaluation creates, by lowercased object.
        var createdRecords: Set<String> = []

        init(engine: RuleEngine, event: RuleEvent, links: [Link], now: Instant, slotCount: Int) {
            self.engine = engine
            self.event = event
            self.links = links
            self.now = now
            self.cache = Array(repeating: nil, count: slotCount)
            self.oldCache = Array(repeating: nil, count: slotCount)
            switch event {
            case .salesforce(let c): subject = "\(c.object) \(c.recordId)"
            case .pagerDuty(let e): subject = "incident \(e.incidentId ?? "?") (\(e.eventName))"
            }
        }

        var eventObjectKey: String? {
            if case .salesforce(let c) = event { return c.object.lowercased() }
            return nil
        }

        mutating func run(_ compiled: CompiledRule) {
            let rule = compiled.rule
            var verdict = RuleVerdict(compiled: compiled, subject: subject)
            if let reason = compiled.disabledReason {
                verdict.reason = reason
                verdicts.append(verdict)
                return
            }
            switch event {
            case .salesforce(let change):
                guard rule.runOn == .salesforce else {
                    verdict.reason = "the rule runs on PagerDuty events"
                    verdicts.append(verdict)
                    return
                }
                guard compiled.objectKey == change.object.lowercased() else {
                    verdict.reason = "the rule is for \(rule.object) records, not \(change.object)"
                    verdicts.append(verdict)
                    return
                }
                if rule.applyTo == .new && !change.isInsert {
                    verdict.reason = "the record was updated; the rule applies to new records only"
                    verdicts.append(verdict)
                    return
                }
            case .pagerDuty(let e):
                guard rule.runOn == .pagerduty else {
                    verdict.reason = "the rule runs on \(rule.object) changes"
                    verdicts.append(verdict)
                    return
                }
                guard e.incident != nil else {
                    verdict.reason = "the event (\(e.eventName)) is not about an incident"
                    verdicts.append(verdict)
                    return
                }
                if rule.applyTo == .new && !e.isIncidentCreated {
                    verdict.reason = "the event is \(e.eventName); the rule applies to new incidents only"
                    verdicts.append(verdict)
                    return
                }
            }
            verdict.considered = true
            verdict.matched = evaluateConditions(compiled, into: &verdict.conditions)
            if verdict.matched { plan(compiled, &verdict) }
            verdicts.append(verdict)
        }

        // MARK: Conditions

        private mutating func evaluateConditions(_ compiled: CompiledRule, into out: inout [ConditionVerdict]) -> Bool {
            let conditions = compiled.conditions
            if conditions.isEmpty { return true }
            out.reserveCapacity(conditions.count)
            let needAll = compiled.rule.match == .all
            var decided: Bool?
            for c in conditions {
                if decided != nil {
                    out.append(ConditionVerdict(compiled: c, outcome: .skipped, actual: nil))
                    continue
                }
                out.append(evaluate(c))
                let passed = out[out.count - 1].outcome == .passed
                if needAll && !passed { decided = false }
                if !needAll && passed { decided = true }
            }
            return decided ?? needAll
        }

        private mutating func current(_ c: CompiledCondition) -> ResolvedValue {
            guard let slot = c.slot, let field = c.condition.field else { return .null }
            if let v = cache[slot] { return v }
            let v: FieldValue
            switch event {
            case .salesforce(let change): v = change.new[field]
            case .pagerDuty(let e): v = c.pagerDutyField?.value(of: e, snapshot: e.incident) ?? .null
            }
            let resolved = ResolvedValue(v)
            cache[slot] = resolved
            return resolved
        }

        private mutating func evaluate(_ c: CompiledCondition) -> ConditionVerdict {
            let op = c.condition.operator
            if op.isBusinessHours {
                var note: String?
                let whenResolved = c.slot == nil ? ResolvedValue(.dateTime(eventTime)) : current(c)
                let when = whenResolved.value
                var open: Bool?
                if let calendar = c.calendar {
                    switch when {
                    case .dateTime(let t): open = calendar.isOpen(at: t)
                    case .null: note = "the field is blank"
                    default: note = "the field is not a date-time"
                    }
                    if let open {
                        let local = calendar.localTime(of: whenInstant(when) ?? now)
                        note = "\(local.date) \(pad(local.minute / 60, 2)):\(pad(local.minute % 60, 2)) in \(calendar.timeZone.identifier) is \(open ? "open" : "closed") in \(calendar.name)"
                    }
                } else {
                    note = "unknown calendar"
                }
                let passed = open.map { op == .withinBusinessHours ? $0 : !$0 } ?? false
                return ConditionVerdict(compiled: c, outcome: passed ? .passed : .failed, actual: whenResolved, note: note)
            }
            let value = current(c)
            if op == .changes {
                let (old, note) = previous(c)
                let passed: Bool
                if let old {
                    passed = c.changed(from: old, to: value)
                } else if case .pagerDuty(let e) = event, let field = c.pagerDutyField {
                    // No earlier snapshot: rely on what the event type says changed.
                    passed = c.from == nil && field.isChanged(by: e.eventName) && (c.to.map { c.equals(value, $0) } ?? true)
                } else {
                    passed = false
                }
                return ConditionVerdict(
                    compiled: c, outcome: passed ? .passed : .failed, actual: value, previous: old, note: note)
            }
            return ConditionVerdict(compiled: c, outcome: c.test(value) ? .passed : .failed, actual: value)
        }

        private func whenInstant(_ v: FieldValue) -> Instant? {
            if case .dateTime(let t) = v { return t }
            return nil
        }

        /// The event's own time: when PagerDuty says it occurred, else the evaluation time.
        var eventTime: Instant {
            if case .pagerDuty(let e) = event, let t = e.occurredAt { return t }
            return now
        }

        /// The value before the change, or `nil` when it is unknown.
        private mutating func previous(_ c: CompiledCondition) -> (ResolvedValue?, String?) {
            guard let field = c.condition.field, let slot = c.slot else { return (nil, nil) }
            switch event {
            case .salesforce(let change):
                guard let old = change.old else { return (.null, "the record is new") }
                if let cached = oldCache[slot] { return (cached, nil) }
                let resolved = ResolvedValue(old[field])
                oldCache[slot] = resolved
                return (resolved, nil)
            case .pagerDuty(let e):
                guard let pd = c.pagerDutyField, pd.isIncidentAttribute else { return (nil, "\(field) describes the event, not the incident") }
                if e.isIncidentCreated { return (.null, "the incident is new") }
                guard let previous = e.previous else { return (nil, "no earlier snapshot of the incident; judged by the event type") }
                return (ResolvedValue(pd.value(of: e, snapshot: previous)), nil)
            }
        }

        // MARK: Actions

        private mutating func plan(_ compiled: CompiledRule, _ verdict: inout RuleVerdict) {
            switch event {
            case .salesforce(let change): planForRecord(compiled, change, &verdict)
            case .pagerDuty(let e): planForIncident(compiled, e, &verdict)
            }
        }

        private func base(_ kind: ActionKind, _ compiled: CompiledRule, target: ActionTarget, sourceObject: String, sourceId: String) -> PlannedAction {
            PlannedAction(action: kind, ruleset: compiled.ruleset, rule: compiled.rule.name, target: target, sourceObject: sourceObject, sourceId: sourceId, parameters: JSONObject())
        }

        /// Salesforce change → actions on PagerDuty incidents (and on the record itself).
        private mutating func planForRecord(_ compiled: CompiledRule, _ change: SalesforceChange, _ verdict: inout RuleVerdict) {
            let record = change.new
            let key = change.object.lowercased() + ":" + record.id
            let linked = Array(Set(links.filter { SalesforceId.same($0.recordId, record.id) && $0.object.lowercased() == change.object.lowercased() }.map(\.incidentId))).sorted()
            func resolve(_ t: Template) -> String { TemplateRenderer.render(t) { record[$0].text } }
            for (index, action) in compiled.rule.actions.enumerated() {
                let kind = action.kind
                switch action {
                case .createIncident(let spec):
                    if !linked.isEmpty {
                        verdict.skippedActions.append((index, kind, "the record already has linked incident\(linked.count == 1 ? "" : "s") \(linked.joined(separator: ", "))"))
                        continue
                    }
                    if createdIncidents[key] != nil {
                        verdict.skippedActions.append((index, kind, "an earlier rule already creates an incident for this record"))
                        continue
                    }
                    var a = base(kind, compiled, target: .creation, sourceObject: change.object, sourceId: record.id)
                    var p = JSONObject()
                    p["service"] = .string(spec.service)
                    if let u = spec.urgency { p["urgency"] = .string(u.rawValue) }
                    if let v = spec.priority { p["priority"] = .string(v) }
                    if let v = spec.escalationPolicy { p["escalationPolicy"] = .string(v) }
                    if let v = spec.assignee { p["assignee"] = .string(v) }
                    p["title"] = .string(TitleBuilder.title(spec.title, record: record))
                    if let d = spec.description {
                        p["description"] = .string(resolve(d))
                    } else if engine.settings.syncDescriptionOnCreate, !record["Description"].isBlank {
                        p["description"] = .string(record["Description"].text)
                    }
                    if let u = spec.conferenceUrl { p["conferenceUrl"] = .string(resolve(u)) }
                    if let n = spec.conferenceNumber { p["conferenceNumber"] = .string(resolve(n)) }
                    p["incidentKey"] = .string("sf:\(record.id)")
                    a.parameters = p
                    actions.append(a)
                    createdIncidents[key] = compiled.ruleset
                case .setField(let field, let value):
                    let resolved = resolve(value)
                    if record[field].text == resolved {
                        verdict.skippedActions.append((index, kind, "\(field) already is \"\(resolved)\""))
                        continue
                    }
                    var a = base(kind, compiled, target: .record(object: change.object, id: record.id), sourceObject: change.object, sourceId: record.id)
                    a.parameters = ["field": .string(field), "value": .string(resolved)]
                    actions.append(a)
                case .createRecord:
                    verdict.skippedActions.append((index, kind, "createRecord runs only in rules on PagerDuty events"))
                default:
                    // Actions on incidents: the linked ones (linked scope) and those this evaluation creates.
                    var targets: [ActionTarget] = []
                    if compiled.rule.applyTo == .linked { targets = linked.map(ActionTarget.incident) }
                    if let creator = createdIncidents[key], compiled.rule.applyTo == .linked || creator == compiled.ruleset {
                        targets.append(.createdIncident(object: change.object, recordId: record.id))
                    }
                    if targets.isEmpty {
                        verdict.skippedActions.append(
                            (index, kind, compiled.rule.applyTo == .new ? "no incident was created by this ruleset for the record" : "the record has no linked incidents"))
                        continue
                    }
                    let parameters = incidentParameters(action, read: { record[$0] }, render: resolve)
                    for t in targets {
                        var a = base(kind, compiled, target: t, sourceObject: change.object, sourceId: record.id)
                        a.parameters = parameters
                        actions.append(a)
                    }
                }
            }
        }

        /// PagerDuty event → actions on Salesforce records (and on the incident itself).
        private mutating func planForIncident(_ compiled: CompiledRule, _ e: PagerDutyEvent, _ verdict: inout RuleVerdict) {
            guard let incident = e.incident else { return }
            let rule = compiled.rule
            let linked = Array(Set(links.filter { $0.incidentId == incident.id && $0.object.lowercased() == rule.object.lowercased() }.map(\.recordId))).sorted()
            func read(_ name: String) -> FieldValue { PagerDutyField(rawValue: name)?.value(of: e, snapshot: incident) ?? .null }
            func resolve(_ t: Template) -> String { TemplateRenderer.render(t) { read($0).text } }

            // createRecord first: setField actions of the same rule become its field values.
            var creation: (index: Int, object: String, fields: JSONObject, org: String?)?
            for (index, action) in rule.actions.enumerated() {
                guard case .createRecord(let object, let fields, let org) = action else { continue }
                let target = object ?? rule.object
                if creation != nil {
                    verdict.skippedActions.append((index, .createRecord, "the rule already creates a record"))
                    continue
                }
                if !linked.isEmpty, target.lowercased() == rule.object.lowercased() {
                    verdict.skippedActions.append((index, .createRecord, "the incident already has linked \(rule.object) \(linked.joined(separator: ", "))"))
                    continue
                }
                if createdRecords.contains(incident.id + ":" + target.lowercased()) {
                    verdict.skippedActions.append((index, .createRecord, "an earlier rule already creates a \(target) for this incident"))
                    continue
                }
                var values = JSONObject()
                for f in fields { values[f.field] = .string(resolve(f.value)) }
                creation = (index, target, values, org)
            }
            var planned: [(index: Int, action: PlannedAction)] = []
            for (index, action) in rule.actions.enumerated() {
                let kind = action.kind
                switch action {
                case .createRecord:
                    continue
                case .setField(let field, let value):
                    let resolved = resolve(value)
                    if creation != nil {
                        creation?.fields[field] = .string(resolved)
                        verdict.skippedActions.append((index, kind, "\(field) is set on the \(creation?.object ?? rule.object) that createRecord creates"))
                        continue
                    }
                    guard rule.applyTo == .linked, !linked.isEmpty else {
                        verdict.skippedActions.append(
                            (index, kind, rule.applyTo == .new ? "no \(rule.object) was created by this rule for the incident" : "the incident has no linked \(rule.object)"))
                        continue
                    }
                    for id in linked {
                        var a = base(kind, compiled, target: .record(object: rule.object, id: id), sourceObject: "incident", sourceId: incident.id)
                        a.parameters = ["field": .string(field), "value": .string(resolved)]
                        planned.append((index, a))
                    }
                case .createIncident, .setIncidentConference, .setIncidentDescription:
                    verdict.skippedActions.append((index, kind, "\(kind.rawValue) runs only in rules on Salesforce changes"))
                default:
                    var a = base(kind, compiled, target: .incident(incident.id), sourceObject: "incident", sourceId: incident.id)
                    a.parameters = incidentParameters(action, read: read, render: resolve)
                    planned.append((index, a))
                }
            }
            if let creation {
                var a = base(.createRecord, compiled, target: .creation, sourceObject: "incident", sourceId: incident.id)
                a.parameters = ["object": .string(creation.object), "fields": .object(creation.fields)]
                if let org = creation.org { a.parameters["org"] = .string(org) }
                if let schema = engine.schemas.schema(for: creation.object) {
                    let missing = schema.requiredOnCreate.map(\.name).filter { creation.fields[$0] == nil }
                    if !missing.isEmpty {
                        verdict.warnings.append("\(schema.name) requires \(missing.joined(separator: ", ")); this rule does not set \(missing.count == 1 ? "it" : "them"), so Salesforce may refuse the record")
                    }
                }
                planned.append((creation.index, a))
                createdRecords.insert(incident.id + ":" + creation.object.lowercased())
            }
            // The rule's own order: each action where it was written.
            actions += planned.enumerated().sorted { ($0.element.index, $0.offset) < ($1.element.index, $1.offset) }.map(\.element.action)
        }

        /// Parameters of the actions that change an incident.
        private func incidentParameters(_ action: Action, read: (String) -> FieldValue, render: (Template) -> String) -> JSONObject {
            switch action {
            case .resolve(let resolution):
                return resolution.map { ["resolution": .string(render($0))] } ?? [:]
            case .setPriority(let p): return ["priority": .string(p)]
            case .setUrgency(let u): return ["urgency": .string(u.rawValue)]
            case .runIncidentWorkflow(let w): return ["workflow": .string(w)]
            case .runAutomationAction(let a): return ["automationAction": .string(a)]
            case .reassign(let users, let policy):
                var p = JSONObject()
                if !users.isEmpty { p["users"] = .array(users.map(JSONValue.string)) }
                if let policy { p["escalationPolicy"] = .string(policy) }
                return p
            case .addResponders(let users, let policies, let message):
                var p = JSONObject()
                if !users.isEmpty { p["users"] = .array(users.map(JSONValue.string)) }
                if !policies.isEmpty { p["escalationPolicies"] = .array(policies.map(JSONValue.string)) }
                if let message { p["message"] = .string(render(message)) }
                return p
            case .setIncidentConference(let field, let numberField):
                var p: JSONObject = ["field": .string(field), "conferenceUrl": .string(read(field).text)]
                if let numberField {
                    p["numberField"] = .string(numberField)
                    p["conferenceNumber"] = .string(read(numberField).text)
                }
                return p
            case .setIncidentDescription(let field):
                return ["field": .string(field), "description": .string(read(field).text)]
            default:
                return [:]
            }
        }
    }
}
