public import Foundation
public import Logging
import Metrics
import PaymentsCore
public import PaymentsProto
import Postgres
import ProtobufRuntime
public import RPCCore
import ServiceKit

/// What a cancellation found and did (``WorkStore/cancel(paymentID:clientID:)``).
public struct CancelResult: Sendable {
  public var decision: CancelDecision
  /// The payment after the cancellation (as before it for ``CancelDecision/refuse(_:)``).
  public var payment: Payments_V1_Payment
}

extension WorkStore {
  /// A client's cancellation of its payment `paymentID`, decided by
  /// ``WorkDecision/cancel(status:outcomeUnknown:)`` on the row locked `FOR UPDATE`, in one
  /// transaction with its event:
  /// - waiting with no call of unknown outcome: `CANCELED` now. The row's lease token is cleared,
  ///   so a worker that claimed it but has not begun its call cannot begin it
  ///   (``begin(_:_:)`` is conditional on the token): of "charged" and "cancelled", exactly one
  ///   happens.
  /// - a call in flight or of unknown outcome: marked `cancel_requested`; the worker's next step
  ///   is an inquiry (after the backoff an unknown outcome already has), and its answer ends it
  ///   `SUCCEEDED` or `CANCELED` (never charged again).
  ///
  /// Returns `nil` when the dispatcher does not have the payment (yet); the decision uses only
  /// what it consumed from Kafka, never data from the caller. Throws `NOT_FOUND` for another
  /// client's payment.
  public func cancel(paymentID: String, clientID: String) async throws -> CancelResult? {
    let result = try await pool.withTransaction { connection -> CancelResult? in
      let rows = try await connection.query(
        """
        SELECT payment_id, client_id, order_record, provider, status, version, attempts, provider_key, outcome_unknown,
               provider_reference, failure_code, failure_message, updated_at
        FROM dispatcher.payments WHERE payment_id = \(paymentID) FOR UPDATE
        """)
      guard let row = try rows.singleRow() else { return nil }
      var (item, payment) = try Self.decode(row)
      guard item.clientID == clientID else {
        // Another client's payment: exactly as if it did not exist.
        throw RPCError(.notFound, "no payment \(paymentID) of this client")
      }
      let decision = WorkDecision.cancel(status: item.status, outcomeUnknown: item.outcomeUnknown)
      switch decision {
      case .alreadyCanceled, .refuse:
        return CancelResult(decision: decision, payment: payment)
      case .cancelNow:
        let updated = try await connection.query(
          """
          UPDATE dispatcher.payments SET status = \(Payments_V1_PaymentStatus.canceled.rawValue), version = version + 1,
            cancel_requested = true, lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, updated_at = now()
          WHERE payment_id = \(paymentID)
          RETURNING version, updated_at
          """)
        guard let changed = try updated.singleRow() else { return nil }
        item.status = .canceled
        item.version = try changed.decode(Int64.self, at: 0)
        let event = Self.event(
          for: item, transition: item.cancellation, at: try changed.decode(Date.self, at: 1))
        try await Self.insertEvent(event, of: item, connection)
        return CancelResult(decision: decision, payment: event.payment ?? payment)
      case .awaitInquiry:
        // A waiting payment whose last outcome is unknown keeps its backoff (an inquiry right
        // after a timeout may find a request the provider is still processing); one in a call
        // becomes due when the call's result is applied.
        try await connection.execute(
          "UPDATE dispatcher.payments SET cancel_requested = true WHERE payment_id = \(paymentID)")
        payment.status = item.status
        return CancelResult(decision: decision, payment: payment)
      }
    }
    if let result, result.decision == .cancelNow {
      Self.countCompleted(.canceled, provider: result.payment.provider)
    }
    return result
  }

  /// The payment as the dispatcher has it, or `nil` when it has no such payment.
  public func payment(_ paymentID: String) async throws -> Payments_V1_Payment? {
    guard
      let row = try await pool.query(
        """
        SELECT payment_id, client_id, order_record, provider, status, version, attempts, provider_key, outcome_unknown,
               provider_reference, failure_code, failure_message, updated_at
        FROM dispatcher.payments WHERE payment_id = \(paymentID)
        """
      ).singleRow()
    else { return nil }
    return try Self.decode(row).1
  }

  static func decode(_ row: PostgresRow) throws -> (WorkItem, Payments_V1_Payment) {
    let order = try Payments_V1_PaymentOrderRecord(serializedBytes: try row.decode([UInt8].self, at: 2))
    let item = WorkItem(
      paymentID: try row.decode(String.self, at: 0), clientID: try row.decode(String.self, at: 1),
      order: order,
      provider: try row.decode(String.self, at: 3),
      status: Payments_V1_PaymentStatus(rawValue: try row.decode(Int32.self, at: 4)),
      version: try row.decode(Int64.self, at: 5), attempts: try row.decode(Int32.self, at: 6),
      providerKey: try row.decode(String.self, at: 7), outcomeUnknown: try row.decode(Bool.self, at: 8))
    var transition = Transition(status: item.status, attempts: item.attempts)
    transition.providerReference = try row.decode(String.self, at: 9)
    let failureCode = try row.decode(String.self, at: 10)
    if !failureCode.isEmpty { transition.failure = (failureCode, try row.decode(String.self, at: 11)) }
    let event = event(for: item, transition: transition, at: try row.decode(Date.self, at: 12))
    return (item, event.payment ?? .init())
  }
}

