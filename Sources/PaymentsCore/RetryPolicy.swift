/// When to try a provider call again: exponential backoff with full jitter (docs/design.md §5).
///
/// The ceiling for the wait after attempt *n* (1-based) is `min(cap, base × factor^(n−1))`; the
/// wait itself is drawn uniformly from `0...ceiling` ("full jitter"), so that payments failing
/// together do not retry together. After `maximumAttempts` attempts there is no further retry.
public struct RetryPolicy: Sendable, Hashable {
  public var base: Duration
  public var factor: Double
  public var cap: Duration
  public var maximumAttempts: Int

  /// The defaults of docs/design.md §5: 500 ms, ×2, at most 60 s, 8 attempts.
  public init(
    base: Duration = .milliseconds(500), factor: Double = 2, cap: Duration = .seconds(60),
    maximumAttempts: Int = 8
  ) {
    precondition(base > .zero && factor >= 1 && cap >= base && maximumAttempts >= 1, "invalid retry policy")
    self.base = base
    self.factor = factor
    self.cap = cap
    self.maximumAttempts = maximumAttempts
  }

  /// The longest wait after attempt `attempt` (1 for the first call).
  public func ceiling(afterAttempt attempt: Int) -> Duration {
    let exponent = Double(max(0, attempt - 1))
    let seconds = base.seconds * pow(factor, exponent)
    return seconds >= cap.seconds ? cap : .nanoseconds(Int64((seconds * 1e9).rounded()))
  }

  /// The wait before the next attempt after attempt `attempt` failed transiently, or `nil` when
  /// the attempts are used up.
  public func delay(afterAttempt attempt: Int, using generator: inout some RandomNumberGenerator) -> Duration?
  {
    guard attempt < maximumAttempts else { return nil }
    let ceiling = ceiling(afterAttempt: attempt)
    let nanoseconds = Int64(ceiling.seconds * 1e9)
    return .nanoseconds(Int64.random(in: 0...nanoseconds, using: &generator))
  }
}

extension Duration {
  /// The duration in seconds, as a `Double`.
  var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

private func pow(_ base: Double, _ exponent: Double) -> Double {
  var result = 1.0
  var remaining = Int(exponent)
  while remaining > 0 {
    result *= base
    remaining -= 1
    if result > 1e12 { return result }  // far past any cap
  }
  return result
}
