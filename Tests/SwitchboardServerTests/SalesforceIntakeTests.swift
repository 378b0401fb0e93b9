import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import SwitchboardCore
import SwitchboardPipeline
import SwitchboardSalesforce
import SwitchboardServer
import SwitchboardStorage
import SwitchboardTestSupport
import Testing

/// The Salesforce package's posts: trigger batches and Flow actions, signed per org.
@Suite("Salesforce intake: signatures and Flow actions")
struct SalesforceIntakeTests {
    static let org = "00D000000000001EAA"
    static let secret = "test-trigger-secret"

    func connect(_ h: Harness, secrets: [String] = [secret]) async throws {
        let connection = SalesforceConnection(orgId: Self.org, triggerSecrets: secrets)
        try await h.database.transaction { try await connection.save(box: h.box, now: 0, on: $0) }
        h.switchboard.salesforce.invalidate()
    }

    func signed(_ h: Harness, _ body: String, org: String = org, secret: String = secret, skew: Int64 = 0) -> [String: String] {
        let now = h.clock.millis / 1000 + skew
        return [
            TriggerSignature.orgHeader: org, TriggerSignature.timestampHeader: String(now),
            TriggerSignature.signatureHeader: TriggerSignature.sign(secret: secret, timestamp: now, body: Array(body.utf8)),
        ]
    }

    @Test("Once an org has a trigger secret, only its signed, fresh posts are taken; refusals are logged")
    func triggerPostsAreAuthenticated() async throws {
        try await Harness.run(.sqlite) { h, client in
            let body = Payloads.caseTrigger(new: ["Priority": "High", "Subject": "Checkout down"])
            // A fresh install (no org connected) takes posts as before.
            #expect(try await h.post(client, "/webhooks/salesforce", body).status == .accepted)
            try await connect(h)
            let other = Payloads.caseTrigger(id: "5003000000D8cuJAAR", new: ["Priority": "Low"])
            let unsigned = try await h.post(client, "/webhooks/salesforce", other)
            #expect(unsigned.status == .badRequest)
            #expect(unsigned.body["error"]?["message"]?.stringValue?.contains("X-Switchboard-Org") == true)
            let wrong = try await h.post(client, "/webhooks/salesforce", other, headers: signed(h, other, secret: "wrong"))
            #expect(wrong.status == .forbidden, "\(wrong.body)")
            #expect(try await h.post(client, "/webhooks/salesforce", other, headers: signed(h, other, skew: -301)).status == .forbidden)
            #expect(try await h.post(client, "/webhooks/salesforce", other, headers: signed(h, other, org: "00D000000000002EAA")).status == .unauthorized)
            var tampered = signed(h, other)
            tampered[TriggerSignature.timestampHeader] = String(h.clock.millis / 1000 - 10)
            #expect(try await h.post(client, "/webhooks/salesforce", other, headers: tampered).status == .forbidden)
            #expect(try await h.events().count == 1, "nothing refused was stored")
            let refusals = try await h.logs(LogQuery(minimumLevel: .error, limit: 100))
            #expect(refusals.count == 5)
            #expect(refusals.allSatisfy { $0.message.contains("refused a post from org") })

            // Signed and fresh: taken, with the org on the event; the same post again is a duplicate.
            let headers = signed(h, other)
            #expect(try await h.post(client, "/webhooks/salesforce", other, headers: headers).status == .accepted)
            #expect(try await h.post(client, "/webhooks/salesforce", other, headers: headers).status == .ok)
            let events = try await h.events()
            #expect(events.count == 2)
            #expect(events.last?.payload.contains(Self.org) == true)
        }
    }

    @Test("Flow actions: signed requests go into the outbox and act on the record's incident; bad ones are refused whole")
    func flowActions() async throws {
        try await Harness.run(.sqlite) { h, client in
            let record = "5003000000D8cuIAAR"
            let body = JSONValue.object([
                "orgId": .string(Self.org),
                "requests": .array([
                    .object(["action": "createIncident", "object": "Case", "recordId": .string(record), "parameters": .object(["service": "PSVC001", "title": "Checkout down"])]),
                    .object(["action": "addResponders", "recordId": .string(record), "parameters": .object(["users": .array(["PUSER02"])])]),
                ]),
            ]).serialized()
            // Never taken from an org that is not connected, signed or not, even on a fresh install.
            #expect(try await h.post(client, "/webhooks/salesforce/actions", body).status == .unauthorized)
            #expect(try await h.post(client, "/webhooks/salesforce/actions", body, headers: signed(h, body)).status == .unauthorized)
            try await connect(h)
            #expect(try await h.post(client, "/webhooks/salesforce/actions", body, headers: [TriggerSignature.orgHeader: Self.org]).status == .badRequest)
            let answer = try await h.post(client, "/webhooks/salesforce/actions", body, headers: signed(h, body))
            #expect(answer.status == .accepted)
            #expect(answer.body["accepted"] == .number(2))
            #expect(try await h.post(client, "/webhooks/salesforce/actions", body, headers: signed(h, body)).body["new"] == .number(0), "a redelivery enqueues nothing")
            try await h.settle()
            let effects = h.sink.snapshot.effects
            #expect(effects.map(\.action) == [.createIncident, .addResponders])
            #expect(effects.first?.recordId == record)
            #expect(effects.first?.orgId == Self.org)
            let incident = try #require(try await h.links().first?.incidentId)
            #expect(effects.last?.incidentId == incident, "addResponders acts on the incident created for the record")

            let bad = JSONValue.object([
                "orgId": .string(Self.org),
                "requests": .array([
                    .object(["action": "resolve", "recordId": .string(record)]),
                    .object(["action": "deleteEverything", "recordId": .string(record)]),
                    .object(["action": "setPriority", "recordId": .string(record)]),
                    .object(["action": "acknowledge", "recordId": "not-an-id"]),
                ]),
            ]).serialized()
            let refused = try await h.post(client, "/webhooks/salesforce/actions", bad, headers: signed(h, bad))
            #expect(refused.status == .badRequest)
            let message = refused.body["error"]?["message"]?.stringValue ?? ""
            #expect(message.contains("requests[1]: unknown action \"deleteEverything\""))
            #expect(message.contains("requests[2]: setPriority needs the parameter \"priority\""))
            #expect(message.contains("requests[3]: `recordId`"))
            #expect(try await h.jobs().count == 2, "nothing of a refused call is enqueued")
        }
    }
}
