public import Foundation
public import PaymentsCore
public import PaymentsProto

/// The kinds of provider call a worker makes (as the attempts table and metrics name them).
public enum CallKind: String, Sendable, Hashable, CaseIterable {
  /// Asks the provider to move the money.
  case charge
  /// Asks the provider what an earlier charge call with the payment's key did.
  case inquiry
  /// Asks the provider to give money back from a charge (``RefundDecision``).
  case refund
  /// Asks the provider what an earlier refund call with the refund's key did.
  case refundInquiry = "refund_inquiry"
}

/// The answer to one provider call.
public enum CallResult: Sendable, Hashable {
  case charge(ProviderOutcome)
  case inquiry(ProviderInquiry)
}

/// What the attempts table records about a call: its kind, a short outcome and a detail.
public struct CallRecord: Sendable, Hashable {
  public var kind: CallKind
  public var outcome: String
  public var detail: String

  public init(kind: CallKind, outcome: String, detail: String) {
    self.kind = kind
    self.outcome = outcome
    self.detail = detail
  }
}

/// What a client's cancellation does (``WorkDecision/cancel(status:outcomeUnknown:)``).
public enum CancelDecision: Sendable, Equatable {
  /// Cancel it now, in the cancelling transaction.
  case cancelNow
  /// It is cancelled already; the cancellation changes nothing.
  case alreadyCanceled
  /// It ended otherwise (charged, or failed); a cancellation cannot change that.
  case refuse(Payments_V1_PaymentStatus)
  /// Mark it: never charged again; the next inquiry decides between SUCCEEDED and CANCELED.
  case awaitInquiry
}

/// What a worker does with a payment it claimed.
public enum WorkPlan: Sendable, Equatable {
  /// Make this call (the payment goes `PROCESSING` first).
  case call(CallKind)
  /// No call: apply this transition (a payment that expired and cannot have been charged).
  case settle(Transition)
}

/// Every decision the dispatcher makes about a payment, as pure functions of (payment state,
/// call result, retry policy, now): no I/O, so that each one is tested for every input
/// (Tests/DispatcherTests/WorkDecisionTests.swift). ``PaymentWorker`` does the I/O around them.
///
/// The rules, in the order they matter for money (docs/services.md):
/// 1. A payment whose last call may have charged (`outcomeUnknown`, or found `PROCESSING`
///    because its worker vanished) is never charged again and never failed before an inquiry
///    answers: only `charged` (→ `SUCCEEDED`), `declined` or `notCharged` decide it.
/// 2. `FAILED` comes only from a definitive refusal, or from "nothing was charged" being
///    certain (a transient failure, which the provider says it did not process, or an inquiry's
///    `notCharged`) together with used-up attempts or expiry.
/// 3. The provider refusing the platform's own credentials never fails a payment: it waits.
/// 4. `CANCELED` is the same certainty as rule 2 with a client's cancellation instead of used-up
///    attempts: a cancelled payment is never charged again, and ends `CANCELED` only once nothing
///    can have been charged (otherwise an inquiry decides: `charged` → `SUCCEEDED`).
public enum WorkDecision {
  /// What to do with `item` (as claimed) at `now`.
  public static func plan(_ item: WorkItem, now: Date) -> WorkPlan {
    if item.status == .processing || item.outcomeUnknown { return .call(.inquiry) }
    if item.cancelRequested { return .settle(item.cancellation) }
    if item.isExpired(at: now) { return .settle(item.expiry) }
    return .call(.charge)
  }

  /// What a client's cancellation does to a payment in `status` (`outcomeUnknown`: its last
  /// call may have charged).
  public static func cancel(status: Payments_V1_PaymentStatus, outcomeUnknown: Bool) -> CancelDecision {
    switch status {
    case .canceled: .alreadyCanceled
    case .succeeded, .failed: .refuse(status)
    case .accepted where !outcomeUnknown, .retryScheduled where !outcomeUnknown:
      // Nothing was charged: a worker that claimed it has not begun a call (beginning is fenced
      // by the claim's token, which the cancellation removes).
      .cancelNow
    default:
      // PROCESSING (a call in flight, or its worker vanished) or an unknown outcome: only the
      // provider knows whether it charged.
      .awaitInquiry
    }
  }

  /// `transition`, decided for `item` without knowing of a cancellation that arrived during the
  /// call (`cancelRequested` as the row has it now): where it fails the payment for a reason
  /// that means "nothing was charged" (attempts used up, expiry), the cancellation decides
  /// instead and the payment ends `CANCELED`.
  public static func honoring(cancelRequested: Bool, _ transition: Transition, of item: WorkItem)
    -> Transition
  {
    guard cancelRequested, transition.status == .failed,
      let code = transition.failure?.code, code == "retries_exhausted" || code == "expired"
    else { return transition }
    return item.cancellation
  }

  /// The state change that starts a call of `kind`: `PROCESSING`, one more attempt for a charge;
  /// a payment found `PROCESSING` (its worker vanished mid-call) has an unknown outcome.
  public static func begin(_ item: WorkItem, _ kind: CallKind) -> Transition {
    Transition(
      status: .processing, attempts: kind == .charge ? item.attempts + 1 : item.attempts,
      outcomeUnknown: kind == .inquiry, keepLease: true)
  }

  /// The state change when a call was begun but not made (its grant was too old to send the
  /// request safely): back to waiting, due now, knowing what was known before.
  public static func abandon(_ claimed: WorkItem, now: Date) -> Transition {
    Transition(
      status: .retryScheduled, attempts: claimed.attempts,
      outcomeUnknown: claimed.outcomeUnknown || claimed.status == .processing, nextAttemptAt: now)
  }

