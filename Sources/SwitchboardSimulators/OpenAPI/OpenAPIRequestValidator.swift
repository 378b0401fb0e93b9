import Foundation
import SwitchboardCore

/// One way a request breaks the official document.
public struct OpenAPIViolation: Sendable, Hashable, CustomStringConvertible {
    /// The request's method, e.g. `POST`.
    public var method: String
    /// The request's URL path, without query.
    public var path: String
    /// What is wrong, starting with where: `body.incident.urgency: …`, `missing required header From`, ….
    public var message: String

    public init(method: String, path: String, message: String) {
        self.method = method
        self.path = path
        self.message = message
    }

    public var description: String { "\(method) \(path): \(message)" }
}

/// The document cannot serve as an OpenAPI 3 document (it has no `paths`).
public struct OpenAPIDocumentError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}

/// Checks HTTP requests against an OpenAPI 3.0 document: path and method, parameters, and the JSON request body
/// (the JSON Schema subset PagerDuty's document uses). Everything is compiled once at init: path templates into a
/// tree that prefers literal segments, every `$ref` into an index. Immutable, so it is safe to share between tasks.
///
/// Allowances for the document's known errata (README §0b, and see ``OpenAPIErrata``):
/// - the document itself is not validated, and anything malformed in it constrains nothing;
/// - `readOnly` is not enforced on request bodies;
/// - `IncidentBody.details` accepts a string;
/// - a custom field value may be sent plain, as the document's own examples do (see ``OpenAPIErrata``);
/// - a required `Content-Type` header parameter is only required when the request has a body: the document marks
///   it required on 139 GET and 47 DELETE operations that take no body (e.g. GET /incidents), OpenAPI 3.0.2 says
///   `Accept`, `Content-Type` and `Authorization` header parameters "SHALL be ignored", and PagerDuty's docs ask
///   for `Content-Type` on POST and PUT (README §1).
public final class OpenAPIRequestValidator: Sendable {
    private let schemas: CompiledSchemas
    private let pathItems: [PathItem]
    /// The path template tree; index 0 is the root.
    private let routes: [RouteNode]

    /// Loads the document without validating the document itself (it has known errata).
    public init(document: JSONValue) throws {
        guard let paths = document["paths"]?.objectValue else {
            throw OpenAPIDocumentError("the document has no \"paths\" object; is it an OpenAPI 3 document?")
        }
        var builder = Builder(document: document)
        for (template, item) in paths.entries {
            builder.addPathItem(template: template, item: item)
        }
        schemas = builder.schemas.finish()
        pathItems = builder.pathItems
        routes = builder.routes
    }

