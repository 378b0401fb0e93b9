import Foundation
import Testing

@testable import SwitchboardCore

@Suite("Events")
struct EventTests {
    static let triggerPayload = """
        {"object": "Case", "isInsert": false,
         "old": {"5003000000D8cuI": {"attributes": {"type": "Case", "url": "/services/data/v67.0/sobjects/Case/5003000000D8cuIAAR"},
                                      "Id": "5003000000D8cuIAAR", "Status": "New", "Priority": "Low"},
                 "5003000000D8cuJAAR": {"attributes": {"type": "Case"}, "Id": "5003000000D8cuJAAR", "Status": "New"}},
         "new": {"5003000000D8cuJAAR": {"attributes": {"type": "Case"}, "Id": "5003000000D8cuJAAR", "Status": "Working",
                                         "LastModifiedDate": "2026-11-24T15:00:00.000+0000"},
                 "5003000000D8cuIAAR": {"attributes": {"type": "Case"}, "Id": "5003000000D8cuIAAR", "Status": "Escalated", "Priority": "High",
                                         "IsEscalated": true}}}
        """

    @Test("A trigger batch becomes one change per record, in the order of newMap")
    func triggerBatch() throws {
        let changes = try SalesforceTriggerPayload.decode(try JSONParser.parseValue(Self.triggerPayload))
        #expect(changes.map(\.recordId) == ["5003000000D8cuJAAR", "5003000000D8cuIAAR"])
        #expect(changes.allSatisfy { !$0.isInsert && $0.object == "Case" })
        // The 15-character key of oldMap still finds the old record.
        #expect(changes[1].old?["Status"] == .picklist(["New"]))
        #expect(changes[1].new["Status"] == .picklist(["Escalated"]))
        #expect(changes[1].new["isescalated"] == .boolean(true))
        #expect(changes[0].new["LastModifiedDate"] == .dateTime(Instant(iso8601: "2026-11-24T15:00:00Z")!))
        #expect(changes[0].new["Subject"] == .null)
    }

    @Test("Apex's JSON.serialize strings are accepted as old and new")
    func serializedStrings() throws {
        let newMap = #"{"500000000000001AAA":{"attributes":{"type":"Opportunity"},"Id":"500000000000001AAA","StageName":"Prospecting","Amount":1200.5}}"#
        let payload: JSONValue = .object(["isInsert": .bool(true), "old": "null", "new": .string(newMap)])
        let changes = try SalesforceTriggerPayload.decode(payload)
        #expect(changes.count == 1)
        #expect(changes[0].object == "Opportunity")
        #expect(changes[0].new["Amount"] == .number(1200.5))
    }

