import Foundation

/// A rules file: business-hours calendars and rulesets (the format of `rules.schema.json`, version 1).
public struct RulesDocument: Sendable, Hashable {
    public var version: Int
    public var calendars: [BusinessCalendar]
    public var rulesets: [Ruleset]

    public init(version: Int = 1, calendars: [BusinessCalendar] = [], rulesets: [Ruleset] = []) {
        self.version = version
        self.calendars = calendars
        self.rulesets = rulesets
    }
}

/// A named folder of rules with an enabled switch.
public struct Ruleset: Sendable, Hashable {
    public var name: String
    public var enabled: Bool
    public var description: String?
    public var rules: [Rule]

    public init(name: String, enabled: Bool = true, description: String? = nil, rules: [Rule] = []) {
        self.name = name
        self.enabled = enabled
        self.description = description
        self.rules = rules
    }
}

/// Which side's changes a rule listens to.
public enum RunOn: String, Sendable, Hashable, CaseIterable {
    /// "[Object] create or update".
    case salesforce
    /// "PagerDuty incident create or update".
    case pagerduty
}

public enum Match: String, Sendable, Hashable, CaseIterable {
    case all, any
}

/// Which counterparts a rule acts on.
public enum ApplyTo: String, Sendable, Hashable, CaseIterable {
    /// Only when the object was just created; acts on what this rule creates.
    case new
    /// On create and update; acts on the linked counterparts.
    case linked
}

public struct Rule: Sendable, Hashable {
    public var name: String
    public var enabled: Bool
    public var object: String
    public var runOn: RunOn
    public var match: Match
    public var conditions: [Condition]
    public var applyTo: ApplyTo
    public var actions: [Action]

    public init(
        name: String, enabled: Bool = true, object: String, runOn: RunOn, match: Match = .all, conditions: [Condition] = [],
        applyTo: ApplyTo, actions: [Action]
    ) {
        self.name = name
        self.enabled = enabled
        self.object = object
        self.runOn = runOn
        self.match = match
        self.conditions = conditions
        self.applyTo = applyTo
        self.actions = actions
    }
}

/// A value written in a rules file: a scalar keeps the text it was written as.
public enum RuleValue: Sendable, Hashable {
    case null
    case text(String)
    case number(Double, written: String)
    case boolean(Bool)
    case list([RuleValue])

    /// The value as text, as written.
    public var text: String {
        switch self {
        case .null: ""
        case .text(let s): s
        case .number(_, let written): written
        case .boolean(let b): b ? "true" : "false"
        case .list(let items): items.map(\.text).joined(separator: ", ")
        }
    }

    public var jsonValue: JSONValue {
        switch self {
        case .null: .null
        case .text(let s): .string(s)
        case .number(let n, _): .number(n)
        case .boolean(let b): .bool(b)
        case .list(let items): .array(items.map(\.jsonValue))
        }
    }
}

public enum Operator: String, Sendable, Hashable, CaseIterable {
    case equals, notEquals, contains, notContains, startsWith, endsWith, matches
    case `in`, notIn
    case greaterThan, greaterOrEqual, lessThan, lessOrEqual
    case isBlank, isNotBlank
    case changes
    case withinBusinessHours, outsideBusinessHours

    /// The field types the operator makes sense for.
    public var applicableTypes: Set<FieldType> {
        switch self {
        case .equals, .notEquals, .isBlank, .isNotBlank, .changes: Set(FieldType.allCases)
        case .contains, .notContains: [.text, .picklist, .reference]
        case .startsWith, .endsWith, .matches: [.text, .picklist, .reference]
        case .in, .notIn: [.text, .number, .date, .picklist, .reference]
        case .greaterThan, .greaterOrEqual, .lessThan, .lessOrEqual: [.number, .date, .dateTime]
        case .withinBusinessHours, .outsideBusinessHours: [.dateTime]
        }
    }

    public var takesValue: Bool {
        switch self {
        case .isBlank, .isNotBlank, .changes: false
        default: true
        }
    }

    public var isBusinessHours: Bool { self == .withinBusinessHours || self == .outsideBusinessHours }

