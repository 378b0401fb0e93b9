import Foundation
import Logging
import SwitchboardSalesforce
import SwitchboardStorage
import SwitchboardTestSupport
import Testing

@Suite("Salesforce trigger signatures")
struct TriggerSignatureTests {
    // The package's documented vector (docs/salesforce-package.md), computed independently of this code.
    let secret = "test-trigger-secret"
    let body = Array(#"{"object":"Case","isInsert":true,"old":null,"new":{},"orgId":"00D000000000001AAA"}"#.utf8)
    let expected = "v1=1383467b61bf2fe5edcc6734362a57f945ed12763215f2c8cb72ee4bbacbca2f"

    @Test("The package's test vector signs and verifies")
    func vector() throws {
        #expect(TriggerSignature.sign(secret: secret, timestamp: 1_700_000_000, body: body) == expected)
        try TriggerSignature.verify(body: body, timestamp: "1700000000", signature: expected, secrets: [secret], now: 1_700_000_100)
        // Rotation: any of several secrets.
        try TriggerSignature.verify(body: body, timestamp: "1700000000", signature: expected, secrets: ["old", secret], now: 1_700_000_000)
    }

    @Test("Tampered, unsigned, stale, future and malformed posts are refused with the right status")
    func refusals() {
        func refusal(_ body: [UInt8], _ timestamp: String?, _ signature: String?, now: Int64 = 1_700_000_000) -> TriggerSignature.Refusal? {
            do {
                try TriggerSignature.verify(body: body, timestamp: timestamp, signature: signature, secrets: [secret], now: now)
                return nil
            } catch { return error }
        }
        var tampered = body
        tampered[tampered.count - 3] = UInt8(ascii: "B")
        #expect(refusal(tampered, "1700000000", expected) == .mismatch)
        #expect(refusal(body, "1700000001", expected) == .mismatch, "the timestamp is inside the MAC")
        #expect(refusal(body, nil, expected)?.status == 400)
        #expect(refusal(body, "1700000000", nil)?.status == 400)
        #expect(refusal(body, "yesterday", expected) == .malformedTimestamp("yesterday"))
        #expect(refusal(body, "1700000000", expected, now: 1_700_000_301) == .stale(ageSeconds: 301))
        #expect(refusal(body, "1700000000", expected, now: 1_699_999_699) == .stale(ageSeconds: -301))
        #expect(refusal(body, "1700000000", "v1=zz") == .mismatch)
        #expect(refusal(body, "1700000000", expected.uppercased().replacingOccurrences(of: "V1=", with: "v1=")) == nil, "hex case does not matter")
        #expect(TriggerSignature.Refusal.mismatch.status == 403)
    }
}

@Suite("Salesforce connections of a running server")
struct SalesforceConnectionsTests {
    @Test("A database that stops answering: the connections read gives up within its deadline and keeps the trigger secrets", .timeLimit(.minutes(1)))
    func stalledDatabaseKeepsSecrets() async throws {
        let connection = SalesforceConnection(orgId: "00D000000000001AAA", triggerSecrets: ["trigger-secret"])
        try await StallingDatabase.withFilled({ box, db in try await connection.save(box: box, now: 0, on: db) }) { stalling, box, logger in
            let connections = SalesforceConnections(database: stalling, box: box, logger: logger)
            #expect(await connections.all().map(\.triggerSecrets) == [["trigger-secret"]])

            // Trigger posts wait for this read; with the secrets forgotten, unsigned posts would be let in.
            stalling.stall(true)
            let started = ContinuousClock.now
            #expect(await connections.refreshed(olderThan: .zero).map(\.triggerSecrets) == [["trigger-secret"]])
            #expect(ContinuousClock.now - started < .seconds(10))
            stalling.stall(false)
        }
    }

    @Test("A read that began before an org was connected does not hide it once the connections are invalidated", .timeLimit(.minutes(1)))
    func readOverlappingAChange() async throws {
        let first = SalesforceConnection(orgId: "00D000000000001AAA", triggerSecrets: ["first-secret"])
        try await StallingDatabase.withFilled({ box, db in try await first.save(box: box, now: 0, on: db) }) { stalling, box, logger in
            let connections = SalesforceConnections(database: stalling, box: box, logger: logger)
            // A background reader (change capture's reconcile, another org's post) reads the list just before the
            // command line connects a second org, and hands its answer back after the invalidation.
            stalling.holdAnswers(true)
            let early = Task { await connections.all() }
            while stalling.answersHeld == 0 { try await Task.sleep(for: .milliseconds(5)) }
            let second = SalesforceConnection(orgId: "00D000000000002AAA", triggerSecrets: ["second-secret"])
            try await stalling.transaction { try await second.save(box: box, now: 0, on: $0) }
            connections.invalidate()
            stalling.holdAnswers(false)
            #expect(await early.value.count <= 1, "the early read saw the list before the change")
            // Before, the early answer was kept as fresh for 5 s and the second org's signed posts were refused.
            #expect(await connections.all().map(\.orgId) == [first.orgId, second.orgId])
            #expect(await connections.refreshed().count == 2)
        }
    }
}