    /// Reads and loads a JSON OpenAPI document.
    public convenience init(contentsOfFile path: String) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        try self.init(document: JSONParser.parseValue(bytes: [UInt8](data)))
    }

    /// Checks one request. `path` is the URL path without query (e.g. "/incidents/Q1/notes"); `query` the decoded query items
    /// (repeated keys allowed, e.g. "statuses[]"); `headers` names are case-insensitive; `body` is the parsed JSON body or nil.
    /// Returns every violation found (empty = allowed).
    public func validate(
        method: String, path: String, query: [(name: String, value: String)], headers: [(name: String, value: String)],
        body: JSONValue?
    ) -> [OpenAPIViolation] {
        check(method: method, path: path, query: query, headers: headers, body: body)
            .map { OpenAPIViolation(method: method, path: path, message: $0) }
    }

    /// The document's path template that matches, e.g. "/incidents/{id}/notes", or nil.
    ///
    /// As OpenAPI prescribes, a literal segment wins over a template parameter ("/incidents/types" before
    /// "/incidents/{id}"), and the method must exist on the path item so found. The tree backtracks, so
    /// "/incidents/types/notes" finds "/incidents/types/{type_id_or_name}" while "/incidents/count/notes" (no
    /// literal continuation) finds "/incidents/{id}/notes".
    public func operationPath(method: String, path: String) -> String? {
        guard let item = find(path: path)?.item, item.operations[method.lowercased()] != nil else { return nil }
        return item.template
    }

    private func check(
        method: String, path: String, query: [(name: String, value: String)], headers: [(name: String, value: String)],
        body: JSONValue?
    ) -> [String] {
        guard let found = find(path: path) else {
            return ["no operation \(method) \(path) in the official document"]
        }
        let (item, segments) = found
        guard let operation = item.operations[method.lowercased()] else {
            let allowed = item.operations.keys.sorted().map { $0.uppercased() }
            let hint =
                allowed.isEmpty
                ? "\(item.template) declares no operations" : "\(item.template) allows \(allowed.joined(separator: ", "))"
            return ["no operation \(method) \(path) in the official document (\(hint))"]
        }

        var headerValues: [String: [String]] = [:]
        for header in headers { headerValues[header.name.lowercased(), default: []].append(header.value) }
        var queryValues: [String: [String]] = [:]
        for pair in query { queryValues[pair.name, default: []].append(pair.value) }

        var messages: [String] = []
        for parameter in operation.parameters {
            let values: [String]
            switch parameter.location {
            case .path:
                guard let offset = item.parameterOffsets[parameter.name] else { continue }
                let raw = String(segments[segments.startIndex + offset])
                values = [raw.removingPercentEncoding ?? raw]
            case .query: values = queryValues[parameter.key] ?? []
            case .header: values = headerValues[parameter.key] ?? []
            case .cookie: continue  // the simulator passes no cookies, and the document declares none
            }
            if parameter.check == .presenceWithBody && body == nil { continue }
            guard !values.isEmpty else {
                if parameter.required { messages.append("missing required \(parameter.label)") }
                continue
            }
            guard parameter.check == .value else { continue }
            if parameter.isArray {
                let parts = values.flatMap { value in
                    parameter.commaSeparated ? value.split(separator: ",", omittingEmptySubsequences: false).map(String.init) : [value]
                }
                let array = JSONValue.array(parts.map { Self.coerce($0, to: parameter.valueTypes) })
                schemas.validate(array, against: parameter.schema, at: parameter.label, into: &messages)
            } else {
                for value in values {
                    schemas.validate(Self.coerce(value, to: parameter.valueTypes), against: parameter.schema, at: parameter.label, into: &messages)
                }
            }
        }

        let security = operation.securityAlternatives
        if !security.isEmpty, !security.contains(where: { $0.allSatisfy { headerValues[$0.lowercased()] != nil } }) {
            messages.append("missing header \(security[0].joined(separator: " and ")) (the document requires authentication)")
        }

        if let body {
            if let spec = operation.body {
                if let schema = spec.jsonSchema {
                    schemas.validate(body, against: schema, at: "body", into: &messages)
                } else {
                    messages.append("body: the operation takes \(spec.mediaTypes.joined(separator: ", ")), not JSON")
                }
            } else {
                messages.append("body: the operation takes no request body")
            }
        } else if operation.body?.required == true {
            messages.append("body: missing, and the operation requires one")
        }
        return messages
    }

    /// The path item whose template matches `path`, and the path's segments.
    private func find(path: String) -> (item: PathItem, segments: ArraySlice<Substring>)? {
        guard let segments = Self.segments(of: path), let index = search(segments, from: 0, at: segments.startIndex) else {
            return nil
        }
        return (pathItems[index], segments)
    }

    /// Depth-first: the literal child first, then the parameter child, so literal segments win.
    private func search(_ segments: ArraySlice<Substring>, from node: Int, at position: Int) -> Int? {
        guard position < segments.endIndex else { return routes[node].pathItem }
        let segment = segments[position]
        if let next = routes[node].literals[String(segment)], let found = search(segments, from: next, at: position + 1) {
            return found
        }
        if !segment.isEmpty, let next = routes[node].parameter, let found = search(segments, from: next, at: position + 1) {
            return found
        }
        return nil
    }

    /// The segments after the leading "/", or nil for a path that does not start with "/".
    /// Empty segments are kept, so "/incidents/" does not match "/incidents".
    static func segments(of path: String) -> ArraySlice<Substring>? {
        guard path.hasPrefix("/") else { return nil }
        return path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
    }

    /// Turns a query or header string into the JSON value its schema expects, so one schema validator serves all.
    static func coerce(_ text: String, to types: JSONTypes) -> JSONValue {
        if types.contains(.integer) || types.contains(.number) {
            if let integer = Int(text) { return .number(Double(integer)) }
            // Double(_:) also reads "nan", "inf" and hex; a query number is plain decimal.
            if types.contains(.number), let first = text.first, first.isASCII && (first.isNumber || first == "-"),
                let number = Double(text), number.isFinite
            {
                return .number(number)
            }
        }
        if types.contains(.boolean), text == "true" || text == "false" { return .bool(text == "true") }
        return .string(text)
    }
}

