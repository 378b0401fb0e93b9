import Foundation

/// Reads and validates rules files (YAML or JSON) into a ``RulesDocument``, collecting every problem
/// with its path, line, what was found, what was expected, and a suggestion for near-misses.
public struct RulesLoader: Sendable {
    public enum Format: String, Sendable {
        case yaml, json

        /// JSON by extension or by a leading `{`; YAML otherwise.
        public static func detect(path: String?, text: String) -> Format {
            if let path, path.lowercased().hasSuffix(".json") { return .json }
            if let path, path.lowercased().hasSuffix(".yaml") || path.lowercased().hasSuffix(".yml") { return .yaml }
            return text.drop { $0.isWhitespace || $0 == "\u{FEFF}" }.first == "{" ? .json : .yaml
        }
    }

    /// Larger files are refused before parsing; a thousand rules take about 300 KB.
    public static let maximumSize = 4 * 1024 * 1024

    public var schemas: SchemaCatalog

    public init(schemas: SchemaCatalog = .standard) {
        self.schemas = schemas
    }

    /// Parses and validates. Throws ``RulesValidationError`` with every problem found.
    public func load(_ text: String, format: Format? = nil, path: String? = nil) throws(RulesValidationError) -> RulesDocument {
        guard text.utf8.count <= RulesLoader.maximumSize else {
            throw RulesValidationError([
                Diagnostic(
                    path: "", line: nil, message: "the rules file is too large",
                    found: "\(text.utf8.count) bytes", expected: "at most \(RulesLoader.maximumSize) bytes")
            ])
        }
        let node: Node
        do {
            switch format ?? Format.detect(path: path, text: text) {
            case .json: node = try JSONParser.parse(text)
            case .yaml: node = try YAMLReader.parse(text)
            }
        } catch {
            throw RulesValidationError([Diagnostic(path: "", line: error.line, message: error.message)])
        }
        return try validate(node)
    }

    /// Validates an already parsed document.
    public func validate(_ node: Node) throws(RulesValidationError) -> RulesDocument {
        var checker = RulesChecker(schemas: schemas)
        let document = checker.document(node)
        if !checker.diagnostics.isEmpty { throw RulesValidationError(checker.diagnostics) }
        return document
    }
}

/// The walk over a parsed rules file. Each method reports what it finds and returns the best value it can,
/// so one pass reports every problem.
struct RulesChecker {
    let schemas: SchemaCatalog
    var diagnostics: [Diagnostic] = []
    private var calendarNames: [String] = []

    init(schemas: SchemaCatalog) {
        self.schemas = schemas
    }

    // MARK: Generic shape checks

    private mutating func report(
        _ path: String, _ node: Node?, _ message: String, found: String? = nil, expected: String? = nil, suggestion: String? = nil
    ) {
        diagnostics.append(Diagnostic(path: path, line: node?.line, message: message, found: found, expected: expected, suggestion: suggestion))
    }

    private func quoted(_ s: String) -> String { "\"\(s)\"" }

    private func describe(_ node: Node) -> String {
        if let s = node.scalarText, case .string = node.kind { return quoted(s) }
        if let s = node.scalarText { return "\(node.kindDescription) \(s)" }
        return node.kindDescription
    }

    /// Checks that `node` is a mapping with only `allowed` keys and all `required` ones.
    private mutating func mapping(_ node: Node, _ path: String, allowed: [String], required: [String]) -> [String: Node]? {
        guard case .object(let entries) = node.kind else {
            report(path, node, "wrong type", found: describe(node), expected: "a mapping with \(allowed.joined(separator: ", "))")
            return nil
        }
        var result: [String: Node] = [:]
        for entry in entries {
            let keyPath = path.isEmpty ? entry.key : "\(path).\(entry.key)"
            guard allowed.contains(entry.key) else {
                let suggestion = NearMiss.suggest(entry.key, among: allowed).map(quoted)
                report(
                    keyPath, Node(.null, line: entry.keyLine ?? entry.value.line), "unknown key", found: quoted(entry.key),
                    expected: "one of \(allowed.joined(separator: ", "))", suggestion: suggestion)
                continue
            }
            result[entry.key] = entry.value
        }
        for key in required where result[key] == nil && !entries.contains(where: { $0.key == key }) {
            report(path.isEmpty ? key : "\(path).\(key)", node, "missing required key `\(key)`")
        }
        return result
    }

