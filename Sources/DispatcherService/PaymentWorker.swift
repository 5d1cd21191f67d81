import Foundation
public import Logging
public import PaymentsCore
import PaymentsProto
public import ServiceKit

/// Executes claimed payments: takes a rate-limit grant for every provider call, stores each call
/// before making it, classifies the outcome and moves the payment on (ARCHITECTURE.md §5).
///
/// - success → `SUCCEEDED`; permanent failure → `FAILED` with the provider's code;
/// - transient → `RETRY_SCHEDULED` after backoff with full jitter, `FAILED` when the attempts
///   are used up;
/// - unknown (timeout, connection lost) → the next attempt first asks the provider whether the
///   charge happened, and charges only if it did not. A payment whose outcome is unknown is
///   never failed for lack of attempts: it keeps asking.
///
/// A payment found in `PROCESSING` (its worker died mid-call and the lease expired) is treated as
/// an unknown outcome.
public struct PaymentWorker: Sendable {
  private let store: WorkStore
  private let limiter: PostgresRateLimiter
  private let providers: ProviderRegistry
  private let defaultRetry: RetryPolicy
  private let retryByProvider: [String: RetryPolicy]
  private let logger: Logger

  /// - Parameters:
  ///   - retry: the retry policy of providers without one in `retryByProvider`.
  public init(
    store: WorkStore, limiter: PostgresRateLimiter, providers: ProviderRegistry, retry: RetryPolicy,
    retryByProvider: [String: RetryPolicy] = [:], logger: Logger
  ) {
    self.store = store
    self.limiter = limiter
    self.providers = providers
    self.defaultRetry = retry
    self.retryByProvider = retryByProvider
    self.logger = logger
  }

  /// Works until the task is cancelled or `shutdown` triggers (then it finishes the payment in
  /// hand first): claims due payments; when there are none, sleeps until `doorbell` rings (new
  /// work) or the next payment is due.
  public func run(doorbell: Doorbell, shutdown: ShutdownSignal = ShutdownSignal()) async {
    while !Task.isCancelled, !shutdown.isTriggered {
      do {
        if let item = try await store.claim() {
          try await process(item)
          continue
        }
        let untilDue = try await store.untilNextDue() ?? .seconds(5)
        await doorbell.wait(upTo: min(max(untilDue, .milliseconds(10)), .seconds(5)))
      } catch {
        if Task.isCancelled { return }
        logger.warning("dispatcher worker failed; retrying", metadata: ["error": "\(error)"])
        try? await Task.sleep(for: .seconds(1))
      }
    }
  }

