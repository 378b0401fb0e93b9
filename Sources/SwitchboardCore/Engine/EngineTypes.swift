import Foundation

/// A link between a PagerDuty incident and a Salesforce record.
public struct Link: Sendable, Hashable {
    public var incidentId: String
    public var object: String
    public var recordId: String
    public var orgId: String?

    public init(incidentId: String, object: String, recordId: String, orgId: String? = nil) {
        self.incidentId = incidentId
        self.object = object
        self.recordId = SalesforceId.normalized(recordId)
        self.orgId = orgId
    }
}

/// What the engine evaluates: a Salesforce record change or a PagerDuty webhook event.
public enum RuleEvent: Sendable, Hashable {
    case salesforce(SalesforceChange)
    case pagerDuty(PagerDutyEvent)

    public var runOn: RunOn {
        switch self {
        case .salesforce: .salesforce
        case .pagerDuty: .pagerduty
        }
    }
}

/// Settings of the object mappings that change what actions carry.
public struct EngineSettings: Sendable, Hashable {
    /// "Sync Salesforce Case (or Incident) description to PagerDuty incident description" on create.
    public var syncDescriptionOnCreate: Bool

    public init(syncDescriptionOnCreate: Bool = true) {
        self.syncDescriptionOnCreate = syncDescriptionOnCreate
    }
}

/// What a planned action acts on.
public enum ActionTarget: Sendable, Hashable {
    /// An existing incident.
    case incident(String)
    /// The incident that an earlier action of this evaluation creates for the record.
    case createdIncident(object: String, recordId: String)
    /// An existing Salesforce record.
    case record(object: String, id: String)
    /// Nothing yet: the action creates its target (createIncident, createRecord).
    case creation
}

/// One action the engine decided on, with everything needed to carry it out.
public struct PlannedAction: Sendable, Hashable {
    public var action: ActionKind
    public var ruleset: String
    public var rule: String
    public var target: ActionTarget
    /// The event's own object: the record (Salesforce events) or incident (PagerDuty events).
    public var sourceObject: String
    public var sourceId: String
    /// Resolved parameters under their rules-file names.
    public var parameters: JSONObject

    public init(action: ActionKind, ruleset: String, rule: String, target: ActionTarget, sourceObject: String, sourceId: String, parameters: JSONObject) {
        self.action = action
        self.ruleset = ruleset
        self.rule = rule
        self.target = target
        self.sourceObject = sourceObject
        self.sourceId = sourceId
        self.parameters = parameters
    }

    /// The incident acted on, if it exists already.
    public var incidentId: String? {
        if case .incident(let id) = target { return id }
        if sourceObject == "incident" { return sourceId }
        return nil
    }

    /// The Salesforce record acted on or created from.
    public var recordId: String? {
        switch target {
        case .record(_, let id): return id
        case .createdIncident(_, let id): return id
        default: return sourceObject == "incident" ? nil : sourceId
        }
    }

    public var recordObject: String? {
        switch target {
        case .record(let object, _): return object
        case .createdIncident(let object, _): return object
        default:
            if action == .createRecord { return parameters["object"]?.stringValue }
            return sourceObject == "incident" ? nil : sourceObject
        }
    }

    /// `{"action", "ruleset", "rule", "incident", "object", "record", "target", <parameters>…, "parameters": {…}}`.
    public var jsonValue: JSONValue {
        var o: JSONObject = ["action": .string(action.rawValue), "ruleset": .string(ruleset), "rule": .string(rule)]
        o["incident"] = incidentId.map(JSONValue.string) ?? .null
        o["object"] = recordObject.map(JSONValue.string) ?? .null
        o["record"] = recordId.map(JSONValue.string) ?? .null
        switch target {
        case .incident: o["target"] = .string("incident")
        case .createdIncident: o["target"] = .string("createdIncident")
        case .record: o["target"] = .string("record")
        case .creation: o["target"] = .string(action == .createIncident ? "newIncident" : "newRecord")
        }
        for (k, v) in parameters.entries where o[k] == nil || k == "object" { o[k] = v }
        o["parameters"] = .object(parameters)
        return .object(o)
    }
}

/// The outcome of one condition.
public enum ConditionOutcome: String, Sendable, Hashable {
    case passed, failed
    /// Not evaluated because the rule's outcome was already decided.
    case skipped
}

/// How one condition fared, with what it saw.
public struct ConditionVerdict: Sendable, Hashable {
    private let compiled: CompiledCondition
    public var index: Int { compiled.index }
    public var condition: Condition { compiled.condition }
    public var outcome: ConditionOutcome
    /// The value the condition read (the new value for `changes`; the event time for field-less
    /// business-hours conditions).
    public var actual: FieldValue { resolved?.value ?? .null }
    /// The value before, for `changes`.
    public var previous: FieldValue? { resolvedPrevious?.value }
    private let resolved: ResolvedValue?
    private let resolvedPrevious: ResolvedValue?
    /// Extra context: "no earlier snapshot of the incident", "calendar is closed on holidays", …
    public var note: String?

    public var passed: Bool { outcome == .passed }

    init(compiled: CompiledCondition, outcome: ConditionOutcome, actual: ResolvedValue?, previous: ResolvedValue? = nil, note: String? = nil) {
        self.compiled = compiled
        self.outcome = outcome
        self.resolved = actual
        self.resolvedPrevious = previous
        self.note = note
    }

