/// A Salesforce record as the Apex trigger serialises it: `{"attributes": {"type", "url"}, "Id": …, fields…}`.
/// Apex leaves out null fields, so an absent field reads as ``FieldValue/null``.
public struct SalesforceRecord: Sendable, Hashable {
    public var object: String
    public var id: String
    /// Field values by API name, as written in the payload.
    public var fields: [String: FieldValue]
    private var lowercasedNames: [String: String]

    public init(object: String, id: String, fields: [String: FieldValue]) {
        self.object = object
        self.id = id
        self.fields = fields
        var names: [String: String] = [:]
        for key in fields.keys { names[key.lowercased()] = key }
        self.lowercasedNames = names
    }

    /// The field's value, matching the API name case-insensitively as Salesforce does.
    public subscript(field: String) -> FieldValue {
        if let v = fields[field] { return v }
        if let key = lowercasedNames[field.lowercased()], let v = fields[key] { return v }
        return .null
    }

    /// Decodes one record, typing each value by the schema when it knows the field.
    public init(json: JSONObject, object fallbackObject: String?, schema: ObjectSchema?) throws(DocumentError) {
        let declared = json["attributes"]?["type"]?.stringValue
        guard let object = declared ?? fallbackObject else {
            throw DocumentError("the record has no attributes.type and no object was named")
        }
        guard case .string(let id)? = json["Id"] else { throw DocumentError("the \(object) record has no Id") }
        var fields: [String: FieldValue] = [:]
        for (key, value) in json.entries where key != "attributes" {
            fields[key] = FieldValue(json: value, field: schema?.field(named: key), name: key)
        }
        self.init(object: object, id: SalesforceId.normalized(id), fields: fields)
    }
}

extension FieldValue {
    /// Types a JSON value from a Salesforce payload. With a describe the type is known; without one it
    /// is inferred: ISO dates and date-times, Ids in `Id`/`…Id` fields, `;` lists stay text.
    public init(json: JSONValue, field: FieldDescription?, name: String) {
        switch json {
        case .null: self = .null
        case .bool(let b): self = .boolean(b)
        case .number(let n): self = .number(n)
        case .array(let items):
            self = .picklist(items.compactMap { $0.stringValue })
        case .object:
            self = .text(json.serialized())
        case .string(let s):
            if let field {
                self = FieldValue(text: s, as: field.type, multiSelect: field.isMultiSelect)
            } else {
                self = FieldValue(inferring: s, name: name)
            }
        }
    }

    /// Converts text to a value of the given type, falling back to text when it does not parse.
    public init(text s: String, as type: FieldType, multiSelect: Bool = false) {
        switch type {
        case .text: self = .text(s)
        case .number: self = Double(s).map(FieldValue.number) ?? .text(s)
        case .boolean:
            switch s.lowercased() {
            case "true": self = .boolean(true)
            case "false": self = .boolean(false)
            default: self = .text(s)
            }
        case .date: self = LocalDate(s).map(FieldValue.date) ?? .text(s)
        case .dateTime: self = Instant(iso8601: s).map(FieldValue.dateTime) ?? .text(s)
        case .picklist:
            self = multiSelect ? .picklist(s.split(separator: ";").map(String.init)) : .picklist([s])
        case .reference: self = .reference(id: SalesforceId.normalized(s), label: nil)
        }
    }

    init(inferring s: String, name: String) {
        let utf8 = s.utf8
        if utf8.count == 10, let d = LocalDate(s) {
            self = .date(d)
        } else if utf8.count >= 20, utf8.count <= 35, let t = Instant(iso8601: s) {
            self = .dateTime(t)
        } else if name.hasSuffix("Id"), SalesforceId.isValid(s) {
            self = .reference(id: SalesforceId.normalized(s), label: nil)
        } else {
            self = .text(s)
        }
    }
}

/// One record's change, as the rule engine sees it.
public struct SalesforceChange: Sendable, Hashable {
    public var object: String
    public var isInsert: Bool
    /// The record before the change; `nil` on insert.
    public var old: SalesforceRecord?
    public var new: SalesforceRecord
    /// The org the change came from, when known (several orgs may share one PagerDuty account).
    public var orgId: String?

    public var recordId: String { new.id }

    public init(object: String, isInsert: Bool, old: SalesforceRecord?, new: SalesforceRecord, orgId: String? = nil) {
        self.object = object
        self.isInsert = isInsert
        self.old = old
        self.new = new
        self.orgId = orgId
    }
}

/// The payload the Apex trigger sends: `JSON.serialize(Trigger.oldMap)`, `JSON.serialize(Trigger.newMap)` and
/// `Trigger.isInsert`, plus the object name.
public enum SalesforceTriggerPayload {
    /// Salesforce fires triggers in batches of at most 200 records.
    public static let maximumBatch = 200