    private mutating func string(_ node: Node?, _ path: String, allowEmpty: Bool = false) -> String? {
        guard let node else { return nil }
        switch node.kind {
        case .string(let s):
            if !allowEmpty, s.trimmingCharacters(in: .whitespaces).isEmpty {
                report(path, node, "must not be empty")
                return nil
            }
            return s
        default:
            report(path, node, "wrong type", found: describe(node), expected: "a string")
            return nil
        }
    }

    /// A scalar written where text is expected: numbers and booleans count as the text they were written as.
    private mutating func text(_ node: Node?, _ path: String) -> String? {
        guard let node else { return nil }
        switch node.kind {
        case .string(let s): return s
        case .number, .bool: return node.scalarText
        default:
            report(path, node, "wrong type", found: describe(node), expected: "a string")
            return nil
        }
    }

    private mutating func bool(_ node: Node?, _ path: String) -> Bool? {
        guard let node else { return nil }
        guard case .bool(let b) = node.kind else {
            report(path, node, "wrong type", found: describe(node), expected: "true or false")
            return nil
        }
        return b
    }

    private mutating func list(_ node: Node?, _ path: String) -> [Node]? {
        guard let node else { return nil }
        guard case .array(let items) = node.kind else {
            report(path, node, "wrong type", found: describe(node), expected: "a list")
            return nil
        }
        return items
    }

    private mutating func choice<T: RawRepresentable & CaseIterable>(_ node: Node?, _ path: String, _: T.Type) -> T?
    where T.RawValue == String {
        guard let node, let s = text(node, path) else { return nil }
        if let v = T(rawValue: s) { return v }
        let names = T.allCases.map(\.rawValue)
        if let v = T.allCases.first(where: { $0.rawValue.lowercased() == s.lowercased() }) { return v }
        report(
            path, node, "unknown value", found: quoted(s), expected: "one of \(names.joined(separator: ", "))",
            suggestion: NearMiss.suggest(s, among: names).map(quoted))
        return nil
    }

    /// A list of strings, or one string (a single name, or several separated by commas).
    private mutating func names(_ node: Node?, _ path: String) -> [String]? {
        guard let node else { return nil }
        switch node.kind {
        case .array(let items):
            return items.enumerated().compactMap { i, item in string(item, "\(path)[\(i)]") }
        case .string(let s):
            return s.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        default:
            report(path, node, "wrong type", found: describe(node), expected: "a list of ids or names")
            return nil
        }
    }

    private func ruleValue(_ node: Node) -> RuleValue {
        switch node.kind {
        case .null: .null
        case .bool(let b): .boolean(b)
        case .number(let n): .number(n, written: node.scalarText ?? "")
        case .string(let s): .text(s)
        case .array(let items): .list(items.map(ruleValue))
        case .object: .text(node.jsonValue.serialized())
        }
    }

    // MARK: Document

    mutating func document(_ node: Node) -> RulesDocument {
        var doc = RulesDocument()
        guard let root = mapping(node, "", allowed: ["$schema", "version", "calendars", "rulesets"], required: ["rulesets"]) else {
            return doc
        }
        if let v = root["version"] {
            if case .number(let n) = v.kind, n == 1 {
                doc.version = 1
            } else {
                report("version", v, "unsupported version", found: describe(v), expected: "1")
            }
        }
        if let items = list(root["calendars"], "calendars") {
            for (i, item) in items.enumerated() {
                if let cal = calendar(item, "calendars[\(i)]") {
                    if calendarNames.contains(cal.name) {
                        report("calendars[\(i)].name", item["name"], "duplicate calendar name", found: quoted(cal.name))
                    }
                    calendarNames.append(cal.name)
                    doc.calendars.append(cal)
                }
            }
        }
        if let items = list(root["rulesets"], "rulesets") {
            var seen = Set<String>()
            for (i, item) in items.enumerated() {
                guard let rs = ruleset(item, "rulesets[\(i)]") else { continue }
                if !seen.insert(rs.name).inserted {
                    report("rulesets[\(i)].name", item["name"], "duplicate ruleset name", found: quoted(rs.name), expected: "a name used once")
                }
                doc.rulesets.append(rs)
            }
        }
        return doc
    }

