import Synchronization

/// Counts failed authentications per client IP address, so that one address cannot make the
/// service look up key after key in the database (or try secret after secret).
///
/// Each address has a bucket of ``burst`` failures that refills at ``refillInterval`` per
/// failure. While its bucket is empty, the address's tokens are checked against the key cache
/// only: a cached valid key still works (a shared NAT address does not lock out good
/// clients), anything that would need a database query is refused with `RESOURCE_EXHAUSTED`.
public final class FailedAuthenticationLimiter: Sendable {
  public let burst: Int
  public let refillInterval: Duration

  private struct Bucket {
    var failures: Double
    var updated: ContinuousClock.Instant
  }

  private let buckets = Mutex<[String: Bucket]>([:])
  /// Addresses tracked at most; beyond it, the ones whose buckets have drained are dropped.
  private static let addressLimit = 10_000

  public init(burst: Int = 20, refillInterval: Duration = .seconds(3)) {
    precondition(burst > 0 && refillInterval > .zero)
    self.burst = burst
    self.refillInterval = refillInterval
  }

  /// How long until `address` may fail again, or `nil` when it may now.
  public func lockedOut(_ address: Substring, now: ContinuousClock.Instant = .now) -> Duration? {
    buckets.withLock { buckets in
      guard let bucket = buckets[String(address)] else { return nil }
      let failures = drained(bucket, now: now)
      guard failures > Double(burst) - 1 else { return nil }
      return refillInterval * (failures - Double(burst) + 1)
    }
  }

  /// Records a failed authentication of `address`.
  public func recordFailure(_ address: Substring, now: ContinuousClock.Instant = .now) {
    buckets.withLock { buckets in
      let key = String(address)
      if buckets[key] == nil, buckets.count >= Self.addressLimit {
        buckets = buckets.filter { drained($0.value, now: now) > 0 }
        if buckets.count >= Self.addressLimit { buckets.removeAll() }
      }
      let failures = buckets[key].map { drained($0, now: now) } ?? 0
      buckets[key] = Bucket(failures: min(failures + 1, Double(burst)), updated: now)
    }
  }

  private func drained(_ bucket: Bucket, now: ContinuousClock.Instant) -> Double {
    let elapsed = now - bucket.updated
    return max(0, bucket.failures - elapsed / refillInterval)
  }
}
