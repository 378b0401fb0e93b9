import Foundation
import Logging
import Synchronization
import SwitchboardCore
import SwitchboardPipeline

/// How the Salesforce sink writes.
public struct SalesforceSinkConfiguration: Sendable, Hashable {
    /// Coalesce concurrent writes into sObject Collections calls (one API call for up to 200 records).
    public var batching: Bool
    /// How long a batch waits for company before it is sent.
    public var batchWindow: Duration
    /// The most records in one batch (Salesforce takes 200 per Collections call).
    public var maxBatchSize: Int
    /// Per object (API name, any case): a text field that holds the action's idempotency key.
    ///
    /// Salesforce's REST API has no idempotency header, so a create whose answer was lost would be made again on
    /// retry. When an object has a field here (a custom text field, ideally an external Id, e.g.
    /// `Switchboard_Key__c`), `createRecord` first looks for a record whose field holds the key and returns it if
    /// found; otherwise it writes the key into the field with the new record. Costs one query per create. Off by
    /// default.
    public var idempotencyFields: [String: String]
    /// `CaseComment.IsPublished` for copied notes: false keeps them internal (not shown in portals).
    public var publishComments: Bool

    public init(
        batching: Bool = true, batchWindow: Duration = .milliseconds(15), maxBatchSize: Int = SalesforceClient.collectionLimit,
        idempotencyFields: [String: String] = [:], publishComments: Bool = false
    ) {
        self.batching = batching
        self.batchWindow = batchWindow
        self.maxBatchSize = max(1, min(SalesforceClient.collectionLimit, maxBatchSize))
        self.idempotencyFields = idempotencyFields
        self.publishComments = publishComments
    }

    func idempotencyField(for object: String) -> String? {
        idempotencyFields.first { $0.key.lowercased() == object.lowercased() }?.value
    }
}

/// Carries out the rules' Salesforce actions on one org: `setField` (an update), `createRecord` (a create, after the
/// required fields are checked against describe), `syncNote` (a CaseComment and/or a FeedItem on the record).
///
/// The dispatcher runs many actions at once; with batching on, concurrent creates and updates are gathered for a
/// few milliseconds and sent as one sObject Collections call, each caller getting its own record's result.
/// Updates of the same record never share a call, and their calls go out in the order the updates came.
public final class SalesforceSink: OutboundSink {
    public let client: SalesforceClient
    public let configuration: SalesforceSinkConfiguration
    let logger: Logger
    private let creates: CollectionBatcher
    private let updates: CollectionBatcher
    /// Parts of a note sync that already succeeded, by idempotency key, so a retry after a partial failure does not
    /// post the same comment twice.
    private let doneParts = Mutex<(parts: [String: [String: String]], order: [String])>(([:], []))

    public init(client: SalesforceClient, configuration: SalesforceSinkConfiguration = .init(), logger: Logger = Logger(label: "salesforce.sink")) {
        self.client = client
        self.configuration = configuration
        self.logger = logger
        self.creates = CollectionBatcher(kind: .create, client: client, window: configuration.batchWindow, maxSize: configuration.maxBatchSize)
        self.updates = CollectionBatcher(kind: .update, client: client, window: configuration.batchWindow, maxSize: configuration.maxBatchSize)
    }

    public func perform(_ request: ActionRequest) async throws(ActionFailure) -> ActionOutcome {
        do {
            switch request.action {
            case .setField: return try await setField(request)
            case .createRecord: return try await createRecord(request)
            case .syncNote: return try await syncNote(request)
            default: throw ActionFailure.permanent("\(request.action.rawValue) is a PagerDuty action, not a Salesforce one")
            }
        } catch let failure as ActionFailure {
            throw failure
        } catch let error as SalesforceError {
            throw Self.failure(for: error)
        } catch {
            throw .retryable("\(error)")
        }
    }

