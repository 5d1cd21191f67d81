public import Foundation
import PaymentsCore
import PaymentsProto
import ProtobufRuntime

/// A payment as the platform reports it.
public struct Payment: Sendable, Hashable, Identifiable {
  /// The platform's ID, `pay_` and 32 hex digits.
  public var id: String
  /// The key the payment was submitted with.
  public var idempotencyKey: String
  public var amount: Money
  /// The payer's account at the provider.
  public var payer: String
  /// The payee's account at the provider.
  public var payee: String
  public var description: String
  public var metadata: [String: String]
  public var status: PaymentStatus
  /// The provider that executes it.
  public var provider: String
  /// The provider's reference of the charge, once `succeeded`.
  public var providerReference: String
  /// Provider calls made so far.
  public var attempts: Int
  /// Why the payment failed, once `failed`.
  public var failure: Failure?
  public var createdAt: Date
  public var updatedAt: Date
  /// Grows with every change (its refunds' too); a later state always has a higher version.
  public var version: Int64
  /// Its refunds, oldest first (only a `succeeded` payment has any).
  public var refunds: [Refund]
  /// The sum of its succeeded refunds (zero in the payment's currency when none).
  public var refunded: Money

  /// Why a payment failed: a stable, machine-readable `code` (e.g. `card_declined`,
  /// `retries_exhausted`, `expired`) and a message for people.
  public struct Failure: Sendable, Hashable {
    public var code: String
    public var message: String
  }

  init(_ payment: Payments_V1_Payment) {
    id = payment.paymentID
    idempotencyKey = payment.idempotencyKey
    amount = Money(minorUnits: payment.amount?.amountMinor ?? 0, currency: payment.amount?.currency ?? "")
    payer = payment.payer?.accountID ?? ""
    payee = payment.payee?.accountID ?? ""
    description = payment.description
    metadata = payment.metadata
    status = PaymentStatus(payment.status)
    provider = payment.provider
    providerReference = payment.providerReference
    attempts = Int(payment.attempts)
    failure = payment.failure.map { Failure(code: $0.code, message: $0.message) }
    createdAt = payment.createdAt?.date ?? Date(timeIntervalSince1970: 0)
    updatedAt = payment.updatedAt?.date ?? Date(timeIntervalSince1970: 0)
    version = payment.version
    refunds = payment.refunds.map(Refund.init)
    refunded = Money(minorUnits: payment.refunded?.amountMinor ?? 0, currency: amount.currency)
  }
}

/// Where a payment is in its lifecycle.
public enum PaymentStatus: String, Sendable, Hashable, CaseIterable {
  /// Stored; not yet sent to a provider.
  case accepted = "ACCEPTED"
  /// A provider call is under way.
  case processing = "PROCESSING"
  /// A call failed transiently; another follows after a backoff.
  case retryScheduled = "RETRY_SCHEDULED"
  /// Charged. Terminal.
  case succeeded = "SUCCEEDED"
  /// Will not be charged. Terminal.
  case failed = "FAILED"
  /// Cancelled by the client before anything was charged (``PaymentsClient/cancelPayment(_:timeout:)``).
  /// Terminal.
  case canceled = "CANCELED"
  /// A status this SDK version does not know.
  case unknown = "UNKNOWN"

  /// `succeeded`, `failed` or `canceled`: the payment never changes again.
  public var isTerminal: Bool { self == .succeeded || self == .failed || self == .canceled }

  init(_ status: Payments_V1_PaymentStatus) {
    switch status {
    case .accepted: self = .accepted
    case .processing: self = .processing
    case .retryScheduled: self = .retryScheduled
    case .succeeded: self = .succeeded
    case .failed: self = .failed
    case .canceled: self = .canceled
    default: self = .unknown
    }
  }

  var proto: Payments_V1_PaymentStatus {
    switch self {
    case .accepted: .accepted
    case .processing: .processing
    case .retryScheduled: .retryScheduled
    case .succeeded: .succeeded
    case .failed: .failed
    case .canceled: .canceled
    case .unknown: .unspecified
    }
  }
}

/// A payment order: what ``PaymentsClient/submitPayment(_:timeout:)`` sends.
public struct PaymentOrder: Sendable, Hashable {
  public var amount: Money
  /// The payer's account at the provider.
  public var payer: String
  /// The payee's account at the provider.
  public var payee: String
  /// Makes the submission safe to repeat: the same key and order always give the same payment.
  /// `nil`: the SDK makes one (a UUID) and uses it for all its retries of this call.
  public var idempotencyKey: String?
  public var description: String
  public var metadata: [String: String]
  /// A provider by name instead of the platform's routing rules; `nil` for the rules.
  public var provider: String?

  public init(
    amount: Money, payer: String, payee: String, idempotencyKey: String? = nil, description: String = "",
    metadata: [String: String] = [:], provider: String? = nil
  ) {
    self.amount = amount
    self.payer = payer
    self.payee = payee
    self.idempotencyKey = idempotencyKey
    self.description = description
    self.metadata = metadata
    self.provider = provider
  }

  func request(key: String) -> Payments_V1_SubmitPaymentRequest {
    .with {
      $0.idempotencyKey = key
      $0.amount = .with {
        $0.currency = amount.currency
        $0.amountMinor = amount.minorUnits
      }
      $0.payer = .with { $0.accountID = payer }
      $0.payee = .with { $0.accountID = payee }
      $0.description = description
      $0.metadata = metadata
      $0.provider = provider ?? ""
    }
  }
}

/// What a submission returned.
public struct SubmittedPayment: Sendable, Hashable {
  /// The payment (status `accepted` when it was just created).
  public var payment: Payment
  /// True when the key matched an earlier identical submission and nothing new was stored.
  public var replayed: Bool
  /// The idempotency key used (the caller's or the one the SDK made).
  public var idempotencyKey: String
}

/// Which payments ``PaymentsClient/payments(filter:)`` lists.
public struct PaymentFilter: Sendable, Hashable {
  /// Only these statuses; empty for all.
  public var statuses: Set<PaymentStatus>
  /// Only payments created at or after this time.
  public var createdAfter: Date?
  /// Only payments created before this time.
  public var createdBefore: Date?
  /// Payments fetched per call (the server caps it).
  public var pageSize: Int

  public init(
    statuses: Set<PaymentStatus> = [], createdAfter: Date? = nil, createdBefore: Date? = nil,
    pageSize: Int = 100
  ) {
    self.statuses = statuses
    self.createdAfter = createdAfter
    self.createdBefore = createdBefore
    self.pageSize = pageSize
  }
}

/// One entry of the event feed (``PaymentsClient/events(after:pageSize:timeout:)``,
/// ``PaymentsClient/watchEvents(after:)``): a payment as it is after one of its changes.
public struct PaymentEvent: Sendable, Hashable {
  /// Where this event is in your feed: keep it, and continue after it (``PaymentsClient/watchEvents(after:)``)
  /// to miss nothing. Opaque.
  public var cursor: String
  /// The payment after the change; its ``Payment/version`` orders the changes of one payment.
  public var payment: Payment
  /// When the platform recorded the change in the feed.
  public var recordedAt: Date

  init(_ event: Payments_V1_FeedEvent) {
    cursor = event.cursor
    payment = Payment(event.payment ?? .init())
    recordedAt = event.recordedAt?.date ?? Date(timeIntervalSince1970: 0)
  }
}
