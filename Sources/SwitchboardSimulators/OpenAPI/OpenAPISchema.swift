import Foundation
import SwitchboardCore

/// The JSON types an OpenAPI 3.0 `type` keyword can name.
struct JSONTypes: OptionSet, Sendable, CustomStringConvertible {
    let rawValue: UInt8

    static let object = JSONTypes(rawValue: 1 << 0)
    static let array = JSONTypes(rawValue: 1 << 1)
    static let string = JSONTypes(rawValue: 1 << 2)
    static let integer = JSONTypes(rawValue: 1 << 3)
    static let number = JSONTypes(rawValue: 1 << 4)
    static let boolean = JSONTypes(rawValue: 1 << 5)

    private static let names: [(JSONTypes, String)] = [
        (.object, "object"), (.array, "array"), (.string, "string"),
        (.integer, "integer"), (.number, "number"), (.boolean, "boolean"),
    ]

    init(rawValue: UInt8) { self.rawValue = rawValue }

    /// `nil` for a name OpenAPI 3.0 does not know (the document is not validated, so such a `type` constrains nothing).
    init?(name: String) {
        guard let match = Self.names.first(where: { $0.1 == name }) else { return nil }
        self = match.0
    }

    func admits(_ value: JSONValue) -> Bool {
        switch value {
        case .null: return false
        case .bool: return contains(.boolean)
        case .string: return contains(.string)
        case .array: return contains(.array)
        case .object: return contains(.object)
        case .number(let n): return contains(.number) || (contains(.integer) && n.isFinite && n.rounded() == n)
        }
    }

    var description: String {
        Self.names.filter { contains($0.0) }.map(\.1).joined(separator: " or ")
    }
}

/// One compiled schema. Child schemas are indices into ``CompiledSchemas/nodes``, so `$ref`s are resolved once.
struct SchemaNode: Sendable {
    enum AdditionalProperties: Sendable {
        case allowed
        case forbidden
        case schema(Int)
    }

    /// `nil`: any type.
    var types: JSONTypes?
    var nullable = false
    var enumValues: [JSONValue]?
    var properties: [String: Int] = [:]
    var required: [String] = []
    var additionalProperties = AdditionalProperties.allowed
    var items: Int?
    var minItems: Int?
    var maxItems: Int?
    var uniqueItems = false
    var minLength: Int?
    var maxLength: Int?
    var minimum: Double?
    var maximum: Double?
    var exclusiveMinimum = false
    var exclusiveMaximum = false
    var allOf: [Int] = []
    /// Each group comes from one `oneOf` or `anyOf`; a group passes when any of its branches does. (`oneOf` is not
    /// held to "exactly one": the document's branches overlap, e.g. reference objects that differ only in `type`.)
    var alternatives: [[Int]] = []
}

/// Allowances for known mistakes of the official document (README §0b), keyed by the JSON pointer of the schema.
enum OpenAPIErrata {
    /// Types a schema accepts beyond its declared `type`.
    /// `IncidentBody.details` is typed object, but PagerDuty's docs and example send a string and PagerDuty
    /// "only supports string Incident bodies" (README §0b.3).
    ///
    /// `CustomFieldsFieldValue.value`'s alternatives are modelled as objects wrapping another `value`
    /// (`{"value": {"value": "production"}}`), while the document's own examples for
    /// `PUT /incidents/{id}/custom_fields/values` send the plain value (`{"name": "environment", "value": "production"}`),
    /// as PagerDuty takes it: each alternative also admits its plain type.
    static let extraTypes: [String: JSONTypes] = [
        "#/components/schemas/IncidentBody/properties/details": .string,
        "#/components/schemas/CustomFieldsFieldValue/properties/value/oneOf/0": .boolean,
        "#/components/schemas/CustomFieldsFieldValue/properties/value/oneOf/1": .number,
        "#/components/schemas/CustomFieldsFieldValue/properties/value/oneOf/2": .integer,
        "#/components/schemas/CustomFieldsFieldValue/properties/value/oneOf/3": [.string, .array],
        "#/components/schemas/CustomFieldsFieldValue/properties/value/oneOf/4": .string,
        "#/components/schemas/CustomFieldsFieldValue/properties/value/oneOf/5": .string,
    ]
}

/// All schemas of one document, compiled. Immutable, so validation needs no locks.
struct CompiledSchemas: Sendable {
    /// Index 0 is the empty schema, which accepts anything.
    static let anything = 0
    /// Deepest validation recursion; only a schema that refers to itself without consuming data reaches it.
    static let maximumDepth = 256

    let nodes: [SchemaNode]

    /// Appends a message for every way `value` breaks the schema. `location` names the value, e.g. `body.incident`.
    func validate(_ value: JSONValue, against index: Int, at location: String, into messages: inout [String]) {
        validate(value, index, location, 0, &messages)
    }