    @Test("Malformed trigger payloads are refused with a reason", arguments: [
        (#"[]"#, "JSON object"),
        (#"{"object": "Case", "new": {}}"#, "isInsert"),
        (#"{"object": "Case", "isInsert": true, "new": {}}"#, "at least one record"),
        (#"{"object": "Case", "isInsert": "yes", "new": {}}"#, "isInsert"),
        (#"{"object": "Case", "isInsert": false, "new": {"500000000000001AAA": {"attributes": {"type": "Case"}, "Id": "500000000000001AAA"}}}"#, "old"),
        (#"{"object": "Case", "isInsert": true, "new": {"500000000000001AAA": {"attributes": {"type": "Lead"}, "Id": "500000000000001AAA"}}}"#, "is a Lead"),
        (#"{"object": "Case", "isInsert": true, "new": {"500000000000001AAA": {"attributes": {"type": "Case"}, "Id": "500000000000002AAA"}}}"#, "must agree"),
        (#"{"object": "Case", "isInsert": true, "new": {"500000000000001AAA": {"attributes": {"type": "Case"}}}}"#, "no Id"),
        (#"{"object": "Case", "isInsert": true, "new": {"500000000000001AAA": 7}}"#, "record object"),
        (#"{"object": "Case; DROP", "isInsert": true, "new": {}}"#, "not a Salesforce object"),
        (#"{"object": "Case", "isInsert": true, "new": {}, "extra": 1}"#, "unknown key"),
        (#"{"object": "Case", "isInsert": true, "new": "{not json"}"#, "not valid JSON"),
    ])
    func malformedTrigger(text: String, fragment: String) throws {
        let value = try JSONParser.parseValue(text)
        #expect {
            _ = try SalesforceTriggerPayload.decode(value)
        } throws: { error in
            "\(error)".contains(fragment)
        }
    }

    @Test("A batch of 200 records is accepted and 201 refused")
    func batchLimit() throws {
        func payload(_ n: Int) -> JSONValue {
            var map = JSONObject()
            for i in 0..<n {
                let id = SalesforceId.normalized("500000000" + String(format: "%06d", i))
                map[id] = .object(["attributes": .object(["type": "Case"]), "Id": .string(id)])
            }
            return .object(["object": "Case", "isInsert": .bool(true), "old": .null, "new": .object(map)])
        }
        #expect(try SalesforceTriggerPayload.decode(payload(200)).count == 200)
        #expect(throws: DocumentError.self) { _ = try SalesforceTriggerPayload.decode(payload(201)) }
    }

    @Test("Webhook v3 event types map onto the rule builder's Event Types", arguments: [
        ("incident.triggered", PagerDutyEventType.trigger), ("incident.acknowledged", .acknowledge), ("incident.resolved", .resolve),
        ("incident.reassigned", .assign), ("incident.escalated", .escalate), ("incident.delegated", .delegate),
        ("incident.reopened", .trigger), ("incident.unacknowledged", .custom), ("incident.annotated", .custom),
        ("incident.priority_updated", .custom), ("incident.responder.added", .custom), ("incident.status_update_published", .custom),
        ("incident.conference_bridge.updated", .custom), ("incident.workflow.completed", .custom), ("pagey.ping", .custom),
    ])
    func eventTypes(name: String, expected: PagerDutyEventType) {
        #expect(PagerDutyEventType(webhookEventType: name) == expected)
    }

    @Test("The reference webhook decodes into the rule builder's fields", .enabled(if: SharedReference.isAvailable, SharedReference.skipReason))
    func referenceWebhook() throws {
        let body = try JSONParser.parseValue(try SharedReference.text("pagerduty/webhook-v3-incident.priority_updated.json"))
        let event = try PagerDutyEvent(webhook: body)
        let i = try #require(event.incident)
        #expect(event.eventName == "incident.priority_updated")
        #expect(event.eventType == .custom)
        #expect(PagerDutyField.title.value(of: event, snapshot: i) == .text("A little bump in the road"))
        #expect(PagerDutyField.status.value(of: event, snapshot: i) == .picklist(["Triggered"]))
        #expect(PagerDutyField.service.value(of: event, snapshot: i) == .reference(id: "PF9KMXH", label: "API Service"))
        #expect(PagerDutyField.serviceName.value(of: event, snapshot: i) == .text("API Service"))
        #expect(PagerDutyField.escalationPolicyName.value(of: event, snapshot: i) == .text("Default"))
        #expect(PagerDutyField.priority.value(of: event, snapshot: i) == .reference(id: "PSO75BM", label: "P1"))
        #expect(PagerDutyField.urgency.value(of: event, snapshot: i) == .picklist(["high"]))
        #expect(PagerDutyField.number.value(of: event, snapshot: i) == .number(2))
        #expect(i.conferenceURL == "https://example.com")
        #expect(event.occurredAt == Instant(iso8601: "2020-10-02T18:45:22.169Z"))
    }

    @Test("The signature test vector's body (integer conference number) decodes", .enabled(if: SharedReference.isAvailable, SharedReference.skipReason))
    func vectorBody() throws {
        let vector = try JSONParser.parseValue(try SharedReference.text("pagerduty/webhook-v3-signature-test-vector.json"))
        let body = try JSONParser.parseValue(try #require(vector["raw_body"]?.stringValue))
        let event = try PagerDutyEvent(webhook: body)
        #expect(event.incident?.conferenceNumber == "1000")
    }

    @Test("Every documented data type decodes; notes carry their content", .enabled(if: SharedReference.isAvailable, SharedReference.skipReason))
    func dataTypes() throws {
        let types: [(String, String, String)] = [
            ("incident_note", "incident.annotated", "PGR0VU2"), ("incident_conference_bridge", "incident.conference_bridge.updated", "PGR0VU2"),
            ("incident_responder", "incident.responder.added", "PGR0VU2"), ("incident_status_update", "incident.status_update_published", "PGR0VU2"),
            ("incident_field_values", "incident.custom_field_values.updated", "PBAZLIU"), ("incident_workflow_instance", "incident.workflow.started", "PBAZLIU"),
            ("incident_action_invocation", "incident.action_invocation.created", "PBAZLIU"), ("incident_role_assignment", "incident.role.assigned", "PBAZLIU"),
            ("incident_task", "incident.task.created", "Q0SDD3HB6SGFTI"), ("incident", "incident.triggered", "PGR0VU2"),
        ]
        for (type, name, incident) in types {
            let data = try JSONParser.parseValue(try SharedReference.text("pagerduty/webhook-v3-data-\(type).json"))
            let body: JSONValue = .object(["event": .object(["id": "E1", "event_type": .string(name), "resource_type": "incident", "occurred_at": "2026-11-24T15:00:00Z", "data": data])])
            let event = try PagerDutyEvent(webhook: body)
            #expect(event.incidentId == incident, "\(type)")
        }
        let note = try JSONParser.parseValue(try SharedReference.text("pagerduty/webhook-v3-data-incident_note.json"))
        let previous = IncidentSnapshot(id: "PGR0VU2", title: "A little bump in the road", status: "acknowledged")
        let event = try PagerDutyEvent(
            webhook: .object(["event": .object(["id": "E2", "event_type": "incident.annotated", "resource_type": "incident", "data": note])]), previous: previous)
        #expect(event.noteContent == "I sure am glad we are using PagerDuty!")
        #expect(event.incident?.status == "acknowledged")
        let service = try JSONParser.parseValue(try SharedReference.text("pagerduty/webhook-v3-service.updated.json"))
        #expect(try PagerDutyEvent(webhook: service).incident == nil)
    }

    @Test("Webhook bodies without an event, id or type are refused", arguments: [
        #"{}"#, #"{"event": 1}"#, #"{"event": {"event_type": "incident.triggered"}}"#, #"{"event": {"id": "x"}}"#,
        #"{"event": {"id": "x", "event_type": "incident.triggered", "occurred_at": "yesterday"}}"#,
    ])
    func badWebhook(text: String) throws {
        let value = try JSONParser.parseValue(text)
        #expect(throws: DocumentError.self) { _ = try PagerDutyEvent(webhook: value) }
    }
}
