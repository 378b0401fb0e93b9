import Foundation
import SwitchboardPipeline
import Testing

@Suite("Worker wake-ups")
struct SignalTests {
    @Test("A notification while nobody waits is kept for the next wait")
    func notificationIsKept() async {
        let signal = Signal()
        signal.notify()
        let start = ContinuousClock.now
        await signal.wait(timeout: .seconds(30))
        #expect(ContinuousClock.now - start < .seconds(10))
    }

    @Test("A notification wakes a waiting loop")
    func notificationWakes() async throws {
        let signal = Signal()
        let start = ContinuousClock.now
        async let woken: Void = signal.wait(timeout: .seconds(30))
        try await Task.sleep(for: .milliseconds(50))
        signal.notify()
        await woken
        #expect(ContinuousClock.now - start < .seconds(10))
    }

    /// A woken wait used to leave a notification behind (its timer, cancelled, notified): every loop then looked at
    /// the database twice for each piece of work.
    @Test("A wait that was woken or timed out leaves nothing for the next wait")
    func nothingLeftBehind() async throws {
        let signal = Signal()
        signal.notify()
        await signal.wait(timeout: .seconds(30))
        var start = ContinuousClock.now
        await signal.wait(timeout: .milliseconds(300))
        #expect(ContinuousClock.now - start >= .milliseconds(250), "the wait after a notified one ran its full time")

        async let woken: Void = signal.wait(timeout: .seconds(30))
        try await Task.sleep(for: .milliseconds(50))
        signal.notify()
        await woken
        start = ContinuousClock.now
        await signal.wait(timeout: .milliseconds(300))
        #expect(ContinuousClock.now - start >= .milliseconds(250), "the wait after a woken one ran its full time")

        await signal.wait(timeout: .milliseconds(10))
        start = ContinuousClock.now
        await signal.wait(timeout: .milliseconds(300))
        #expect(ContinuousClock.now - start >= .milliseconds(250), "the wait after a timed-out one ran its full time")
    }

    @Test("Waits whose time runs out at once never hang")
    func zeroTimeouts() async {
        let signal = Signal()
        let start = ContinuousClock.now
        for _ in 0..<200 { await signal.wait(timeout: .zero) }
        #expect(ContinuousClock.now - start < .seconds(60), "a wait whose time ran out before it began waiting returns")
    }

    @Test("A cancelled wait returns")
    func cancelledWaitReturns() async {
        let signal = Signal()
        let task = Task { await signal.wait(timeout: .seconds(600)) }
        task.cancel()
        let start = ContinuousClock.now
        await task.value
        #expect(ContinuousClock.now - start < .seconds(10))
    }
}
