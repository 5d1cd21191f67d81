public import Foundation
public import PaymentsCore
public import PaymentsProto

/// A refund a worker holds (claimed with a lease), with what the provider call needs of its
/// payment.
public struct RefundItem: Sendable {
  public var refundID: String
  public var paymentID: String
  public var clientID: String
  public var provider: String
  public var amountMinor: Int64
  public var currency: String
  public var reason: String
  public var status: Payments_V1_RefundStatus
  public var attempts: Int32
  /// The refund's idempotency key at the provider (its refund ID).
  public var providerKey: String
  /// The last call may have refunded (or is in flight): ask before refunding again.
  public var outcomeUnknown: Bool
  /// The provider's reference of the charge and the key it was made with.
  public var chargeReference: String
  public var chargeKey: String
  /// This claim's fencing token: every write of the refund is conditional on it.
  public var leaseToken: Int64

  public init(
    refundID: String, paymentID: String = "pay", clientID: String = "client", provider: String = "sandbox",
    amountMinor: Int64 = 100, currency: String = "EUR", reason: String = "",
    status: Payments_V1_RefundStatus = .pending, attempts: Int32 = 0, providerKey: String? = nil,
    outcomeUnknown: Bool = false, chargeReference: String = "", chargeKey: String = "", leaseToken: Int64 = 0
  ) {
    self.refundID = refundID
    self.paymentID = paymentID
    self.clientID = clientID
    self.provider = provider
    self.amountMinor = amountMinor
    self.currency = currency
    self.reason = reason
    self.status = status
    self.attempts = attempts
    self.providerKey = providerKey ?? refundID
    self.outcomeUnknown = outcomeUnknown
    self.chargeReference = chargeReference
    self.chargeKey = chargeKey
    self.leaseToken = leaseToken
  }
}

/// A state change of a held refund.
public struct RefundTransition: Sendable, Equatable {
  public var status: Payments_V1_RefundStatus
  public var attempts: Int32
  public var providerReference = ""
  public var failureCode = ""
  public var failureMessage = ""
  public var outcomeUnknown = false
  /// When the refund is due next (`PENDING`); now when omitted.
  public var nextAttemptAt: Date? = nil

  public init(
    status: Payments_V1_RefundStatus, attempts: Int32, providerReference: String = "",
    failure: (code: String, message: String)? = nil, outcomeUnknown: Bool = false, nextAttemptAt: Date? = nil
  ) {
    self.status = status
    self.attempts = attempts
    self.providerReference = providerReference
    self.failureCode = failure?.code ?? ""
    self.failureMessage = failure?.message ?? ""
    self.outcomeUnknown = outcomeUnknown
    self.nextAttemptAt = nextAttemptAt
  }
}

/// Every decision the dispatcher makes about a refund, as pure functions (tested for every input
/// in Tests/DispatcherTests/RefundDecisionTests.swift); ``PaymentWorker`` does the I/O.
///
/// The rules are the charge rules of ``WorkDecision`` with "refunded" for "charged":
/// 1. A refund whose last call may have refunded (`outcomeUnknown`; a call begins by setting it,
///    so a worker that vanished mid-call leaves it set) is never sent again before an inquiry
///    answers: only `charged` (refunded → `SUCCEEDED`), `declined` or `notCharged` decide it.
/// 2. `FAILED` comes only from a definitive refusal, or from "nothing was refunded" being
///    certain together with used-up attempts.
/// 3. The provider refusing the platform's credentials never fails a refund: it waits.
public enum RefundDecision {
  /// The call to make for `item` as claimed.
  public static func plan(_ item: RefundItem) -> CallKind {
    item.outcomeUnknown ? .refundInquiry : .refund
  }

  /// The state written before a call of `kind`: one more attempt for a refund, and the outcome
  /// unknown until the answer is applied.
  public static func begin(_ item: RefundItem, _ kind: CallKind) -> RefundTransition {
    RefundTransition(
      status: .pending, attempts: kind == .refund ? item.attempts + 1 : item.attempts, outcomeUnknown: true)
  }

  /// Back to waiting, due now, when a call was begun but not sent (its grant was too old).
  public static func abandon(_ claimed: RefundItem, now: Date) -> RefundTransition {
    RefundTransition(
      status: .pending, attempts: claimed.attempts, outcomeUnknown: claimed.outcomeUnknown, nextAttemptAt: now
    )
  }

