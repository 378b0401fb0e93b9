import SwitchboardCore

/// One field of an sObject, as describe reports it, with the keys a real describe response carries.
struct SalesforceField: Sendable {
    var name: String
    var label: String
    /// `id`, `string`, `textarea`, `picklist`, `boolean`, `datetime`, `date`, `reference`, `email`, `url`, `phone`, `double`, `currency`.
    var type: String
    var length = 0
    var createable = true
    var updateable = true
    var nillable = true
    var defaultedOnCreate = false
    var picklist: [String] = []
    var defaultPicklistValue: String?
    var restrictedPicklist = false
    var referenceTo: [String] = []
    var relationshipName: String?
    var autoNumber = false
    var custom = false
    /// Textarea limits on CaseComment are in bytes, not characters.
    var lengthInBytes = false

    /// Must be given on create: Salesforce's own rule read from describe.
    var requiredOnCreate: Bool { createable && !nillable && !defaultedOnCreate }

    var isText: Bool { ["string", "textarea", "picklist", "multipicklist", "email", "url", "phone", "combobox", "encryptedstring"].contains(type) }

    var soapType: String {
        switch type {
        case "id", "reference": "tns:ID"
        case "boolean": "xsd:boolean"
        case "datetime": "xsd:dateTime"
        case "date": "xsd:date"
        case "double", "currency", "percent": "xsd:double"
        case "int": "xsd:int"
        default: "xsd:string"
        }
    }

    func describe() -> JSONValue {
        let byteLength = type == "id" || type == "reference" ? length : length * 3
        var o: JSONObject = [
            "aggregatable": .bool(type != "textarea"), "autoNumber": .bool(autoNumber), "byteLength": .number(Double(byteLength)),
            "calculated": .bool(false), "caseSensitive": .bool(false), "controllerName": .null, "createable": .bool(createable),
            "custom": .bool(custom),
            "defaultValue": defaultPicklistValue.map(JSONValue.string) ?? (type == "boolean" ? .bool(false) : .null),
            "defaultedOnCreate": .bool(defaultedOnCreate), "dependentPicklist": .bool(false), "deprecatedAndHidden": .bool(false),
            "digits": .number(0),
            "externalId": .bool(false), "filterable": .bool(type != "textarea"), "groupable": .bool(type != "textarea" && type != "datetime"),
            "htmlFormatted": .bool(false), "idLookup": .bool(type == "id"), "inlineHelpText": .null, "label": .string(label),
            "length": .number(Double(length)), "name": .string(name), "nameField": .bool(name == "Name"),
            "namePointing": .bool(referenceTo.count > 1), "nillable": .bool(nillable),
        ]
        o["picklistValues"] = .array(
            picklist.map { value in
                .object([
                    "active": .bool(true), "defaultValue": .bool(value == defaultPicklistValue), "label": .string(value), "validFor": .null,
                    "value": .string(value),
                ])
            })
        o["precision"] = .number(type == "currency" ? 18 : 0)
        o["referenceTo"] = .array(referenceTo.map(JSONValue.string))
        o["relationshipName"] = relationshipName.map(JSONValue.string) ?? .null
        o["relationshipOrder"] = .null
        o["restrictedPicklist"] = .bool(restrictedPicklist)
        o["scale"] = .number(type == "currency" ? 2 : 0)
        o["soapType"] = .string(soapType)
        o["sortable"] = .bool(type != "textarea")
        o["type"] = .string(type)
        o["unique"] = .bool(false)
        o["updateable"] = .bool(updateable)
        o["writeRequiresMasterRead"] = .bool(false)
        return .object(o)
    }
}

/// An sObject type: its key prefix and fields, in describe order.
struct SalesforceObjectType: Sendable {
    var name: String
    var label: String
    var labelPlural: String
    var keyPrefix: String
    var custom = false
    var fields: [SalesforceField]
    var childRelationships: [(field: String, childSObject: String, relationshipName: String?)] = []

    func field(_ name: String) -> SalesforceField? {
        let lower = name.lowercased()
        return fields.first { $0.name.lowercased() == lower }
    }

    /// The parent reached through a relationship name (`Owner`, `Account`, `Case__r`).
    func relationship(_ name: String) -> SalesforceField? {
        let lower = name.lowercased()
        return fields.first { $0.relationshipName?.lowercased() == lower }
    }

    func urls(version: String) -> JSONObject {
        let base = "/services/data/v\(version)/sobjects/\(name)"
        return [
            "compactLayouts": .string(base + "/describe/compactLayouts"), "rowTemplate": .string(base + "/{ID}"),
            "describe": .string(base + "/describe"), "sobject": .string(base),
        ]
    }

