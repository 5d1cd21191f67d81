public import Foundation
import PaymentsCore
import PaymentsProto
import ProtobufRuntime

/// Money given back from a succeeded payment (``PaymentsClient/refundPayment(_:amount:reason:idempotencyKey:timeout:)``).
public struct Refund: Sendable, Hashable, Identifiable {
  /// The platform's ID, `ref_` and 32 hex digits.
  public var id: String
  /// The payment it refunds.
  public var paymentID: String
  /// The key the refund was requested with.
  public var idempotencyKey: String
  public var amount: Money
  public var reason: String
  public var status: RefundStatus
  /// The provider's reference of the refund, once `succeeded`.
  public var providerReference: String
  /// Refund calls made, as of its last change.
  public var attempts: Int
  /// Why it failed, once `failed`.
  public var failure: Payment.Failure?
  public var createdAt: Date
  public var updatedAt: Date

  init(_ refund: Payments_V1_Refund) {
    id = refund.refundID
    paymentID = refund.paymentID
    idempotencyKey = refund.idempotencyKey
    amount = Money(minorUnits: refund.amount?.amountMinor ?? 0, currency: refund.amount?.currency ?? "")
    reason = refund.reason
    status = RefundStatus(refund.status)
    providerReference = refund.providerReference
    attempts = Int(refund.attempts)
    failure = refund.failure.map { Payment.Failure(code: $0.code, message: $0.message) }
    createdAt = refund.createdAt?.date ?? Date(timeIntervalSince1970: 0)
    updatedAt = refund.updatedAt?.date ?? Date(timeIntervalSince1970: 0)
  }
}

/// Where a refund is in its lifecycle.
public enum RefundStatus: String, Sendable, Hashable, CaseIterable {
  /// Stored; the platform is asking the provider (and retrying) until it answers for good. Its
  /// amount already counts against what is left to refund.
  case pending = "PENDING"
  /// The money went back to the payer. Terminal.
  case succeeded = "SUCCEEDED"
  /// Nothing was given back (refused, or every attempt failed and the provider confirmed none
  /// refunded); the amount can be refunded again. Terminal.
  case failed = "FAILED"
  /// A status this SDK version does not know.
  case unknown = "UNKNOWN"

  /// `succeeded` or `failed`: the refund never changes again.
  public var isTerminal: Bool { self == .succeeded || self == .failed }

  init(_ status: Payments_V1_RefundStatus) {
    switch status {
    case .pending: self = .pending
    case .succeeded: self = .succeeded
    case .failed: self = .failed
    default: self = .unknown
    }
  }
}

/// What a refund request returned.
public struct SubmittedRefund: Sendable, Hashable {
  /// The refund (status `pending` when it was just created).
  public var refund: Refund
  /// True when the key matched an earlier identical request and nothing new was stored.
  public var replayed: Bool
  /// The idempotency key used (the caller's or the one the SDK made).
  public var idempotencyKey: String
}