    private mutating func calendar(_ node: Node, _ path: String) -> BusinessCalendar? {
        guard let m = mapping(node, path, allowed: ["name", "timeZone", "weekly", "holidays", "description"], required: ["name", "timeZone"])
        else { return nil }
        let name = string(m["name"], "\(path).name")
        var zone: TimeZone?
        if let id = string(m["timeZone"], "\(path).timeZone") {
            if id.contains("/") || id == "UTC" || id == "GMT", let tz = TimeZone(identifier: id) {
                zone = tz
            } else {
                report(
                    "\(path).timeZone", m["timeZone"], "unknown time zone", found: quoted(id),
                    expected: "an IANA time zone name such as America/New_York or Europe/Berlin",
                    suggestion: NearMiss.suggest(id, among: TimeZone.knownTimeZoneIdentifiers).map(quoted))
            }
        }
        var weekly: [BusinessCalendar.Weekday: [BusinessCalendar.Hours]] = [:]
        if let w = m["weekly"] {
            let days = BusinessCalendar.Weekday.allCases.map(\.rawValue)
            if let dayMap = mapping(w, "\(path).weekly", allowed: days, required: []) {
                for (day, value) in dayMap {
                    guard let weekday = BusinessCalendar.Weekday(rawValue: day) else { continue }
                    let dayPath = "\(path).weekly.\(day)"
                    let ranges: [Node]
                    switch value.kind {
                    case .array(let items): ranges = items
                    case .string: ranges = [value]
                    case .null: ranges = []
                    default:
                        report(dayPath, value, "wrong type", found: describe(value), expected: "a list of ranges such as [\"09:00-17:00\"]")
                        continue
                    }
                    var hours: [BusinessCalendar.Hours] = []
                    for (j, r) in ranges.enumerated() {
                        guard let s = string(r, "\(dayPath)[\(j)]") else { continue }
                        if let h = BusinessCalendar.Hours(s) {
                            hours.append(h)
                        } else {
                            report("\(dayPath)[\(j)]", r, "invalid hours", found: quoted(s), expected: "HH:MM-HH:MM, e.g. \"09:00-17:00\" (24:00 allowed as an end)")
                        }
                    }
                    weekly[weekday] = hours
                }
            }
        }
        var holidays = Set<LocalDate>()
        if let items = list(m["holidays"], "\(path).holidays") {
            for (i, item) in items.enumerated() {
                guard let s = text(item, "\(path).holidays[\(i)]") else { continue }
                if let d = LocalDate(s) {
                    holidays.insert(d)
                } else {
                    report("\(path).holidays[\(i)]", item, "invalid date", found: quoted(s), expected: "YYYY-MM-DD")
                }
            }
        }
        _ = string(m["description"], "\(path).description", allowEmpty: true)
        guard let name, let zone else { return nil }
        return BusinessCalendar(name: name, timeZone: zone, weekly: weekly, holidays: holidays)
    }

    private mutating func ruleset(_ node: Node, _ path: String) -> Ruleset? {
        guard let m = mapping(node, path, allowed: ["name", "enabled", "description", "rules"], required: ["name"]) else { return nil }
        let name = string(m["name"], "\(path).name")
        let enabled = bool(m["enabled"], "\(path).enabled") ?? true
        let description = string(m["description"], "\(path).description", allowEmpty: true)
        var rules: [Rule] = []
        var seen = Set<String>()
        for (i, item) in (list(m["rules"], "\(path).rules") ?? []).enumerated() {
            guard let r = rule(item, "\(path).rules[\(i)]") else { continue }
            if !seen.insert(r.name).inserted {
                report("\(path).rules[\(i)].name", item["name"], "duplicate rule name in this ruleset", found: quoted(r.name))
            }
            rules.append(r)
        }
        guard let name else { return nil }
        return Ruleset(name: name, enabled: enabled, description: description, rules: rules)
    }

    // MARK: Rules

