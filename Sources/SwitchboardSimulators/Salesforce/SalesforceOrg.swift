import Foundation
import SwitchboardCore

/// The org's data: the schema, the records (every field present, unset ones null) and the counters behind Ids,
/// auto-numbers and timestamps.
struct SalesforceOrg: Sendable {
    var types: [String: SalesforceObjectType]
    var records: [String: [String: JSONObject]] = [:]
    var order: [String: [String]] = [:]
    var idCounter = 0
    /// The two characters after the key prefix (a pod in real Ids): differ per org, so two simulated orgs never
    /// hand out the same Id, as real orgs never do.
    var pod = "Dn"
    var autoNumbers: [String: Int] = [:]
    var lastStamp: Int64 = 0
    var seedUser: String?

    /// A pod for an org other than the default one, from its Id.
    static func pod(for orgId: String) -> String {
        guard !SalesforceId.same(orgId, SalesforceSimulator.Options().orgId) else { return "Dn" }
        let digits = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
        let h = orgId.utf8.reduce(7) { ($0 &* 31 &+ Int($1)) & 0xFFFF }
        return String([digits[h % digits.count], digits[(h / digits.count) % digits.count]])
    }

    init() {
        types = Dictionary(uniqueKeysWithValues: SalesforceSchema.objects.map { ($0.name.lowercased(), $0) })
    }

    /// An object by API name, case-insensitively, as Salesforce resolves it.
    func type(_ name: String) -> SalesforceObjectType? { types[name.lowercased()] }

    func typeFor(id: String) -> SalesforceObjectType? {
        SalesforceSchema.prefixes[String(id.prefix(3))].flatMap { type($0) }
    }

    func find(_ id: String) -> (type: SalesforceObjectType, record: JSONObject)? {
        guard let type = typeFor(id: id), let record = records[type.name]?[id] else { return nil }
        return (type, record)
    }

    /// A new 18-character Id: key prefix, a pod-like infix, a base-62 counter, then the checksum.
    mutating func newId(prefix: String) -> String {
        idCounter += 1
        return Self.makeId(prefix: prefix, counter: idCounter, pod: pod)
    }

    static func makeId(prefix: String, counter: Int, pod: String = "Dn") -> String {
        let digits = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
        var n = counter
        var tail = ""
        for _ in 0..<6 {
            tail = String(digits[n % 62]) + tail
            n /= 62
        }
        return SalesforceId.normalized(prefix + pod + "0000" + tail)
    }

    /// A write time no earlier than `now` and later than every earlier write, so pollers ordering by
    /// SystemModstamp never see two writes share one.
    mutating func stamp(now: Int64) -> Int64 {
        lastStamp = max(now, lastStamp + 1)
        return lastStamp
    }

    /// The 18-character form of a 15- or 18-character Id; nil for anything else (or a wrong checksum).
    static func canonicalId(_ id: String) -> String? {
        let b = Array(id.utf8)
        guard b.count == 15 || b.count == 18, b.allSatisfy({ (48...57).contains($0) || (65...90).contains($0) || (97...122).contains($0) }) else {
            return nil
        }
        let normalized = SalesforceId.normalized(id)
        if b.count == 18 && normalized.suffix(3) != id.suffix(3).uppercased() { return nil }
        return normalized
    }

    /// `2026-11-24T10:00:00.000+0000`, the REST API's form; `zulu` gives `…000Z`, as CDC events carry it.
    static func formatDateTime(_ ms: Int64, zulu: Bool = false) -> String {
        let day = ms >= 0 ? ms / 86_400_000 : (ms - 86_399_999) / 86_400_000
        let rest = ms - day * 86_400_000
        let date = LocalDate(daysSince1970: Int(day))
        func pad(_ n: Int64, _ w: Int) -> String {
            let s = String(n)
            return String(repeating: "0", count: max(0, w - s.count)) + s
        }
        let time = "\(pad(rest / 3_600_000, 2)):\(pad(rest / 60_000 % 60, 2)):\(pad(rest / 1000 % 60, 2)).\(pad(rest % 1000, 3))"
        return "\(date)T\(time)" + (zulu ? "Z" : "+0000")
    }