// MARK: - Compiled document

private struct Parameter: Sendable {
    enum Location: String, Sendable {
        case path, query, header, cookie
    }

    /// How much of the parameter is checked.
    enum Check: Sendable, Equatable {
        /// Presence when required, and every value against the schema.
        case value
        /// Presence only (`Accept`, `Authorization`): their values are not checked.
        case presence
        /// Presence only, and only when the request has a body (`Content-Type`; see the class's errata).
        case presenceWithBody
    }

    let name: String
    /// The name as looked up: lowercased for headers.
    let key: String
    let location: Location
    let required: Bool
    let schema: Int
    let check: Check
    let isArray: Bool
    /// A non-exploded query array, or a header array: one value holds comma-separated items.
    let commaSeparated: Bool
    /// The types of one value (of an item, for arrays), to coerce the string.
    let valueTypes: JSONTypes

    /// Where a violation is, e.g. `header From` or `query parameter statuses[]`.
    var label: String {
        switch location {
        case .header: "header \(name)"
        case .query: "query parameter \(name)"
        case .path: "path parameter \(name)"
        case .cookie: "cookie \(name)"
        }
    }
}

private struct RequestBody: Sendable {
    let required: Bool
    let mediaTypes: [String]
    /// The schema of the JSON content, or nil when the operation takes no JSON.
    let jsonSchema: Int?
}

private struct Operation: Sendable {
    let parameters: [Parameter]
    let body: RequestBody?
    /// Alternatives of header names that must all be present; empty when the operation needs no authentication.
    let securityAlternatives: [[String]]
}

private struct PathItem: Sendable {
    let template: String
    /// The segment offset of each template parameter.
    let parameterOffsets: [String: Int]
    /// By lowercased method.
    let operations: [String: Operation]
}

private struct RouteNode: Sendable {
    var literals: [String: Int] = [:]
    var parameter: Int?
    var pathItem: Int?
}

extension OpenAPIRequestValidator {
    /// Compiles the document's path items, operations and schemas.
    private struct Builder {
        static let methods = ["get", "put", "post", "delete", "options", "head", "patch", "trace"]

        let document: JSONValue
        var schemas: SchemaCompiler
        var pathItems: [PathItem] = []
        var routes: [RouteNode] = [RouteNode()]

        init(document: JSONValue) {
            self.document = document
            self.schemas = SchemaCompiler(document: document)
        }

        mutating func addPathItem(template: String, item value: JSONValue) {
            guard let segments = OpenAPIRequestValidator.segments(of: template) else { return }
            let pointer = "#/paths/\(SchemaCompiler.escape(template))"
            let item = resolved(value, at: pointer)
            guard let object = item.value.objectValue else { return }

            var node = 0
            var offsets: [String: Int] = [:]
            for (offset, segment) in segments.enumerated() {
                if segment.hasPrefix("{") && segment.hasSuffix("}") && segment.count > 2 {
                    offsets[String(segment.dropFirst().dropLast())] = offset
                    node = child(of: node, literal: nil)
                } else {
                    node = child(of: node, literal: String(segment))
                }
            }
            // Two templates differing only in parameter names would collide; the first is kept (PagerDuty's has none).
            guard routes[node].pathItem == nil else { return }

            let shared = parameters(object["parameters"], at: "\(item.pointer)/parameters")
            var operations: [String: Operation] = [:]
            for method in Self.methods {
                guard let operation = object[method]?.objectValue else { continue }
                operations[method] = compileOperation(operation, shared: shared, at: "\(item.pointer)/\(method)")
            }
            routes[node].pathItem = pathItems.count
            pathItems.append(PathItem(template: template, parameterOffsets: offsets, operations: operations))
        }

        private mutating func child(of node: Int, literal: String?) -> Int {
            if let literal, let next = routes[node].literals[literal] { return next }
            if literal == nil, let next = routes[node].parameter { return next }
            let next = routes.count
            routes.append(RouteNode())
            if let literal { routes[node].literals[literal] = next } else { routes[node].parameter = next }
            return next
        }