    private mutating func rule(_ node: Node, _ path: String) -> Rule? {
        let keys = ["name", "enabled", "description", "object", "runOn", "match", "conditions", "applyTo", "actions"]
        guard let m = mapping(node, path, allowed: keys, required: ["name", "object", "runOn", "applyTo", "actions"]) else { return nil }
        let name = string(m["name"], "\(path).name")
        let enabled = bool(m["enabled"], "\(path).enabled") ?? true
        _ = string(m["description"], "\(path).description", allowEmpty: true)
        var object: String?
        if let o = string(m["object"], "\(path).object") {
            if SalesforceTriggerPayload.isValidObjectName(o) {
                object = schemas.schema(for: o)?.name ?? o
            } else {
                report("\(path).object", m["object"], "not a Salesforce object API name", found: quoted(o), expected: "a name such as Case, Incident, Opportunity or My_Object__c")
            }
        }
        let runOn = choice(m["runOn"], "\(path).runOn", RunOn.self)
        let match = m["match"] == nil ? Match.all : choice(m["match"], "\(path).match", Match.self)
        let applyTo = choice(m["applyTo"], "\(path).applyTo", ApplyTo.self)
        var conditions: [Condition] = []
        for (i, item) in (list(m["conditions"], "\(path).conditions") ?? []).enumerated() {
            if let c = condition(item, "\(path).conditions[\(i)]", object: object, runOn: runOn) { conditions.append(c) }
        }
        var actions: [Action] = []
        let actionNodes = list(m["actions"], "\(path).actions") ?? []
        if m["actions"] != nil, case .array(let a)? = m["actions"]?.kind, a.isEmpty {
            report("\(path).actions", m["actions"], "a rule needs at least one action")
        }
        for (i, item) in actionNodes.enumerated() {
            if let a = action(item, "\(path).actions[\(i)]", object: object, runOn: runOn) { actions.append(a) }
        }
        guard let name, let object, let runOn, let match, let applyTo else { return nil }
        return Rule(name: name, enabled: enabled, object: object, runOn: runOn, match: match, conditions: conditions, applyTo: applyTo, actions: actions)
    }

    /// The type of a field a rule can read, or a report of why it cannot.
    private mutating func fieldType(_ name: String, _ node: Node?, _ path: String, object: String?, runOn: RunOn?) -> (resolved: String, type: FieldType?)? {
        if name.lowercased().hasPrefix("pagerduty.") {
            guard let field = PagerDutyField.allCases.first(where: { $0.rawValue.lowercased() == name.lowercased() }) else {
                report(
                    path, node, "unknown PagerDuty field", found: quoted(name),
                    expected: "one of \(PagerDutyField.allCases.map(\.rawValue).joined(separator: ", "))",
                    suggestion: NearMiss.suggest(name, among: PagerDutyField.allCases.map(\.rawValue)).map(quoted))
                return nil
            }
            if runOn == .salesforce {
                report(path, node, "a rule that runs on salesforce changes reads the \(object ?? "record")'s fields, not PagerDuty fields", found: quoted(name), expected: "a field of \(object ?? "the object")")
                return nil
            }
            return (field.rawValue, field.type)
        }
        if runOn == .pagerduty {
            report(
                path, node, "a rule that runs on pagerduty events reads PagerDuty fields", found: quoted(name),
                expected: "one of \(PagerDutyField.allCases.map(\.rawValue).joined(separator: ", "))",
                suggestion: NearMiss.suggest("pagerduty." + name, among: PagerDutyField.allCases.map(\.rawValue)).map(quoted))
            return nil
        }
        return salesforceField(name, node, path, object: object)
    }

    private mutating func salesforceField(_ name: String, _ node: Node?, _ path: String, object: String?) -> (resolved: String, type: FieldType?)? {
        guard SalesforceTriggerPayload.isValidObjectName(name) else {
            report(path, node, "not a Salesforce field API name", found: quoted(name), expected: "a field name such as Priority or My_Field__c")
            return nil
        }
        guard let object, let schema = schemas.schema(for: object) else { return (name, nil) }
        if let f = schema.field(named: name) { return (f.name, f.type) }
        if !schema.isFromDescribe, name.hasSuffix("__c") { return (name, nil) }
        report(
            path, node, "unknown field of \(schema.name)", found: quoted(name), expected: "a field of \(schema.name)\(schema.isFromDescribe ? "" : " (custom fields end in __c)")",
            suggestion: NearMiss.suggest(name, among: schema.fields.map(\.name)).map(quoted))
        return nil
    }