    /// The object-level flags describe and describe global share.
    func summary(version: String) -> JSONObject {
        [
            "activateable": .bool(false), "createable": .bool(true), "custom": .bool(custom), "customSetting": .bool(false), "deletable": .bool(true),
            "deprecatedAndHidden": .bool(false),
            "feedEnabled": .bool(!custom && ["Case", "Account", "Contact", "Opportunity", "User"].contains(name)),
            "keyPrefix": .string(keyPrefix), "label": .string(label), "labelPlural": .string(labelPlural), "layoutable": .bool(true),
            "mergeable": .bool(["Account", "Contact", "Case"].contains(name)), "name": .string(name), "queryable": .bool(true),
            "replicateable": .bool(true),
            "retrieveable": .bool(true), "searchable": .bool(name != "CaseComment"), "triggerable": .bool(true), "undeletable": .bool(true),
            "updateable": .bool(true),
            "urls": .object(urls(version: version)),
        ]
    }

    func describe(version: String) -> JSONValue {
        var o = summary(version: version)
        o["childRelationships"] = .array(
            childRelationships.map {
                .object([
                    "cascadeDelete": .bool(false), "childSObject": .string($0.childSObject), "deprecatedAndHidden": .bool(false),
                    "field": .string($0.field),
                    "relationshipName": $0.relationshipName.map(JSONValue.string) ?? .null,
                ])
            })
        o["fields"] = .array(fields.map { $0.describe() })
        o["recordTypeInfos"] = .array([
            .object([
                "available": .bool(true), "defaultRecordTypeMapping": .bool(true), "master": .bool(true), "name": "Master",
                "recordTypeId": "012000000000000AAA",
            ])
        ])
        return .object(o)
    }
}

/// The org's seeded schema: the objects Switchboard touches, with realistic required fields, picklists and limits.
enum SalesforceSchema {
    /// Every object carries these system fields.
    static func system(owner: Bool, ownerTo: [String] = ["Group", "User"]) -> [SalesforceField] {
        var fields = [
            SalesforceField(
                name: "Id", label: "Record ID", type: "id", length: 18, createable: false, updateable: false, nillable: false, defaultedOnCreate: true
            ),
            SalesforceField(
                name: "IsDeleted", label: "Deleted", type: "boolean", createable: false, updateable: false, nillable: false, defaultedOnCreate: true),
        ]
        if owner {
            fields.append(
                SalesforceField(
                    name: "OwnerId", label: "Owner ID", type: "reference", length: 18, nillable: false, defaultedOnCreate: true, referenceTo: ownerTo,
                    relationshipName: "Owner"))
        }
        return fields
    }

    static func audit() -> [SalesforceField] {
        [
            SalesforceField(
                name: "CreatedDate", label: "Created Date", type: "datetime", createable: false, updateable: false, nillable: false,
                defaultedOnCreate: true),
            SalesforceField(
                name: "CreatedById", label: "Created By ID", type: "reference", length: 18, createable: false, updateable: false, nillable: false,
                defaultedOnCreate: true, referenceTo: ["User"], relationshipName: "CreatedBy"),
            SalesforceField(
                name: "LastModifiedDate", label: "Last Modified Date", type: "datetime", createable: false, updateable: false, nillable: false,
                defaultedOnCreate: true),
            SalesforceField(
                name: "LastModifiedById", label: "Last Modified By ID", type: "reference", length: 18, createable: false, updateable: false,
                nillable: false, defaultedOnCreate: true, referenceTo: ["User"], relationshipName: "LastModifiedBy"),
            SalesforceField(
                name: "SystemModstamp", label: "System Modstamp", type: "datetime", createable: false, updateable: false, nillable: false,
                defaultedOnCreate: true),
        ]
    }

    static func text(_ name: String, _ label: String, _ length: Int, type: String = "string", required: Bool = false, custom: Bool = false)
        -> SalesforceField
    {
        SalesforceField(name: name, label: label, type: type, length: length, nillable: !required, custom: custom)
    }

    static func picklist(
        _ name: String, _ label: String, _ values: [String], default value: String? = nil, restricted: Bool = false, required: Bool = false,
        custom: Bool = false
    )
        -> SalesforceField
    {
        SalesforceField(
            name: name, label: label, type: "picklist", length: 255, nillable: !required && value == nil, defaultedOnCreate: value != nil,
            picklist: values,
            defaultPicklistValue: value, restrictedPicklist: restricted, custom: custom)
    }

    static func reference(
        _ name: String, _ label: String, to: [String], relationship: String?, required: Bool = false, updateable: Bool = true, custom: Bool = false
    )
        -> SalesforceField
    {
        SalesforceField(
            name: name, label: label, type: "reference", length: 18, updateable: updateable, nillable: !required, referenceTo: to,
            relationshipName: relationship, custom: custom)
    }