    static func parseDateTime(_ text: String) -> Int64? { Instant(iso8601: text)?.millisecondsSince1970 }

    /// Writes a seed record directly (no validation, no change delivery).
    @discardableResult
    mutating func seed(_ object: String, _ fields: JSONObject, at now: Int64) -> String {
        guard let type = type(object) else { return "" }
        let id = newId(prefix: type.keyPrefix)
        let user = seedUser ?? id
        if seedUser == nil { seedUser = id }
        var record = JSONObject()
        for field in type.fields { record[field.name] = field.type == "boolean" ? .bool(false) : .null }
        for (k, v) in fields.entries { record[k] = v }
        let stamp = SalesforceOrg.formatDateTime(self.stamp(now: now))
        record["Id"] = .string(id)
        for (k, v) in [
            ("CreatedDate", stamp), ("LastModifiedDate", stamp), ("SystemModstamp", stamp), ("CreatedById", user), ("LastModifiedById", user),
        ] {
            record[k] = .string(v)
        }
        if type.field("OwnerId") != nil, record["OwnerId"] == .null { record["OwnerId"] = .string(user) }
        records[type.name, default: [:]][id] = record
        order[type.name, default: []].append(id)
        return id
    }

    mutating func setCreator(object: String, id: String, user: String) {
        guard let type = type(object) else { return }
        records[type.name]?[id]?["CreatedById"] = .string(user)
        records[type.name]?[id]?["LastModifiedById"] = .string(user)
    }

    mutating func nextAutoNumber(_ object: String, _ field: String) -> String {
        let key = object + "." + field
        let n = (autoNumbers[key] ?? 0) + 1
        autoNumbers[key] = n
        if object == "Case" { return String(format: "%08d", 1000 + n) }
        return String(format: "%@-%06d", object == "Incident" ? "INC" : "NUM", n)
    }
}

/// One record written, for change delivery after the commit.
struct RecordChange: Sendable {
    var object: String
    var id: String
    var isInsert: Bool
    var old: JSONObject?
    var new: JSONObject
    /// The DML statement within the request: a trigger fires once per statement and object.
    var statement: Int
}

/// What one request (or one UI action) writes, committed together.
struct Transaction: Sendable {
    var userId: String
    /// The CDC `changeOrigin`: empty for the UI, `com/salesforce/api/rest/<ver>[;client=<name>]` for REST.
    var origin: String
    var version: String
    var changes: [RecordChange] = []
    var key = UUID().uuidString.lowercased()
}

extension SalesforceSimulator {
    // MARK: Validation and writes (called with the state locked)

    /// Checks and converts an input body: unknown fields, read-only fields, value types.
    func coerce(_ type: SalesforceObjectType, _ input: JSONObject, creating: Bool) -> Result<[(SalesforceField, JSONValue)], WriteError> {
        var out: [(SalesforceField, JSONValue)] = []
        var readOnly: [String] = []
        for (key, value) in input.entries where key != "attributes" {
            guard let field = type.field(key) else {
                return .failure(
                    WriteError(
                        status: 400, errorCode: "INVALID_FIELD", message: "No such column '\(key)' on sobject of type \(type.name)", fields: []))
            }
            if creating ? !field.createable : !field.updateable {
                readOnly.append(field.name)
                continue
            }
            switch Self.convert(value, for: field) {
            case .success(let v): out.append((field, v))
            case .failure(let e): return .failure(e)
            }
        }
        if !readOnly.isEmpty {
            return .failure(
                WriteError(
                    status: 400, errorCode: "INVALID_FIELD_FOR_INSERT_UPDATE",
                    message:
                        "Unable to create/update fields: \(readOnly.joined(separator: ", ")). Please check the security settings of this field and verify that it is read/write for your profile or permission set.",
                    fields: readOnly))
        }
        return .success(out)
    }