    private mutating func condition(_ node: Node, _ path: String, object: String?, runOn: RunOn?) -> Condition? {
        guard let m = mapping(node, path, allowed: ["field", "operator", "value", "from", "to", "caseSensitive"], required: ["operator"]) else {
            return nil
        }
        let op = choice(m["operator"], "\(path).operator", Operator.self)
        var field: String?
        var type: FieldType?
        var fieldOK = true
        if let f = m["field"] {
            if let name = string(f, "\(path).field") {
                if let resolved = fieldType(name, f, "\(path).field", object: object, runOn: runOn) {
                    field = resolved.resolved
                    type = resolved.type
                } else {
                    fieldOK = false
                }
            } else {
                fieldOK = false
            }
        } else if let op, !op.isBusinessHours {
            report("\(path).field", node, "missing required key `field`", expected: "a field (only the business-hours operators may leave it out)")
            fieldOK = false
        }
        let caseSensitive = bool(m["caseSensitive"], "\(path).caseSensitive") ?? false
        guard let op else { return nil }
        if fieldOK, let type, !op.applicableTypes.contains(type) {
            let fitting = Operator.allCases.filter { $0.applicableTypes.contains(type) }.map(\.rawValue)
            report(
                "\(path).operator", m["operator"], "operator \(op.rawValue) makes no sense for \(field ?? "this field"), a \(type.rawValue) field",
                found: quoted(op.rawValue), expected: "one of \(fitting.joined(separator: ", "))")
        }
        var condition = Condition(field: field, operator: op, caseSensitive: caseSensitive)
        // value / from / to
        if op == .changes {
            if let v = m["value"] {
                report("\(path).value", v, "`changes` takes optional `from` and `to`, not `value`", suggestion: "to: \(v.scalarText ?? "…")")
            }
            condition.from = m["from"].map { checkedValue($0, "\(path).from", field: field, type: type, op: .equals) }
            condition.to = m["to"].map { checkedValue($0, "\(path).to", field: field, type: type, op: .equals) }
        } else {
            for key in ["from", "to"] where m[key] != nil {
                report("\(path).\(key)", m[key], "`\(key)` is only for the changes operator")
            }
            if op.takesValue {
                if let v = m["value"] {
                    condition.value = checkedValue(v, "\(path).value", field: field, type: type, op: op)
                } else {
                    report("\(path).value", node, "missing required key `value`", expected: op.isBusinessHours ? "the name of a calendar" : "a value to compare with")
                }
            } else if let v = m["value"] {
                report("\(path).value", v, "operator \(op.rawValue) takes no value", found: describe(v))
            }
        }
        if op.isBusinessHours, fieldOK, field != nil, type == nil {
            // An untyped field is read as a date-time when evaluated; nothing to check now.
        }
        return condition
    }

    /// Checks a condition's value against the operator and the field's type.
    private mutating func checkedValue(_ node: Node, _ path: String, field: String?, type: FieldType?, op: Operator) -> RuleValue {
        // A mapping would compare as its JSON text, which no field holds: a mistake, which the schema refuses too.
        let elements: [(Node, String)] = if case .array(let items) = node.kind { items.enumerated().map { ($1, "\(path)[\($0)]") } } else { [(node, path)] }
        if let (mapping, at) = elements.first(where: { if case .object = $0.0.kind { true } else { false } }) {
            report(at, mapping, "wrong type", found: describe(mapping), expected: "a text, a number or true/false")
            return .null
        }
        let value = ruleValue(node)
        if op.isBusinessHours {
            guard case .text(let name) = value else {
                report(path, node, "wrong type", found: describe(node), expected: "the name of a calendar")
                return value
            }
            if !calendarNames.contains(name) {
                report(
                    path, node, "unknown calendar", found: quoted(name),
                    expected: calendarNames.isEmpty ? "a calendar defined under `calendars` (none is)" : "one of \(calendarNames.joined(separator: ", "))",
                    suggestion: NearMiss.suggest(name, among: calendarNames).map(quoted))
            }
            return value
        }
        if op == .matches {
            guard case .text(let pattern) = value else {
                report(path, node, "wrong type", found: describe(node), expected: "a regular expression")
                return value
            }
            if let problem = CompiledPattern.problem(with: pattern) {
                report(path, node, "invalid regular expression: \(problem)", found: quoted(pattern))
            }
            return value
        }
        let items: [(RuleValue, String)]
        if op == .in || op == .notIn {
            switch value {
            case .list(let list): items = list.enumerated().map { ($1, "\(path)[\($0)]") }
            case .text(let s): items = s.split(separator: ",").map { (.text($0.trimmingCharacters(in: .whitespaces)), path) }
            default: items = [(value, path)]
            }
            if items.isEmpty { report(path, node, "`\(op.rawValue)` needs at least one value") }
        } else {
            if case .list = value {
                report(path, node, "wrong type", found: "a list", expected: "a single value (use `in` to compare with several)")
                return value
            }
            items = [(value, path)]
        }
        for (item, itemPath) in items {
            checkScalar(item, itemPath, node: node, field: field, type: type, op: op)
        }
        return value
    }

