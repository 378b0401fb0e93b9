import CProcessMemory
import Foundation
import Prometheus
import ServiceLifecycle

/// The process's memory: what the operating system counts as resident, and what the heap holds for live
/// allocations.
public struct ProcessMemory: Sendable, Equatable {
    /// Resident set size in bytes, or nil where `/proc/self/statm` is absent.
    public var residentBytes: Int?
    /// Bytes allocated and not yet freed, or nil where the C allocator cannot say.
    public var heapInUseBytes: Int?

    /// Reads both now.
    public static func current() -> ProcessMemory {
        let inUse = switchboard_heap_in_use()
        return ProcessMemory(residentBytes: residentNow(), heapInUseBytes: inUse >= 0 ? Int(inUse) : nil)
    }

    /// Hands the heap's free pages back to the operating system; true when some were.
    ///
    /// glibc keeps freed memory in per-thread arenas and gives back only what lies at the top of each. Work
    /// that moves between threads (every await may resume on another one) leaves free holes in several arenas,
    /// so the resident size of a server whose live heap is flat creeps up for minutes before it settles.
    @discardableResult
    public static func releaseFreePages() -> Bool { switchboard_heap_release() == 1 }

    /// Keeps freed heap pages for reuse until `releaseFreePages` hands them back. By default glibc gives back the top
    /// of a thread's heap at each large free, and the next allocation faults the pages in again, zeroed: with
    /// SQLite's page cache refilled at each read, that was a tenth of the server's CPU at a steady trickle of events.
    @discardableResult
    public static func keepFreedPagesUntilReleased() -> Bool { switchboard_heap_keep_free_pages() == 1 }

    /// Records both as gauges: `process_resident_memory_bytes` and `switchboard_heap_in_use_bytes`.
    public func record(to registry: PrometheusCollectorRegistry) {
        if let residentBytes {
            let name = MetricNameDescriptor(
                namespace: "process", metricName: "resident_memory", unitName: "bytes", helpText: "Resident memory size in bytes.")
            registry.makeGauge(descriptor: name).set(Double(residentBytes))
        }
        if let heapInUseBytes {
            let name = MetricNameDescriptor(
                namespace: "switchboard", metricName: "heap_in_use", unitName: "bytes", helpText: "Heap bytes allocated and not freed.")
            registry.makeGauge(descriptor: name).set(Double(heapInUseBytes))
        }
    }

    private static func residentNow() -> Int? {
        // statm: total size, then resident, in pages.
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return nil }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return nil }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}

/// Hands the heap's free pages back to the operating system once a minute, so the resident size follows the
/// live heap instead of the most it ever held on each thread.
struct FreePageReleaser: Service {
    var interval: Duration = .seconds(60)

    func run() async throws {
        ProcessMemory.keepFreedPagesUntilReleased()
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                ProcessMemory.releaseFreePages()
            }
        }
    }
}
