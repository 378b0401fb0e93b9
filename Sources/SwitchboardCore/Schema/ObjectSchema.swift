/// What Switchboard knows about a Salesforce object's fields: from the org's describe when connected,
/// from the built-in catalog of standard objects otherwise.
public struct ObjectSchema: Sendable, Hashable {
    public var name: String
    public var fields: [FieldDescription]
    /// True when the field list is the object's complete describe, so an unknown name is an error.
    /// The built-in catalog is complete for standard fields only; custom fields (`__c`) are then allowed.
    public var isFromDescribe: Bool
    private var index: [String: Int]

    public init(name: String, fields: [FieldDescription], isFromDescribe: Bool) {
        self.name = name
        self.fields = fields
        self.isFromDescribe = isFromDescribe
        var index: [String: Int] = [:]
        for (i, f) in fields.enumerated() { index[f.name.lowercased()] = i }
        self.index = index
    }

    /// The field with this API name, matched case-insensitively as Salesforce does.
    public func field(named name: String) -> FieldDescription? {
        index[name.lowercased()].map { fields[$0] }
    }

    /// Fields that must be given to create a record (not nillable, createable, not defaulted).
    public var requiredOnCreate: [FieldDescription] {
        fields.filter(\.isRequiredOnCreate)
    }

    /// Decodes a `GET /sobjects/{name}/describe` response body.
    public init(describe: JSONValue) throws(DocumentError) {
        guard let name = describe["name"]?.stringValue, let fieldList = describe["fields"]?.arrayValue else {
            throw DocumentError("a describe result needs `name` and `fields`")
        }
        var fields: [FieldDescription] = []
        for item in fieldList {
            guard let fieldName = item["name"]?.stringValue, let type = item["type"]?.stringValue else { continue }
            func flag(_ key: String, _ fallback: Bool) -> Bool {
                if case .bool(let b) = item[key] { return b }
                return fallback
            }
            let picklist = (item["picklistValues"]?.arrayValue ?? []).compactMap { v -> String? in
                if case .bool(false) = v["active"] { return nil }
                return v["value"]?.stringValue
            }
            fields.append(
                FieldDescription(
                    name: fieldName, label: item["label"]?.stringValue ?? fieldName, salesforceType: type,
                    createable: flag("createable", false), updateable: flag("updateable", false),
                    nillable: flag("nillable", true), defaultedOnCreate: flag("defaultedOnCreate", false),
                    picklistValues: picklist,
                    length: { if case .number(let n) = item["length"] { return Int(n) } else { return nil } }()))
        }
        self.init(name: name, fields: fields, isFromDescribe: true)
    }
}

/// One field of an object's describe.
public struct FieldDescription: Sendable, Hashable {
    public var name: String
    public var label: String
    /// The describe type (`string`, `picklist`, `datetime`, `reference`, `url`, …).
    public var salesforceType: String
    public var createable: Bool
    public var updateable: Bool
    public var nillable: Bool
    public var defaultedOnCreate: Bool
    public var picklistValues: [String]
    public var length: Int?

    public init(
        name: String, label: String? = nil, salesforceType: String, createable: Bool = true, updateable: Bool = true,
        nillable: Bool = true, defaultedOnCreate: Bool = false, picklistValues: [String] = [], length: Int? = nil
    ) {
        self.name = name
        self.label = label ?? name
        self.salesforceType = salesforceType
        self.createable = createable
        self.updateable = updateable
        self.nillable = nillable
        self.defaultedOnCreate = defaultedOnCreate
        self.picklistValues = picklistValues
        self.length = length
    }

    public var type: FieldType { FieldType(salesforceType: salesforceType) }
    public var isMultiSelect: Bool { salesforceType.lowercased() == "multipicklist" }
    public var isRequiredOnCreate: Bool { createable && !nillable && !defaultedOnCreate && salesforceType != "boolean" }
}

/// The schemas Switchboard checks rules against: describes from connected orgs take precedence over
/// the built-in catalog of standard objects.
public struct SchemaCatalog: Sendable {
    private var schemas: [String: ObjectSchema]

    public init(_ schemas: [ObjectSchema] = []) {
        var all: [String: ObjectSchema] = [:]
        for s in StandardObjects.all { all[s.name.lowercased()] = s }
        for s in schemas { all[s.name.lowercased()] = s }
        self.schemas = all
    }

    public static let standard = SchemaCatalog()

    public func schema(for object: String) -> ObjectSchema? { schemas[object.lowercased()] }

    public var objectNames: [String] { schemas.values.map(\.name).sorted() }
}