    private func validate(_ value: JSONValue, _ index: Int, _ location: String, _ depth: Int, _ messages: inout [String]) {
        // The recursion guard: a `$ref` cycle that consumes no data would otherwise never end.
        guard index != Self.anything, depth < Self.maximumDepth else { return }
        let node = nodes[index]

        if case .null = value, node.nullable { return }
        if let types = node.types, !types.admits(value) {
            messages.append("\(location): expected \(types), got \(Self.describe(value))")
            return
        }
        if let allowed = node.enumValues, !allowed.contains(value) {
            let list = allowed.map { $0.stringValue ?? $0.serialized() }.joined(separator: ", ")
            messages.append("\(location): \(Self.describe(value)) is not one of \(list)")
        }

        switch value {
        case .string(let text):
            if node.minLength != nil || node.maxLength != nil {
                let length = text.unicodeScalars.count
                if let minLength = node.minLength, length < minLength {
                    messages.append("\(location): is shorter than \(minLength) characters")
                }
                if let maxLength = node.maxLength, length > maxLength {
                    messages.append("\(location): is longer than \(maxLength) characters")
                }
            }
        case .number(let number):
            if let minimum = node.minimum, number < minimum || (node.exclusiveMinimum && number == minimum) {
                messages.append("\(location): \(Self.describe(value)) is below the minimum \(Self.describe(.number(minimum)))")
            }
            if let maximum = node.maximum, number > maximum || (node.exclusiveMaximum && number == maximum) {
                messages.append("\(location): \(Self.describe(value)) is above the maximum \(Self.describe(.number(maximum)))")
            }
        case .array(let elements):
            if let minItems = node.minItems, elements.count < minItems {
                messages.append("\(location): has \(elements.count) items, fewer than \(minItems)")
            }
            if let maxItems = node.maxItems, elements.count > maxItems {
                messages.append("\(location): has \(elements.count) items, more than \(maxItems)")
            }
            if node.uniqueItems, Set(elements).count != elements.count {
                messages.append("\(location): items are not unique")
            }
            if let items = node.items {
                for (offset, element) in elements.enumerated() {
                    validate(element, items, "\(location)[\(offset)]", depth + 1, &messages)
                }
            }
        case .object(let object):
            for name in node.required where object[name] == nil {
                messages.append("\(location): missing required property \"\(name)\"")
            }
            for key in object.keys {
                guard let member = object[key] else { continue }
                if let property = node.properties[key] {
                    validate(member, property, "\(location).\(key)", depth + 1, &messages)
                } else {
                    switch node.additionalProperties {
                    case .allowed: break
                    case .forbidden: messages.append("\(location): property \"\(key)\" is not allowed")
                    case .schema(let schema): validate(member, schema, "\(location).\(key)", depth + 1, &messages)
                    }
                }
            }
        case .null, .bool:
            break
        }

        for branch in node.allOf {
            validate(value, branch, location, depth + 1, &messages)
        }
        for group in node.alternatives {
            var closest: [String]?
            for branch in group {
                var branchMessages: [String] = []
                validate(value, branch, location, depth + 1, &branchMessages)
                if branchMessages.isEmpty {
                    closest = nil
                    break
                }
                if closest.map({ branchMessages.count < $0.count }) ?? true { closest = branchMessages }
            }
            if let closest {
                messages.append(
                    "\(location): matches none of the \(group.count) alternatives (closest: \(closest.joined(separator: "; ")))")
            }
        }
    }

    /// A short JSON rendering of a value for messages.
    static func describe(_ value: JSONValue) -> String {
        let text = value.serialized()
        return text.count > 60 ? String(text.prefix(57)) + "..." : text
    }
}

/// Compiles the schemas of one document into ``CompiledSchemas``, resolving each `$ref` once.
struct SchemaCompiler {
    let document: JSONValue
    private var nodes: [SchemaNode] = [SchemaNode()]
    /// Compiled schemas by JSON pointer, so every `$ref` target (and every inline schema) is compiled once.
    private var byPointer: [String: Int] = [:]
    /// `$ref`s being followed, to stop a chain of `$ref`s that leads back to itself.
    private var following: Set<String> = []

    init(document: JSONValue) {
        self.document = document
    }

    func finish() -> CompiledSchemas {
        CompiledSchemas(nodes: nodes)
    }

    /// A compiled schema (complete once the `compile` call that returned `index` has returned).
    func node(_ index: Int) -> SchemaNode {
        nodes[index]
    }

    /// The types the schema and the first level of its `allOf`/`oneOf`/`anyOf` name; used to turn a query or
    /// header string into the JSON value the schema expects.
    func declaredTypes(of index: Int) -> JSONTypes {
        let node = nodes[index]
        var types = node.types ?? []
        for branch in node.allOf + node.alternatives.joined() { types.formUnion(nodes[branch].types ?? []) }
        return types
    }