    /// Whether retrying can help: no answer, 5xx, the API budget and row locks can pass; validation, permissions and
    /// refused credentials (`invalid_grant`) cannot.
    public static func failure(for error: SalesforceError) -> ActionFailure {
        switch error {
        case .transport, .malformedResponse: return .retryable(error.description)
        case .limitExceeded(_, let after): return .postponed(error.description, retryAfter: after ?? 60)
        case .authorization, .missingRequiredFields: return .permanent(error.description)
        case .api(let status, let errors):
            if status == 401 || status == 408 || status == 429 || status >= 500 || errors.contains(where: { retryableCodes.contains($0.code) }) {
                return .retryable(error.description)
            }
            return .permanent(error.description)
        }
    }

    /// Record-level codes that a later attempt can get past.
    static let retryableCodes: Set<String> = [
        "UNABLE_TO_LOCK_ROW", "REQUEST_LIMIT_EXCEEDED", "SERVER_UNAVAILABLE", "ALL_OR_NONE_OPERATION_ROLLED_BACK", "QUERY_TIMEOUT",
    ]

    static func failure(for result: SaveResult, _ what: String) -> ActionFailure {
        let text =
            "Salesforce refused to \(what): "
            + result.errors.map { "\($0.code): \($0.message)" + ($0.fields.isEmpty ? "" : " [\($0.fields.joined(separator: ", "))]") }.joined(separator: "; ")
        return result.errors.contains { retryableCodes.contains($0.code) } ? .retryable(text) : .permanent(text)
    }

    // MARK: setField

    private func setField(_ request: ActionRequest) async throws -> ActionOutcome {
        guard let object = request.object, !object.isEmpty, let id = request.recordId, !id.isEmpty else {
            throw ActionFailure.permanent("setField needs the Salesforce object and record it acts on")
        }
        guard let name = request.parameters["field"]?.stringValue, !name.isEmpty else { throw ActionFailure.permanent("setField has no field") }
        let describe = try await client.describe(object)
        guard let field = describe.field(named: name) else {
            throw ActionFailure.permanent("setField: \(describe.name) has no field \(name) (or the integration user cannot see it)")
        }
        guard field.updateable else {
            throw ActionFailure.permanent("setField: \(describe.name).\(field.name) is not updateable by the integration user")
        }
        let value = try Self.coerce(request.parameters["value"] ?? .null, for: field, object: describe.name)
        let recordId = SalesforceId.normalized(id)
        let record = CollectionRecord(object: describe.name, id: recordId, fields: [field.name: value])
        try await write(record, update: true, priority: .normal, what: "set \(describe.name).\(field.name) on \(recordId)")
        return ActionOutcome(detail: "\(describe.name) \(recordId): \(field.name) set")
    }

    // MARK: createRecord

    private func createRecord(_ request: ActionRequest) async throws -> ActionOutcome {
        guard let object = request.parameters["object"]?.stringValue ?? request.object, !object.isEmpty else {
            throw ActionFailure.permanent("createRecord does not say which object to create")
        }
        let given = request.parameters["fields"]?.objectValue ?? [:]
        let describe = try await client.describe(object)
        guard describe.createable else { throw ActionFailure.permanent("createRecord: the integration user cannot create \(describe.name) records") }
        var fields = JSONObject()
        for (name, value) in given.entries {
            guard let field = describe.field(named: name) else {
                throw ActionFailure.permanent("createRecord: \(describe.name) has no field \(name) (or the integration user cannot see it)")
            }
            guard field.createable else { throw ActionFailure.permanent("createRecord: \(describe.name).\(field.name) cannot be set on create") }
            fields[field.name] = try Self.coerce(value, for: field, object: describe.name)
        }
        // Checked here, before any write: Salesforce would refuse the record anyway, and a refused create still
        // costs an API call.
        let missing = describe.requiredOnCreate.map(\.name).filter { name in fields[name].map { $0 == .null || $0 == .string("") } ?? true }
        if !missing.isEmpty { throw SalesforceError.missingRequiredFields(object: describe.name, fields: missing) }
        if let keyFieldName = configuration.idempotencyField(for: describe.name) {
            guard let keyField = describe.field(named: keyFieldName), keyField.createable else {
                throw ActionFailure.permanent("createRecord: the idempotency field \(keyFieldName) is not a createable field of \(describe.name)")
            }
            let soql = "SELECT Id FROM \(describe.name) WHERE \(keyField.name) = '\(Self.soqlEscape(request.idempotencyKey))' LIMIT 1"
            if let existing = try await client.query(soql, maxRecords: 1).first?["Id"]?.stringValue {
                let id = SalesforceId.normalized(existing)
                return ActionOutcome(createdRecordId: id, detail: "\(describe.name) \(id) was already created for this action")
            }
            fields[keyField.name] = .string(request.idempotencyKey)
        }
        let id = try await write(CollectionRecord(object: describe.name, fields: fields), update: false, priority: .normal, what: "create a \(describe.name)")
        return ActionOutcome(createdRecordId: id, detail: "\(describe.name) \(id ?? "") created")
    }

