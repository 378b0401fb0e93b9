import Foundation
import Testing

@testable import SwitchboardServer

@Suite("Process memory")
struct ProcessMemoryTests {
    #if os(Linux)
        @Test func readsResidentSizeAndLiveHeap() throws {
            let before = ProcessMemory.current()
            let resident = try #require(before.residentBytes)
            let inUse = try #require(before.heapInUseBytes)
            #expect(resident > 1 << 20)
            #expect(inUse > 0)
            // 16 MiB more live heap shows in the heap figure.
            let block = UnsafeMutableRawPointer.allocate(byteCount: 16 << 20, alignment: 16)
            defer { block.deallocate() }
            #expect(try #require(ProcessMemory.current().heapInUseBytes) >= inUse + (16 << 20) - (1 << 20))
        }

        /// Freed memory between live blocks stays resident until it is released: the resident size only falls
        /// with the release.
        @Test func releasingGivesFreedPagesBack() async throws {
            // Run on a thread of its own so the blocks share one arena, away from the other tests' allocations.
            let (held, released) = try await withCheckedThrowingContinuation { (c: CheckedContinuation<(Int, Int), any Error>) in
                Thread {
                    let count = 8_192
                    var blocks: [UnsafeMutableRawPointer] = []
                    blocks.reserveCapacity(count)
                    for _ in 0..<count {
                        let block = UnsafeMutableRawPointer.allocate(byteCount: 8_192, alignment: 16)
                        block.initializeMemory(as: UInt8.self, repeating: 1, count: 8_192)
                        blocks.append(block)
                    }
                    // Every 32nd block stays live, so the 62 MiB freed around them cannot be trimmed from the top.
                    for (i, block) in blocks.enumerated() where i % 32 != 0 { block.deallocate() }
                    let held = ProcessMemory.current().residentBytes ?? 0
                    ProcessMemory.releaseFreePages()
                    let released = ProcessMemory.current().residentBytes ?? 0
                    for (i, block) in blocks.enumerated() where i % 32 == 0 { block.deallocate() }
                    c.resume(returning: (held, released))
                }.start()
            }
            #expect(held - released > 32 << 20, "resident \(held >> 20) MiB before the release, \(released >> 20) MiB after")
        }

        /// The server keeps freed pages for reuse (glibc would hand back the top of a heap at large frees, and the pages
        /// fault in again, zeroed, at the next allocation); its once-a-minute release must still give them all back.
        @Test func keptPagesStillGoBackAtTheRelease() async throws {
            #expect(ProcessMemory.keepFreedPagesUntilReleased())
            let (held, released) = try await withCheckedThrowingContinuation { (c: CheckedContinuation<(Int, Int), any Error>) in
                Thread {
                    let blocks = (0..<20_480).map { _ in
                        let block = UnsafeMutableRawPointer.allocate(byteCount: 8_192, alignment: 16)
                        block.initializeMemory(as: UInt8.self, repeating: 1, count: 8_192)
                        return block
                    }
                    for block in blocks.reversed() { block.deallocate() }
                    let held = ProcessMemory.current().residentBytes ?? 0
                    ProcessMemory.releaseFreePages()
                    let released = ProcessMemory.current().residentBytes ?? 0
                    c.resume(returning: (held, released))
                }.start()
            }
            #expect(held - released > 96 << 20, "resident \(held >> 20) MiB after freeing 160 MiB, \(released >> 20) MiB after the release")
        }
    #endif
}