    private mutating func checkScalar(_ value: RuleValue, _ path: String, node: Node, field: String?, type: FieldType?, op: Operator) {
        if case .list = value {
            report(path, node, "wrong type", found: "a nested list", expected: "a single value")
            return
        }
        if value == .null {
            report(path, node, "a value of null compares with nothing", expected: "a value (use isBlank to test for an empty field)")
            return
        }
        guard let type else { return }
        let text = value.text
        switch type {
        case .number:
            if Double(text) == nil { report(path, node, "not a number", found: quoted(text), expected: "a number for \(field ?? "this field")") }
        case .boolean:
            if !["true", "false"].contains(text.lowercased()) {
                report(path, node, "not a boolean", found: quoted(text), expected: "true or false for \(field ?? "this field")")
            }
        case .date:
            if LocalDate(text) == nil { report(path, node, "not a date", found: quoted(text), expected: "YYYY-MM-DD for \(field ?? "this field")") }
        case .dateTime:
            if Instant(iso8601: text) == nil && LocalDate(text) == nil {
                report(path, node, "not a date-time", found: quoted(text), expected: "an ISO 8601 date-time with offset, e.g. 2026-11-24T09:00:00Z")
            }
        case .text, .picklist, .reference:
            break
        }
        if let field, let pd = PagerDutyField(rawValue: field), let allowed = pd.allowedValues, [.equals, .notEquals, .in, .notIn].contains(op) {
            if !allowed.contains(where: { $0.lowercased() == text.lowercased() }) {
                report(
                    path, node, "\(pd.label) is never \(quoted(text))", found: quoted(text), expected: "one of \(allowed.joined(separator: ", "))",
                    suggestion: NearMiss.suggest(text, among: allowed).map(quoted))
            }
        }
    }

    // MARK: Actions