    // MARK: syncNote

    private func syncNote(_ request: ActionRequest) async throws -> ActionOutcome {
        guard let id = request.recordId, !id.isEmpty else { throw ActionFailure.permanent("syncNote needs the record the note goes to") }
        let p = request.parameters
        guard let content = p["content"]?.stringValue, !content.isEmpty else { throw ActionFailure.permanent("syncNote has no content") }
        let recordId = SalesforceId.normalized(id)
        let isCase = request.object.map { $0.lowercased() == "case" } ?? recordId.hasPrefix("500")
        // CaseComment belongs to Cases only; a note on any other record goes to its feed alone.
        let wantComment = (p["comment"] != .bool(false)) && isCase
        let wantFeed = p["feed"] != .bool(false)
        guard wantComment || wantFeed else { return ActionOutcome(detail: "nothing to do: neither feed nor comment asked for") }
        // Low priority: a note copy waits when the org's budget is down to its reserve.
        try client.budget.check(.low)
        var text = content
        if let author = p["author"]?.stringValue, !author.isEmpty { text = "PagerDuty note by \(author):\n\(content)" }
        let done = doneParts.withLock { $0.parts[request.idempotencyKey] ?? [:] }
        var parts: [(name: String, record: CollectionRecord)] = []
        if wantComment && done["CaseComment"] == nil {
            parts.append(
                ("CaseComment",
                 CollectionRecord(
                    object: "CaseComment",
                    fields: [
                        "ParentId": .string(recordId), "CommentBody": .string(TextLimits.caseCommentBody(text)), "IsPublished": .bool(configuration.publishComments),
                    ])))
        }
        if wantFeed && done["FeedItem"] == nil {
            let length = client.cachedDescribe("FeedItem")?.field(named: "Body")?.length
            parts.append(
                ("FeedItem",
                 CollectionRecord(
                    object: "FeedItem",
                    fields: ["ParentId": .string(recordId), "Body": .string(TextLimits.feedItemBody(text, describedLength: length)), "Type": "TextPost"])))
        }
        let results = await withTaskGroup(of: (Int, Result<String?, ActionFailure>).self) { group in
            for (index, part) in parts.enumerated() {
                group.addTask {
                    do {
                        return (index, .success(try await self.write(part.record, update: false, priority: .low, what: "add a \(part.name) to \(recordId)")))
                    } catch let failure as ActionFailure {
                        return (index, .failure(failure))
                    } catch let error as SalesforceError {
                        return (index, .failure(Self.failure(for: error)))
                    } catch {
                        return (index, .failure(.retryable("\(error)")))
                    }
                }
            }
            var out: [(Int, Result<String?, ActionFailure>)] = []
            for await r in group { out.append(r) }
            return out.sorted { $0.0 < $1.0 }.map(\.1)
        }
        var created = done
        var failures: [ActionFailure] = []
        for (part, result) in zip(parts, results) {
            switch result {
            case .success(let id): created[part.name] = id ?? ""
            case .failure(let failure): failures.append(failure)
            }
        }
        if !failures.isEmpty {
            remember(request.idempotencyKey, created)
            // A retry can help only if every failure is retryable; the parts that succeeded are not sent again.
            throw failures.first { if case .permanent = $0 { true } else { false } } ?? failures[0]
        }
        forget(request.idempotencyKey)
        let ids = ["CaseComment", "FeedItem"].compactMap { name in created[name].map { "\(name) \($0)" } }
        return ActionOutcome(createdRecordId: created["CaseComment"] ?? created["FeedItem"], detail: ids.joined(separator: ", "))
    }