/// `payments.v1.PaymentDispatcherService` (internal; the command service calls it for
/// `CancelPayment`): cancels a payment in the dispatcher, which owns its execution state, and
/// waits (within the call's deadline, at most ``maximumWait``) for a payment whose order has not
/// reached it yet, and for a cancellation that needs the provider's answer first.
public struct PaymentDispatcherHandler: Payments_V1_PaymentDispatcherService.ServiceProtocol {
  let store: WorkStore
  private let logger: Logger
  /// The longest a cancellation waits for an inquiry's answer.
  public var maximumWait: Duration = .seconds(10)

  public init(store: WorkStore, logger: Logger) {
    self.store = store
    self.logger = logger
  }

  public func cancelPayment(
    _ request: Payments_V1_DispatcherCancelRequest, context: ServerContext
  ) async throws -> Payments_V1_Payment {
    let client = try AuthenticatedClient.required()
    guard PaymentID.isWellFormed(request.paymentID) else {
      throw RPCError(.invalidArgument, "payment_id must be a payment ID (pay_ and 32 hex digits)")
    }
    let end = waitEnd(context)
    let result = try await waitingForPayment(request.paymentID, until: end) {
      try await store.cancel(paymentID: request.paymentID, clientID: client.clientID)
    } isMissing: {
      $0 == nil
    }
    guard let result else {
      throw RPCError(
        .unavailable,
        "payment \(request.paymentID) has not reached the dispatcher yet (its order is on the way through Kafka); nothing changed, retry"
      )
    }
    Counter(label: "payment_cancellations_total", dimensions: [("decision", "\(result.decision)")])
      .increment()
    switch result.decision {
    case .cancelNow, .alreadyCanceled:
      return result.payment
    case .refuse:
      throw Self.refusal(result.payment)
    case .awaitInquiry:
      return try await awaitDecision(result.payment, until: end)
    }
  }

  /// Runs `attempt` (one transaction on the payment) until `isMissing` says the dispatcher has the
  /// payment, or the wait ends (``maximumWait``, the call's deadline): an order the client was
  /// told is accepted is normally here within milliseconds, but it travels through Kafka. Storage
  /// failures are `UNAVAILABLE` (nothing changed); a decision's `RPCError` passes through.
  func waitingForPayment<Result: Sendable>(
    _ paymentID: String, until end: ContinuousClock.Instant, _ attempt: () async throws -> Result,
    isMissing: (Result) -> Bool
  ) async throws -> Result {
    let clock = ContinuousClock()
    while true {
      let result: Result
      do {
        result = try await attempt()
      } catch let error as RPCError {
        throw error
      } catch {
        throw RPCError(.unavailable, "the request could not be stored; nothing changed, retry", cause: error)
      }
      guard isMissing(result), clock.now + .milliseconds(50) < end else { return result }
      try await Task.sleep(for: .milliseconds(50))
    }
  }

  /// When a call's waiting ends: after ``maximumWait``, and in time to answer within its deadline.
  func waitEnd(_ context: ServerContext) -> ContinuousClock.Instant {
    let end = ContinuousClock.now + maximumWait
    return context.deadline.map { min(end, $0 - .milliseconds(250)) } ?? end
  }

  /// Waits for the inquiry that decides a marked payment.
  private func awaitDecision(_ marked: Payments_V1_Payment, until end: ContinuousClock.Instant) async throws
    -> Payments_V1_Payment
  {
    let clock = ContinuousClock()
    var current = marked
    while clock.now < end {
      try await Task.sleep(for: .milliseconds(50))
      if let payment = try? await store.payment(marked.paymentID) { current = payment }
      if current.status.isTerminal { break }
    }
    switch current.status {
    case .canceled: return current
    case .succeeded, .failed: throw Self.refusal(current)
    default:
      throw RPCError(
        .failedPrecondition,
        "payment \(current.paymentID) is \(Self.name(current.status)) and the outcome of its last provider call is not known yet; the cancellation is recorded: the payment is never charged again, and it becomes CANCELED as soon as the provider confirms nothing was charged (call CancelPayment again or watch the payment)"
      )
    }
  }

  static func refusal(_ payment: Payments_V1_Payment) -> RPCError {
    switch payment.status {
    case .succeeded:
      RPCError(
        .failedPrecondition,
        "payment \(payment.paymentID) is SUCCEEDED: it was charged (provider reference \(payment.providerReference)) and cannot be cancelled"
      )
    default:
      RPCError(
        .failedPrecondition,
        "payment \(payment.paymentID) is \(name(payment.status))\(payment.failure.map { " (\($0.code))" } ?? ""): nothing was charged and there is nothing to cancel"
      )
    }
  }

  static func name(_ status: Payments_V1_PaymentStatus) -> String {
    switch status {
    case .accepted: "ACCEPTED"
    case .processing: "PROCESSING"
    case .retryScheduled: "RETRY_SCHEDULED"
    case .succeeded: "SUCCEEDED"
    case .failed: "FAILED"
    case .canceled: "CANCELED"
    default: "UNSPECIFIED"
    }
  }
}
