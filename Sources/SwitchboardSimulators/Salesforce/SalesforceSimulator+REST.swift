import Foundation
import SwitchboardCore

/// A request body as the REST handlers see it.
enum SalesforceRequestBody: Sendable {
    case none
    case json(JSONValue)
    /// Not JSON: what the parser said.
    case invalid(String)

    var value: JSONValue? { if case .json(let v) = self { v } else { nil } }
}

/// Per-request settings from the headers.
struct CallContext: Sendable {
    var version: String
    /// `Sforce-Query-Options: batchSize=N`, clamped to 200…2,000.
    var batchSize = 2000
    /// Inside a Composite request: no nested Composite.
    var inComposite = false
    /// The enclosing Composite's `allOrNone`, which overrides a Collections subrequest's own.
    var allOrNone = false
}

extension SalesforceSimulator {
    /// Serves `/services/data/...`: version check, session, API allocation, then the resource.
    func rest(method: String, path: String, query: [(name: String, value: String)], headers: [(name: String, value: String)], body bytes: [UInt8])
        -> SalesforceReply
    {
        let parts = path.split(separator: "/").map(String.init)
        guard parts.count >= 3 else {
            // `GET /services/data/` needs no session and is not counted.
            guard method == "GET" else { return Self.methodNotAllowed(method, allowed: "GET,HEAD") }
            return SalesforceReply(
                status: 200,
                body: .array(
                    options.apiVersions.map { v in
                        .object(["label": .string(Self.releaseLabel(v)), "url": .string("/services/data/v\(v)"), "version": .string(v)])
                    }))
        }
        guard parts[2].hasPrefix("v"), options.apiVersions.contains(String(parts[2].dropFirst())) else {
            return .errors(404, "NOT_FOUND", "The requested resource does not exist")
        }
        var context = CallContext(version: String(parts[2].dropFirst()))
        if let options = Self.header(headers, "Sforce-Query-Options"), let n = Self.option(options, "batchSize").flatMap({ Int($0) }) {
            context.batchSize = min(2000, max(200, n))
        }
        var origin = "com/salesforce/api/rest/\(context.version)"
        if let callOptions = Self.header(headers, "Sforce-Call-Options"), let client = Self.option(callOptions, "client"), !client.isEmpty {
            origin += ";client=\(client)"
        }
        let body: SalesforceRequestBody
        if bytes.isEmpty {
            body = .none
        } else {
            do { body = .json(try JSONParser.parseValue(bytes: bytes)) } catch { body = .invalid(error.message) }
        }
        let resource = Array(parts[3...])
        let (reply, batches) = state.withLock { s -> (SalesforceReply, [TriggerBatch]) in
            guard let user = authenticate(headers, s) else {
                return (.errors(401, "INVALID_SESSION_ID", "Session expired or invalid"), [])
            }
            let usage = { (s: State) in ("Sforce-Limit-Info", "api-usage=\(s.apiUsed)/\(s.apiMax)") }
            if s.apiUsed >= s.apiMax {
                var reply = SalesforceReply.errors(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
                reply.headers.append(usage(s))
                return (reply, [])
            }
            s.apiUsed += 1
            var txn = Transaction(userId: user, origin: origin, version: context.version)
            var reply = route(&s, &txn, method: method, resource: resource, query: query, body: body, context: context)
            let batches = commit(&s, txn)
            reply.headers.append(usage(s))
            return (reply, batches)
        }
        enqueue(batches)
        return reply
    }

    /// `name=value` from a comma-separated option header (`client=switchboard, defaultNamespace=x`).
    static func option(_ header: String, _ name: String) -> String? {
        for item in header.split(separator: ",") {
            let pair = item.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if pair.count == 2, pair[0].lowercased() == name.lowercased() { return pair[1] }
        }
        return nil
    }

    /// `Winter '25` for 62.0: three releases a year, Winter first.
    static func releaseLabel(_ version: String) -> String {
        guard let major = Int(version.split(separator: ".").first ?? "") else { return version }
        let k = major - 62
        let season = ["Winter", "Spring", "Summer"][((k % 3) + 3) % 3]
        let year = 25 + Int((Double(k) / 3).rounded(.down))
        return "\(season) '\(year)"
    }

    static func methodNotAllowed(_ method: String, allowed: String) -> SalesforceReply {
        .errors(405, "METHOD_NOT_ALLOWED", "HTTP Method '\(method)' not allowed. Allowed are \(allowed)")
    }

    /// One REST resource, with the state locked. Composite subrequests come through here too.
    func route(
        _ s: inout State, _ txn: inout Transaction, method: String, resource: [String], query: [(name: String, value: String)],
        body: SalesforceRequestBody,
        context: CallContext, statement: Int = 0
    ) -> SalesforceReply {
        let v = context.version
        func q(_ name: String) -> String? { query.first { $0.name == name }?.value }
        func needsBody() -> Result<JSONObject, WriteError> {
            switch body {
            case .json(.object(let o)): return .success(o)
            case .invalid(let message): return .failure(WriteError(status: 400, errorCode: "JSON_PARSER_ERROR", message: message, fields: []))
            case .none:
                return .failure(
                    WriteError(status: 400, errorCode: "JSON_PARSER_ERROR", message: "The request body is either invalid or incomplete.", fields: []))
            case .json:
                return .failure(
                    WriteError(
                        status: 400, errorCode: "JSON_PARSER_ERROR", message: "Cannot deserialize instance of sObject from START_ARRAY value [",
                        fields: []))
            }
        }
        switch (method, resource.count, resource.first ?? "") {
        case ("GET", 0, _):
            var o = JSONObject()
            for name in ["sobjects", "query", "queryAll", "composite", "limits"] { o[name] = .string("/services/data/v\(v)/\(name)") }
            return SalesforceReply(status: 200, body: .object(o))
        case ("GET", 1, "limits"):
            return SalesforceReply(status: 200, body: limits(s))
        case ("GET", 1, "sobjects"):
            let all = s.org.types.values.sorted { $0.name < $1.name }.map { JSONValue.object($0.summary(version: v)) }
            return SalesforceReply(status: 200, body: .object(["encoding": "UTF-8", "maxBatchSize": .number(200), "sobjects": .array(all)]))
        case (_, 2, "sobjects"), (_, 3, "sobjects"):
            guard let type = s.org.type(resource[1]) else { return .errors(404, "NOT_FOUND", "The requested resource does not exist") }
            if resource.count == 2 {
                switch method {
                case "GET":
                    let recent = (s.org.order[type.name] ?? []).suffix(5).reversed().compactMap { id in
                        s.org.records[type.name]?[id].map { JSONValue.object(Self.rendered(type, $0, version: v, fields: ["Id"])) }
                    }
                    return SalesforceReply(
                        status: 200, body: .object(["objectDescribe": .object(type.summary(version: v)), "recentItems": .array(recent)]))
                case "POST":
                    switch needsBody() {
                    case .failure(let e): return .error(e)
                    case .success(let fields):
                        switch insert(&s, type: type, input: fields, txn: &txn, statement: statement) {
                        case .success(let id):
                            return SalesforceReply(
                                status: 201, body: .object(["id": .string(id), "success": .bool(true), "errors": .array([])]),
                                headers: [("Location", "/services/data/v\(v)/sobjects/\(type.name)/\(id)")])
                        case .failure(let e): return .error(e)
                        }
                    }
                default: return Self.methodNotAllowed(method, allowed: "GET,HEAD,POST")
                }
            }
            if resource[2] == "describe" {
                guard method == "GET" else { return Self.methodNotAllowed(method, allowed: "GET,HEAD") }
                return SalesforceReply(status: 200, body: type.describe(version: v))
            }
            if resource[2] == "updated" {
                guard method == "GET" else { return Self.methodNotAllowed(method, allowed: "GET,HEAD") }
                return updated(s, type, start: q("start"), end: q("end"))
            }
            guard let id = SalesforceOrg.canonicalId(resource[2]) else { return .error(Self.malformedId(type, resource[2])) }
            switch method {
            case "GET":
                guard id.hasPrefix(type.keyPrefix), let record = s.org.records[type.name]?[id] else { return .error(Self.notFound()) }
                var fields: [String]?
                if let list = q("fields") {
                    var names: [String] = []
                    for raw in list.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !raw.isEmpty {
                        guard let field = type.field(raw) else {
                            return .errors(
                                400, "INVALID_FIELD",
                                "No such column '\(raw)' on entity '\(type.name)'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names."
                            )
                        }
                        if !names.contains(field.name) { names.append(field.name) }
                    }
                    if !names.contains("Id") { names.append("Id") }
                    fields = names
                }
                return SalesforceReply(status: 200, body: .object(Self.rendered(type, record, version: v, fields: fields)))
            case "PATCH":
                guard id.hasPrefix(type.keyPrefix) else { return .error(Self.notFound()) }
                switch needsBody() {
                case .failure(let e): return .error(e)
                case .success(let fields):
                    switch modify(&s, type: type, id: id, input: fields, txn: &txn, statement: statement) {
                    case .success: return SalesforceReply(status: 204, body: nil)
                    case .failure(let e): return .error(e)
                    }
                }
            default: return Self.methodNotAllowed(method, allowed: "GET,HEAD,PATCH")
            }
        case (_, 1, "query"), (_, 1, "queryAll"):
            guard method == "GET" else { return Self.methodNotAllowed(method, allowed: "GET,HEAD") }
            guard let text = q("q") else { return .errors(400, "MALFORMED_QUERY", "A query string has to be specified") }
            return runQuery(&s, text, context: context)
        case (_, 2, "query"), (_, 2, "queryAll"):
            guard method == "GET" else { return Self.methodNotAllowed(method, allowed: "GET,HEAD") }
            return queryMore(&s, resource[1], version: v)
        case (_, 1, "composite"):
            guard method == "POST" else { return Self.methodNotAllowed(method, allowed: "POST") }
            guard !context.inComposite else { return .errors(400, "INVALID_API_INPUT", "Composite requests can't be nested") }
            return composite(&s, &txn, body: body, context: context)
        case (_, 2, "composite") where resource[1] == "sobjects":
            guard method == "POST" || method == "PATCH" else { return Self.methodNotAllowed(method, allowed: "PATCH,POST") }
            return collections(&s, &txn, method: method, body: body, context: context, statement: statement)
        default:
            return .errors(404, "NOT_FOUND", "The requested resource does not exist")
        }
    }

    func limits(_ s: State) -> JSONValue {
        func limit(_ max: Int, _ remaining: Int) -> JSONValue { .object(["Max": .number(Double(max)), "Remaining": .number(Double(remaining))]) }
        let events = s.stream.events.count
        return .object([
            "ConcurrentAsyncGetReportInstances": limit(200, 200), "DailyApiRequests": limit(s.apiMax, max(0, s.apiMax - s.apiUsed)),
            "DailyAsyncApexExecutions": limit(250_000, 250_000), "DailyBulkApiBatches": limit(15_000, 15_000),
            "DailyDurableStreamingApiEvents": limit(1_000_000, max(0, 1_000_000 - events)), "DailyStreamingApiEvents": limit(1_000_000, 1_000_000),
            "DataStorageMB": limit(1024, 1024), "HourlyPublishedStandardVolumePlatformEvents": limit(250_000, 250_000),
            "MonthlyPlatformEventsUsageEntitlement": limit(1_500_000, max(0, 1_500_000 - events)),
        ])
    }

    /// `sobjects/{Obj}/updated/?start=&end=`: Ids whose SystemModstamp falls in the window, truncated to minutes.
    func updated(_ s: State, _ type: SalesforceObjectType, start: String?, end: String?) -> SalesforceReply {
        guard let startText = start, let endText = end else {
            return .errors(400, "MISSING_ARGUMENT", "start and end are required")
        }
        guard let startMs = SalesforceOrg.parseDateTime(startText), let endMs = SalesforceOrg.parseDateTime(endText) else {
            return .errors(400, "INVALID_REPLICATION_DATE", "startDate and endDate must be valid date-times")
        }
        let from = startMs / 60_000 * 60_000
        let to = endMs / 60_000 * 60_000
        guard from < to else {
            return .errors(400, "INVALID_REPLICATION_DATE", "startDate must chronologically precede endDate by more than one minute")
        }
        guard Self.nowMs(s) - from <= 30 * 86_400_000 else {
            return .errors(400, "INVALID_REPLICATION_DATE", "startDate cannot be more than 30 days ago")
        }
        let ids = (s.org.order[type.name] ?? []).filter { id in
            guard let stamp = s.org.records[type.name]?[id]?["SystemModstamp"]?.stringValue.flatMap(SalesforceOrg.parseDateTime) else { return false }
            return stamp >= from && stamp < to
        }
        return SalesforceReply(
            status: 200,
            body: .object([
                "ids": .array(ids.map(JSONValue.string)),
                "latestDateCovered": .string(SalesforceOrg.formatDateTime(min(to, Self.nowMs(s) / 60_000 * 60_000))),
            ]))
    }
}