  /// Takes one claimed payment as far as it goes now.
  func process(_ claimed: WorkItem) async throws {
    var logger = self.logger
    logger[metadataKey: "payment_id"] = "\(claimed.paymentID)"
    logger[metadataKey: "provider"] = "\(claimed.provider)"
    guard let provider = providers.provider(named: claimed.provider) else {
      // Nothing was ever sent to it, so failing the payment cannot hide a charge.
      _ = try await store.apply(
        Transition(
          status: .failed, attempts: claimed.attempts,
          failure: ("unknown_provider", "no provider named '\(claimed.provider)' is configured")),
        to: claimed, callOutcome: nil)
      return
    }
    let retry = retryByProvider[claimed.provider] ?? defaultRetry
    var item = claimed
    if item.status != .processing, !item.outcomeUnknown, item.isExpired {
      // No call of this payment can have charged (none was made, or each one's outcome is known).
      _ = try await store.apply(item.expiry, to: item, callOutcome: nil)
      return
    }
    if item.status == .processing {
      item.outcomeUnknown = true  // a worker died during this attempt
    } else {
      guard
        let started = try await store.apply(
          Transition(
            status: .processing, attempts: item.attempts + 1, outcomeUnknown: item.outcomeUnknown,
            keepLease: true),
          to: item, callOutcome: nil)
      else { return }
      item = started
    }
    logger[metadataKey: "attempt"] = "\(item.attempts)"

    if item.outcomeUnknown {
      try await store.recordCall(item, kind: "inquiry")
      let grant = try await limiter.acquire(item.provider)
      let inquiry = await provider.inquire(idempotencyKey: item.providerKey)
      await limiter.finish(grant)
      logger.debug("inquiry", metadata: ["result": "\(inquiry)"])
      switch inquiry {
      case .charged(let reference):
        _ = try await store.apply(
          Transition(status: .succeeded, attempts: item.attempts, providerReference: reference), to: item,
          callOutcome: ("inquiry", "charged", reference))
        return
      case .declined(let code, let message):
        _ = try await store.apply(
          Transition(status: .failed, attempts: item.attempts, failure: (code, message)), to: item,
          callOutcome: ("inquiry", "declined", code))
        return
      case .unavailable(let reason):
        _ = try await store.apply(
          Transition(
            status: .retryScheduled, attempts: item.attempts, outcomeUnknown: true,
            nextAttemptAt: item.nextAttempt(after: backoff(after: item.attempts, retry))),
          to: item, callOutcome: ("inquiry", "unavailable", reason))
        return
      case .notCharged:
        item.outcomeUnknown = false  // safe to charge now
        if !item.isExpired {
          try await store.finishCall(item, kind: "inquiry", outcome: "not_charged", detail: "")
        }
        if item.isExpired {
          _ = try await store.apply(item.expiry, to: item, callOutcome: ("inquiry", "not_charged", "expired"))
          return
        }
      }
    }

    try await store.recordCall(item, kind: "charge")
    let grant = try await limiter.acquire(item.provider)
    let request = ProviderChargeRequest(
      idempotencyKey: item.providerKey, amountMinor: item.order.amount?.amountMinor ?? 0,
      currency: item.order.amount?.currency ?? "", payerAccount: item.order.payer?.accountID ?? "",
      payeeAccount: item.order.payee?.accountID ?? "", description: item.order.description)
    let outcome = await provider.charge(request)
    await limiter.finish(grant)
    logger.debug("charge", metadata: ["outcome": "\(outcome)"])
    let transition: Transition
    let record: (String, String, String)
    switch outcome {
    case .succeeded(let reference):
      transition = Transition(status: .succeeded, attempts: item.attempts, providerReference: reference)
      record = ("charge", "succeeded", reference)
    case .permanentFailure(let code, let message):
      transition = Transition(status: .failed, attempts: item.attempts, failure: (code, message))
      record = ("charge", "permanent_failure", "\(code): \(message)")
    case .transientFailure(let reason):
      if item.attempts >= retry.maximumAttempts {
        transition = Transition(
          status: .failed, attempts: item.attempts,
          failure: ("retries_exhausted", "\(item.attempts) attempts failed; the last: \(reason)"))
      } else {
        transition = Transition(
          status: .retryScheduled, attempts: item.attempts,
          nextAttemptAt: item.nextAttempt(after: backoff(after: item.attempts, retry)))
      }
      record = ("charge", "transient_failure", reason)
    case .unknown(let reason):
      transition = Transition(
        status: .retryScheduled, attempts: item.attempts, outcomeUnknown: true,
        nextAttemptAt: item.nextAttempt(after: backoff(after: item.attempts, retry)))
      record = ("charge", "unknown", reason)
    }
    if try await store.apply(transition, to: item, callOutcome: record) == nil {
      logger.warning("lost the lease during the call; another instance has taken the payment over")
    }
  }

  /// The wait before the next attempt; after the last regular attempt (only unknown outcomes get
  /// there) the cap.
  private func backoff(after attempt: Int32, _ retry: RetryPolicy) -> TimeInterval {
    var generator = SystemRandomNumberGenerator()
    let delay = retry.delay(afterAttempt: Int(attempt), using: &generator) ?? retry.cap
    return Double(delay.components.seconds) + Double(delay.components.attoseconds) / 1e18
  }
}

extension WorkItem {
  /// Past its expiry: it must not be charged any more.
  var isExpired: Bool { expiresAt.map { $0 <= Date() } ?? false }

  /// The transition of an expired payment.
  var expiry: Transition {
    Transition(
      status: .failed, attempts: attempts,
      failure: (
        "expired",
        attempts == 0
          ? "the payment expired before it could be sent to the provider"
          : "the payment expired after \(attempts) attempt(s) without a charge"
      ))
  }

  /// When to try again after waiting `backoff` seconds: no later than a future expiry, so that
  /// an expiring payment ends on time instead of after a long backoff. (Once expired, only an
  /// unknown outcome keeps a payment going, and its inquiries keep their backoff.)
  func nextAttempt(after backoff: TimeInterval) -> Date {
    let next = Date() + backoff
    guard let expiresAt, expiresAt > Date() else { return next }
    return min(next, expiresAt)
  }
}