  /// The state change after the call of `item` (as begun: attempts counted) answered `result`
  /// (``CallResult/charge(_:)``: the refund call's outcome; ``CallResult/inquiry(_:)``: the
  /// refund inquiry's answer). `backoff` is the wait after the given number of attempts.
  public static func after(
    _ item: RefundItem, _ result: CallResult, retry: RetryPolicy, now: Date,
    backoff: (Int32) -> TimeInterval
  ) -> (RefundTransition, CallRecord) {
    let later = now + backoff(max(item.attempts, 1))
    let cap = now + retry.cap.seconds
    func exhausted(_ detail: String) -> RefundTransition {
      RefundTransition(
        status: .failed, attempts: item.attempts,
        failure: ("retries_exhausted", "\(item.attempts) refund attempts failed and none refunded; \(detail)")
      )
    }
    switch result {
    case .charge(let outcome):
      switch outcome {
      case .succeeded(let reference):
        return (
          RefundTransition(status: .succeeded, attempts: item.attempts, providerReference: reference),
          CallRecord(kind: .refund, outcome: "succeeded", detail: reference)
        )
      case .permanentFailure(let code, let message):
        return (
          RefundTransition(status: .failed, attempts: item.attempts, failure: (code, message)),
          CallRecord(kind: .refund, outcome: "permanent_failure", detail: "\(code): \(message)")
        )
      case .transientFailure(let reason):
        // Not processed, and no earlier call refunded (a call is sent only when that is known).
        let record = CallRecord(kind: .refund, outcome: "transient_failure", detail: reason)
        if item.attempts >= retry.maximumAttempts { return (exhausted("the last: \(reason)"), record) }
        return (RefundTransition(status: .pending, attempts: item.attempts, nextAttemptAt: later), record)
      case .configurationError(let reason):
        // The platform's fault: the attempt does not count; wait the longest backoff.
        return (
          RefundTransition(status: .pending, attempts: max(item.attempts - 1, 0), nextAttemptAt: cap),
          CallRecord(kind: .refund, outcome: "configuration_error", detail: reason)
        )
      case .unknown(let reason):
        return (
          RefundTransition(
            status: .pending, attempts: item.attempts, outcomeUnknown: true, nextAttemptAt: later),
          CallRecord(kind: .refund, outcome: "unknown", detail: reason)
        )
      }
    case .inquiry(let inquiry):
      switch inquiry {
      case .charged(let reference):
        return (
          RefundTransition(status: .succeeded, attempts: item.attempts, providerReference: reference),
          CallRecord(kind: .refundInquiry, outcome: "refunded", detail: reference)
        )
      case .declined(let code, let message):
        return (
          RefundTransition(status: .failed, attempts: item.attempts, failure: (code, message)),
          CallRecord(kind: .refundInquiry, outcome: "declined", detail: code)
        )
      case .notCharged:
        let record = CallRecord(kind: .refundInquiry, outcome: "not_refunded", detail: "")
        if item.attempts >= retry.maximumAttempts {
          return (exhausted("the provider confirmed it"), record)
        }
        // Certain now that nothing was refunded: the next claim sends the refund again.
        return (RefundTransition(status: .pending, attempts: item.attempts, nextAttemptAt: now), record)
      case .unavailable(let reason):
        return (
          RefundTransition(
            status: .pending, attempts: item.attempts, outcomeUnknown: true, nextAttemptAt: later),
          CallRecord(kind: .refundInquiry, outcome: "unavailable", detail: reason)
        )
      case .configurationError(let reason):
        return (
          RefundTransition(
            status: .pending, attempts: item.attempts, outcomeUnknown: true, nextAttemptAt: cap),
          CallRecord(kind: .refundInquiry, outcome: "configuration_error", detail: reason)
        )
      }
    }
  }

  /// Whether a refund of `amount` fits a payment of `captured` with `committed` (pending and
  /// succeeded refunds) already: the invariant the dispatcher checks on the locked payment row.
  public static func fits(_ amount: Int64, captured: Int64, committed: Int64) -> Bool {
    amount > 0 && committed >= 0 && amount <= captured - committed
  }
}
