import Foundation
import Synchronization
import SwitchboardCore

/// The time, injected so tests can control it.
public protocol WallClock: Sendable {
    func now() -> Instant
}

extension WallClock {
    /// Milliseconds since 1970, the unit the database stores.
    public var millis: Int64 { now().millisecondsSince1970 }
}

public struct SystemClock: WallClock {
    public init() {}
    public func now() -> Instant { Instant(Date()) }
}

/// A clock tests move by hand.
public final class ManualClock: WallClock {
    private let current: Mutex<Instant>

    public init(_ start: Instant) { current = Mutex(start) }

    public func now() -> Instant { current.withLock { $0 } }

    public func advance(by milliseconds: Int64) {
        current.withLock { $0 = Instant(millisecondsSince1970: $0.millisecondsSince1970 + milliseconds) }
    }
}

/// Exponential backoff with full jitter, capped; `Retry-After` from the far side wins when it is longer.
public struct Backoff: Sendable {
    public var base: Double
    public var cap: Double

    public init(baseSeconds: Double = 2, capSeconds: Double = 600) {
        self.base = baseSeconds
        self.cap = capSeconds
    }

    /// The delay before attempt `attempt + 1`, in milliseconds. `random` is in [0, 1).
    public func delay(afterAttempt attempt: Int, retryAfter: Double?, random: Double) -> Int64 {
        let exponential = min(cap, base * pow(2, Double(max(0, attempt - 1))))
        // Half fixed, half jitter: spreads retries without ever retrying immediately.
        var seconds = exponential / 2 + exponential / 2 * random
        if let retryAfter { seconds = max(seconds, retryAfter) }
        return Int64(seconds * 1000)
    }
}

/// Wakes a worker loop early when new work is written, instead of waiting for its next poll. A notification while
/// nobody waits is kept for the next wait; a wait that times out leaves nothing behind (a spare wake-up would cost the
/// loop an empty look at the database).
public final class Signal: Sendable {
    private struct State {
        var pending = false
        var waiter: (id: UInt64, continuation: CheckedContinuation<Void, Never>)?
        var nextId: UInt64 = 0
        /// A wait whose time ran out before its continuation was in place: it must not start waiting.
        var expired: UInt64?
    }

    private let state = Mutex(State())

    public init() {}

    public func notify() {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            guard let w = s.waiter else {
                s.pending = true
                return nil
            }
            s.waiter = nil
            return w.continuation
        }
        waiter?.resume()
    }

    /// Returns at the next notification or after `timeout`, whichever comes first.
    public func wait(timeout: Duration) async {
        let id = state.withLock { s -> UInt64? in
            if s.pending {
                s.pending = false
                return nil
            }
            s.nextId += 1
            return s.nextId
        }
        guard let id else { return }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                    let (resumeNow, replaced) = self.state.withLock { s -> (Bool, CheckedContinuation<Void, Never>?) in
                        if s.pending || s.expired == id {
                            s.pending = false
                            return (true, nil)
                        }
                        // One waiter at a time: an earlier one (a loop that moved on) is let go.
                        let earlier = s.waiter?.continuation
                        s.waiter = (id, c)
                        return (false, earlier)
                    }
                    replaced?.resume()
                    if resumeNow { c.resume() }
                }
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                // Also on cancellation: it releases this wait's continuation so the group can end.
                self.release(id)
            }
            await group.next()
            group.cancelAll()
        }
    }

    /// Ends the wait `id` if it is still waiting, without leaving a notification for the next one.
    private func release(_ id: UInt64) {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            guard let w = s.waiter, w.id == id else {
                s.expired = id
                return nil
            }
            s.waiter = nil
            return w.continuation
        }
        waiter?.resume()
    }
}

/// A one-way gate: waiters pass once it is opened (workers wait for the migrations). Waiting ends early
/// when the waiting task is cancelled.
public final class Gate: Sendable {
    private struct State {
        var open = false
        var next = 0
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
    }

    private let state = Mutex(State())

    public init() {}

    public func open() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.open = true
            defer { s.waiters = [:] }
            return Array(s.waiters.values)
        }
        for w in waiters { w.resume() }
    }

    public var isOpen: Bool { state.withLock { $0.open } }

    public func wait() async {
        let id = state.withLock { s -> Int in
            s.next += 1
            return s.next
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { c in
                let passNow = state.withLock { s -> Bool in
                    if s.open || Task.isCancelled { return true }
                    s.waiters[id] = c
                    return false
                }
                if passNow { c.resume() }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
        }
    }
}