    static func convert(_ value: JSONValue, for field: SalesforceField) -> Result<JSONValue, WriteError> {
        func parserError(_ what: String) -> Result<JSONValue, WriteError> {
            .failure(
                WriteError(
                    status: 400, errorCode: "JSON_PARSER_ERROR",
                    message: "Cannot deserialize instance of \(field.type) from \(what) or request may be missing a required field", fields: []))
        }
        if value == .null { return .success(field.type == "boolean" ? .bool(false) : .null) }
        switch field.type {
        case "boolean":
            if case .bool = value { return .success(value) }
            if case .string(let s) = value, ["true", "false"].contains(s.lowercased()) { return .success(.bool(s.lowercased() == "true")) }
            return parserError("VALUE_STRING value \(value.serialized())")
        case "reference", "id":
            guard case .string(let s) = value else { return parserError("value \(value.serialized())") }
            if s.isEmpty { return .success(.null) }
            guard let id = SalesforceOrg.canonicalId(s) else {
                return .failure(
                    WriteError(
                        status: 400, errorCode: "MALFORMED_ID", message: "\(field.label): id value of incorrect type: \(s)", fields: [field.name]))
            }
            return .success(.string(id))
        case "datetime":
            guard case .string(let s) = value, let ms = SalesforceOrg.parseDateTime(s) else {
                return parserError("VALUE_STRING value \(value.serialized())")
            }
            return .success(.string(SalesforceOrg.formatDateTime(ms)))
        case "date":
            guard case .string(let s) = value, let date = LocalDate(String(s.prefix(10))), s.count == 10 || SalesforceOrg.parseDateTime(s) != nil
            else {
                return parserError("VALUE_STRING value \(value.serialized())")
            }
            return .success(.string(date.description))
        case "double", "currency", "percent", "int":
            if case .number = value { return .success(value) }
            if case .string(let s) = value, let n = Double(s) { return .success(.number(n)) }
            return parserError("VALUE_STRING value \(value.serialized())")
        default:
            switch value {
            case .string: return .success(value)
            case .number, .bool: return .success(.string(value.serialized()))
            default: return parserError("START_ARRAY value \(value.serialized().prefix(1))")
            }
        }
    }

    /// Length, picklist and reference checks on the fields a write sets.
    func check(_ s: State, _ type: SalesforceObjectType, _ values: [(SalesforceField, JSONValue)]) -> WriteError? {
        for (field, value) in values {
            guard case .string(let text) = value else { continue }
            if field.type == "picklist", field.restrictedPicklist, !field.picklist.contains(text) {
                return WriteError(
                    status: 400, errorCode: "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                    message: "\(field.label): bad value for restricted picklist field: \(text)",
                    fields: [field.name])
            }
            if field.isText, field.length > 0 {
                let size = field.lengthInBytes ? text.utf8.count : text.count
                if size > field.length {
                    return WriteError(
                        status: 400, errorCode: "STRING_TOO_LONG",
                        message: "\(field.label): data value too large: \(text) (max length=\(field.length))",
                        fields: [field.name])
                }
            }
            if field.type == "reference" {
                let prefix = String(text.prefix(3))
                let targets = field.referenceTo.compactMap { s.org.type($0)?.keyPrefix } + (field.referenceTo.contains("Group") ? ["00G"] : [])
                guard targets.contains(prefix) else {
                    return WriteError(
                        status: 400, errorCode: "FIELD_INTEGRITY_EXCEPTION", message: "\(field.label): id value of incorrect type: \(text)",
                        fields: [field.name])
                }
                if prefix != "00G", s.org.find(text) == nil {
                    return WriteError(
                        status: 400, errorCode: "INVALID_CROSS_REFERENCE_KEY", message: "invalid cross reference id", fields: [field.name])
                }
            }
        }
        return nil
    }

    static func isBlank(_ v: JSONValue?) -> Bool {
        switch v {
        case nil, .null?: true
        case .string(let s)?: s.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
        default: false
        }
    }