    private func remember(_ key: String, _ parts: [String: String]) {
        doneParts.withLock { state in
            if state.parts.updateValue(parts, forKey: key) == nil { state.order.append(key) }
            // Bounded: only recent partial failures matter.
            while state.order.count > 10_000 { state.parts[state.order.removeFirst()] = nil }
        }
    }

    private func forget(_ key: String) {
        doneParts.withLock { state in
            if state.parts.removeValue(forKey: key) != nil { state.order.removeAll { $0 == key } }
        }
    }

    // MARK: Writing

    /// Writes one record, batched or alone; returns the new record's Id for a create.
    @discardableResult
    private func write(_ record: CollectionRecord, update: Bool, priority: APIBudget.Priority, what: String) async throws -> String? {
        if configuration.batching {
            try client.budget.check(priority)
            let result = try await (update ? updates : creates).submit(record, priority: priority).get()
            guard result.success else { throw Self.failure(for: result, what) }
            return result.id
        }
        if update, let id = record.id {
            try await client.update(record.object, id: id, fields: record.fields, priority: priority)
            return nil
        }
        return try await client.create(record.object, fields: record.fields, priority: priority)
    }

    // MARK: Values

    /// A rule's value in the shape the field takes: booleans and numbers from text, picklist values checked.
    static func coerce(_ value: JSONValue, for field: ObjectDescribe.Field, object: String) throws(ActionFailure) -> JSONValue {
        let type = field.type.lowercased()
        guard case .string(let text) = value else {
            if case .number(let n) = value, ["string", "textarea", "picklist", "phone", "url", "email"].contains(type) {
                return .string(n.rounded() == n && abs(n) < 1e15 ? String(Int64(n)) : String(n))
            }
            return value
        }
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        // An empty value clears the field.
        if trimmed.isEmpty && type != "string" && type != "textarea" { return .null }
        switch type {
        case "boolean":
            switch trimmed.lowercased() {
            case "true", "yes", "1": return .bool(true)
            case "false", "no", "0": return .bool(false)
            default: throw .permanent("\(object).\(field.name) is a checkbox; \"\(text)\" is neither true nor false")
            }
        case "double", "currency", "percent", "int", "long":
            guard let n = Double(trimmed) else { throw .permanent("\(object).\(field.name) is a number; \"\(text)\" is not") }
            return .number(n)
        case "picklist":
            return .string(try picklistValue(trimmed, field, object))
        case "multipicklist":
            let values = try trimmed.split(separator: ";").map { v throws(ActionFailure) in
                try picklistValue(v.trimmingCharacters(in: .whitespaces), field, object)
            }
            return .string(values.joined(separator: ";"))
        case "reference", "id":
            return .string(SalesforceId.normalized(trimmed))
        default:
            return value
        }
    }

    private static func picklistValue(_ value: String, _ field: ObjectDescribe.Field, _ object: String) throws(ActionFailure) -> String {
        let active = field.activeValues
        if active.contains(value) { return value }
        if let match = active.first(where: { $0.lowercased() == value.lowercased() }) { return match }
        guard field.restrictedPicklist else { return value }
        throw .permanent(
            "\(object).\(field.name) is a restricted picklist and \"\(value)\" is not one of its active values (\(active.prefix(20).joined(separator: ", ")))")
    }

    /// Escapes a string for a single-quoted SOQL literal.
    static func soqlEscape(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "\\": out += "\\\\"
            case "'": out += "\\'"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default: out.append(c)
            }
        }
        return out
    }
}

