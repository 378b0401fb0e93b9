import SQLKit
import SwitchboardCore

/// A stored link between an incident and a record.
public struct StoredLink: Sendable, Hashable {
    public var id: Int64
    public var link: Link
    public var subdomain: String?
    public var createdAt: Int64
    public var createdBy: String?

    init(row: any SQLRow) throws {
        id = try row.decode(column: "id", as: Int64.self)
        let org = try row.decode(column: "org_id", as: String.self)
        link = Link(
            incidentId: try row.decode(column: "incident_id", as: String.self), object: try row.decode(column: "object", as: String.self),
            recordId: try row.decode(column: "record_id", as: String.self), orgId: org.isEmpty ? nil : org)
        subdomain = try row.decode(column: "subdomain", as: String?.self)
        createdAt = try row.decode(column: "created_at", as: Int64.self)
        createdBy = try row.decode(column: "created_by", as: String?.self)
    }
}

/// Links between incidents and records: one record may have several incidents and an incident several records.
public enum LinkStore {
    /// Adds a link; adding an existing one changes nothing. Returns true when it was new.
    @discardableResult
    public static func add(_ link: Link, subdomain: String? = nil, by actor: String? = nil, now: Int64, on db: any SQLDatabase) async throws -> Bool {
        let rows = try await db.raw(
            """
            INSERT INTO links (incident_id, org_id, object, record_id, subdomain, created_at, created_by)
            VALUES (\(bind: link.incidentId), \(bind: link.orgId ?? ""), \(bind: link.object), \(bind: link.recordId), \(bind: subdomain), \(bind: now), \(bind: actor))
            ON CONFLICT (incident_id, org_id, object, record_id) DO NOTHING RETURNING id
            """
        ).all()
        return !rows.isEmpty
    }

    @discardableResult
    public static func remove(_ link: Link, on db: any SQLDatabase) async throws -> Bool {
        let rows = try await db.raw(
            """
            DELETE FROM links WHERE incident_id = \(bind: link.incidentId) AND org_id = \(bind: link.orgId ?? "") AND object = \(bind: link.object)
            AND record_id = \(bind: link.recordId) RETURNING id
            """
        ).all()
        return !rows.isEmpty
    }

    /// Links of a record and/or an incident (both nil: all links, newest first).
    public static func find(recordId: String? = nil, incidentId: String? = nil, limit: Int = 1000, on db: any SQLDatabase) async throws -> [StoredLink] {
        var query = SQLQueryString("SELECT * FROM links WHERE 1 = 1")
        if let recordId { query += " AND record_id = \(bind: SalesforceId.normalized(recordId))" }
        if let incidentId { query += " AND incident_id = \(bind: incidentId)" }
        query += " ORDER BY id DESC LIMIT \(bind: limit)"
        return try await db.raw(query).all().map(StoredLink.init(row:))
    }
}

/// The last known state of each incident, for `changes` conditions on PagerDuty fields.
public enum SnapshotStore {
    public static func get(incidentId: String, on db: any SQLDatabase) async throws -> String? {
        try await db.raw("SELECT snapshot FROM incident_snapshots WHERE incident_id = \(bind: incidentId)").first()?
            .decode(column: "snapshot", as: String.self)
    }

    public static func put(incidentId: String, snapshot: String, now: Int64, on db: any SQLDatabase) async throws {
        try await db.raw(
            """
            INSERT INTO incident_snapshots (incident_id, snapshot, updated_at) VALUES (\(bind: incidentId), \(bind: snapshot), \(bind: now))
            ON CONFLICT (incident_id) DO UPDATE SET snapshot = EXCLUDED.snapshot, updated_at = EXCLUDED.updated_at
            """
        ).run()
    }
}

/// Origin stamps: fingerprints of the writes Switchboard made, so the webhook or trigger they cause is
/// recognised as an echo instead of firing rules again.
public enum OriginStampStore {
    public static func add(target: String, fingerprint: String, now: Int64, ttl: Int64, on db: any SQLDatabase) async throws {
        try await db.raw(
            """
            INSERT INTO origin_stamps (target, fingerprint, created_at, expires_at)
            VALUES (\(bind: target), \(bind: fingerprint), \(bind: now), \(bind: now + ttl))
            """
        ).run()
    }

    /// Consumes one live stamp matching the fingerprint; true when there was one.
    public static func consume(target: String, fingerprint: String, now: Int64, on db: any SQLDatabase) async throws -> Bool {
        guard
            let row = try await db.raw(
                """
                SELECT id FROM origin_stamps WHERE target = \(bind: target) AND fingerprint = \(bind: fingerprint)
                AND expires_at >= \(bind: now) ORDER BY id LIMIT 1
                """
            ).first()
        else { return false }
        try await db.raw("DELETE FROM origin_stamps WHERE id = \(bind: try row.decode(column: "id", as: Int64.self))").run()
        return true
    }

