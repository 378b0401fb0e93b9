import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization
import SwitchboardCore

/// One action to carry out, resolved and ready for a connector.
public struct ActionRequest: Sendable, Hashable {
    /// Unique per effect; connectors pass it on where the far side supports it (PagerDuty `incident_key`,
    /// an `Idempotency-Key` header) so a retried request cannot take effect twice.
    public var idempotencyKey: String
    public var action: ActionKind
    public var ruleset: String?
    public var rule: String?
    /// The incident acted on (resolved: the one created earlier for a record, when the plan said so).
    public var incidentId: String?
    /// The Salesforce object and record acted on or created from.
    public var object: String?
    public var recordId: String?
    public var orgId: String?
    public var parameters: JSONObject
    /// The origin stamps were written when the action was planned (see `EchoGuard.planned`), not to be written again.
    var stampedWhenPlanned = false

    public init(
        idempotencyKey: String, action: ActionKind, ruleset: String? = nil, rule: String? = nil, incidentId: String? = nil, object: String? = nil,
        recordId: String? = nil, orgId: String? = nil, parameters: JSONObject = [:]
    ) {
        self.idempotencyKey = idempotencyKey
        self.action = action
        self.ruleset = ruleset
        self.rule = rule
        self.incidentId = incidentId
        self.object = object
        self.recordId = recordId
        self.orgId = orgId
        self.parameters = parameters
    }

    public var jsonValue: JSONValue {
        var o: JSONObject = ["idempotencyKey": .string(idempotencyKey), "action": .string(action.rawValue)]
        o["ruleset"] = ruleset.map(JSONValue.string) ?? .null
        o["rule"] = rule.map(JSONValue.string) ?? .null
        o["incident"] = incidentId.map(JSONValue.string) ?? .null
        o["object"] = object.map(JSONValue.string) ?? .null
        o["record"] = recordId.map(JSONValue.string) ?? .null
        o["org"] = orgId.map(JSONValue.string) ?? .null
        o["parameters"] = .object(parameters)
        return .object(o)
    }
}

/// What an action produced.
public struct ActionOutcome: Sendable, Hashable {
    /// The incident a createIncident made (or found already made for the same key).
    public var createdIncidentId: String?
    /// The record a createRecord made.
    public var createdRecordId: String?
    /// Anything worth keeping with the job (ids, the far side's answer).
    public var detail: String?

    public init(createdIncidentId: String? = nil, createdRecordId: String? = nil, detail: String? = nil) {
        self.createdIncidentId = createdIncidentId
        self.createdRecordId = createdRecordId
        self.detail = detail
    }
}

/// Why an action failed, and whether to try again.
public enum ActionFailure: Error, Sendable, Hashable, CustomStringConvertible {
    /// Worth retrying (timeouts, 5xx, 429); `retryAfter` in seconds when the far side said when.
    case retryable(String, retryAfter: Double? = nil)
    /// Retrying cannot help (400, validation errors, missing permissions): straight to the dead letters.
    case permanent(String)
    /// The far side asks to wait (an org's API budget is spent): run again after `retryAfter` seconds without
    /// using up an attempt, however long the wait lasts, so nothing is dead-lettered for it.
    case postponed(String, retryAfter: Double)

    public var description: String {
        switch self {
        case .retryable(let m, let after): after.map { "\(m) (retry after \($0) s)" } ?? m
        case .permanent(let m): m
        case .postponed(let m, let after): "\(m) (postponed \(after) s)"
        }
    }
}

/// Carries out actions on the outside world. The PagerDuty and Salesforce connectors are sinks; tests use a
/// recording sink.
public protocol OutboundSink: Sendable {
    func perform(_ request: ActionRequest) async throws(ActionFailure) -> ActionOutcome
}

/// Sends each action to the sink that handles its side: PagerDuty actions to one, Salesforce actions to the other.
public struct RoutingSink: OutboundSink {
    public var pagerDuty: any OutboundSink
    public var salesforce: any OutboundSink

    public init(pagerDuty: any OutboundSink, salesforce: any OutboundSink) {
        self.pagerDuty = pagerDuty
        self.salesforce = salesforce
    }