/// Gathers concurrent writes of one kind into sObject Collections calls.
///
/// A submission waits up to `window` for others, or until `maxSize` records are pending; then one call goes out
/// with `allOrNone: false`, and each submitter gets its own record's `SaveResult`. Updates are sent one call at a
/// time and a call never holds two updates of one record, so updates of a record take effect in the order they were
/// submitted. Creates have no such order and may overlap.
actor CollectionBatcher {
    enum Kind { case create, update }

    private struct Pending {
        var record: CollectionRecord
        var priority: APIBudget.Priority
        var continuation: CheckedContinuation<Result<SaveResult, SalesforceError>, Never>
    }

    let kind: Kind
    let client: SalesforceClient
    let window: Duration
    let maxSize: Int
    private var pending: [Pending] = []
    private var running = false

    init(kind: Kind, client: SalesforceClient, window: Duration, maxSize: Int) {
        self.kind = kind
        self.client = client
        self.window = window
        self.maxSize = maxSize
    }

    func submit(_ record: CollectionRecord, priority: APIBudget.Priority) async -> Result<SaveResult, SalesforceError> {
        await withCheckedContinuation { continuation in
            pending.append(Pending(record: record, priority: priority, continuation: continuation))
            if !running {
                running = true
                Task { await self.run() }
            }
        }
    }

    private func run() async {
        while true {
            if pending.count < maxSize { try? await Task.sleep(for: window) }
            guard !pending.isEmpty else {
                running = false
                return
            }
            let batch = takeBatch()
            switch kind {
            case .update: await send(batch)
            case .create: Task { await self.send(batch) }
            }
        }
    }

    /// The next call's records, oldest first; an update of a record already in the call waits for the next one.
    private func takeBatch() -> [Pending] {
        var batch: [Pending] = []
        var rest: [Pending] = []
        var ids: Set<String> = []
        for item in pending {
            if batch.count < maxSize, kind == .create || ids.insert(item.record.id?.lowercased() ?? "").inserted {
                batch.append(item)
            } else {
                rest.append(item)
            }
        }
        pending = rest
        // One run per object type: Collections calls take at most ten runs. Stable, so a record's place among its
        // own type is kept.
        return batch.enumerated().sorted { ($0.element.record.object, $0.offset) < ($1.element.record.object, $1.offset) }.map(\.element)
    }

    private func send(_ batch: [Pending]) async {
        let records = batch.map(\.record)
        let priority = batch.map(\.priority).max() ?? .normal
        do {
            let results =
                switch kind {
                case .create: try await client.createCollection(records, allOrNone: false, priority: priority)
                case .update: try await client.updateCollection(records, allOrNone: false, priority: priority)
                }
            for (index, item) in batch.enumerated() {
                item.continuation.resume(
                    returning: index < results.count ? .success(results[index]) : .failure(.malformedResponse("the Collections answer is missing a result")))
            }
        } catch {
            for item in batch { item.continuation.resume(returning: .failure(error)) }
        }
    }
}

/// Sends each Salesforce action to its org's sink, by the request's `orgId`.
public struct SalesforceOrgSink: OutboundSink {
    let sinkForOrg: @Sendable (String?) async -> (any OutboundSink)?

    /// - Parameter sinkForOrg: the sink of an org (nil: only one org is connected and its sink is wanted); nil when the
    ///   org is not connected or has no API access.
    public init(sinkForOrg: @escaping @Sendable (String?) async -> (any OutboundSink)?) {
        self.sinkForOrg = sinkForOrg
    }

    public func perform(_ request: ActionRequest) async throws(ActionFailure) -> ActionOutcome {
        guard let sink = await sinkForOrg(request.orgId.map(SalesforceId.normalized)) else {
            throw .permanent(
                "\(request.action.rawValue) needs Salesforce org \(request.orgId ?? "(unnamed)"), which is not connected with API access; run `switchboard salesforce connect` and retry the dead letter"
            )
        }
        return try await sink.perform(request)
    }
}