    /// True when a live stamp with this fingerprint exists (without consuming it).
    public static func isLive(target: String, fingerprint: String, now: Int64, on db: any SQLDatabase) async throws -> Bool {
        try await db.raw(
            """
            SELECT id FROM origin_stamps WHERE target = \(bind: target) AND fingerprint = \(bind: fingerprint)
            AND expires_at >= \(bind: now) LIMIT 1
            """
        ).first() != nil
    }

    public static func purge(before now: Int64, on db: any SQLDatabase) async throws {
        try await db.raw("DELETE FROM origin_stamps WHERE expires_at < \(bind: now)").run()
    }
}

/// A rule suspended for one subject because it kept firing back and forth.
public struct RuleSuspension: Sendable, Hashable {
    public var ruleKey: String
    public var subject: String
    public var reason: String
    public var suspendedAt: Int64
}

/// Hop counting per rule and subject (a record or an incident): a rule that writes to the same link more
/// than the limit within the window is suspended for that subject, with the reason kept.
public enum HopStore {
    /// Counts one hop. Returns the suspension if the rule is (now) suspended for the subject.
    public static func recordHop(
        ruleKey: String, subject: String, limit: Int, window: Int64, now: Int64, on db: any SQLDatabase
    ) async throws -> RuleSuspension? {
        let row = try await db.raw("SELECT * FROM rule_hops WHERE rule_key = \(bind: ruleKey) AND subject = \(bind: subject)").first()
        if let row {
            if let reason = try row.decode(column: "suspended_reason", as: String?.self) {
                return RuleSuspension(ruleKey: ruleKey, subject: subject, reason: reason, suspendedAt: try row.decode(column: "suspended_at", as: Int64?.self) ?? now)
            }
            let start = try row.decode(column: "window_start", as: Int64.self)
            let hops = try row.decode(column: "hops", as: Int.self)
            if now - start > window {
                try await db.raw(
                    "UPDATE rule_hops SET window_start = \(bind: now), hops = 1 WHERE rule_key = \(bind: ruleKey) AND subject = \(bind: subject)"
                ).run()
                return nil
            }
            if hops + 1 > limit {
                let reason =
                    "suspended after \(hops + 1) actions on \(subject) within \(window / 1000) s (limit \(limit)): the rule appears to loop between Salesforce and PagerDuty"
                try await db.raw(
                    """
                    UPDATE rule_hops SET hops = \(bind: hops + 1), suspended_reason = \(bind: reason), suspended_at = \(bind: now)
                    WHERE rule_key = \(bind: ruleKey) AND subject = \(bind: subject)
                    """
                ).run()
                return RuleSuspension(ruleKey: ruleKey, subject: subject, reason: reason, suspendedAt: now)
            }
            try await db.raw("UPDATE rule_hops SET hops = \(bind: hops + 1) WHERE rule_key = \(bind: ruleKey) AND subject = \(bind: subject)").run()
            return nil
        }
        try await db.raw(
            "INSERT INTO rule_hops (rule_key, subject, window_start, hops) VALUES (\(bind: ruleKey), \(bind: subject), \(bind: now), 1)"
        ).run()
        return nil
    }

    public static func isSuspended(ruleKey: String, subject: String, on db: any SQLDatabase) async throws -> Bool {
        try await db.raw(
            "SELECT 1 AS x FROM rule_hops WHERE rule_key = \(bind: ruleKey) AND subject = \(bind: subject) AND suspended_reason IS NOT NULL"
        ).first() != nil
    }

    public static func suspensions(on db: any SQLDatabase) async throws -> [RuleSuspension] {
        try await db.raw("SELECT * FROM rule_hops WHERE suspended_reason IS NOT NULL ORDER BY suspended_at DESC").all().map { row in
            RuleSuspension(
                ruleKey: try row.decode(column: "rule_key", as: String.self), subject: try row.decode(column: "subject", as: String.self),
                reason: try row.decode(column: "suspended_reason", as: String.self), suspendedAt: try row.decode(column: "suspended_at", as: Int64.self))
        }
    }

    /// Lifts a suspension (an admin fixed the rule).
    public static func lift(ruleKey: String, subject: String, on db: any SQLDatabase) async throws {
        try await db.raw("DELETE FROM rule_hops WHERE rule_key = \(bind: ruleKey) AND subject = \(bind: subject)").run()
    }
}
