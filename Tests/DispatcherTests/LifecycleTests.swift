import PaymentsCore
import PaymentsProto
import PaymentsTestSupport
import Testing

@Suite("Payment lifecycle and retry policy")
struct LifecycleTests {
  static let statuses: [Payments_V1_PaymentStatus] = [
    .unspecified, .accepted, .processing, .retryScheduled, .succeeded, .failed,
  ]
  static let allowed: Set<[Int32]> = [
    [1, 2], [1, 5],  // accepted → processing; expired before the first attempt
    [2, 4], [2, 5], [2, 3],  // processing → succeeded, failed, retry scheduled
    [3, 2], [3, 5],  // retry scheduled → processing; expired while waiting
  ]

  @Test("every transition: exactly the ones of docs/design.md §5 are allowed")
  func transitions() {
    for from in Self.statuses {
      for to in Self.statuses {
        let expected = Self.allowed.contains([from.rawValue, to.rawValue])
        #expect(PaymentLifecycle.allows(from, to) == expected, "\(from) → \(to)")
        #expect(((try? PaymentLifecycle.check(from, to)) != nil) == expected)
      }
    }
    // Terminal states never change.
    for to in Self.statuses {
      #expect(!PaymentLifecycle.allows(.succeeded, to))
      #expect(!PaymentLifecycle.allows(.failed, to))
    }
    #expect(throws: PaymentLifecycle.ForbiddenTransition.self) {
      try PaymentLifecycle.check(.succeeded, .processing)
    }
  }

  @Test("backoff ceilings double from 500 ms up to the 60 s cap; 8 attempts")
  func backoffCeilings() {
    let policy = RetryPolicy()
    let ceilings = (1...9).map { policy.ceiling(afterAttempt: $0) }
    #expect(
      ceilings == [
        .milliseconds(500), .seconds(1), .seconds(2), .seconds(4), .seconds(8), .seconds(16), .seconds(32),
        .seconds(60), .seconds(60),
      ])
    var generator = SplitMix(state: 1)
    #expect(policy.delay(afterAttempt: 8, using: &generator) == nil, "no ninth attempt")
    #expect(policy.delay(afterAttempt: 7, using: &generator) != nil)
  }

  @Test("full jitter: waits spread over 0...ceiling, reproducible with a seeded generator")
  func fullJitter() {
    let policy = RetryPolicy(base: .milliseconds(100), factor: 3, cap: .seconds(5), maximumAttempts: 10)
    var generator = SplitMix(state: 42)
    for attempt in 1...9 {
      let ceiling = policy.ceiling(afterAttempt: attempt)
      let samples = (0..<2000).map { _ in policy.delay(afterAttempt: attempt, using: &generator)! }
      #expect(samples.allSatisfy { $0 >= .zero && $0 <= ceiling }, "attempt \(attempt)")
      // Uniform over the range: both ends are reached and the mean is near the middle.
      #expect(samples.contains { $0 < ceiling / 10 } && samples.contains { $0 > ceiling * 9 / 10 })
      let mean = samples.reduce(Duration.zero, +) / samples.count
      #expect(
        mean > ceiling * 4 / 10 && mean < ceiling * 6 / 10, "attempt \(attempt): mean \(mean) of \(ceiling)")
    }
    var first = SplitMix(state: 7)
    var second = SplitMix(state: 7)
    #expect(policy.delay(afterAttempt: 3, using: &first) == policy.delay(afterAttempt: 3, using: &second))
  }
}
