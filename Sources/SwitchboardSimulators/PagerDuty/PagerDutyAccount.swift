import Foundation
import SwitchboardCore

/// The in-memory PagerDuty account a simulator serves: people, services, policies, priorities, incidents and
/// everything that hangs off them, plus the webhook subscriptions. Plain data; the simulator guards it.
struct PagerDutyAccount: Sendable {
    struct Subscription: Sendable {
        var id: String
        var url: String
        var events: [String]
        var filterType: String
        var filterId: String?
        var secret: String
        var description: String
        var active = true
        var temporarilyDisabled = false
        var consecutiveDrops = 0
    }

    var subdomain = "acme"
    var users: [JSONValue] = []
    var services: [JSONValue] = []
    var escalationPolicies: [JSONValue] = []
    var priorities: [JSONValue] = []
    var teams: [JSONValue] = []
    var workflows: [JSONValue] = []
    var automationActions: [JSONValue] = []
    var businessServices: [JSONValue] = []
    var statusDashboards: [JSONValue] = []
    /// Business service id → impacting incident ids.
    var impacts: [String: Set<String>] = [:]
    var incidents: [String: JSONObject] = [:]
    var incidentOrder: [String] = []
    var notes: [String: [JSONValue]] = [:]
    var customFields: [String: [JSONValue]] = [:]
    var logEntries: [JSONValue] = []
    var subscriptions: [String: Subscription] = [:]
    var subscriptionOrder: [String] = []
    var nextNumber = 1
    var serial = 0

    mutating func newId(_ prefix: String) -> String {
        serial += 1
        let digits = String(serial, radix: 36).uppercased()
        return prefix + String(repeating: "0", count: max(0, 6 - digits.count)) + digits
    }

    static func reference(_ object: JSONValue, type: String, subdomain: String, path: String) -> JSONValue {
        let id = object["id"]?.stringValue ?? ""
        return .object([
            "id": .string(id), "type": .string(type), "summary": object["name"] ?? object["summary"] ?? object["title"] ?? .string(id),
            "self": .string("https://api.pagerduty.com/\(path)/\(id)"), "html_url": .string("https://\(subdomain).pagerduty.com/\(path)/\(id)"),
        ])
    }

    func find(_ list: [JSONValue], _ id: String) -> JSONValue? { list.first { $0["id"]?.stringValue == id } }

    /// A small account with the people and services the demo and the tests use.
    static func seeded() -> PagerDutyAccount {
        var a = PagerDutyAccount()
        func user(_ id: String, _ name: String, _ email: String) -> JSONValue {
            .object(["id": .string(id), "type": "user", "name": .string(name), "email": .string(email), "summary": .string(name), "role": "admin", "time_zone": "UTC"])
        }
        a.users = [
            user("PUSER01", "Switchboard Integration", "switchboard@example.com"), user("PUSER02", "Maeve Oncall", "maeve@example.com"),
            user("PUSER03", "Ravi Engineer", "ravi@example.com"),
        ]
        a.teams = [.object(["id": "PTEAM01", "type": "team", "name": "Support", "summary": "Support"]), .object(["id": "PTEAM02", "type": "team", "name": "Engineering", "summary": "Engineering"])]
        func policy(_ id: String, _ name: String, _ user: String) -> JSONValue {
            .object([
                "id": .string(id), "type": "escalation_policy", "name": .string(name), "summary": .string(name), "num_loops": .number(0),
                "escalation_rules": .array([.object(["escalation_delay_in_minutes": .number(30), "targets": .array([.object(["id": .string(user), "type": "user_reference"])])])]),
            ])
        }
        a.escalationPolicies = [policy("PEP0001", "Support On-Call", "PUSER02"), policy("PEP0002", "Engineering On-Call", "PUSER03")]
        func service(_ id: String, _ name: String, _ policy: String) -> JSONValue {
            .object([
                "id": .string(id), "type": "service", "name": .string(name), "summary": .string(name), "status": "active",
                "escalation_policy": .object(["id": .string(policy), "type": "escalation_policy_reference"]),
            ])
        }
        a.services = [service("PSVC001", "Customer Support", "PEP0001"), service("PSVC002", "XYZ", "PEP0002"), service("PSVC003", "Payments API", "PEP0002")]
        a.priorities = ["P1", "P2", "P3", "P4", "P5"].enumerated().map { i, name in
            .object(["id": .string("PPRI00\(i + 1)"), "type": "priority", "name": .string(name), "summary": .string(name), "description": .string("Priority \(name)")])
        }
        a.workflows = [.object(["id": "PWF0001", "type": "incident_workflow", "name": "Major incident response", "summary": "Major incident response", "is_enabled": .bool(true)])]
        a.automationActions = [.object(["id": "PAA0001", "type": "action", "name": "Restart checkout pods", "summary": "Restart checkout pods", "action_type": "script"])]
        a.businessServices = [
            .object(["id": "PBS0001", "type": "business_service", "name": "Online Store", "summary": "Online Store"]),
            .object(["id": "PBS0002", "type": "business_service", "name": "Mobile App", "summary": "Mobile App"]),
        ]
        a.statusDashboards = [.object(["id": "PSD0001", "type": "status_dashboard", "url_slug": "customer-facing", "name": "Customer facing"])]
        return a
    }
}
