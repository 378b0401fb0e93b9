/// Runs the writes handed to it in groups: writes submitted while a commit is under way share the next one, so one
/// transaction (and one disk sync) serves all of them.
actor GroupCommit<Work: Sendable, Output: Sendable> {
    private var queue: [(work: Work, waiter: CheckedContinuation<Output, any Error>)] = []
    private var flushing = false
    /// The most a group may hold, in units of `size` (a piece larger than that forms a group of its own).
    private let maximumGroup: Int
    private let size: @Sendable (Work) -> Int
    /// Commits a group; returns one output per piece of work, in order.
    private let commit: @Sendable ([Work]) async throws -> [Output]

    init(
        maximumGroup: Int = .max, size: @escaping @Sendable (Work) -> Int = { _ in 1 },
        commit: @escaping @Sendable ([Work]) async throws -> [Output]
    ) {
        self.maximumGroup = maximumGroup
        self.size = size
        self.commit = commit
    }

    /// Returns once `work` is committed, with its output; throws what the commit of its group threw.
    func submit(_ work: Work) async throws -> Output {
        try await withCheckedThrowingContinuation { waiter in
            queue.append((work, waiter))
            if !flushing {
                flushing = true
                Task { await self.flush() }
            }
        }
    }

    private func flush() async {
        while !queue.isEmpty {
            var count = 0
            var taken = 0
            while taken < queue.count, taken == 0 || count + size(queue[taken].work) <= maximumGroup {
                count += size(queue[taken].work)
                taken += 1
            }
            let group = Array(queue.prefix(taken))
            queue.removeFirst(taken)
            do {
                let outputs = try await commit(group.map(\.work))
                for (item, output) in zip(group, outputs) { item.waiter.resume(returning: output) }
            } catch {
                for item in group { item.waiter.resume(throwing: error) }
            }
        }
        flushing = false
    }
}