    /// Decodes `{"object": "Case", "isInsert": true, "old": {...} | null, "new": {...}}` into one change per
    /// record, in the order of `new`. `old` and `new` may also be the JSON strings Apex produced.
    public static func decode(_ payload: JSONValue, schemas: SchemaCatalog = .standard) throws(DocumentError) -> [SalesforceChange] {
        guard let body = payload.objectValue else {
            throw DocumentError("a Salesforce trigger payload is a JSON object with `object`, `isInsert`, `old` and `new`")
        }
        let known: Set<String> = ["object", "isInsert", "old", "new", "oldMap", "newMap", "orgId", "organizationId"]
        if let unknown = body.keys.first(where: { !known.contains($0) }) {
            throw DocumentError("unknown key \"\(unknown)\" in the trigger payload; expected object, isInsert, old, new, orgId")
        }
        let objectName: String?
        switch body["object"] {
        case .string(let s)?:
            guard isValidObjectName(s) else { throw DocumentError("\"\(s)\" is not a Salesforce object API name") }
            objectName = s
        case nil, .null?: objectName = nil
        default: throw DocumentError("`object` must be a string such as \"Case\"")
        }
        guard case .bool(let isInsert)? = body["isInsert"] else {
            throw DocumentError("`isInsert` must be true or false")
        }
        let newMap = try map(body["new"] ?? body["newMap"], name: "new")
        let oldMap = try map(body["old"] ?? body["oldMap"], name: "old")
        guard let newMap, !newMap.isEmpty else { throw DocumentError("`new` must hold at least one record") }
        guard newMap.count <= maximumBatch else {
            throw DocumentError("`new` holds \(newMap.count) records; a trigger batch holds at most \(maximumBatch)")
        }
        if isInsert, let oldMap, !oldMap.isEmpty {
            throw DocumentError("`old` must be null when isInsert is true (Trigger.oldMap is null on insert)")
        }
        if !isInsert, oldMap == nil {
            throw DocumentError("`old` is missing: an update needs the old values (Trigger.oldMap)")
        }
        let orgId = (body["orgId"] ?? body["organizationId"])?.stringValue
        var changes: [SalesforceChange] = []
        for (key, value) in newMap.entries {
            guard let recordJSON = value.objectValue else { throw DocumentError("new[\"\(key)\"] must be a record object") }
            let declared = recordJSON["attributes"]?["type"]?.stringValue
            if let declared, let objectName, declared.lowercased() != objectName.lowercased() {
                throw DocumentError("new[\"\(key)\"] is a \(declared) but the payload is for \(objectName)")
            }
            guard let object = declared ?? objectName else {
                throw DocumentError("new[\"\(key)\"] has no attributes.type and the payload names no object")
            }
            let schema = schemas.schema(for: object)
            let new = try record(recordJSON, object: object, schema: schema, at: "new[\"\(key)\"]")
            guard SalesforceId.same(new.id, key) else {
                throw DocumentError("new[\"\(key)\"] has Id \(new.id); the map key and the record Id must agree")
            }
            var old: SalesforceRecord?
            if !isInsert {
                guard let oldJSON = oldMap?[key]?.objectValue ?? oldMap?.entries.first(where: { SalesforceId.same($0.key, key) })?.value.objectValue
                else { throw DocumentError("old has no record for \(key): an update needs the old values of every record") }
                old = try record(oldJSON, object: object, schema: schema, at: "old[\"\(key)\"]")
            }
            changes.append(SalesforceChange(object: schema?.name ?? object, isInsert: isInsert, old: old, new: new, orgId: orgId))
        }
        return changes
    }

    private static func record(_ json: JSONObject, object: String, schema: ObjectSchema?, at path: String) throws(DocumentError) -> SalesforceRecord {
        do {
            return try SalesforceRecord(json: json, object: object, schema: schema)
        } catch {
            throw DocumentError("\(path): \(error.message)")
        }
    }

    private static func map(_ value: JSONValue?, name: String) throws(DocumentError) -> JSONObject? {
        switch value {
        case nil, .null?: return nil
        case .object(let o)?: return o
        case .string(let s)?:
            // Apex hands the launcher JSON.serialize(...) strings; accept them as sent.
            if s == "null" { return nil }
            let parsed: JSONValue
            do { parsed = try JSONParser.parseValue(s) } catch { throw DocumentError("`\(name)` is a string that is not valid JSON: \(error)") }
            if parsed.isNull { return nil }
            guard let o = parsed.objectValue else { throw DocumentError("`\(name)` must be a map of Id to record") }
            return o
        default:
            throw DocumentError("`\(name)` must be a map of Id to record (JSON.serialize(Trigger.\(name)Map)) or null")
        }
    }

    static func isValidObjectName(_ s: String) -> Bool {
        guard let first = s.unicodeScalars.first, first.properties.isAlphabetic, s.utf8.count <= 80 else { return false }
        return s.unicodeScalars.allSatisfy { ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) || $0 == "_" }
    }
}
