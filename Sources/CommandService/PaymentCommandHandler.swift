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
  /// The dispatcher, which decides cancellations (it owns each payment's execution state).
  private let dispatcher: Payments_V1_PaymentDispatcherService.Client?

  public init(
    store: PaymentOrderStore, rules: PaymentOrderRules,
    dispatcher: Payments_V1_PaymentDispatcherService.Client?
  ) {
    self.store = store
    self.rules = rules
    self.dispatcher = dispatcher
  }

  /// Cancels a payment: the command service finds the client's order, the dispatcher decides
  /// (docs/services.md, "Cancellation"). The caller's `authorization` goes along, so the
  /// dispatcher checks the same key.
  public func cancelPayment(
    _ request: Payments_V1_CancelPaymentRequest, context: ServerContext
  ) async throws -> Payments_V1_CancelPaymentResponse {
    guard let client = AuthenticatedClient.current else {
      throw RPCError(.unauthenticated, "no authenticated client")
    }
    guard PaymentID.isWellFormed(request.paymentID) else {
      throw RPCError(
        .invalidArgument,
        request.paymentID.isEmpty
          ? "invalid CancelPaymentRequest: payment_id is required"
          : "invalid CancelPaymentRequest: payment_id must be a payment ID like pay_0190…, not '\(PaymentOrderRules.quoted(request.paymentID))'"
      )
    }
    let order: Payments_V1_PaymentOrderRecord?
    do {
      order = try await store.order(paymentID: request.paymentID, clientID: client.clientID)
    } catch {
      throw RPCError(.unavailable, "the payment could not be read; nothing changed, retry", cause: error)
    }
    guard let order else { throw RPCError(.notFound, "no payment \(request.paymentID)") }
    guard let dispatcher else {
      throw RPCError(
        .unavailable, "this command service has no dispatcher address configured; nothing changed")
    }
    var metadata = Metadata()
    if let authorization = context.metadata["authorization"] {
      metadata.addString(authorization, forKey: "authorization")
    }
    do {
      let payment = try await dispatcher.cancelPayment(
        .with { $0.paymentID = order.paymentID }, metadata: metadata,
        options: CallOptions(
          timeout: context.deadline.map { ContinuousClock.now.duration(to: $0) } ?? .seconds(15)))
      return .with { $0.payment = payment }
    } catch let error as RPCError {
      switch error.code {
      case .failedPrecondition, .notFound, .invalidArgument, .permissionDenied, .unauthenticated,
        .resourceExhausted, .deadlineExceeded:
        throw RPCError(error.code, error.message)
      default:
        throw RPCError(
          .unavailable,
          "the dispatcher did not answer the cancellation (\(error.code): \(error.message)); retry, cancelling is idempotent",
          cause: error)
      }
    }
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