    /// Derived fields and the org's validation rule, on the record as it would be saved.
    func applyRules(_ type: SalesforceObjectType, _ record: inout JSONObject, old: JSONObject?, stamp: String) -> WriteError? {
        switch type.name {
        case "Case":
            let closed = record["Status"]?.stringValue == "Closed"
            // The org's validation rule: a closed case needs a subject.
            if closed && Self.isBlank(record["Subject"]) {
                return WriteError(status: 400, errorCode: "FIELD_CUSTOM_VALIDATION_EXCEPTION", message: "Closed cases need a Subject", fields: [])
            }
            let wasClosed = old?["IsClosed"] == .bool(true)
            record["IsClosed"] = .bool(closed)
            if closed && !wasClosed { record["ClosedDate"] = .string(stamp) }
            if !closed { record["ClosedDate"] = .null }
        case "Opportunity":
            let stage = record["StageName"]?.stringValue ?? ""
            record["IsClosed"] = .bool(stage.hasPrefix("Closed"))
            record["IsWon"] = .bool(stage == "Closed Won")
        case "Contact", "User":
            let name = [record["FirstName"]?.stringValue, record["LastName"]?.stringValue].compactMap { $0 }.filter { !$0.isEmpty }.joined(
                separator: " ")
            record["Name"] = .string(name)
        default: break
        }
        return nil
    }

    /// Creates one record inside `txn`. Nothing is stored when it fails.
    func insert(_ s: inout State, type: SalesforceObjectType, input: JSONObject, txn: inout Transaction, statement: Int) -> Result<String, WriteError>
    {
        if input.keys.contains(where: { $0.lowercased() == "id" }) {
            return .failure(WriteError(status: 400, errorCode: "INVALID_FIELD", message: "cannot specify Id in an insert call", fields: ["Id"]))
        }
        let values: [(SalesforceField, JSONValue)]
        switch coerce(type, input, creating: true) {
        case .success(let v): values = v
        case .failure(let e): return .failure(e)
        }
        var record = JSONObject()
        for field in type.fields {
            record[field.name] =
                field.defaultPicklistValue.map(JSONValue.string) ?? (field.type == "boolean" ? .bool(field.name == "IsActive") : .null)
        }
        for (field, value) in values { record[field.name] = value }
        let missing = type.fields.filter { $0.requiredOnCreate && Self.isBlank(record[$0.name]) }.map(\.name)
        if !missing.isEmpty {
            return .failure(
                WriteError(
                    status: 400, errorCode: "REQUIRED_FIELD_MISSING", message: "Required fields are missing: [\(missing.joined(separator: ", "))]",
                    fields: missing))
        }
        if let e = check(s, type, values) { return .failure(e) }
        let stampMs = s.org.stamp(now: Self.nowMs(s))
        let stamp = SalesforceOrg.formatDateTime(stampMs)
        if let e = applyRules(type, &record, old: nil, stamp: stamp) { return .failure(e) }
        let id = s.org.newId(prefix: type.keyPrefix)
        record["Id"] = .string(id)
        for field in type.fields where field.autoNumber { record[field.name] = .string(s.org.nextAutoNumber(type.name, field.name)) }
        if type.field("OwnerId") != nil, record["OwnerId"] == .null { record["OwnerId"] = .string(txn.userId) }
        for (k, v) in [
            ("CreatedDate", stamp), ("LastModifiedDate", stamp), ("SystemModstamp", stamp), ("CreatedById", txn.userId),
            ("LastModifiedById", txn.userId),
        ]
        where type.field(k) != nil {
            record[k] = .string(v)
        }
        s.org.records[type.name, default: [:]][id] = record
        s.org.order[type.name, default: []].append(id)
        txn.changes.append(RecordChange(object: type.name, id: id, isInsert: true, old: nil, new: record, statement: statement))
        return .success(id)
    }

