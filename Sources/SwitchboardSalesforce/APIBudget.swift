import Foundation
import Synchronization

/// One org's daily API allocation as Salesforce last reported it, and the rules for spending it.
///
/// Salesforce puts `Sforce-Limit-Info: api-usage=<used>/<max>` on every response; the budget reads it each time.
/// Other integrations share the same allocation, so a `reserve` is kept for them: once the remaining calls fall to
/// the reserve, low-priority work (note syncs) is refused here, without calling Salesforce, while field updates and
/// creates go on until Salesforce itself answers 403 `REQUEST_LIMIT_EXCEEDED`. After that answer every call waits
/// `limitRetryAfter` seconds, then one is let through to see whether the window has room again.
public final class APIBudget: Sendable {
    /// How urgent a call is, for deciding who may spend the reserve.
    public enum Priority: Int, Sendable, Hashable, Comparable, CaseIterable {
        /// Copies that can wait (PagerDuty notes to the Case feed and comments).
        case low
        /// Reads, field updates, creates.
        case normal
        /// Work that must go through while any call is allowed (token checks, status).
        case high

        public static func < (lhs: Priority, rhs: Priority) -> Bool { lhs.rawValue < rhs.rawValue }
    }

    /// How many calls to leave for others.
    public enum Reserve: Sendable, Hashable {
        /// A share of the allocation, e.g. 0.1 for 10 %.
        case fraction(Double)
        /// A fixed number of calls.
        case calls(Int)

        func calls(ofMax max: Int) -> Int {
            switch self {
            case .fraction(let f): Int((Double(max) * Swift.max(0, Swift.min(1, f))).rounded(.up))
            case .calls(let n): Swift.max(0, n)
            }
        }
    }

    /// The budget as last seen, for status pages and `/metrics`.
    public struct Snapshot: Sendable, Hashable {
        /// Calls used in the rolling 24 hours.
        public var used: Int?
        /// The org's allocation.
        public var max: Int?
        /// `max - used`, when both are known.
        public var remaining: Int? {
            guard let used, let max else { return nil }
            return Swift.max(0, max - used)
        }
        /// The calls held back for other integrations.
        public var reserve: Int?
        /// When Salesforce last reported the usage.
        public var updatedAt: Date?
        /// Set after a 403 `REQUEST_LIMIT_EXCEEDED`: no call is made before this time.
        public var exhaustedUntil: Date?
        /// True after a 403 `REQUEST_LIMIT_EXCEEDED` until a response shows room again.
        public var exhausted: Bool
    }

    private struct State {
        var used: Int?
        var max: Int?
        var updatedAt: Date?
        var exhausted = false
        var exhaustedUntil: Date?
    }

    /// The calls held back for other integrations.
    public let reserve: Reserve
    /// Seconds to wait after a 403 `REQUEST_LIMIT_EXCEEDED` before trying again.
    public let limitRetryAfter: Double
    private let now: @Sendable () -> Date
    private let state = Mutex(State())

    /// - Parameters:
    ///   - reserve: calls left for other integrations (default 10 % of the allocation).
    ///   - limitRetryAfter: the wait after Salesforce refuses with `REQUEST_LIMIT_EXCEEDED` (default 60 s).
    ///   - now: the clock (tests pass their own).
    public init(reserve: Reserve = .fraction(0.1), limitRetryAfter: Double = 60, now: @escaping @Sendable () -> Date = { Date() }) {
        self.reserve = reserve
        self.limitRetryAfter = limitRetryAfter
        self.now = now
    }

    /// The budget as last seen.
    public var snapshot: Snapshot {
        state.withLock { s in
            Snapshot(
                used: s.used, max: s.max, reserve: s.max.map { reserve.calls(ofMax: $0) }, updatedAt: s.updatedAt, exhaustedUntil: s.exhaustedUntil,
                exhausted: s.exhausted)
        }
    }

    /// Refuses a call of `priority` that the budget cannot afford, before anything is sent.
    public func check(_ priority: Priority) throws(SalesforceError) {
        let now = self.now()
        let refusal: SalesforceError? = state.withLock { s in
            if s.exhausted, let until = s.exhaustedUntil, until > now {
                return .limitExceeded(
                    message: "Salesforce refused the last call with REQUEST_LIMIT_EXCEEDED; calls resume after \(until)",
                    retryAfterSeconds: Swift.max(1, until.timeIntervalSince(now)))
            }
            guard priority == .low, let used = s.used, let max = s.max else { return nil }
            let remaining = Swift.max(0, max - used)
            let held = reserve.calls(ofMax: max)
            guard remaining <= held else { return nil }
            return .limitExceeded(
                message: "\(remaining) of \(max) daily API calls remain and \(held) are kept for other integrations; low-priority work waits",
                retryAfterSeconds: limitRetryAfter)
        }
        if let refusal { throw refusal }
    }

    /// Reads a response's `Sforce-Limit-Info` header (`api-usage=10018/100000[; api-bursts=…]`).
    public func record(limitInfo header: String?, success: Bool) {
        let usage = header.flatMap(Self.parse(limitInfo:))
        let at = now()
        state.withLock { s in
            if let usage {
                s.used = usage.used
                s.max = usage.max
                s.updatedAt = at
            }
            // A successful answer that shows room ends the exhausted state.
            if success, s.exhausted, usage.map({ $0.used < $0.max }) ?? true {
                s.exhausted = false
                s.exhaustedUntil = nil
            }
        }
    }

    /// Salesforce answered 403 `REQUEST_LIMIT_EXCEEDED`: no call for `retryAfter` seconds (default `limitRetryAfter`).
    /// - Returns: the wait in seconds.
    @discardableResult
    public func markExhausted(retryAfter: Double? = nil) -> Double {
        let wait = retryAfter ?? limitRetryAfter
        let until = now().addingTimeInterval(wait)
        state.withLock { s in
            s.exhausted = true
            s.exhaustedUntil = until
        }
        return wait
    }

    /// `api-usage=<used>/<max>` from a `Sforce-Limit-Info` value.
    public static func parse(limitInfo header: String) -> (used: Int, max: Int)? {
        for part in header.split(separator: ";") {
            let item = part.trimmingCharacters(in: .whitespaces)
            guard item.lowercased().hasPrefix("api-usage=") else { continue }
            let numbers = item.dropFirst("api-usage=".count).split(separator: "/")
            guard numbers.count == 2, let used = Int(numbers[0].trimmingCharacters(in: .whitespaces)),
                let max = Int(numbers[1].trimmingCharacters(in: .whitespaces))
            else { return nil }
            return (used, max)
        }
        return nil
    }
}