    public static func == (lhs: ConditionVerdict, rhs: ConditionVerdict) -> Bool {
        lhs.index == rhs.index && lhs.condition == rhs.condition && lhs.outcome == rhs.outcome && lhs.actual == rhs.actual
            && lhs.previous == rhs.previous && lhs.note == rhs.note
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(index)
        hasher.combine(outcome)
        hasher.combine(actual)
    }

    /// A sentence saying what was compared and how it came out.
    public var explanation: String {
        if outcome == .skipped { return "not evaluated: the rule's outcome was already decided" }
        let subject = condition.field ?? "the event time"
        let shown = ConditionVerdict.show(actual)
        var text: String
        switch condition.operator {
        case .isBlank, .isNotBlank:
            text = "\(subject) is \(shown), which \(passed ? "satisfies" : "fails") \"\(condition.operator.phrase)\""
        case .changes:
            var wanted = ""
            if let from = condition.from { wanted += " from \"\(from.text)\"" }
            if let to = condition.to { wanted += " to \"\(to.text)\"" }
            let before = previous.map(ConditionVerdict.show) ?? "unknown"
            text = "\(subject) was \(before) and is \(shown); \(passed ? "it changes" : "it does not change")\(wanted)"
        default:
            let expected = condition.value?.text ?? ""
            text = "\(subject) is \(shown), which \(passed ? "satisfies" : "does not satisfy") \"\(condition.operator.phrase) \(expected)\""
        }
        if let note { text += " (\(note))" }
        return text
    }

    static func show(_ value: FieldValue) -> String {
        switch value {
        case .null: "blank"
        case .reference(let id, let label?): "\"\(label)\" (\(id))"
        default: "\"\(value.text)\""
        }
    }

    public var jsonValue: JSONValue {
        var o: JSONObject = ["index": .number(Double(index))]
        o["field"] = condition.field.map(JSONValue.string) ?? .null
        o["operator"] = .string(condition.operator.rawValue)
        if let v = condition.value { o["value"] = v.jsonValue }
        if let v = condition.from { o["from"] = v.jsonValue }
        if let v = condition.to { o["to"] = v.jsonValue }
        o["actual"] = actual.jsonValue
        if let previous { o["previous"] = previous.jsonValue }
        o["matched"] = outcome == .skipped ? .null : .bool(passed)
        o["verdict"] = .string(outcome.rawValue)
        o["explanation"] = .string(explanation)
        return .object(o)
    }
}

/// How one rule fared on an event.
public struct RuleVerdict: Sendable, Hashable {
    private let compiled: RuleEngine.CompiledRule
    public var ruleset: String { compiled.ruleset }
    public var rule: String { compiled.rule.name }
    public var object: String { compiled.rule.object }
    public var runOn: RunOn { compiled.rule.runOn }
    public var applyTo: ApplyTo { compiled.rule.applyTo }
    /// False when the rule does not apply to this event at all (other object or direction, disabled,
    /// an update for a `new` rule); `reason` says why.
    public var considered: Bool
    public var matched: Bool
    public var reason: String?
    public var conditions: [ConditionVerdict]
    /// Actions of a matched rule that were not planned, and why.
    public var skippedActions: [(index: Int, action: ActionKind, reason: String)]
    public var warnings: [String]
    /// The Salesforce record or PagerDuty incident evaluated.
    public var subject: String

    init(compiled: RuleEngine.CompiledRule, subject: String) {
        self.compiled = compiled
        self.subject = subject
        self.considered = false
        self.matched = false
        self.conditions = []
        self.skippedActions = []
        self.warnings = []
    }

    public static func == (lhs: RuleVerdict, rhs: RuleVerdict) -> Bool {
        lhs.ruleset == rhs.ruleset && lhs.rule == rhs.rule && lhs.subject == rhs.subject && lhs.considered == rhs.considered
            && lhs.matched == rhs.matched && lhs.reason == rhs.reason && lhs.conditions == rhs.conditions
            && lhs.skippedActions.map(\.reason) == rhs.skippedActions.map(\.reason) && lhs.warnings == rhs.warnings
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(ruleset)
        hasher.combine(rule)
        hasher.combine(subject)
        hasher.combine(matched)
    }

    public var jsonValue: JSONValue {
        var o: JSONObject = ["ruleset": .string(ruleset), "rule": .string(rule), "object": .string(object)]
        o["runOn"] = .string(runOn.rawValue)
        o["applyTo"] = .string(applyTo.rawValue)
        o["subject"] = .string(subject)
        o["considered"] = .bool(considered)
        o["matched"] = .bool(matched)
        o["reason"] = reason.map(JSONValue.string) ?? .null
        o["conditions"] = .array(conditions.map(\.jsonValue))
        o["skippedActions"] = .array(
            skippedActions.map { .object(["index": .number(Double($0.index)), "action": .string($0.action.rawValue), "reason": .string($0.reason)]) })
        o["warnings"] = .array(warnings.map(JSONValue.string))
        return .object(o)
    }
}

/// The engine's answer for one event.
public struct Evaluation: Sendable, Hashable {
    public var actions: [PlannedAction]
    public var rules: [RuleVerdict]

    public init(actions: [PlannedAction] = [], rules: [RuleVerdict] = []) {
        self.actions = actions
        self.rules = rules
    }
}

