import Foundation
import SwitchboardCore

extension SalesforceSimulator {
    /// The simulator's own endpoints, under `/_simulator` (JSON in and out; not part of Salesforce's API, never counted):
    ///
    /// - `POST /_simulator/records/{object}` fields → 201 `{"id"}`: a person creates a record in the UI.
    /// - `PATCH /_simulator/records/{object}/{id}` fields → 204: a person edits one.
    /// - `GET /_simulator/records/{object}[/{id}]`: the records (or one).
    /// - `POST /_simulator/expire-sessions`: every issued token now gets 401.
    /// - `POST /_simulator/allocation` `{"max"}`, `POST /_simulator/reset-usage`, `GET /_simulator/usage` → `{"apiCallsUsed","max"}`.
    /// - `POST /_simulator/capture` `{"mode":"none|trigger|cdc","url"}`.
    /// - `POST /_simulator/clock` `{"seconds"}`: moves the simulator's clock forward.
    /// - `GET /_simulator/trigger-posts`: what was posted to Switchboard and what it answered.
    func control(method: String, path: String, body bytes: [UInt8]) -> SalesforceReply {
        let parts = Array(path.split(separator: "/").map { String($0).removingPercentEncoding ?? String($0) }.dropFirst())
        let body: JSONValue?
        if bytes.isEmpty {
            body = nil
        } else {
            guard let parsed = try? JSONParser.parseValue(bytes: bytes) else { return .errors(400, "JSON_PARSER_ERROR", "The body is not JSON") }
            body = parsed
        }
        let ok = SalesforceReply(status: 200, body: .object(["ok": .bool(true)]))
        switch (method, parts.first ?? "", parts.count) {
        case ("POST", "records", 2):
            guard let fields = body?.objectValue else { return .errors(400, "JSON_PARSER_ERROR", "The body must be a JSON object of fields") }
            do {
                let id = try create(parts[1], fields)
                return SalesforceReply(status: 201, body: .object(["id": .string(id), "success": .bool(true), "errors": .array([])]))
            } catch let e as WriteError {
                return .error(e)
            } catch {
                return .errors(400, "UNKNOWN_EXCEPTION", "\(error)")
            }
        case ("PATCH", "records", 3):
            guard let fields = body?.objectValue else { return .errors(400, "JSON_PARSER_ERROR", "The body must be a JSON object of fields") }
            do {
                try update(parts[1], parts[2], fields)
                return SalesforceReply(status: 204, body: nil)
            } catch let e as WriteError {
                return .error(e)
            } catch {
                return .errors(400, "UNKNOWN_EXCEPTION", "\(error)")
            }
        case ("GET", "records", 2):
            guard state.withLock({ $0.org.type(parts[1]) }) != nil else { return .error(Self.notFound()) }
            return SalesforceReply(status: 200, body: .array(records(parts[1]).map(JSONValue.object)))
        case ("GET", "records", 3):
            guard let record = record(parts[1], parts[2]) else { return .error(Self.notFound()) }
            return SalesforceReply(status: 200, body: .object(record))
        case ("POST", "expire-sessions", 1):
            expireSessions()
            return ok
        case ("POST", "allocation", 1):
            guard let max = Self.number(body?["max"]) else { return .errors(400, "INVALID_INPUT", "max is required") }
            setAPIAllocation(max)
            return ok
        case ("POST", "reset-usage", 1):
            resetAPIUsage()
            return ok
        case ("GET", "usage", 1):
            let (used, max) = state.withLock { ($0.apiUsed, $0.apiMax) }
            return SalesforceReply(status: 200, body: .object(["apiCallsUsed": .number(Double(used)), "max": .number(Double(max))]))
        case ("POST", "capture", 1):
            switch body?["mode"]?.stringValue {
            case "none": setCapture(.none)
            case "cdc": setCapture(.cdc)
            case "trigger":
                guard let url = body?["url"]?.stringValue, !url.isEmpty else { return .errors(400, "INVALID_INPUT", "trigger mode needs url") }
                setCapture(.trigger(url: url))
            default: return .errors(400, "INVALID_INPUT", "mode must be none, trigger or cdc")
            }
            return ok
        case ("POST", "clock", 1):
            guard let seconds = Self.number(body?["seconds"]) else { return .errors(400, "INVALID_INPUT", "seconds is required") }
            advanceClock(by: .seconds(seconds))
            return ok
        case ("GET", "trigger-posts", 1):
            let posts = triggerPosts.map { p -> JSONValue in
                .object([
                    "object": .string(p.object), "isInsert": .bool(p.isInsert), "recordIds": .array(p.recordIds.map(JSONValue.string)),
                    "url": .string(p.url),
                    "status": p.status.map { .number(Double($0)) } ?? .null, "attempt": .number(Double(p.attempt)), "body": .string(p.body),
                ])
            }
            return SalesforceReply(status: 200, body: .array(posts))
        default:
            return .errors(404, "NOT_FOUND", "Unknown simulator endpoint \(method) \(path)")
        }
    }
}