    /// Words for explanations ("Priority equals High").
    public var phrase: String {
        switch self {
        case .equals: "equals"
        case .notEquals: "does not equal"
        case .contains: "contains"
        case .notContains: "does not contain"
        case .startsWith: "starts with"
        case .endsWith: "ends with"
        case .matches: "matches"
        case .in: "is one of"
        case .notIn: "is none of"
        case .greaterThan: "is greater than"
        case .greaterOrEqual: "is greater than or equal to"
        case .lessThan: "is less than"
        case .lessOrEqual: "is less than or equal to"
        case .isBlank: "is blank"
        case .isNotBlank: "is not blank"
        case .changes: "changes"
        case .withinBusinessHours: "is within the business hours of"
        case .outsideBusinessHours: "is outside the business hours of"
        }
    }
}

public struct Condition: Sendable, Hashable {
    /// `nil` only for the business-hours operators, which then test the event's own time.
    public var field: String?
    public var `operator`: Operator
    public var value: RuleValue?
    /// For `changes`: the value before, the value after.
    public var from: RuleValue?
    public var to: RuleValue?
    /// Text comparisons ignore case unless this is set.
    public var caseSensitive: Bool

    public init(
        field: String?, operator: Operator, value: RuleValue? = nil, from: RuleValue? = nil, to: RuleValue? = nil,
        caseSensitive: Bool = false
    ) {
        self.field = field
        self.operator = `operator`
        self.value = value
        self.from = from
        self.to = to
        self.caseSensitive = caseSensitive
    }
}

/// A string with `{{Field}}` placeholders, resolved against the event that fired the rule.
public struct Template: Sendable, Hashable {
    public enum Part: Sendable, Hashable {
        case literal(String)
        case field(String)
    }

    public var source: String
    public var parts: [Part]

    /// Parses `{{ Name }}` placeholders; an unclosed `{{` is kept as text.
    public init(_ source: String) {
        self.source = source
        var parts: [Part] = []
        var rest = Substring(source)
        while let open = rest.range(of: "{{") {
            guard let close = rest[open.upperBound...].range(of: "}}") else { break }
            if open.lowerBound > rest.startIndex { parts.append(.literal(String(rest[..<open.lowerBound]))) }
            let name = rest[open.upperBound..<close.lowerBound].trimmingCharacters(in: .whitespaces)
            parts.append(.field(name))
            rest = rest[close.upperBound...]
        }
        if !rest.isEmpty { parts.append(.literal(String(rest))) }
        self.parts = parts
    }

    public var fieldNames: [String] {
        parts.compactMap { if case .field(let n) = $0 { n } else { nil } }
    }

    public var isConstant: Bool { fieldNames.isEmpty }
}

/// A custom incident title: a prefix and up to three fields (or a template).
public struct IncidentTitle: Sendable, Hashable {
    public var prefix: String
    public var fields: [String]
    public var separator: String
    public var template: Template?

    public init(prefix: String = "", fields: [String] = [], separator: String = " ", template: Template? = nil) {
        self.prefix = prefix
        self.fields = fields
        self.separator = separator
        self.template = template
    }

    public static let maximumFields = 3
    /// PagerDuty truncates longer titles; Switchboard truncates first so the preview is what is sent.
    public static let maximumLength = 1024
}

public enum Urgency: String, Sendable, Hashable, CaseIterable {
    case high, low
}

/// What a rule does when it matches.
public enum Action: Sendable, Hashable {
    public struct CreateIncident: Sendable, Hashable {
        public var service: String
        public var urgency: Urgency?
        public var priority: String?
        public var escalationPolicy: String?
        public var assignee: String?
        public var title: IncidentTitle?
        public var description: Template?
        public var conferenceUrl: Template?
        public var conferenceNumber: Template?

        public init(service: String) {
            self.service = service
        }
    }

    case createIncident(CreateIncident)
    case acknowledge
    case resolve(resolution: Template?)
    case setPriority(String)
    case setUrgency(Urgency)
    case runIncidentWorkflow(String)
    case runAutomationAction(String)
    case reassign(users: [String], escalationPolicy: String?)
    case addResponders(users: [String], escalationPolicies: [String], message: Template?)
    case setField(field: String, value: Template)
    /// `org`: the org the record goes to, when several are connected.
    case createRecord(object: String?, fields: [FieldAssignment], org: String? = nil)
    case setIncidentConference(field: String, numberField: String?)
    case setIncidentDescription(field: String)