    private mutating func action(_ node: Node, _ path: String, object: String?, runOn: RunOn?) -> Action? {
        guard case .object(let entries) = node.kind else {
            report(path, node, "wrong type", found: describe(node), expected: "a mapping with `action` and its parameters")
            return nil
        }
        guard let nameNode = entries.first(where: { $0.key == "action" })?.value else {
            report("\(path).action", node, "missing required key `action`", expected: "one of \(ActionKind.ruleActions.map(\.rawValue).joined(separator: ", "))")
            return nil
        }
        guard let name = string(nameNode, "\(path).action") else { return nil }
        let deprecated = ["runresponseplay", "responseplay", "run response play"]
        if deprecated.contains(name.lowercased()) {
            report(
                "\(path).action", nameNode, "Run Response Play is deprecated by PagerDuty and cannot be used", found: quoted(name),
                expected: "runIncidentWorkflow, which replaces response plays", suggestion: quoted("runIncidentWorkflow"))
            return nil
        }
        guard let kind = ActionKind.ruleActions.first(where: { $0.rawValue.lowercased() == name.lowercased() }) else {
            report(
                "\(path).action", nameNode, "unknown action", found: quoted(name),
                expected: "one of \(ActionKind.ruleActions.map(\.rawValue).joined(separator: ", "))",
                suggestion: NearMiss.suggest(name, among: ActionKind.ruleActions.map(\.rawValue)).map(quoted))
            return nil
        }
        let allowed = ["action"] + kind.parameters.map(\.name)
        guard let m = mapping(node, path, allowed: allowed, required: ["action"] + kind.parameters.filter(\.required).map(\.name)) else { return nil }

        // Where the action may appear.
        switch (kind, runOn) {
        case (.createIncident, .pagerduty?), (.setIncidentConference, .pagerduty?), (.setIncidentDescription, .pagerduty?):
            report("\(path).action", nameNode, "\(kind.rawValue) reads the Salesforce record, so it belongs in a rule with runOn: salesforce", found: quoted(name))
        case (.createRecord, .salesforce?):
            report("\(path).action", nameNode, "createRecord creates a Salesforce record from a PagerDuty incident, so it belongs in a rule with runOn: pagerduty", found: quoted(name))
        default: break
        }

        func id(_ key: String) -> String? { string(m[key], "\(path).\(key)") }
        switch kind {
        case .createIncident:
            var spec = Action.CreateIncident(service: id("service") ?? "")
            spec.urgency = m["urgency"].flatMap { choice($0, "\(path).urgency", Urgency.self) }
            spec.priority = id("priority")
            spec.escalationPolicy = id("escalationPolicy")
            spec.assignee = id("assignee")
            if spec.escalationPolicy != nil, spec.assignee != nil {
                report("\(path).assignee", m["assignee"], "PagerDuty takes an escalation policy or an assignee, not both")
            }
            if let t = m["title"] { spec.title = title(t, "\(path).title", object: object, runOn: runOn) }
            spec.description = template(m["description"], "\(path).description", object: object, runOn: runOn)
            spec.conferenceUrl = template(m["conferenceUrl"], "\(path).conferenceUrl", object: object, runOn: runOn)
            spec.conferenceNumber = template(m["conferenceNumber"], "\(path).conferenceNumber", object: object, runOn: runOn)
            return .createIncident(spec)
        case .acknowledge:
            return .acknowledge
        case .resolve:
            return .resolve(resolution: template(m["resolution"], "\(path).resolution", object: object, runOn: runOn))
        case .setPriority:
            return id("priority").map(Action.setPriority)
        case .setUrgency:
            return m["urgency"].flatMap { choice($0, "\(path).urgency", Urgency.self) }.map(Action.setUrgency)
        case .runIncidentWorkflow:
            return id("workflow").map(Action.runIncidentWorkflow)
        case .runAutomationAction:
            return id("automationAction").map(Action.runAutomationAction)
        case .reassign:
            let users = names(m["users"], "\(path).users") ?? []
            let policy = id("escalationPolicy")
            if users.isEmpty == (policy == nil) {
                report(path, node, "reassign needs either `users` or `escalationPolicy`", expected: "exactly one of users, escalationPolicy")
            }
            return .reassign(users: users, escalationPolicy: policy)
        case .addResponders:
            let users = names(m["users"], "\(path).users") ?? []
            let policies = names(m["escalationPolicies"], "\(path).escalationPolicies") ?? []
            if users.isEmpty && policies.isEmpty {
                report(path, node, "addResponders needs `users` and/or `escalationPolicies`")
            }
            return .addResponders(users: users, escalationPolicies: policies, message: template(m["message"], "\(path).message", object: object, runOn: runOn))
        case .setField:
            guard let fieldName = id("field") else { return nil }
            let resolved = salesforceField(fieldName, m["field"], "\(path).field", object: object)
            if let resolved, let object, let f = schemas.schema(for: object)?.field(named: resolved.resolved), !f.updateable {
                report("\(path).field", m["field"], "\(f.name) is read-only in Salesforce and cannot be set", found: quoted(fieldName))
            }
            guard let value = template(m["value"], "\(path).value", object: object, runOn: runOn, allowAnyScalar: true) else { return nil }
            return .setField(field: resolved?.resolved ?? fieldName, value: value)
        case .createRecord:
            var target = object
            if let o = id("object") {
                if SalesforceTriggerPayload.isValidObjectName(o) {
                    target = schemas.schema(for: o)?.name ?? o
                } else {
                    report("\(path).object", m["object"], "not a Salesforce object API name", found: quoted(o))
                }
            }
            var assignments: [FieldAssignment] = []
            if let f = m["fields"], case .object(let entries) = f.kind {
                for e in entries {
                    let p = "\(path).fields.\(e.key)"
                    let resolved = salesforceField(e.key, Node(.null, line: e.keyLine), p, object: target)
                    if let resolved, let target, let fd = schemas.schema(for: target)?.field(named: resolved.resolved), !fd.createable {
                        report(p, Node(.null, line: e.keyLine), "\(fd.name) cannot be set when creating a \(target)")
                    }
                    if let v = template(e.value, p, object: object, runOn: runOn, allowAnyScalar: true) {
                        assignments.append(FieldAssignment(field: resolved?.resolved ?? e.key, value: v))
                    }
                }
            } else if let f = m["fields"] {
                report("\(path).fields", f, "wrong type", found: describe(f), expected: "a mapping of field name to value")
            }
            var org: String?
            if let o = id("org") {
                if SalesforceId.isValid(o) { org = SalesforceId.normalized(o) } else { report("\(path).org", m["org"], "not a Salesforce org Id (15 or 18 characters, starting 00D)", found: quoted(o)) }
            }
            return .createRecord(object: m["object"] == nil ? nil : target, fields: assignments, org: org)
        case .setIncidentConference:
            guard let fieldName = id("field") else { return nil }
            let resolved = salesforceField(fieldName, m["field"], "\(path).field", object: object)
            var numberField: String?
            if let n = id("numberField") { numberField = salesforceField(n, m["numberField"], "\(path).numberField", object: object)?.resolved ?? n }
            return .setIncidentConference(field: resolved?.resolved ?? fieldName, numberField: numberField)
        case .setIncidentDescription:
            guard let fieldName = id("field") else { return nil }
            let resolved = salesforceField(fieldName, m["field"], "\(path).field", object: object)
            return .setIncidentDescription(field: resolved?.resolved ?? fieldName)
        case .syncNote, .addNote:
            // Not a rules-file action (see ActionKind.ruleActions); never reached.
            return nil
        }
    }

