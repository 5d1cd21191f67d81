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
    let client = try AuthenticatedClient.required()
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
    return try await forwarded(context, action: "the cancellation", retry: "retry, cancelling is idempotent")
    {
      dispatcher, metadata, options in
      let payment = try await dispatcher.cancelPayment(
        .with { $0.paymentID = order.paymentID }, metadata: metadata, options: options)
      return .with { $0.payment = payment }
    }
  }

  /// Refunds a payment: the command service checks the request and finds the client's order,
  /// the dispatcher stores the refund (it owns the payment's execution state and refunds) — see
  /// docs/services.md, "Refunds".
  public func refundPayment(
    _ request: Payments_V1_RefundPaymentRequest, context: ServerContext
  ) async throws -> Payments_V1_RefundPaymentResponse {
    let client = try AuthenticatedClient.required()
    let violations = rules.violations(of: request)
    guard violations.isEmpty else { throw Self.invalid("RefundPaymentRequest", violations) }
    let order: Payments_V1_PaymentOrderRecord?
    do {
      order = try await store.order(paymentID: request.paymentID, clientID: client.clientID)
    } catch {
      throw RPCError(.unavailable, "the payment could not be read; nothing changed, retry", cause: error)
    }
    guard order != nil else { throw RPCError(.notFound, "no payment \(request.paymentID)") }
    return try await forwarded(
      context, action: "the refund", retry: "retry with the same idempotency key"
    ) { dispatcher, metadata, options in
      try await dispatcher.refundPayment(request, metadata: metadata, options: options)
    }
  }

  /// Calls the dispatcher with the caller's `authorization` (so it checks the same key) within
  /// the caller's deadline. Its decisions pass through; a failure to reach it is `UNAVAILABLE`.
  private func forwarded<Response>(
    _ context: ServerContext, action: String, retry: String,
    _ call: (Payments_V1_PaymentDispatcherService.Client, Metadata, CallOptions) async throws -> Response
  ) async throws -> Response {
    guard let dispatcher else {
      throw RPCError(
        .unavailable, "this command service has no dispatcher address configured; nothing changed")
    }
    var metadata = Metadata()
    if let authorization = context.metadata["authorization"] {
      metadata.addString(authorization, forKey: "authorization")
    }
    do {
      return try await call(
        dispatcher, metadata,
        CallOptions(timeout: context.deadline.map { ContinuousClock.now.duration(to: $0) } ?? .seconds(15)))
    } catch let error as RPCError {
      switch error.code {
      case .failedPrecondition, .notFound, .invalidArgument, .permissionDenied, .unauthenticated,
        .resourceExhausted, .deadlineExceeded, .alreadyExists:
        throw RPCError(error.code, error.message)
      default:
        throw RPCError(
          .unavailable,
          "the dispatcher did not answer \(action) (\(error.code): \(error.message)); \(retry)",
          cause: error)
      }
    }
  }

  /// `INVALID_ARGUMENT` naming every violation, with them as structured trailer details.
  static func invalid(_ message: String, _ violations: [FieldViolation]) -> RPCError {
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
    return RPCError(
      .invalidArgument, "invalid \(message): " + violations.map(\.description).joined(separator: "; "),
      metadata: details)
  }

  public func submitPayment(
    _ request: Payments_V1_SubmitPaymentRequest, context: ServerContext
  ) async throws -> Payments_V1_SubmitPaymentResponse {
    let client = try AuthenticatedClient.required()
    let violations = rules.violations(of: request)
    guard violations.isEmpty else { throw Self.invalid("SubmitPaymentRequest", violations) }
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
