public import Foundation
public import Logging
import Metrics
import PaymentsCore
public import PaymentsProto
import Postgres
import ProtobufRuntime
public import RPCCore
import ServiceKit

/// What a cancellation found and did (``WorkStore/cancel(_:provider:)``).
public struct CancelResult: Sendable {
  public var decision: CancelDecision
  /// The payment after the cancellation (as before it for ``CancelDecision/refuse(_:)``).
  public var payment: Payments_V1_Payment
}

extension WorkStore {
  /// A client's cancellation of `order`'s payment, decided by ``WorkDecision/cancel(status:outcomeUnknown:)``
  /// on the row locked `FOR UPDATE`, in one transaction with its event:
  /// - waiting with no call of unknown outcome: `CANCELED` now. The row's lease token is cleared,
  ///   so a worker that claimed it but has not begun its call cannot begin it
  ///   (``begin(_:_:)`` is conditional on the token): of "charged" and "cancelled", exactly one
  ///   happens.
  /// - a call in flight or of unknown outcome: marked `cancel_requested` and due now; the worker
  ///   inquires and the answer ends it `SUCCEEDED` or `CANCELED` (never charged again).
  /// - not here yet (its order is still on the way through Kafka): stored as `CANCELED`, version
  ///   2, so that the order, when it arrives, is a duplicate and never charged. `provider` is
  ///   where it would have been routed.
  public func cancel(_ order: Payments_V1_PaymentOrderRecord, provider: String) async throws -> CancelResult {
    while true {
      if let result = try await cancelExisting(order) { return result }
      let inserted = try await pool.withTransaction { connection -> CancelResult? in
        let rows = try await connection.query(
          """
          INSERT INTO dispatcher.payments (payment_id, client_id, order_record, provider, status, version, provider_key,
                                           next_attempt_at, created_at, updated_at, cancel_requested)
          VALUES (\(order.paymentID), \(order.clientID), \(order.serializedBytes()), \(provider),
                  \(Payments_V1_PaymentStatus.canceled.rawValue), 2, \(order.paymentID), now(),
                  \(order.acceptedAt?.date ?? Date()), now(), true)
          ON CONFLICT (payment_id) DO NOTHING
          RETURNING updated_at
          """)
        guard let row = try rows.singleRow() else { return nil }  // intake was faster: decide on its row
        var item = WorkItem(
          paymentID: order.paymentID, clientID: order.clientID, order: order, provider: provider,
          status: .canceled, version: 2, cancelRequested: true)
        item.providerKey = order.paymentID
        let event = Self.event(for: item, transition: item.cancellation, at: try row.decode(Date.self, at: 0))
        try await Self.insertEvent(event, of: item, connection)
        return CancelResult(decision: .cancelNow, payment: event.payment ?? .init())
      }
      if let inserted {
        Self.countCompleted(.canceled, provider: provider)
        return inserted
      }
    }
  }

  private func cancelExisting(_ order: Payments_V1_PaymentOrderRecord) async throws -> CancelResult? {
    let result = try await pool.withTransaction { connection -> CancelResult? in
      let rows = try await connection.query(
        """
        SELECT payment_id, client_id, order_record, provider, status, version, attempts, provider_key, outcome_unknown,
               provider_reference, failure_code, failure_message, updated_at
        FROM dispatcher.payments WHERE payment_id = \(order.paymentID) FOR UPDATE
        """)
      guard let row = try rows.singleRow() else { return nil }
      var (item, payment) = try Self.decode(row)
      guard item.clientID == order.clientID else {
        // Payment IDs are unique; a mismatch means the caller does not own it.
        throw RPCError(.notFound, "no payment \(order.paymentID) of this client")
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
          WHERE payment_id = \(order.paymentID)
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
        // Due now unless a call is in flight (then its outcome makes it due: see apply).
        try await connection.execute(
          """
          UPDATE dispatcher.payments SET cancel_requested = true,
            next_attempt_at = CASE WHEN status = \(Payments_V1_PaymentStatus.processing.rawValue) THEN next_attempt_at
                                   ELSE least(next_attempt_at, now()) END
          WHERE payment_id = \(order.paymentID)
          """)
        try await connection.execute("SELECT pg_notify('dispatcher_work', '')")
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

  private static func decode(_ row: PostgresRow) throws -> (WorkItem, Payments_V1_Payment) {
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
/// waits (within the call's deadline, at most ``maximumWait``) for a cancellation that needs the
/// provider's answer first.
public struct PaymentDispatcherHandler: Payments_V1_PaymentDispatcherService.ServiceProtocol {
  private let store: WorkStore
  private let providers: ProviderRegistry
  private let logger: Logger
  /// The longest a cancellation waits for an inquiry's answer.
  public var maximumWait: Duration = .seconds(10)

  public init(store: WorkStore, providers: ProviderRegistry, logger: Logger) {
    self.store = store
    self.providers = providers
    self.logger = logger
  }

  public func cancelPayment(
    _ request: Payments_V1_DispatcherCancelRequest, context: ServerContext
  ) async throws -> Payments_V1_Payment {
    guard let client = AuthenticatedClient.current else {
      throw RPCError(.unauthenticated, "no authenticated client")
    }
    guard let order = request.order, !order.paymentID.isEmpty else {
      throw RPCError(.invalidArgument, "order.payment_id is required")
    }
    guard order.clientID == client.clientID else {
      throw RPCError(.notFound, "no payment \(order.paymentID) of this client")
    }
    let result: CancelResult
    do {
      result = try await store.cancel(
        order, provider: providers.route(requested: order.provider, currency: order.amount?.currency ?? ""))
    } catch let error as RPCError {
      throw error
    } catch {
      throw RPCError(
        .unavailable, "the cancellation could not be stored; nothing changed, retry", cause: error)
    }
    Counter(label: "payment_cancellations_total", dimensions: [("decision", "\(result.decision)")])
      .increment()
    switch result.decision {
    case .cancelNow, .alreadyCanceled:
      return result.payment
    case .refuse:
      throw Self.refusal(result.payment)
    case .awaitInquiry:
      return try await awaitDecision(result.payment, context: context)
    }
  }

  /// Waits for the inquiry that decides a marked payment.
  private func awaitDecision(_ marked: Payments_V1_Payment, context: ServerContext) async throws
    -> Payments_V1_Payment
  {
    let clock = ContinuousClock()
    var end = clock.now + maximumWait
    if let deadline = context.deadline { end = min(end, deadline - .milliseconds(250)) }
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