  /// The state change after the call of `item` (as begun: `PROCESSING`, attempts counted)
  /// answered `result`. `backoff` is the wait after the given number of attempts.
  public static func after(
    _ item: WorkItem, _ result: CallResult, retry: RetryPolicy, now: Date,
    backoff: (Int32) -> TimeInterval
  ) -> (Transition, CallRecord) {
    let later = item.nextAttempt(after: backoff(max(item.attempts, 1)), now: now)
    switch result {
    case .charge(let outcome):
      switch outcome {
      case .succeeded(let reference):
        return (
          Transition(status: .succeeded, attempts: item.attempts, providerReference: reference),
          CallRecord(kind: .charge, outcome: "succeeded", detail: reference)
        )
      case .permanentFailure(let code, let message):
        return (
          Transition(status: .failed, attempts: item.attempts, failure: (code, message)),
          CallRecord(kind: .charge, outcome: "permanent_failure", detail: "\(code): \(message)")
        )
      case .transientFailure(let reason):
        // The provider did not process this call, and no earlier one charged (a charge is made
        // only when that is known): failing now is safe.
        let record = CallRecord(kind: .charge, outcome: "transient_failure", detail: reason)
        if item.cancelRequested { return (item.cancellation, record) }
        if item.isExpired(at: now) { return (item.expiry, record) }
        if item.attempts >= retry.maximumAttempts {
          return (
            Transition(
              status: .failed, attempts: item.attempts,
              failure: ("retries_exhausted", "\(item.attempts) attempts failed; the last: \(reason)")),
            record
          )
        }
        return (Transition(status: .retryScheduled, attempts: item.attempts, nextAttemptAt: later), record)
      case .configurationError(let reason):
        // The platform's fault, not the payment's: the attempt does not count, and the payment
        // waits the longest backoff (the retry cap) before the provider is tried again.
        if item.cancelRequested {
          return (
            item.cancellation, CallRecord(kind: .charge, outcome: "configuration_error", detail: reason)
          )
        }
        return (
          Transition(
            status: .retryScheduled, attempts: max(item.attempts - 1, 0),
            nextAttemptAt: item.nextAttempt(after: retry.cap.seconds, now: now)),
          CallRecord(kind: .charge, outcome: "configuration_error", detail: reason)
        )
      case .unknown(let reason):
        return (
          Transition(
            status: .retryScheduled, attempts: item.attempts, outcomeUnknown: true, nextAttemptAt: later),
          CallRecord(kind: .charge, outcome: "unknown", detail: reason)
        )
      }
    case .inquiry(let inquiry):
      switch inquiry {
      case .charged(let reference):
        return (
          Transition(status: .succeeded, attempts: item.attempts, providerReference: reference),
          CallRecord(kind: .inquiry, outcome: "charged", detail: reference)
        )
      case .declined(let code, let message):
        return (
          Transition(status: .failed, attempts: item.attempts, failure: (code, message)),
          CallRecord(kind: .inquiry, outcome: "declined", detail: code)
        )
      case .notCharged:
        let record = CallRecord(kind: .inquiry, outcome: "not_charged", detail: "")
        if item.cancelRequested { return (item.cancellation, record) }
        if item.isExpired(at: now) { return (item.expiry, record) }
        if item.attempts >= retry.maximumAttempts {
          return (
            Transition(
              status: .failed, attempts: item.attempts,
              failure: (
                "retries_exhausted",
                "\(item.attempts) attempts made and none charged (the provider confirmed it)"
              )),
            record
          )
        }
        // Certain now that nothing was charged: the next claim charges (with its own grant).
        return (Transition(status: .retryScheduled, attempts: item.attempts, nextAttemptAt: now), record)
      case .unavailable(let reason):
        return (
          Transition(
            status: .retryScheduled, attempts: item.attempts, outcomeUnknown: true, nextAttemptAt: later),
          CallRecord(kind: .inquiry, outcome: "unavailable", detail: reason)
        )
      case .configurationError(let reason):
        return (
          Transition(
            status: .retryScheduled, attempts: item.attempts, outcomeUnknown: true,
            nextAttemptAt: item.nextAttempt(after: retry.cap.seconds, now: now)),
          CallRecord(kind: .inquiry, outcome: "configuration_error", detail: reason)
        )
      }
    }
  }
}

extension WorkItem {
  /// Past its expiry at `now`: it must not be charged any more.
  public func isExpired(at now: Date) -> Bool { expiresAt.map { $0 <= now } ?? false }

  /// The transition of an expired payment.
  public var expiry: Transition {
    Transition(
      status: .failed, attempts: attempts,
      failure: (
        "expired",
        attempts == 0
          ? "the payment expired before it could be sent to the provider"
          : "the payment expired after \(attempts) attempt(s) without a charge"
      ))
  }

  /// The transition of a cancelled payment that cannot have been charged.
  public var cancellation: Transition { Transition(status: .canceled, attempts: attempts) }

  /// When to try again after waiting `backoff` seconds from `now`: no later than a future
  /// expiry, so that an expiring payment ends on time instead of after a long backoff. (Once
  /// expired, only an unknown outcome keeps a payment going, and its inquiries keep their
  /// backoff.)
  public func nextAttempt(after backoff: TimeInterval, now: Date) -> Date {
    let next = now + backoff
    guard let expiresAt, expiresAt > now else { return next }
    return min(next, expiresAt)
  }
}
