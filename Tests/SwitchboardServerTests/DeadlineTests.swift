import Foundation
import Synchronization
import SwitchboardPipeline
import Testing

@Suite("Deadlines")
struct DeadlineTests {
    /// Work that waits on something cancellation cannot reach, like a query on a socket the server dropped.
    final class Stuck: Sendable {
        let continuation = Mutex<CheckedContinuation<Void, Never>?>(nil)
        func wait() async { await withCheckedContinuation { c in continuation.withLock { $0 = c } } }
        func release() { continuation.withLock { c in defer { c = nil }; return c }?.resume() }
    }

    @Test("The deadline holds even when the work ignores cancellation")
    func deadlineHoldsForStuckWork() async throws {
        let stuck = Stuck()
        let start = ContinuousClock.now
        await #expect(throws: (any Error).self) {
            try await withDeadline(.milliseconds(200)) { await stuck.wait() }
        }
        #expect(ContinuousClock.now - start < .seconds(20), "the caller got the error without waiting for the stuck work")
        stuck.release()
    }

    @Test("Work that finishes in time returns its value; errors pass through")
    func valuesAndErrors() async throws {
        #expect(try await withDeadline(.seconds(5)) { 42 } == 42)
        struct Boom: Error {}
        await #expect(throws: Boom.self) { try await withDeadline(.seconds(5)) { throw Boom() } }
    }
}
