import Foundation
public import PaymentsCore
public import PaymentsProto
import Postgres
import ProtobufRuntime
public import RPCCore
import ServiceKit
import TLS

/// `payments.v1.PaymentCommandService`: validates a payment order, stores it durably with its
/// idempotency record and outbox row, and answers `ACCEPTED` (or the replay) once committed.
public struct PaymentCommandHandler: Payments_V1_PaymentCommandService.ServiceProtocol {
  private let store: PaymentOrderStore
  private let rules: PaymentOrderRules

  public init(store: PaymentOrderStore, rules: PaymentOrderRules) {
    self.store = store
    self.rules = rules
  }

  public func submitPayment(
    _ request: Payments_V1_SubmitPaymentRequest, context: ServerContext
  ) async throws -> Payments_V1_SubmitPaymentResponse {
    guard let client = AuthenticatedClient.current else {
      throw RPCError(.unauthenticated, "no authenticated client")
    }
    let violations = rules.violations(of: request)
    guard violations.isEmpty else {
      var details = Metadata()
      details.addBinary(
        Payments_V1_FieldViolations.with {
          $0.violations = violations.map { violation in
            .with {
              $0.field = violation.field
              $0.description = violation.problem
            }
          }
        }.serializedBytes(), forKey: FieldViolationsTrailer.key)
      throw RPCError(
        .invalidArgument,
        "invalid SubmitPaymentRequest: " + violations.map(\.description).joined(separator: "; "),
        metadata: details)
    }
    let now = PaymentClock.now()
    let order = Payments_V1_PaymentOrderRecord.with { order in
      order.paymentID = PaymentID.generate(at: now)
      order.clientID = client.clientID
      order.idempotencyKey = request.idempotencyKey
      order.amount = request.amount
      order.payer = request.payer
      order.payee = request.payee
      order.description = request.description
      order.metadata = request.metadata
      order.provider = request.provider
      order.acceptedAt = Google_Protobuf_Timestamp(date: now)
    }
    let submission = PaymentSubmission(
      clientID: client.clientID, idempotencyKey: request.idempotencyKey,
      fingerprint: Self.fingerprint(of: request), order: order)
    let outcome: SubmissionOutcome
    do {
      outcome = try await store.submit(submission)
    } catch {
      throw RPCError(
        .unavailable,
        "the payment could not be stored; nothing was accepted, retry with the same idempotency key",
        cause: error)
    }
    switch outcome {
    case .accepted(let order):
      return .with { $0.payment = Payments_V1_Payment(acceptedOrder: order) }
    case .replayed(let order):
      return .with {
        $0.payment = Payments_V1_Payment(acceptedOrder: order)
        $0.replayed = true
      }
    case .keyReused(let paymentID):
      throw RPCError(
        .alreadyExists,
        "idempotency_key '\(request.idempotencyKey)' was already used for a different request (payment \(paymentID)); use a new key for a new payment"
      )
    }
  }

  /// SHA-256 over the order fields of `request` in deterministic protobuf encoding: two requests
  /// with equal fields (metadata in any order) have the same fingerprint. Unknown fields a newer
  /// client may send are not part of the order and are left out.
  static func fingerprint(of request: Payments_V1_SubmitPaymentRequest) -> [UInt8] {
    var order = request
    order.idempotencyKey = ""
    order.unknownFields = UnknownFields()
    order.amount?.unknownFields = UnknownFields()
    order.payer?.unknownFields = UnknownFields()
    order.payee?.unknownFields = UnknownFields()
    return SHA256.hash(order.serializedBytes())
  }
}