    static func flag(_ name: String, _ label: String, createable: Bool = true, updateable: Bool = true, custom: Bool = false) -> SalesforceField {
        SalesforceField(
            name: name, label: label, type: "boolean", createable: createable, updateable: updateable, nillable: false, defaultedOnCreate: true,
            custom: custom)
    }

    static func datetime(_ name: String, _ label: String, createable: Bool = true, updateable: Bool = true) -> SalesforceField {
        SalesforceField(name: name, label: label, type: "datetime", createable: createable, updateable: updateable)
    }

    static func autoNumber(_ name: String, _ label: String) -> SalesforceField {
        SalesforceField(
            name: name, label: label, type: "string", length: 30, createable: false, updateable: false, nillable: false, defaultedOnCreate: true,
            autoNumber: true)
    }

    static let objects: [SalesforceObjectType] = [
        SalesforceObjectType(
            name: "Account", label: "Account", labelPlural: "Accounts", keyPrefix: "001",
            fields: system(owner: true, ownerTo: ["User"]) + [
                text("Name", "Account Name", 255, required: true),
                picklist("Industry", "Industry", ["Technology", "Finance", "Healthcare", "Retail", "Other"]),
                text("Phone", "Account Phone", 40, type: "phone"), text("Website", "Website", 255, type: "url"),
                text("Description", "Account Description", 32000, type: "textarea"),
            ] + audit(),
            childRelationships: [("AccountId", "Case", "Cases"), ("AccountId", "Contact", "Contacts"), ("AccountId", "Opportunity", "Opportunities")]),
        SalesforceObjectType(
            name: "Contact", label: "Contact", labelPlural: "Contacts", keyPrefix: "003",
            fields: system(owner: true, ownerTo: ["User"]) + [
                reference("AccountId", "Account ID", to: ["Account"], relationship: "Account"),
                text("FirstName", "First Name", 40), text("LastName", "Last Name", 80, required: true),
                SalesforceField(name: "Name", label: "Full Name", type: "string", length: 121, createable: false, updateable: false, nillable: false),
                text("Email", "Email", 80, type: "email"), text("Phone", "Business Phone", 40, type: "phone"),
            ] + audit(),
            childRelationships: [("ContactId", "Case", "Cases")]),
        SalesforceObjectType(
            name: "User", label: "User", labelPlural: "Users", keyPrefix: "005",
            fields: [
                SalesforceField(
                    name: "Id", label: "User ID", type: "id", length: 18, createable: false, updateable: false, nillable: false,
                    defaultedOnCreate: true),
                text("Username", "Username", 80, required: true), text("FirstName", "First Name", 40),
                text("LastName", "Last Name", 80, required: true),
                SalesforceField(name: "Name", label: "Full Name", type: "string", length: 121, createable: false, updateable: false, nillable: false),
                text("Email", "Email", 128, type: "email", required: true), text("Alias", "Alias", 8, required: true),
                flag("IsActive", "Active"), text("Title", "Title", 80),
            ] + audit()),
        SalesforceObjectType(
            name: "Case", label: "Case", labelPlural: "Cases", keyPrefix: "500",
            fields: system(owner: true) + [
                autoNumber("CaseNumber", "Case Number"),
                reference("ContactId", "Contact ID", to: ["Contact"], relationship: "Contact"),
                reference("AccountId", "Account ID", to: ["Account"], relationship: "Account"),
                reference("ParentId", "Parent Case ID", to: ["Case"], relationship: "Parent"),
                text("SuppliedName", "Name", 80), text("SuppliedEmail", "Email Address", 80, type: "email"),
                picklist("Type", "Case Type", ["Problem", "Feature Request", "Question"]),
                picklist("Status", "Status", ["New", "Working", "Escalated", "Closed"], default: "New", restricted: true),
                picklist("Reason", "Case Reason", ["Installation", "Equipment Complexity", "Performance", "Breakdown", "Other"]),
                picklist("Origin", "Case Origin", ["Phone", "Email", "Web"]),
                text("Subject", "Subject", 255),
                picklist("Priority", "Priority", ["High", "Medium", "Low"], default: "Medium", restricted: true),
                text("Description", "Description", 32000, type: "textarea"),
                flag("IsClosed", "Closed", createable: false, updateable: false),
                SalesforceField(name: "ClosedDate", label: "Closed Date", type: "datetime", createable: false, updateable: false),
                flag("IsEscalated", "Escalated"),
                text("PagerDuty_Incident__c", "PagerDuty Incident", 255, custom: true),
            ] + audit(),
            childRelationships: [
                ("ParentId", "CaseComment", "CaseComments"), ("ParentId", "FeedItem", "Feeds"), ("Case__c", "Escalation__c", "Escalations__r"),
            ]),
        SalesforceObjectType(
            name: "CaseComment", label: "Case Comment", labelPlural: "Case Comments", keyPrefix: "00a",
            fields: [
                SalesforceField(
                    name: "Id", label: "Case Comment ID", type: "id", length: 18, createable: false, updateable: false, nillable: false,
                    defaultedOnCreate: true),
                reference("ParentId", "Parent ID", to: ["Case"], relationship: "Parent", required: true, updateable: false),
                flag("IsPublished", "Published"),
                SalesforceField(name: "CommentBody", label: "Body", type: "textarea", length: 4000, lengthInBytes: true),
                flag("IsDeleted", "Deleted", createable: false, updateable: false),
            ] + audit()),
        SalesforceObjectType(
            name: "FeedItem", label: "Feed Item", labelPlural: "Feed Items", keyPrefix: "0D5",
            fields: [
                SalesforceField(
                    name: "Id", label: "Feed Item ID", type: "id", length: 18, createable: false, updateable: false, nillable: false,
                    defaultedOnCreate: true),
                reference(
                    "ParentId", "Parent ID", to: ["Account", "Case", "Contact", "Opportunity", "User"], relationship: "Parent", required: true,
                    updateable: false),
                picklist("Type", "Feed Item Type", ["TextPost", "LinkPost", "ContentPost", "QuestionPost"], default: "TextPost", restricted: true),
                text("Title", "Title", 255),
                SalesforceField(name: "Body", label: "Body", type: "textarea", length: 10000, nillable: false),
                flag("IsRichText", "Is Rich Text"),
                text("LinkUrl", "Link Url", 1000, type: "url"),
                picklist("Visibility", "Visibility", ["AllUsers", "InternalUsers"], default: "InternalUsers", restricted: true),
                flag("IsDeleted", "Deleted", createable: false, updateable: false),
            ] + audit()),
        SalesforceObjectType(
            name: "Incident", label: "Incident", labelPlural: "Incidents", keyPrefix: "0Yh",
            fields: system(owner: true) + [
                autoNumber("IncidentNumber", "Incident Number"),
                text("Subject", "Subject", 255, required: true),
                text("Description", "Description", 32000, type: "textarea"),
                picklist(
                    "Status", "Status", ["New", "Open", "In Progress", "Problem Created", "Resolved", "Completed"], default: "New", restricted: true),
                picklist("Priority", "Priority", ["Critical", "High", "Moderate", "Low"], default: "Critical", restricted: true),
                picklist("Impact", "Impact", ["High", "Medium", "Low"], default: "High", restricted: true),
                picklist("Urgency", "Urgency", ["High", "Medium", "Low"], default: "High", restricted: true),
                picklist("Category", "Category", ["Software", "Hardware", "Network", "Other"]),
                datetime("DetectedDateTime", "Detected Date"), datetime("StartDateTime", "Start Date"), datetime("EndDateTime", "End Date"),
                datetime("ResolutionDateTime", "Resolution Date"), flag("IsMajorIncident", "Major Incident"),
            ] + audit()),
        SalesforceObjectType(
            name: "Opportunity", label: "Opportunity", labelPlural: "Opportunities", keyPrefix: "006",
            fields: system(owner: true, ownerTo: ["User"]) + [
                reference("AccountId", "Account ID", to: ["Account"], relationship: "Account"),
                text("Name", "Name", 120, required: true),
                picklist("StageName", "Stage", ["Prospecting", "Qualification", "Needs Analysis", "Closed Won", "Closed Lost"], required: true),
                SalesforceField(name: "Amount", label: "Amount", type: "currency"),
                SalesforceField(name: "CloseDate", label: "Close Date", type: "date", nillable: false),
                flag("IsClosed", "Closed", createable: false, updateable: false), flag("IsWon", "Won", createable: false, updateable: false),
            ] + audit()),
        SalesforceObjectType(
            name: "Escalation__c", label: "Escalation", labelPlural: "Escalations", keyPrefix: "a00", custom: true,
            fields: system(owner: true) + [
                SalesforceField(name: "Name", label: "Escalation Name", type: "string", length: 80, nillable: true, defaultedOnCreate: false),
                reference("Case__c", "Case", to: ["Case"], relationship: "Case__r", required: true, custom: true),
                picklist("Level__c", "Level", ["Level 1", "Level 2", "Level 3"], default: "Level 1", restricted: true, custom: true),
                text("Reason__c", "Reason", 32768, type: "textarea", custom: true),
                text("PagerDuty_Incident__c", "PagerDuty Incident", 255, custom: true),
            ] + audit()),
    ]

    static let prefixes: [String: String] = Dictionary(uniqueKeysWithValues: objects.map { ($0.keyPrefix, $0.name) })
}