    /// Updates one record inside `txn`. Nothing is stored when it fails.
    func modify(_ s: inout State, type: SalesforceObjectType, id: String, input: JSONObject, txn: inout Transaction, statement: Int) -> Result<
        Void, WriteError
    > {
        guard let old = s.org.records[type.name]?[id] else { return .failure(Self.notFound()) }
        var body = input
        // An `Id` matching the record is tolerated (Collections put it in the body); any other is refused.
        for key in input.keys where key.lowercased() == "id" {
            if SalesforceOrg.canonicalId(input[key]?.stringValue ?? "") == id { body[key] = nil }
        }
        let values: [(SalesforceField, JSONValue)]
        switch coerce(type, body, creating: false) {
        case .success(let v): values = v
        case .failure(let e): return .failure(e)
        }
        var record = old
        for (field, value) in values { record[field.name] = value }
        let missing = values.filter { !$0.0.nillable && Self.isBlank($0.1) && $0.0.type != "boolean" }.map(\.0.name)
        if !missing.isEmpty {
            return .failure(
                WriteError(
                    status: 400, errorCode: "REQUIRED_FIELD_MISSING", message: "Required fields are missing: [\(missing.joined(separator: ", "))]",
                    fields: missing))
        }
        if let e = check(s, type, values) { return .failure(e) }
        let stampMs = s.org.stamp(now: Self.nowMs(s))
        let stamp = SalesforceOrg.formatDateTime(stampMs)
        if let e = applyRules(type, &record, old: old, stamp: stamp) { return .failure(e) }
        for (k, v) in [("LastModifiedDate", stamp), ("SystemModstamp", stamp), ("LastModifiedById", txn.userId)] where type.field(k) != nil {
            record[k] = .string(v)
        }
        s.org.records[type.name]?[id] = record
        txn.changes.append(RecordChange(object: type.name, id: id, isInsert: false, old: old, new: record, statement: statement))
        return .success(())
    }

    /// A record as the REST API returns it: `attributes` first, then the fields.
    static func rendered(_ type: SalesforceObjectType, _ record: JSONObject, version: String, fields: [String]? = nil) -> JSONObject {
        let id = record["Id"]?.stringValue ?? ""
        var out: JSONObject = [
            "attributes": .object(["type": .string(type.name), "url": .string("/services/data/v\(version)/sobjects/\(type.name)/\(id)")])
        ]
        for name in fields ?? record.keys { out[name] = record[name] ?? .null }
        return out
    }

    /// A record as Apex `JSON.serialize` writes it: null fields left out.
    static func apexSerialized(_ type: SalesforceObjectType, _ record: JSONObject, version: String) -> JSONValue {
        var out = rendered(type, record, version: version)
        for (k, v) in out.entries where v == .null { out[k] = nil }
        return .object(out)
    }

    // MARK: Commit: what each change sets off

    /// Publishes the transaction's changes: CDC events now, trigger batches for the caller to post.
    func commit(_ s: inout State, _ txn: Transaction) -> [TriggerBatch] {
        guard !txn.changes.isEmpty else { return [] }
        switch s.capture {
        case .none: return []
        case .cdc:
            publishChangeEvents(&s, txn)
            return []
        case .trigger(let url):
            var batches: [TriggerBatch] = []
            var groups: [(key: String, changes: [RecordChange])] = []
            for change in txn.changes where options.triggerObjects.contains(change.object) {
                let key = "\(change.statement)|\(change.object)|\(change.isInsert)"
                if let i = groups.firstIndex(where: { $0.key == key }) { groups[i].changes.append(change) } else { groups.append((key, [change])) }
            }
            for group in groups {
                guard let first = group.changes.first, let type = s.org.type(first.object) else { continue }
                var newMap = JSONObject()
                var oldMap = JSONObject()
                for c in group.changes {
                    newMap[c.id] = Self.apexSerialized(type, c.new, version: currentVersion)
                    if let old = c.old { oldMap[c.id] = Self.apexSerialized(type, old, version: currentVersion) }
                }
                let body: JSONValue = .object([
                    "object": .string(type.name), "isInsert": .bool(first.isInsert), "old": first.isInsert ? .null : .object(oldMap),
                    "new": .object(newMap),
                    "orgId": .string(options.orgId),
                ])
                batches.append(
                    TriggerBatch(object: type.name, isInsert: first.isInsert, recordIds: group.changes.map(\.id), url: url, body: body.serialized()))
            }
            return batches
        }
    }
}