    /// Compiles the schema `value` found at `pointer`. Anything that is not a schema object constrains nothing,
    /// since the document itself is not validated.
    mutating func compile(_ value: JSONValue?, at pointer: String) -> Int {
        guard let object = value?.objectValue else { return CompiledSchemas.anything }
        if let reference = object["$ref"]?.stringValue { return compileReference(reference) }
        if let known = byPointer[pointer] { return known }
        return compileObject(object, at: pointer)
    }

    /// Follows a `$ref` (OpenAPI 3.0 ignores its siblings). An unresolvable one constrains nothing.
    mutating func compileReference(_ reference: String) -> Int {
        if let known = byPointer[reference] { return known }
        guard !following.contains(reference), let target = resolve(reference)?.objectValue else {
            return CompiledSchemas.anything
        }
        if let next = target["$ref"]?.stringValue {
            following.insert(reference)
            defer { following.remove(reference) }
            let index = compileReference(next)
            byPointer[reference] = index
            return index
        }
        return compileObject(target, at: reference)
    }

    /// Resolves a local reference such as `#/components/parameters/from_header`.
    func resolve(_ reference: String) -> JSONValue? {
        guard reference.hasPrefix("#") else { return nil }
        var current = document
        for token in reference.dropFirst().split(separator: "/", omittingEmptySubsequences: true) {
            let decoded = String(token).removingPercentEncoding ?? String(token)
            let key = decoded.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")
            switch current {
            case .object(let object):
                guard let next = object[key] else { return nil }
                current = next
            case .array(let array):
                guard let offset = Int(key), array.indices.contains(offset) else { return nil }
                current = array[offset]
            default:
                return nil
            }
        }
        return current
    }

    /// A JSON pointer token for `key`.
    static func escape(_ key: String) -> String {
        key.replacingOccurrences(of: "~", with: "~0").replacingOccurrences(of: "/", with: "~1")
    }

    private mutating func compileObject(_ object: JSONObject, at pointer: String) -> Int {
        // Reserve the index first so a schema that refers to itself finds it.
        let index = nodes.count
        nodes.append(SchemaNode())
        byPointer[pointer] = index

        var node = SchemaNode()
        if let name = object["type"]?.stringValue { node.types = JSONTypes(name: name) }
        if let extra = OpenAPIErrata.extraTypes[pointer] { node.types?.formUnion(extra) }
        if case .bool(true)? = object["nullable"] { node.nullable = true }
        node.enumValues = object["enum"]?.arrayValue
        if let properties = object["properties"]?.objectValue {
            for (name, schema) in properties.entries {
                node.properties[name] = compile(schema, at: "\(pointer)/properties/\(Self.escape(name))")
            }
        }
        node.required = object["required"]?.arrayValue?.compactMap(\.stringValue) ?? []
        switch object["additionalProperties"] {
        case .bool(false)?: node.additionalProperties = .forbidden
        case .object(let schema)?: node.additionalProperties = .schema(compile(.object(schema), at: "\(pointer)/additionalProperties"))
        default: break
        }
        if object["items"] != nil { node.items = compile(object["items"], at: "\(pointer)/items") }
        node.minItems = Self.integer(object["minItems"])
        node.maxItems = Self.integer(object["maxItems"])
        node.minLength = Self.integer(object["minLength"])
        node.maxLength = Self.integer(object["maxLength"])
        if case .bool(true)? = object["uniqueItems"] { node.uniqueItems = true }
        if case .number(let minimum)? = object["minimum"] { node.minimum = minimum }
        if case .number(let maximum)? = object["maximum"] { node.maximum = maximum }
        if case .bool(true)? = object["exclusiveMinimum"] { node.exclusiveMinimum = true }
        if case .bool(true)? = object["exclusiveMaximum"] { node.exclusiveMaximum = true }
        node.allOf = compileList(object["allOf"], at: "\(pointer)/allOf")
        for keyword in ["oneOf", "anyOf"] {
            let group = compileList(object[keyword], at: "\(pointer)/\(keyword)")
            if !group.isEmpty { node.alternatives.append(group) }
        }
        // Deliberately ignored: readOnly/writeOnly (README §0b.2), format, pattern, discriminator, default, examples.
        nodes[index] = node
        return index
    }

    private mutating func compileList(_ value: JSONValue?, at pointer: String) -> [Int] {
        guard let list = value?.arrayValue else { return [] }
        return list.enumerated().map { offset, schema in compile(schema, at: "\(pointer)/\(offset)") }
    }

    private static func integer(_ value: JSONValue?) -> Int? {
        guard case .number(let number)? = value, number.isFinite, number >= 0 else { return nil }
        return Int(exactly: number.rounded(.down))
    }
}
