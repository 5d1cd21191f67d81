/// A charge the dispatcher asks a provider to make.
public struct ProviderChargeRequest: Sendable, Hashable {
  /// Stable per payment (the payment ID): a repeated call with it cannot create a second charge.
  public var idempotencyKey: String
  public var amountMinor: Int64
  public var currency: String
  public var payerAccount: String
  public var payeeAccount: String
  public var description: String

  public init(
    idempotencyKey: String, amountMinor: Int64, currency: String, payerAccount: String, payeeAccount: String,
    description: String
  ) {
    self.idempotencyKey = idempotencyKey
    self.amountMinor = amountMinor
    self.currency = currency
    self.payerAccount = payerAccount
    self.payeeAccount = payeeAccount
    self.description = description
  }
}

/// A refund the dispatcher asks a provider to make: money back from a charge it made.
public struct ProviderRefundRequest: Sendable, Hashable {
  /// Stable per refund (the refund ID): a repeated call with it cannot refund twice.
  public var idempotencyKey: String
  /// The provider's reference of the charge to refund (`Payment.provider_reference`).
  public var chargeReference: String
  /// The idempotency key the charge was made with (the payment ID).
  public var chargeKey: String
  public var amountMinor: Int64
  public var currency: String
  public var reason: String

  public init(
    idempotencyKey: String, chargeReference: String, chargeKey: String, amountMinor: Int64, currency: String,
    reason: String
  ) {
    self.idempotencyKey = idempotencyKey
    self.chargeReference = chargeReference
    self.chargeKey = chargeKey
    self.amountMinor = amountMinor
    self.currency = currency
    self.reason = reason
  }
}

/// What became of a provider call, in the outcome classes of docs/design.md §5.
///
/// The classes differ in what they say about the money: only ``succeeded(reference:)`` says
/// it moved; ``permanentFailure(code:message:)``, ``transientFailure(reason:)`` and
/// ``configurationError(reason:)`` say for certain that it did not; ``unknown(reason:)`` says
/// nothing. An adapter that is not sure which one an answer means must say `unknown`: the
/// dispatcher then asks before it charges again or fails the payment, which costs one inquiry,
/// while a wrong "not charged" costs the payer a second charge.
public enum ProviderOutcome: Sendable, Hashable {
  /// Charged; `reference` is the provider's ID of the charge.
  case succeeded(reference: String)
  /// A definitive refusal that charged nothing (declined, invalid request): the payment fails
  /// with this code and message.
  case permanentFailure(code: String, message: String)
  /// The provider says it did not process the request and trying again later may work (429,
  /// 503, a refused connection).
  case transientFailure(reason: String)
  /// The provider refused the platform's own credentials or configuration (401, 403, a bad
  /// signature): nothing was charged, and the payment is not at fault. The dispatcher keeps the
  /// payment, backs off, and reports the provider as misconfigured (health, metric, log).
  case configurationError(reason: String)
  /// The call may or may not have charged (timeout, connection lost after sending, 500, 502, 504,
  /// 408, 409 "in progress", an unreadable answer): ask the provider before any new charge call
  /// and before any decision to fail the payment.
  case unknown(reason: String)
}

/// What a provider says about an earlier charge call, looked up by its idempotency key.
public enum ProviderInquiry: Sendable, Hashable {
  /// The call with that key did not charge (and cannot anymore): it is safe to charge.
  case notCharged
  /// It did charge.
  case charged(reference: String)
  /// It was declined for good.
  case declined(code: String, message: String)
  /// The provider could not answer now (the inquiry itself failed): ask again later.
  case unavailable(reason: String)
  /// The provider refused the platform's credentials (401, 403, a bad signature): ask again
  /// later, and report the provider as misconfigured.
  case configurationError(reason: String)
}

/// One external payment provider behind one interface (docs/design.md §8): the strategy the
/// dispatcher uses for charges and status inquiries. An adapter turns a concrete provider API
/// into it, including how that API's errors map to the outcome classes.
///
/// Adapters never throw: every failure is an outcome the dispatcher knows how to handle.
public protocol PaymentProvider: Sendable {
  /// The name payments route by (`SubmitPaymentRequest.provider`).
  var name: String { get }
  /// Makes the charge, idempotently by `request.idempotencyKey`.
  func charge(_ request: ProviderChargeRequest) async -> ProviderOutcome
  /// Looks up what the charge call with `idempotencyKey` did.
  func inquire(idempotencyKey: String) async -> ProviderInquiry
  /// Makes the refund, idempotently by `request.idempotencyKey`. The outcome classes mean the
  /// same as for a charge, with "refunded" for "charged": ``ProviderOutcome/succeeded(reference:)``
  /// says the money went back (`reference`: the provider's ID of the refund).
  func refund(_ request: ProviderRefundRequest) async -> ProviderOutcome
  /// Looks up what the refund call with `idempotencyKey` did: ``ProviderInquiry/charged(reference:)``
  /// means it refunded, ``ProviderInquiry/notCharged`` that it did not and cannot anymore.
  func inquireRefund(idempotencyKey: String) async -> ProviderInquiry
}