    private mutating func title(_ node: Node, _ path: String, object: String?, runOn: RunOn?) -> IncidentTitle? {
        if case .string(let s) = node.kind {
            guard let t = template(node, path, object: object, runOn: runOn) else { return nil }
            _ = s
            return IncidentTitle(template: t)
        }
        guard let m = mapping(node, path, allowed: ["prefix", "fields", "separator"], required: []) else { return nil }
        let prefix = string(m["prefix"], "\(path).prefix", allowEmpty: true) ?? ""
        let separator = string(m["separator"], "\(path).separator", allowEmpty: true) ?? " "
        var fields: [String] = []
        if let items = list(m["fields"], "\(path).fields") {
            if items.count > IncidentTitle.maximumFields {
                report(
                    "\(path).fields", m["fields"], "a custom title takes at most \(IncidentTitle.maximumFields) fields",
                    found: "\(items.count) fields", expected: "up to \(IncidentTitle.maximumFields) fields")
            }
            for (i, item) in items.enumerated() {
                guard let name = string(item, "\(path).fields[\(i)]") else { continue }
                if let resolved = fieldType(name, item, "\(path).fields[\(i)]", object: object, runOn: runOn) { fields.append(resolved.resolved) }
            }
        }
        return IncidentTitle(prefix: prefix, fields: fields, separator: separator)
    }

    /// A text with `{{Field}}` placeholders; each placeholder must name a field the rule can read.
    private mutating func template(_ node: Node?, _ path: String, object: String?, runOn: RunOn?, allowAnyScalar: Bool = false) -> Template? {
        guard let node else { return nil }
        let source: String
        switch node.kind {
        case .string(let s): source = s
        case .number where allowAnyScalar, .bool where allowAnyScalar: source = node.scalarText ?? ""
        case .null where allowAnyScalar: source = ""
        default:
            report(path, node, "wrong type", found: describe(node), expected: "a text (may use {{Field}} placeholders)")
            return nil
        }
        let t = Template(source)
        for name in t.fieldNames {
            if name.isEmpty {
                report(path, node, "empty placeholder {{}}", found: quoted(source))
                continue
            }
            _ = fieldType(name, node, path, object: object, runOn: runOn)
        }
        return t
    }
}
