/// When a cached read of the database was made, and whether it may have missed a change.
///
/// A read that began before an invalidation may have seen the database before the change that caused it; storing
/// its result as fresh would hide that change for the whole cache period. So each read takes a ticket first, and its
/// result counts as fresh only if no invalidation came in between.
public struct ReadFreshness: Sendable {
    private var readAt: ContinuousClock.Instant?
    private var invalidations: UInt64 = 0

    public init() {}

    /// Taken before reading; hand it back to `record(at:ticket:)`.
    public var ticket: UInt64 { invalidations }

    /// Whether the cached value was read less than `age` ago and nothing was invalidated since.
    public func isFresh(within age: Duration, now: ContinuousClock.Instant = .now) -> Bool {
        guard let readAt else { return false }
        return now - readAt < age
    }

    /// Makes the next lookup read again, including lookups whose read is already under way.
    public mutating func invalidate() {
        readAt = nil
        invalidations &+= 1
    }

    /// Records a read that began with `ticket`: fresh unless an invalidation came after it began.
    public mutating func record(at now: ContinuousClock.Instant = .now, ticket: UInt64) {
        readAt = ticket == invalidations ? now : nil
    }
}