    public var kind: ActionKind {
        switch self {
        case .createIncident: .createIncident
        case .acknowledge: .acknowledge
        case .resolve: .resolve
        case .setPriority: .setPriority
        case .setUrgency: .setUrgency
        case .runIncidentWorkflow: .runIncidentWorkflow
        case .runAutomationAction: .runAutomationAction
        case .reassign: .reassign
        case .addResponders: .addResponders
        case .setField: .setField
        case .createRecord: .createRecord
        case .setIncidentConference: .setIncidentConference
        case .setIncidentDescription: .setIncidentDescription
        }
    }
}

public struct FieldAssignment: Sendable, Hashable {
    public var field: String
    public var value: Template

    public init(field: String, value: Template) {
        self.field = field
        self.value = value
    }
}

/// What an action does: the action names of the rules file, and the object mappings' own actions.
public enum ActionKind: String, Sendable, Hashable, CaseIterable {
    case createIncident, acknowledge, resolve, setPriority, setUrgency, runIncidentWorkflow, runAutomationAction
    case reassign, addResponders, setField, createRecord, setIncidentConference, setIncidentDescription
    /// Object mappings: a PagerDuty note copied to the linked records' Case Feed and/or Case Comments. Planned by the
    /// "Sync PagerDuty notes" settings, not written in rules files.
    case syncNote
    /// Object mappings: a new Case Comment copied to the case's linked incidents as a note. Planned by the
    /// "Sync Case Comments" setting, not written in rules files.
    case addNote

    /// The actions a rules file may name.
    public static let ruleActions: [ActionKind] = allCases.filter { $0 != .syncNote && $0 != .addNote }

    /// True when the action changes a PagerDuty incident (as opposed to a Salesforce record).
    public var actsOnPagerDuty: Bool {
        switch self {
        case .setField, .createRecord, .syncNote: false
        default: true
        }
    }

    /// The parameters the action accepts, and which of them are required.
    public var parameters: [(name: String, required: Bool)] {
        switch self {
        case .createIncident:
            [("service", true), ("urgency", false), ("priority", false), ("escalationPolicy", false), ("assignee", false),
             ("title", false), ("description", false), ("conferenceUrl", false), ("conferenceNumber", false)]
        case .acknowledge: []
        case .resolve: [("resolution", false)]
        case .setPriority: [("priority", true)]
        case .setUrgency: [("urgency", true)]
        case .runIncidentWorkflow: [("workflow", true)]
        case .runAutomationAction: [("automationAction", true)]
        case .reassign: [("users", false), ("escalationPolicy", false)]
        case .addResponders: [("users", false), ("escalationPolicies", false), ("message", false)]
        case .setField: [("field", true), ("value", true)]
        case .createRecord: [("object", false), ("fields", false), ("org", false)]
        case .setIncidentConference: [("field", true), ("numberField", false)]
        case .setIncidentDescription: [("field", true)]
        case .syncNote: [("content", true), ("feed", false), ("comment", false)]
        case .addNote: [("content", true)]
        }
    }

    /// What the action does, for help texts and the rule builder.
    public var summary: String {
        switch self {
        case .createIncident: "Create a PagerDuty incident, if the record has no linked incident."
        case .acknowledge: "Acknowledge the incident."
        case .resolve: "Resolve the incident, optionally with a resolution note."
        case .setPriority: "Set the incident's priority (id or name)."
        case .setUrgency: "Set the incident's urgency (high or low)."
        case .runIncidentWorkflow: "Run an incident workflow on the incident."
        case .runAutomationAction: "Run an automation action on the incident."
        case .reassign: "Reassign the incident to users or to an escalation policy."
        case .addResponders: "Request responders (users and/or escalation policies) for the incident."
        case .setField: "Set a field of the Salesforce record."
        case .createRecord: "Create a Salesforce record (values may be templates over incident fields)."
        case .setIncidentConference: "Set the incident's conference bridge from a Salesforce URL field."
        case .setIncidentDescription:
            "Record a Salesforce text field as the incident's description. PagerDuty cannot change an incident's body after creation, so Switchboard sets the incident custom field `description` and adds the text as a note."
        case .syncNote: "Copy a PagerDuty note to the linked record's Case Feed and/or Case Comments."
        case .addNote: "Copy a new Case Comment to the case's linked incidents as a note."
        }
    }
}

