import Foundation
import SQLKit
import SwitchboardCore
import SwitchboardStorage

/// Turns changes captured without Apex (Change Data Capture events, polled records) into the pipeline's inbound
/// events, in the trigger payload's shape, so one decoder and one set of rules serve all three ways.
public enum CapturedChanges {
    /// One record's change as an inbound event: `{"object","isInsert","old","new","orgId"}` with one record per map,
    /// ordered with the record's other events.
    public static func inboundEvent(
        object: String, recordId: String, isInsert: Bool, old: JSONObject?, new: JSONObject, orgId: String, externalId: String
    ) -> NewInboundEvent {
        let id = SalesforceId.normalized(recordId)
        func record(_ fields: JSONObject) -> JSONValue {
            var o: JSONObject = ["attributes": .object(["type": .string(object)]), "Id": .string(id)]
            for (key, value) in fields.entries where key != "attributes" && key != "Id" { o[key] = value }
            return .object(o)
        }
        var payload: JSONObject = ["object": .string(object), "isInsert": .bool(isInsert)]
        payload["old"] = isInsert ? .null : .object([id: record(old ?? [:])])
        payload["new"] = .object([id: record(new)])
        payload["orgId"] = .string(orgId)
        return NewInboundEvent(source: .salesforce, externalId: externalId, partitionKey: "sf:\(object):\(id)", payload: JSONValue.object(payload).serialized())
    }

    /// `base` with `changes` laid over it; `nulled` fields set to null (CDC lists them apart).
    public static func merge(_ base: JSONObject, _ changes: JSONObject, nulled: [String] = []) -> JSONObject {
        var out = base
        for (key, value) in changes.entries { out[key] = value }
        for key in nulled { out[key] = .null }
        return out
    }
}

/// The last known field values of each captured record, so a CDC update (which carries only the changed fields)
/// becomes a full old/new pair for `changes` conditions. Kept beside the incident snapshots, keyed by org and record.
public enum RecordSnapshots {
    static func key(orgId: String, recordId: String) -> String { "sf:\(SalesforceId.normalized(orgId)):\(SalesforceId.normalized(recordId))" }

    public static func get(orgId: String, recordId: String, on db: any SQLDatabase) async throws -> JSONObject? {
        try await SnapshotStore.get(incidentId: key(orgId: orgId, recordId: recordId), on: db).flatMap { try? JSONParser.parseValue($0).objectValue }
    }

    public static func put(orgId: String, recordId: String, fields: JSONObject, now: Int64, on db: any SQLDatabase) async throws {
        try await SnapshotStore.put(incidentId: key(orgId: orgId, recordId: recordId), snapshot: JSONValue.object(fields).serialized(), now: now, on: db)
    }
}

/// Small per-org capture state kept in the settings table: CDC replay ids, poll watermarks. Removed with the org.
public enum CaptureState {
    static func key(orgId: String, _ name: String) -> String { "salesforce.capture.\(SalesforceId.normalized(orgId)).\(name)" }

    public static func get(orgId: String, _ name: String, on db: any SQLDatabase) async throws -> String? {
        try await SettingsStore.get(key(orgId: orgId, name), on: db)
    }

    public static func set(orgId: String, _ name: String, value: String, now: Int64, on db: any SQLDatabase) async throws {
        try await SettingsStore.set(key(orgId: orgId, name), value: value, now: now, on: db)
    }
}