    public func perform(_ request: ActionRequest) async throws(ActionFailure) -> ActionOutcome {
        request.action.actsOnPagerDuty ? try await pagerDuty.perform(request) : try await salesforce.perform(request)
    }
}

/// Keeps every action in memory, applying each idempotency key once, like a far side that honours keys.
public final class RecordingSink: OutboundSink {
    public struct State: Sendable {
        /// Effects in the order they took place, one per idempotency key.
        public var effects: [ActionRequest] = []
        /// Every delivery, including repeats of a key.
        public var deliveries = 0
        var outcomes: [String: ActionOutcome] = [:]
        var failures: [ActionFailure] = []
    }

    private let state = Mutex(State())

    public init() {}

    /// Makes the next calls fail, in order, before succeeding again.
    public func failNext(_ failures: [ActionFailure]) {
        state.withLock { $0.failures.append(contentsOf: failures) }
    }

    public var snapshot: State { state.withLock { $0 } }

    public func perform(_ request: ActionRequest) async throws(ActionFailure) -> ActionOutcome {
        let result: Result<ActionOutcome, ActionFailure> = state.withLock { s in
            s.deliveries += 1
            if !s.failures.isEmpty { return .failure(s.failures.removeFirst()) }
            if let done = s.outcomes[request.idempotencyKey] { return .success(done) }
            var outcome = ActionOutcome()
            if request.action == .createIncident { outcome.createdIncidentId = "Q" + String(s.effects.count + 1) }
            if request.action == .createRecord { outcome.createdRecordId = RecordingSink.recordId(s.effects.count + 1) }
            s.outcomes[request.idempotencyKey] = outcome
            s.effects.append(request)
            return .success(outcome)
        }
        return try result.get()
    }

    static func recordId(_ n: Int) -> String {
        SalesforceId.normalized("500" + String(repeating: "0", count: 12 - String(n).count) + String(n))
    }
}

/// Posts each action as JSON to a URL, with an `Idempotency-Key` header; a generic webhook out, and the
/// recording endpoint of the crash tests and benchmarks. The answer may name `incident` or `record` ids created.
public struct HTTPSink: OutboundSink {
    public var url: String
    public var client: HTTPClient
    public var timeout: TimeAmount

    public init(url: String, client: HTTPClient, timeout: TimeAmount = .seconds(10)) {
        self.url = url
        self.client = client
        self.timeout = timeout
    }

    public func perform(_ request: ActionRequest) async throws(ActionFailure) -> ActionOutcome {
        var http = HTTPClientRequest(url: url)
        http.method = .POST
        http.headers.add(name: "Content-Type", value: "application/json")
        http.headers.add(name: "Idempotency-Key", value: request.idempotencyKey)
        http.body = .bytes(ByteBuffer(string: request.jsonValue.serialized()))
        let response: HTTPClientResponse
        let body: ByteBuffer
        do {
            response = try await client.execute(http, timeout: timeout)
            body = try await response.body.collect(upTo: 1 << 20)
        } catch {
            throw .retryable("the sink at \(url) did not answer: \(error)")
        }
        switch response.status.code {
        case 200..<300:
            let json = try? JSONParser.parseValue(bytes: Array(buffer: body))
            return ActionOutcome(
                createdIncidentId: json?["incident"]?.stringValue, createdRecordId: json?["record"]?.stringValue,
                detail: String(buffer: body).isEmpty ? nil : String(buffer: body))
        case 429, 500..<600, 408:
            let after = response.headers.first(name: "Retry-After").flatMap(Double.init)
            throw .retryable("the sink answered \(response.status.code)", retryAfter: after)
        default:
            throw .permanent("the sink refused the action with \(response.status.code): \(String(buffer: body).prefix(500))")
        }
    }
}

/// The sink of a side that is not connected yet: every action fails for good with a message saying what to do.
public struct UnconnectedSink: OutboundSink {
    public var side: String

    public init(side: String) { self.side = side }

    public func perform(_ request: ActionRequest) async throws(ActionFailure) -> ActionOutcome {
        throw .permanent("\(request.action.rawValue) needs \(side), which is not connected; connect it (or set sink.url) and retry the dead letter")
    }
}
