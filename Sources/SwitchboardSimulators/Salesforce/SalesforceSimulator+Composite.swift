import Foundation
import SwitchboardCore

extension SalesforceSimulator {
    static let rolledBackMessage = "The transaction was rolled back since another operation in the same transaction failed."

    /// `POST composite`: up to 25 subrequests in one call and one transaction, with `@{ref.field}` references.
    func composite(_ s: inout State, _ txn: inout Transaction, body: SalesforceRequestBody, context: CallContext) -> SalesforceReply {
        guard case .json(.object(let request)) = body else {
            if case .invalid(let message) = body { return .errors(400, "JSON_PARSER_ERROR", message) }
            return .errors(400, "JSON_PARSER_ERROR", "The request body is either invalid or incomplete.")
        }
        guard let subrequests = request["compositeRequest"]?.arrayValue, !subrequests.isEmpty else {
            return .errors(400, "INVALID_API_INPUT", "compositeRequest is required and must hold at least one subrequest")
        }
        guard subrequests.count <= 25 else {
            return .errors(400, "LIMIT_EXCEEDED", "Composite request may have a maximum of 25 subrequests; this one has \(subrequests.count).")
        }
        var referenceIds: Set<String> = []
        var heavy = 0
        for sub in subrequests {
            guard let method = sub["method"]?.stringValue, let url = sub["url"]?.stringValue, let ref = sub["referenceId"]?.stringValue else {
                return .errors(400, "INVALID_API_INPUT", "Each subrequest needs method, url and referenceId")
            }
            guard ["GET", "POST", "PATCH", "PUT", "DELETE", "HEAD"].contains(method) else {
                return .errors(400, "INVALID_API_INPUT", "Unsupported method \(method) in subrequest \(ref)")
            }
            guard !ref.isEmpty, ref.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }), ref.first?.isLetter == true else {
                return .errors(400, "INVALID_API_INPUT", "Invalid referenceId: \(ref)")
            }
            guard referenceIds.insert(ref).inserted else {
                return .errors(400, "INVALID_API_INPUT", "Duplicate referenceId provided in the request: \(ref)")
            }
            if url.contains("/query") || url.contains("/composite/sobjects") { heavy += 1 }
        }
        guard heavy <= 5 else {
            return .errors(400, "LIMIT_EXCEEDED", "A composite request may hold at most 5 query or sObject Collections subrequests.")
        }
        let allOrNone = request["allOrNone"] == .bool(true)
        let snapshot = s.org
        let changesBefore = txn.changes.count
        var results: [(ref: String, reply: SalesforceReply)] = []
        var answers: [String: JSONValue] = [:]
        var failed = false
        for (index, sub) in subrequests.enumerated() {
            let ref = sub["referenceId"]?.stringValue ?? ""
            let method = sub["method"]?.stringValue ?? "GET"
            if failed && allOrNone {
                results.append((ref, .errors(400, "PROCESSING_HALTED", Self.rolledBackMessage)))
                continue
            }
            var unresolved: String?
            let url = substitute(sub["url"]?.stringValue ?? "", answers, &unresolved)
            let subBody = sub["body"].map { substitute($0, answers, &unresolved) }
            if let missing = unresolved {
                let name = String(missing.split(separator: ".").first ?? Substring(missing))
                results.append(
                    (
                        ref,
                        .errors(
                            400, "PROCESSING_HALTED",
                            "Invalid reference specified. No value for \(missing) found in \(name). Provided referenceId ('\(name)') must be the referenceId of a previous successful subrequest."
                        )
                    ))
                failed = true
                continue
            }
            var reply: SalesforceReply
            if let (version, resource, query) = Self.splitURL(url), options.apiVersions.contains(version) {
                var subContext = context
                subContext.version = version
                subContext.inComposite = true
                subContext.allOrNone = allOrNone
                reply = route(
                    &s, &txn, method: method, resource: resource, query: query, body: subBody.map(SalesforceRequestBody.json) ?? .none,
                    context: subContext, statement: index + 1)
            } else {
                reply = .errors(404, "NOT_FOUND", "The requested resource does not exist")
            }
            if reply.status >= 400 {
                failed = true
            } else {
                answers[ref] = reply.body ?? .null
            }
            results.append((ref, reply))
        }
        if failed && allOrNone {
            // Everything rolls back: the saved records and the changes they would have published.
            s.org = snapshot
            txn.changes.removeLast(txn.changes.count - changesBefore)
            results = results.map { $0.reply.status < 400 ? ($0.ref, .errors(400, "PROCESSING_HALTED", Self.rolledBackMessage)) : $0 }
        }
        let items: [JSONValue] = results.map { item in
            var headers = JSONObject()
            for (name, value) in item.reply.headers where name == "Location" { headers[name] = .string(value) }
            return .object([
                "body": item.reply.body ?? .null, "httpHeaders": .object(headers), "httpStatusCode": .number(Double(item.reply.status)),
                "referenceId": .string(item.ref),
            ])
        }
        return SalesforceReply(status: 200, body: .object(["compositeResponse": .array(items)]))
    }

    /// `/services/data/v64.0/sobjects/Case?x=1` → ("64.0", ["sobjects", "Case"], [("x","1")]).
    static func splitURL(_ url: String) -> (String, [String], [(name: String, value: String)])? {
        let pieces = url.split(separator: "?", maxSplits: 1)
        let parts = (pieces.first ?? "").split(separator: "/").map(String.init)
        guard parts.count >= 3, parts[0] == "services", parts[1] == "data", parts[2].hasPrefix("v") else { return nil }
        return (String(parts[2].dropFirst()), Array(parts[3...]), pieces.count > 1 ? parseQuery(String(pieces[1])) : [])
    }

    /// Replaces `@{ref.path}` in a string with the value found in an earlier answer.
    func substitute(_ text: String, _ answers: [String: JSONValue], _ unresolved: inout String?) -> String {
        var out = ""
        var rest = Substring(text)
        while let start = rest.range(of: "@{") {
            out += rest[..<start.lowerBound]
            guard let end = rest[start.upperBound...].firstIndex(of: "}") else {
                out += rest[start.lowerBound...]
                return out
            }
            let expression = String(rest[start.upperBound..<end])
            if let value = Self.lookup(expression, answers) {
                out += value.stringValue ?? value.serialized()
            } else {
                unresolved = unresolved ?? expression
            }
            rest = rest[rest.index(after: end)...]
        }
        return out + rest
    }

    func substitute(_ value: JSONValue, _ answers: [String: JSONValue], _ unresolved: inout String?) -> JSONValue {
        switch value {
        case .string(let s): return .string(substitute(s, answers, &unresolved))
        case .array(let items): return .array(items.map { substitute($0, answers, &unresolved) })
        case .object(let o):
            var out = JSONObject()
            for (k, v) in o.entries { out[k] = substitute(v, answers, &unresolved) }
            return .object(out)
        default: return value
        }
    }

    /// `NewCase.id`, `Query.records[0].Id`.
    static func lookup(_ expression: String, _ answers: [String: JSONValue]) -> JSONValue? {
        var segments = expression.split(separator: ".").map(String.init)
        guard !segments.isEmpty else { return nil }
        var head = segments.removeFirst()
        var indexes: [Int] = []
        func splitIndexes(_ segment: String) -> (String, [Int]) {
            let name = String(segment.prefix { $0 != "[" })
            let found = segment.dropFirst(name.count).split(separator: "]").compactMap {
                Int($0.trimmingCharacters(in: CharacterSet(charactersIn: "[")))
            }
            return (name, found)
        }
        (head, indexes) = splitIndexes(head)
        guard var current = answers[head] else { return nil }
        for i in indexes {
            guard let items = current.arrayValue, i < items.count else { return nil }
            current = items[i]
        }
        for segment in segments {
            let (name, idx) = splitIndexes(segment)
            guard let next = current[name] else { return nil }
            current = next
            for i in idx {
                guard let items = current.arrayValue, i < items.count else { return nil }
                current = items[i]
            }
        }
        return current == .null ? nil : current
    }

    /// `POST|PATCH composite/sobjects`: up to 200 records in one call, SaveResults in order.
    func collections(_ s: inout State, _ txn: inout Transaction, method: String, body: SalesforceRequestBody, context: CallContext, statement: Int)
        -> SalesforceReply
    {
        guard case .json(.object(let request)) = body, let records = request["records"]?.arrayValue else {
            if case .invalid(let message) = body { return .errors(400, "JSON_PARSER_ERROR", message) }
            return .errors(400, "JSON_PARSER_ERROR", "The request body must be {\"allOrNone\":…,\"records\":[…]}")
        }
        guard records.count <= 200 else {
            return .errors(400, "EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more than 200 records into this call")
        }
        // Inside a Composite with allOrNone, the outer setting wins.
        let allOrNone = request["allOrNone"] == .bool(true) || context.allOrNone
        let snapshot = s.org
        let changesBefore = txn.changes.count
        var results: [(id: String?, error: WriteError?)] = []
        for item in records {
            guard var fields = item.objectValue else {
                results.append(
                    (nil, WriteError(status: 400, errorCode: "JSON_PARSER_ERROR", message: "Each record must be a JSON object", fields: [])))
                continue
            }
            guard let typeName = fields["attributes"]?["type"]?.stringValue, let type = s.org.type(typeName) else {
                results.append(
                    (
                        nil,
                        WriteError(status: 400, errorCode: "INVALID_TYPE", message: "Must specify a valid sObject type in the attributes", fields: [])
                    ))
                continue
            }
            fields["attributes"] = nil
            if method == "POST" {
                switch insert(&s, type: type, input: fields, txn: &txn, statement: statement) {
                case .success(let id): results.append((id, nil))
                case .failure(let e): results.append((nil, e))
                }
                continue
            }
            let key = fields.keys.first { $0.lowercased() == "id" }
            guard let key, let given = fields[key]?.stringValue else {
                results.append(
                    (nil, WriteError(status: 400, errorCode: "MISSING_ARGUMENT", message: "Id not specified in an update call", fields: [])))
                continue
            }
            guard let id = SalesforceOrg.canonicalId(given) else {
                results.append((given, Self.malformedId(type, given)))
                continue
            }
            fields[key] = nil
            guard id.hasPrefix(type.keyPrefix), s.org.records[type.name]?[id] != nil else {
                results.append((id, WriteError(status: 400, errorCode: "ENTITY_IS_DELETED", message: "entity is deleted", fields: [])))
                continue
            }
            switch modify(&s, type: type, id: id, input: fields, txn: &txn, statement: statement) {
            case .success: results.append((id, nil))
            case .failure(let e): results.append((id, e))
            }
        }
        let anyFailed = results.contains { $0.error != nil }
        if allOrNone && anyFailed {
            s.org = snapshot
            txn.changes.removeLast(txn.changes.count - changesBefore)
        }
        let rolledBack = WriteError(
            status: 400, errorCode: "ALL_OR_NONE_OPERATION_ROLLED_BACK",
            message: "Record rolled back because not all records were valid and the request was using AllOrNone header", fields: [])
        let out: [JSONValue] = results.map { result in
            var o = JSONObject()
            let error = result.error ?? (allOrNone && anyFailed ? rolledBack : nil)
            // A create that did not happen has no Id to report.
            if let id = result.id, !(method == "POST" && error != nil) { o["id"] = .string(id) }
            o["success"] = .bool(error == nil)
            o["errors"] = .array(error.map { [$0.collectionError] } ?? [])
            return .object(o)
        }
        return SalesforceReply(status: 200, body: .array(out))
    }
}