        private mutating func compileOperation(_ operation: JSONObject, shared: [Parameter], at pointer: String) -> Operation {
            // Operation-level parameters override path-level ones of the same name and location.
            let own = parameters(operation["parameters"], at: "\(pointer)/parameters")
            let overridden = Set(own.map { "\($0.location.rawValue) \($0.key)" })
            let merged = shared.filter { !overridden.contains("\($0.location.rawValue) \($0.key)") } + own
            return Operation(
                parameters: merged,
                body: requestBody(operation["requestBody"], at: "\(pointer)/requestBody"),
                securityAlternatives: security(operation["security"] ?? document["security"]))
        }

        private mutating func parameters(_ value: JSONValue?, at pointer: String) -> [Parameter] {
            guard let list = value?.arrayValue else { return [] }
            return list.enumerated().compactMap { offset, entry in
                let parameter = resolved(entry, at: "\(pointer)/\(offset)")
                guard let object = parameter.value.objectValue, let name = object["name"]?.stringValue,
                    let location = object["in"]?.stringValue.flatMap(Parameter.Location.init(rawValue:))
                else { return nil }
                let schema = schemas.compile(object["schema"], at: "\(parameter.pointer)/schema")
                let isArray = schemas.declaredTypes(of: schema).contains(.array)
                let items = isArray ? (schemas.node(schema).items ?? CompiledSchemas.anything) : schema
                let explode: Bool
                if case .bool(let flag)? = object["explode"] { explode = flag } else { explode = true }
                let check: Parameter.Check
                switch (location, name.lowercased()) {
                case (.header, "accept"), (.header, "authorization"): check = .presence
                case (.header, "content-type"): check = .presenceWithBody
                default: check = .value
                }
                return Parameter(
                    name: name, key: location == .header ? name.lowercased() : name, location: location,
                    required: object["required"] == .bool(true) || location == .path, schema: schema, check: check,
                    isArray: isArray, commaSeparated: isArray && (location == .header || !explode),
                    valueTypes: schemas.declaredTypes(of: items))
            }
        }

        private mutating func requestBody(_ value: JSONValue?, at pointer: String) -> RequestBody? {
            guard let value else { return nil }
            let body = resolved(value, at: pointer)
            guard let object = body.value.objectValue else { return nil }
            let content = object["content"]?.objectValue ?? JSONObject()
            let jsonSchema = content.keys.first(where: Self.isJSON).map { mediaType in
                schemas.compile(content[mediaType]?["schema"], at: "\(body.pointer)/content/\(SchemaCompiler.escape(mediaType))/schema")
            }
            return RequestBody(required: object["required"] == .bool(true), mediaTypes: content.keys, jsonSchema: jsonSchema)
        }

        /// The header names each security alternative needs. An alternative this validator cannot check (an API key
        /// in the query or a cookie) or an empty one (anonymous access) lifts the requirement.
        private func security(_ value: JSONValue?) -> [[String]] {
            let schemes = document["components"]?["securitySchemes"]?.objectValue ?? JSONObject()
            var alternatives: [[String]] = []
            for requirement in value?.arrayValue ?? [] {
                var headers: [String] = []
                for name in requirement.objectValue?.keys ?? [] {
                    let scheme = schemes[name].map { resolved($0, at: "").value }
                    switch scheme?["type"]?.stringValue {
                    case "apiKey":
                        if scheme?["in"]?.stringValue == "header", let header = scheme?["name"]?.stringValue { headers.append(header) }
                    case "http", "oauth2", "openIdConnect":
                        headers.append("Authorization")
                    default:
                        break
                    }
                }
                if headers.isEmpty { return [] }
                alternatives.append(headers)
            }
            return alternatives
        }

        /// Follows a `$ref` (one level, as OpenAPI allows for parameters, request bodies and path items), returning
        /// the value and the JSON pointer it lives at.
        private func resolved(_ value: JSONValue, at pointer: String) -> (value: JSONValue, pointer: String) {
            guard let reference = value["$ref"]?.stringValue, let target = schemas.resolve(reference) else {
                return (value, pointer)
            }
            return (target, reference)
        }

        private static func isJSON(_ mediaType: String) -> Bool {
            let essence = mediaType.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
            return essence == "application/json" || essence.hasSuffix("+json") || essence == "*/*" || essence == "application/*"
        }
    }
}
