import Foundation
import Synchronization
import SwitchboardCore
import SwitchboardPipeline
@testable import SwitchboardSalesforce
import Testing

/// The describe fixture (object `Whizbang`) with `Picklist_Field` restricted and `Text_Field` required.
func whizbangDescribe() throws -> String {
    guard case .object(var o) = try Reference.json("rest_sobject_describe_all_field_types.restforce.json"),
        case .array(let fields) = o["fields"]
    else { throw FakeError("describe fixture") }
    o["fields"] = .array(
        fields.map { f in
            guard case .object(var field) = f else { return f }
            if field["name"] == "Picklist_Field" { field["restrictedPicklist"] = .bool(true) }
            if field["name"] == "Text_Field" { field["nillable"] = .bool(false) }
            return .object(field)
        })
    return JSONValue.object(o).serialized()
}

/// An org whose Collections calls succeed, giving each created record an Id by its type; counts everything.
func fakeWritableOrg(queryAnswer: String = #"{"totalSize":0,"done":true,"records":[]}"#) async throws -> FakeSalesforce {
    let describe = try whizbangDescribe()
    let counter = Mutex(0)
    return try await FakeSalesforce.start { request in
        if request.path.hasSuffix("/describe") { return .json(200, describe) }
        if request.path.hasSuffix("/query") { return .json(200, queryAnswer) }
        func newId(_ type: String) -> String {
            let n = counter.withLock { c -> Int in c += 1; return c }
            let prefix = type == "CaseComment" ? "00a" : type == "FeedItem" ? "0D5" : "a00"
            return SalesforceId.normalized(prefix + String(repeating: "0", count: 12 - String(n).count) + String(n))
        }
        if request.path.hasSuffix("/composite/sobjects") {
            let records = request.json?["records"]?.arrayValue ?? []
            let results = records.map { r -> String in
                if request.method == "PATCH" { return #"{"id":"\#(r["id"]?.stringValue ?? "")","success":true,"errors":[]}"# }
                if r["Name"] == "fail" {
                    return #"{"success":false,"errors":[{"statusCode":"FIELD_CUSTOM_VALIDATION_EXCEPTION","message":"Name may not be fail","fields":["Name"]}]}"#
                }
                return #"{"id":"\#(newId(r["attributes"]?["type"]?.stringValue ?? ""))","success":true,"errors":[]}"#
            }
            return .json(200, "[" + results.joined(separator: ",") + "]", headers: [("Sforce-Limit-Info", "api-usage=10/100000")])
        }
        if request.path.contains("/sobjects/") && request.method == "POST" {
            let type = request.path.split(separator: "/").last.map(String.init) ?? ""
            return .json(201, #"{"id":"\#(newId(type))","success":true,"errors":[]}"#)
        }
        if request.method == "PATCH" { return .noContent }
        return .fixture(404, "rest_error_404_not_found.restforce.json")
    }
}

func sink(_ fake: FakeSalesforce, _ configuration: SalesforceSinkConfiguration = .init(), budget: APIBudget = APIBudget()) -> SalesforceSink {
    let client = SalesforceClient(
        sessions: StaticSessions(SalesforceSession(accessToken: "x", instanceURL: fake.baseURL)), budget: budget, logger: quietLogger())
    return SalesforceSink(client: client, configuration: configuration, logger: quietLogger())
}

func failure(_ body: () async throws -> ActionOutcome) async -> ActionFailure? {
    do {
        _ = try await body()
        return nil
    } catch let failure as ActionFailure {
        return failure
    } catch {
        return .permanent("not an ActionFailure: \(error)")
    }
}

let caseId = SalesforceId.normalized("500000000000001")

@Suite("Salesforce sink")
struct SalesforceSinkTests {
    @Test("setField: updates through Collections; unknown or read-only fields and values outside a restricted picklist fail for good", .enabled(if: Reference.isAvailable, Reference.skipReason))
    func setField() async throws {
        let fake = try await fakeWritableOrg()
        defer { Task { await fake.stop() } }
        let sink = sink(fake)
        func set(_ field: String, _ value: JSONValue) -> ActionRequest {
            ActionRequest(idempotencyKey: UUID().uuidString, action: .setField, object: "Whizbang", recordId: "a00000000000001", parameters: ["field": .string(field), "value": value])
        }
        let outcome = try await sink.perform(set("picklist_field", "TWO"))
        #expect(outcome.detail?.contains("Picklist_Field") == true)
        let patch = try #require(fake.requests("PATCH", "/composite/sobjects").first?.json)
        #expect(patch["records"]?.arrayValue?.first == .object(["attributes": .object(["type": "Whizbang"]), "id": .string(SalesforceId.normalized("a00000000000001")), "Picklist_Field": "two"]))
        #expect(patch["allOrNone"] == .bool(false))
        _ = try await sink.perform(set("Checkbox_Field", "true"))
        _ = try await sink.perform(set("Number_Field", "42.5"))
        let values = fake.requests("PATCH", "/composite/sobjects").compactMap { $0.json?["records"]?.arrayValue?.first }
        #expect(values.compactMap { $0["Checkbox_Field"] } == [.bool(true)])
        #expect(values.compactMap { $0["Number_Field"] } == [.number(42.5)])

        let writes = fake.requests.count
        let unknown = await failure { try await sink.perform(set("Nope__c", "x")) }
        #expect(unknown == .permanent("setField: Whizbang has no field Nope__c (or the integration user cannot see it)"))
        let readOnly = await failure { try await sink.perform(set("CreatedDate", "2026-01-01T00:00:00Z")) }
        #expect(readOnly == .permanent("setField: Whizbang.CreatedDate is not updateable by the integration user"))
        let picklist = await failure { try await sink.perform(set("Picklist_Field", "eleven")) }
        guard case .permanent(let message)? = picklist else { Issue.record("\(String(describing: picklist))"); return }
        #expect(message.contains("Whizbang.Picklist_Field is a restricted picklist and \"eleven\""))
        #expect(fake.requests.count == writes, "refused before any call")
    }

    @Test("createRecord: missing required fields fail for good without any HTTP call; a complete record is created", .enabled(if: Reference.isAvailable, Reference.skipReason))
    func createRecord() async throws {
        let fake = try await fakeWritableOrg()
        defer { Task { await fake.stop() } }
        let sink = sink(fake)
        _ = try await sink.client.describe("Whizbang")
        fake.reset()
        let incomplete = ActionRequest(
            idempotencyKey: "k1", action: .createRecord, incidentId: "Q1", parameters: ["object": "Whizbang", "fields": .object(["Name": "n"])])
        let refused = await failure { try await sink.perform(incomplete) }
        #expect(refused == .permanent(SalesforceError.missingRequiredFields(object: "Whizbang", fields: ["Text_Field"]).description))
        #expect(fake.requests.isEmpty, "no HTTP call at all")

        let complete = ActionRequest(
            idempotencyKey: "k2", action: .createRecord, incidentId: "Q1", parameters: ["object": "Whizbang", "fields": .object(["Name": "n", "text_field": "t"])])
        let outcome = try await sink.perform(complete)
        #expect(outcome.createdRecordId?.hasPrefix("a00") == true)
        #expect(outcome.createdRecordId?.count == 18)
        let sent = try #require(fake.requests("POST", "/composite/sobjects").first?.json?["records"]?.arrayValue?.first)
        #expect(sent == .object(["attributes": .object(["type": "Whizbang"]), "Name": "n", "Text_Field": "t"]))
        #expect(fake.requests("POST", "/composite/sobjects").first?.headers["sforce-call-options"] == "client=switchboard")

        let unknownField = ActionRequest(
            idempotencyKey: "k3", action: .createRecord, parameters: ["object": "Whizbang", "fields": .object(["Text_Field": "t", "Bogus": "x"])])
        #expect(await failure { try await sink.perform(unknownField) } == .permanent("createRecord: Whizbang has no field Bogus (or the integration user cannot see it)"))
    }

    @Test("createRecord with an idempotency field: an earlier record for the key is returned, else the key is written", .enabled(if: Reference.isAvailable, Reference.skipReason))
    func idempotencyField() async throws {
        let found = try await fakeWritableOrg(queryAnswer: #"{"totalSize":1,"done":true,"records":[{"attributes":{"type":"Whizbang"},"Id":"a00000000000077"}]}"#)
        defer { Task { await found.stop() } }
        let configuration = SalesforceSinkConfiguration(idempotencyFields: ["whizbang": "Text_Field"])
        let request = ActionRequest(idempotencyKey: "job-'7'", action: .createRecord, parameters: ["object": "Whizbang", "fields": .object(["Text_Field": "t"])])
        let outcome = try await sink(found, configuration).perform(request)
        #expect(outcome.createdRecordId == SalesforceId.normalized("a00000000000077"))
        #expect(found.requests("POST", "/composite/sobjects").isEmpty)
        #expect(found.requests("GET", "/query").first?.query["q"] == #"SELECT Id FROM Whizbang WHERE Text_Field = 'job-\'7\'' LIMIT 1"#)

        let fresh = try await fakeWritableOrg()
        defer { Task { await fresh.stop() } }
        _ = try await sink(fresh, configuration).perform(request)
        let sent = try #require(fresh.requests("POST", "/composite/sobjects").first?.json?["records"]?.arrayValue?.first)
        #expect(sent["Text_Field"] == "job-'7'")
    }

    @Test("syncNote: a private CaseComment and a TextPost FeedItem, bodies cut to their limits; feed or comment alone on request", .enabled(if: Reference.isAvailable, Reference.skipReason))
    func syncNote() async throws {
        let fake = try await fakeWritableOrg()
        defer { Task { await fake.stop() } }
        let sink = sink(fake)
        let long = String(repeating: "😀", count: 3_000)  // 12,000 bytes, 6,000 UTF-16 units
        let outcome = try await sink.perform(
            ActionRequest(idempotencyKey: "n1", action: .syncNote, incidentId: "Q1", object: "Case", recordId: "500000000000001", parameters: ["content": .string(long)]))
        #expect(outcome.createdRecordId?.hasPrefix("00a") == true, "the comment's Id, which a comment trigger would echo")
        let records = fake.requests("POST", "/composite/sobjects").flatMap { $0.json?["records"]?.arrayValue ?? [] }
        let comment = try #require(records.first { $0["attributes"]?["type"] == "CaseComment" })
        let feed = try #require(records.first { $0["attributes"]?["type"] == "FeedItem" })
        #expect(comment["ParentId"] == .string(caseId) && comment["IsPublished"] == .bool(false))
        let body = try #require(comment["CommentBody"]?.stringValue)
        #expect(body.utf8.count <= 4_000 && body.utf8.count > 3_900 && body.hasSuffix(TextLimits.marker))
        #expect(feed["Type"] == "TextPost" && feed["ParentId"] == .string(caseId))
        #expect(feed["Body"]?.stringValue == long, "6,000 UTF-16 units fit a feed post")

        fake.reset()
        _ = try await sink.perform(
            ActionRequest(idempotencyKey: "n2", action: .syncNote, object: "Case", recordId: caseId, parameters: ["content": "hi", "feed": .bool(false), "author": "Primary Responder"]))
        let only = fake.requests.flatMap { $0.json?["records"]?.arrayValue ?? [] }
        #expect(only.count == 1 && only.first?["attributes"]?["type"] == "CaseComment")
        #expect(only.first?["CommentBody"] == "PagerDuty note by Primary Responder:\nhi")
        fake.reset()
        // Not a Case: no CaseComment (it belongs to Cases), the feed only.
        _ = try await sink.perform(ActionRequest(idempotencyKey: "n3", action: .syncNote, object: "Incident", recordId: "0pv000000000001", parameters: ["content": "hi"]))
        #expect(fake.requests.flatMap { $0.json?["records"]?.arrayValue ?? [] }.map { $0["attributes"]?["type"] } == ["FeedItem"])
    }

    @Test("Batching: 1,000 concurrent note syncs on 50 cases cost at most 50 calls; unbatched they cost 2,000", .enabled(if: Reference.isAvailable, Reference.skipReason), .timeLimit(.minutes(5)))
    func batching() async throws {
        let fake = try await fakeWritableOrg()
        defer { Task { await fake.stop() } }
        func requests(_ i: Int) -> ActionRequest {
            let parent = SalesforceId.normalized("5000000000000" + String(format: "%02d", i % 50))
            return ActionRequest(idempotencyKey: "note-\(i)", action: .syncNote, object: "Case", recordId: parent, parameters: ["content": .string("note \(i)")])
        }
        func run(_ sink: SalesforceSink, inFlight: Int) async throws -> [ActionOutcome] {
            try await withThrowingTaskGroup(of: ActionOutcome.self) { group in
                var out: [ActionOutcome] = []
                for i in 0..<1_000 {
                    if i >= inFlight, let o = try await group.next() { out.append(o) }
                    group.addTask { try await sink.perform(requests(i)) }
                }
                for try await o in group { out.append(o) }
                return out
            }
        }
        // The dispatcher runs up to 64 at once; batched, all 1,000 are in flight together, the harder case. Unbatched,
        // 2,000 calls at once would only measure how long the last one queues for a connection.
        let batched = try await run(sink(fake), inFlight: 1_000)
        #expect(batched.count == 1_000)
        #expect(Set(batched.compactMap(\.createdRecordId)).count == 1_000, "each caller got its own record")
        let calls = fake.requests.count
        #expect(calls <= 50, "\(calls) calls")
        let records = fake.requests.flatMap { $0.json?["records"]?.arrayValue ?? [] }
        #expect(records.count == 2_000)
        #expect(Set(records.compactMap { $0["CommentBody"]?.stringValue }).count == 1_000)

        fake.reset()
        let unbatched = try await run(sink(fake, SalesforceSinkConfiguration(batching: false)), inFlight: 64)
        #expect(unbatched.count == 1_000)
        #expect(fake.requests.count == 2_000)
    }

    @Test("Each caller gets its own record's failure; a partial note sync is not repeated on retry", .enabled(if: Reference.isAvailable, Reference.skipReason))
    func perRecordResults() async throws {
        let fake = try await fakeWritableOrg()
        defer { Task { await fake.stop() } }
        let sink = sink(fake)
        _ = try await sink.client.describe("Whizbang")
        async let good = sink.perform(
            ActionRequest(idempotencyKey: "g", action: .createRecord, parameters: ["object": "Whizbang", "fields": .object(["Text_Field": "t"])]))
        async let bad = failure {
            try await sink.perform(ActionRequest(idempotencyKey: "b", action: .createRecord, parameters: ["object": "Whizbang", "fields": .object(["Text_Field": "t", "Name": "x"])]))
        }
        _ = try await good
        _ = await bad
        #expect(SalesforceSink.failure(for: SaveResult(id: nil, success: false, errors: [.init(code: "UNABLE_TO_LOCK_ROW", message: "locked")]), "update") == .retryable("Salesforce refused to update: UNABLE_TO_LOCK_ROW: locked"))
        #expect(SalesforceSink.failure(for: .api(status: 400, errors: [.init(code: "STRING_TOO_LONG", message: "too long")])) == .permanent("Salesforce answered 400: STRING_TOO_LONG: too long"))
        #expect(SalesforceSink.failure(for: .transport("x")) == .retryable(SalesforceError.transport("x").description))
    }

    @Test("Updates of one record never share a call and go out one call at a time", .enabled(if: Reference.isAvailable, Reference.skipReason))
    func updateOrder() async throws {
        let fake = try await fakeWritableOrg()
        defer { Task { await fake.stop() } }
        let sink = sink(fake)
        _ = try await sink.client.describe("Whizbang")
        fake.reset()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<10 {
                group.addTask {
                    _ = try await sink.perform(
                        ActionRequest(idempotencyKey: "u\(i)", action: .setField, object: "Whizbang", recordId: "a00000000000001", parameters: ["field": "Name", "value": .string("v\(i)")]))
                }
                group.addTask {
                    _ = try await sink.perform(
                        ActionRequest(idempotencyKey: "o\(i)", action: .setField, object: "Whizbang", recordId: "a0000000000010\(i)", parameters: ["field": "Name", "value": "w"]))
                }
            }
            try await group.waitForAll()
        }
        let calls = fake.requests("PATCH", "/composite/sobjects").map { $0.json?["records"]?.arrayValue ?? [] }
        #expect(calls.allSatisfy { call in Set(call.compactMap { $0["id"]?.stringValue }).count == call.count }, "no call holds a record twice")
        #expect(calls.count >= 10)
        #expect(calls.flatMap { $0 }.count == 20)
        #expect(fake.peakConcurrency == 1, "update calls are sent one after the other")
    }

    @Test("The budget's reserve holds note syncs back without a call; they are postponed, not failed")
    func noteReserve() async throws {
        let fake = try await FakeSalesforce.start { _ in .json(200, "[]") }
        defer { Task { await fake.stop() } }
        let budget = APIBudget(reserve: .calls(100))
        budget.record(limitInfo: "api-usage=950/1000", success: true)
        let refused = await failure {
            try await sink(fake, budget: budget).perform(ActionRequest(idempotencyKey: "n", action: .syncNote, object: "Case", recordId: caseId, parameters: ["content": "x"]))
        }
        guard case .postponed(_, let after)? = refused else { Issue.record("\(String(describing: refused))"); return }
        #expect(after == 60)
        #expect(fake.requests.isEmpty)
    }
}

@Suite("Text limits")
struct SalesforceSinkTextLimitTests {
    @Test("Comment bodies are cut to 4,000 UTF-8 bytes at a character boundary, marker included")
    func bytes() {
        #expect(TextLimits.caseCommentBody("short") == "short")
        let exact = String(repeating: "a", count: 4_000)
        #expect(TextLimits.caseCommentBody(exact) == exact)
        for unit in ["😀", "漢", "é", "👩‍👩‍👧", "a"] {
            for extra in 0..<5 {
                let text = String(repeating: "x", count: extra) + String(repeating: unit, count: 5_000)
                let cut = TextLimits.caseCommentBody(text)
                #expect(cut.utf8.count <= 4_000, "\(unit)")
                #expect(cut.hasSuffix(TextLimits.marker))
                let kept = cut.dropLast(TextLimits.marker.count)
                #expect(text.hasPrefix(kept), "a prefix of whole characters")
                // Nothing more would fit: one more character would overflow.
                #expect(kept.utf8.count + unit.utf8.count + TextLimits.marker.utf8.count > 4_000)
            }
        }
    }

    @Test("Feed bodies are cut to 10,000 characters (UTF-16) or the described length, never inside a character")
    func characters() {
        let cjk = String(repeating: "漢", count: 12_000)
        let cut = TextLimits.feedItemBody(cjk)
        #expect(cut.utf16.count == 10_000 && cut.hasSuffix(TextLimits.marker))
        let emoji = String(repeating: "😀", count: 5_001)  // 10,002 UTF-16 units
        let e = TextLimits.feedItemBody(emoji)
        #expect(e.utf16.count <= 10_000 && e.hasSuffix(TextLimits.marker))
        #expect(e.dropLast(TextLimits.marker.count).allSatisfy { $0 == "😀" })
        #expect(TextLimits.feedItemBody(String(repeating: "a", count: 100), describedLength: 50).utf16.count == 50)
        #expect(TextLimits.feedItemBody(String(repeating: "😀", count: 5_000)) == String(repeating: "😀", count: 5_000))
        #expect(TextLimits.cut("abcdef", maxCharacters: 3) == "abc", "a limit below the marker's size cuts without it")
    }
}
