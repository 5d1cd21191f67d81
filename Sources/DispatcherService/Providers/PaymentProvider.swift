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

/// What became of a provider call, in the outcome classes of ARCHITECTURE.md §5.
public enum ProviderOutcome: Sendable, Hashable {
  /// Charged; `reference` is the provider's ID of the charge.
  case succeeded(reference: String)
  /// Will never succeed (declined, invalid): the payment fails with this code and message.
  case permanentFailure(code: String, message: String)
  /// Nothing was charged and trying again later may work (5xx, 429, connection refused).
  case transientFailure(reason: String)
  /// The call may or may not have charged (timeout, connection lost mid-call): ask the provider
  /// before any new charge call.
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
}

/// One external payment provider behind one interface (ARCHITECTURE.md §8): the strategy the
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
}
