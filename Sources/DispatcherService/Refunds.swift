public import Foundation
import Metrics
public import PaymentsCore
public import PaymentsProto
public import Postgres
import ProtobufRuntime
public import RPCCore
import ServiceKit
import TLS

/// A client's request for a refund, as the dispatcher stores it.
public struct RefundSubmission: Sendable {
  public var clientID: String
  public var idempotencyKey: String
  public var paymentID: String
  public var amountMinor: Int64
  public var reason: String
  /// The currency the client means (empty: the payment's).
  public var currency: String
  /// Identifies the request's fields (without the key): a key reused with other fields is refused.
  public var fingerprint: [UInt8]

  public init(
    clientID: String, idempotencyKey: String, paymentID: String, amountMinor: Int64, reason: String,
    currency: String = "", fingerprint: [UInt8]
  ) {
    self.currency = currency
    self.clientID = clientID
    self.idempotencyKey = idempotencyKey
    self.paymentID = paymentID
    self.amountMinor = amountMinor
    self.reason = reason
    self.fingerprint = fingerprint
  }
}

/// What ``WorkStore/createRefund(_:)`` found and did.
public enum RefundCreation: Sendable {
  /// Stored, `PENDING`, with its event.
  case created(Payments_V1_Refund)
  /// The key was used for an identical request: that refund, as it is now.
  case replayed(Payments_V1_Refund)
  /// The key was used for a different request (the refund it created).
  case keyReused(refundID: String)
  /// The dispatcher does not have the payment (yet).
  case paymentNotHere
  /// The payment is not `SUCCEEDED`.
  case notRefundable(Payments_V1_PaymentStatus)
  /// The request names another currency than the payment's.
  case currencyMismatch(payment: String)
  /// The payment has ``WorkStore/maximumRefundsPerPayment`` refunds already.
  case tooManyRefunds(Int)
  /// Pending and succeeded refunds leave only `refundable` of the payment's `amount`.
  case exceedsRefundable(amount: Int64, refundable: Int64, currency: String)
}

extension WorkStore {
  /// Stores a client's refund in one transaction on the payment's row, locked `FOR UPDATE`: the
  /// payment must be the client's and `SUCCEEDED`, and its pending and succeeded refunds plus
  /// this one must not exceed its amount. Every refund of a payment is created (and changes
  /// state) under that lock, so the check holds for concurrent requests on any instance. The
  /// refund's event (the payment with its refunds, a new version) is written with it.
  public func createRefund(_ request: RefundSubmission) async throws -> RefundCreation {
    let result = try await pool.withTransaction { connection -> RefundCreation in
      guard let row = try await Self.lockPayment(request.paymentID, connection) else {
        return .paymentNotHere
      }
      let (item, payment) = try Self.decode(row)
      guard item.clientID == request.clientID else {
        throw RPCError(.notFound, "no payment \(request.paymentID) of this client")
      }
      if let replay = try await Self.existingRefund(request, connection) { return replay }
      guard item.status == .succeeded else { return .notRefundable(item.status) }
      let existing = try await connection.query(
        """
        SELECT coalesce(sum(amount_minor) FILTER (WHERE status = ANY(\(PostgresArray(Self.committedRefunds))::integer[])), 0)::bigint,
               count(*)
        FROM dispatcher.refunds WHERE payment_id = \(request.paymentID)
        """
      )[0]
      let committed = try existing.decode(Int64.self, at: 0)
      guard try existing.decode(Int.self, at: 1) < Self.maximumRefundsPerPayment else {
        return .tooManyRefunds(Self.maximumRefundsPerPayment)
      }
      let captured = payment.amount?.amountMinor ?? 0
      let currency = payment.amount?.currency ?? ""
      guard request.currency.isEmpty || request.currency == currency else {
        return .currencyMismatch(payment: currency)
      }
      guard RefundDecision.fits(request.amountMinor, captured: captured, committed: committed) else {
        return .exceedsRefundable(
          amount: captured, refundable: max(captured - committed, 0), currency: currency)
      }
      let refundID = RefundID.generate()
      let inserted = try await connection.query(
        """
        INSERT INTO dispatcher.refunds (refund_id, payment_id, client_id, idempotency_key, fingerprint, amount_minor,
                                        currency, reason, provider, status, provider_key, created_at, updated_at)
        VALUES (\(refundID), \(request.paymentID), \(request.clientID), \(request.idempotencyKey), \(request.fingerprint),
                \(request.amountMinor), \(currency), \(request.reason), \(item.provider),
                \(Payments_V1_RefundStatus.pending.rawValue), \(refundID), clock_timestamp(), clock_timestamp())
        ON CONFLICT (client_id, idempotency_key) DO NOTHING
        RETURNING refund_id
        """)
      guard try inserted.singleRow() != nil else {
        // The same key, committed meanwhile for another payment (this payment's lock did not
        // order it): answered as any reuse of the key.
        return try await Self.existingRefund(request, connection) ?? .keyReused(refundID: "")
      }
      let event = try await Self.refundEvent(paymentID: request.paymentID, refundID: refundID, connection)
      return .created(event.payment?.refunds.first { $0.refundID == refundID } ?? .init())
    }
    if case .created = result {
      Counter(label: "refunds_created_total").increment()
    }
    return result
  }

  /// The most refunds one payment can have (failed ones included). Every event of a payment
  /// carries all its refunds, so this bounds the size of its events and read-model rows (about
  /// 100 KB at the most).
  public static let maximumRefundsPerPayment = 100

  /// Refund statuses whose amount counts against the refundable amount.
  static let committedRefunds: [Int32] = [Payments_V1_RefundStatus.pending, .succeeded].map(\.rawValue)

  private static func lockPayment(_ paymentID: String, _ connection: PostgresConnection) async throws
    -> PostgresRow?
  {
    try await connection.query(
      """
      SELECT payment_id, client_id, order_record, provider, status, version, attempts, provider_key, outcome_unknown,
             provider_reference, failure_code, failure_message, updated_at
      FROM dispatcher.payments WHERE payment_id = \(paymentID) FOR UPDATE
      """
    ).singleRow()
  }

  /// The refund already created with the request's key: a replay, or a reuse for another request.
  private static func existingRefund(_ request: RefundSubmission, _ connection: PostgresConnection)
    async throws
    -> RefundCreation?
  {
    guard
      let row = try await connection.query(
        """
        SELECT refund_id, payment_id, fingerprint FROM dispatcher.refunds
        WHERE client_id = \(request.clientID) AND idempotency_key = \(request.idempotencyKey)
        """
      ).singleRow()
    else { return nil }
    let refundID = try row.decode(String.self, at: 0)
    guard try row.decode([UInt8].self, at: 2) == request.fingerprint else {
      return .keyReused(refundID: refundID)
    }
    let refunds = try await refunds(ofPayment: try row.decode(String.self, at: 1), connection)
    return .replayed(refunds.first { $0.refundID == refundID } ?? .init())
  }

  /// The refunds of a payment as the API shows them, oldest first. (Times are taken with
  /// `clock_timestamp()` under the payment's lock, so they follow the order the refunds were
  /// stored and changed in, not the order their transactions began.)
  static func refunds(ofPayment paymentID: String, _ connection: PostgresConnection) async throws
    -> [Payments_V1_Refund]
  {
    try await connection.query(
      """
      SELECT refund_id, payment_id, idempotency_key, amount_minor, currency, reason, status, provider_reference,
             attempts, failure_code, failure_message, created_at, updated_at
      FROM dispatcher.refunds WHERE payment_id = \(paymentID) ORDER BY created_at, refund_id
      """
    ).map { row in
      try Payments_V1_Refund.with { refund in
        refund.refundID = try row.decode(String.self, at: 0)
        refund.paymentID = try row.decode(String.self, at: 1)
        refund.idempotencyKey = try row.decode(String.self, at: 2)
        let amount = try row.decode(Int64.self, at: 3)
        let currency = try row.decode(String.self, at: 4)
        refund.amount = .with {
          $0.amountMinor = amount
          $0.currency = currency
        }
        refund.reason = try row.decode(String.self, at: 5)
        refund.status = Payments_V1_RefundStatus(rawValue: try row.decode(Int32.self, at: 6))
        refund.providerReference = try row.decode(String.self, at: 7)
        refund.attempts = try row.decode(Int32.self, at: 8)
        let failureCode = try row.decode(String.self, at: 9)
        if !failureCode.isEmpty {
          let message = try row.decode(String.self, at: 10)
          refund.failure = .with {
            $0.code = failureCode
            $0.message = message
          }
        }
        refund.createdAt = Google_Protobuf_Timestamp(date: try row.decode(Date.self, at: 11))
        refund.updatedAt = Google_Protobuf_Timestamp(date: try row.decode(Date.self, at: 12))
      }
    }
  }

  /// A change of refund `refundID` as an event of its payment: the payment's version goes up,
  /// and the event carries the payment with all its refunds and refunded total. The caller holds
  /// the payment's row lock (or takes it here, with the version update).
  @discardableResult
  static func refundEvent(paymentID: String, refundID: String, _ connection: PostgresConnection) async throws
    -> Payments_V1_PaymentEvent
  {
    let rows = try await connection.query(
      """
      UPDATE dispatcher.payments SET version = version + 1, updated_at = clock_timestamp()
      WHERE payment_id = \(paymentID)
      RETURNING payment_id, client_id, order_record, provider, status, version, attempts, provider_key, outcome_unknown,
                provider_reference, failure_code, failure_message, updated_at
      """)
    guard let row = try rows.singleRow() else {
      throw RPCError(.internal, "refund \(refundID) of payment \(paymentID), which is not stored")
    }
    let (item, decoded) = try decode(row)
    var payment = decoded
    payment.refunds = try await refunds(ofPayment: paymentID, connection)
    let refunded = payment.refunds.filter { $0.status == .succeeded }.reduce(Int64(0)) {
      $0 + ($1.amount?.amountMinor ?? 0)
    }
    if refunded > 0 {
      payment.refunded = .with {
        $0.amountMinor = refunded
        $0.currency = payment.amount?.currency ?? ""
      }
    }
    let status = payment.refunds.first { $0.refundID == refundID }?.status ?? .pending
    let event = Payments_V1_PaymentEvent.with { event in
      event.eventID = "\(paymentID):\(item.version)"
      event.paymentID = paymentID
      event.type =
        switch status {
        case .succeeded: .refundSucceeded
        case .failed: .refundFailed
        default: .refundPending
        }
      event.version = item.version
      event.occurredAt = payment.updatedAt
      event.payment = payment
      event.clientID = item.clientID
      event.refundID = refundID
    }
    try await insertEvent(event, of: item, connection)
    return event
  }

  // MARK: Refund work

  /// Claims the most overdue due refund of `provider` that is not leased, or returns `nil`.
  public func claimRefund(provider: String) async throws -> RefundItem? {
    guard
      let row = try await pool.query(
        """
        WITH claimed AS (
          UPDATE dispatcher.refunds SET lease_owner = \(owner), lease_token = \(Int64.random(in: 1...Int64.max)),
            lease_expires_at = now() + \(lease.seconds) * interval '1 second'
          WHERE refund_id = (
            SELECT refund_id FROM dispatcher.refunds
            WHERE provider = \(provider) AND status = \(Payments_V1_RefundStatus.pending.rawValue)
              AND next_attempt_at <= now() AND (lease_expires_at IS NULL OR lease_expires_at < now())
            ORDER BY next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED)
          RETURNING *)
        SELECT r.refund_id, r.payment_id, r.client_id, r.provider, r.amount_minor, r.currency, r.reason, r.status,
               r.attempts, r.provider_key, r.outcome_unknown, p.provider_reference, p.provider_key, r.lease_token
        FROM claimed r JOIN dispatcher.payments p USING (payment_id)
        """
      ).singleRow()
    else { return nil }
    return RefundItem(
      refundID: try row.decode(String.self, at: 0), paymentID: try row.decode(String.self, at: 1),
      clientID: try row.decode(String.self, at: 2), provider: try row.decode(String.self, at: 3),
      amountMinor: try row.decode(Int64.self, at: 4), currency: try row.decode(String.self, at: 5),
      reason: try row.decode(String.self, at: 6),
      status: Payments_V1_RefundStatus(rawValue: try row.decode(Int32.self, at: 7)),
      attempts: try row.decode(Int32.self, at: 8), providerKey: try row.decode(String.self, at: 9),
      outcomeUnknown: try row.decode(Bool.self, at: 10), chargeReference: try row.decode(String.self, at: 11),
      chargeKey: try row.decode(String.self, at: 12), leaseToken: try row.decode(Int64.self, at: 13))
  }

  /// The fence before a refund call: if this claim still holds the refund, counts the attempt,
  /// marks the outcome unknown until the answer is applied (a worker that vanishes leaves it so:
  /// the next owner inquires), records the call and renews the lease; returns the refund as begun
  /// and the database clock (microseconds), or `nil` when the claim was taken over.
  public func beginRefund(_ item: RefundItem, _ kind: CallKind) async throws -> (RefundItem, now: Int64)? {
    let transition = RefundDecision.begin(item, kind)
    return try await pool.withTransaction { connection -> (RefundItem, now: Int64)? in
      guard
        let row = try await connection.query(
          """
          UPDATE dispatcher.refunds SET attempts = \(transition.attempts), outcome_unknown = true,
            lease_expires_at = now() + \(lease.seconds) * interval '1 second', updated_at = now()
          WHERE refund_id = \(item.refundID) AND lease_token = \(item.leaseToken)
            AND status = \(Payments_V1_RefundStatus.pending.rawValue)
          RETURNING (extract(epoch FROM clock_timestamp()) * 1000000)::bigint
          """
        ).singleRow()
      else { return nil }
      try await connection.execute(
        """
        INSERT INTO dispatcher.attempts (payment_id, attempt, kind, provider, provider_key, started_at)
        VALUES (\(item.refundID), \(transition.attempts), \(kind.rawValue), \(item.provider), \(item.providerKey), now())
        ON CONFLICT (payment_id, attempt, kind) DO UPDATE SET started_at = now(), finished_at = NULL, outcome = NULL
        """)
      var begun = item
      begun.attempts = transition.attempts
      begun.outcomeUnknown = true
      return (begun, try row.decode(Int64.self, at: 0))
    }
  }

  /// Applies a refund transition while this claim's token is on the row, releasing the lease;
  /// a terminal one writes the payment's event (new version, the refund in it) in the same
  /// transaction, taking the payment's row lock first as every refund change does. Returns the
  /// updated refund, or `nil` when the claim was taken over.
  public func applyRefund(
    _ transition: RefundTransition, to item: RefundItem, callOutcome: CallRecord?
  ) async throws -> RefundItem? {
    let applied = try await pool.withTransaction { connection -> RefundItem? in
      // The payment's row lock, as every refund change takes it (its contents are not needed).
      try await connection.execute(
        "SELECT 1 FROM dispatcher.payments WHERE payment_id = \(item.paymentID) FOR UPDATE")
      guard
        try await connection.query(
          """
          UPDATE dispatcher.refunds SET status = \(transition.status.rawValue), attempts = \(transition.attempts),
            provider_reference = \(transition.providerReference), failure_code = \(transition.failureCode),
            failure_message = \(transition.failureMessage), outcome_unknown = \(transition.outcomeUnknown),
            next_attempt_at = coalesce(\(transition.nextAttemptAt), now()),
            lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, updated_at = clock_timestamp()
          WHERE refund_id = \(item.refundID) AND lease_token = \(item.leaseToken)
            AND status = \(Payments_V1_RefundStatus.pending.rawValue)
          RETURNING refund_id
          """
        ).singleRow() != nil
      else { return nil }
      if let callOutcome {
        try await connection.execute(
          """
          UPDATE dispatcher.attempts SET finished_at = now(), outcome = \(callOutcome.outcome), detail = \(callOutcome.detail)
          WHERE payment_id = \(item.refundID) AND attempt = \(item.attempts) AND kind = \(callOutcome.kind.rawValue)
          """)
      }
      if transition.status.isTerminal {
        try await Self.refundEvent(paymentID: item.paymentID, refundID: item.refundID, connection)
      }
      var updated = item
      updated.status = transition.status
      updated.attempts = transition.attempts
      updated.outcomeUnknown = transition.outcomeUnknown
      return updated
    }
    if applied != nil {
      if let callOutcome {
        Counter(
          label: "provider_calls_total",
          dimensions: [
            ("provider", item.provider), ("kind", callOutcome.kind.rawValue),
            ("outcome", callOutcome.outcome),
          ]
        ).increment()
      }
      if transition.status.isTerminal {
        Counter(
          label: "refunds_completed_total",
          dimensions: [
            ("provider", item.provider), ("status", transition.status == .succeeded ? "succeeded" : "failed"),
          ]
        ).increment()
      }
    }
    return applied
  }
}

/// The dispatcher's side of `RefundPayment` (``PaymentDispatcherHandler``).
extension PaymentDispatcherHandler {
  public func refundPayment(
    _ request: Payments_V1_RefundPaymentRequest, context: ServerContext
  ) async throws -> Payments_V1_RefundPaymentResponse {
    let client = try AuthenticatedClient.required()
    let violations = PaymentOrderRules().violations(of: request)
    guard violations.isEmpty else {
      throw RPCError(
        .invalidArgument,
        "invalid RefundPaymentRequest: " + violations.map(\.description).joined(separator: "; "))
    }
    let submission = RefundSubmission(
      clientID: client.clientID, idempotencyKey: request.idempotencyKey, paymentID: request.paymentID,
      amountMinor: request.amountMinor, reason: request.reason, currency: request.currency,
      fingerprint: Self.fingerprint(of: request))
    let creation = try await waitingForPayment(request.paymentID, until: waitEnd(context)) {
      try await store.createRefund(submission)
    } isMissing: { (creation: RefundCreation) in
      if case .paymentNotHere = creation { true } else { false }
    }
    switch creation {
    case .created(let refund):
      return .with { $0.refund = refund }
    case .replayed(let refund):
      return .with {
        $0.refund = refund
        $0.replayed = true
      }
    case .keyReused(let refundID):
      throw RPCError(
        .alreadyExists,
        "idempotency_key '\(PaymentOrderRules.quoted(request.idempotencyKey))' was already used for a different refund request\(refundID.isEmpty ? "" : " (refund \(refundID))"); use a new key for a new refund"
      )
    case .paymentNotHere:
      throw RPCError(
        .unavailable,
        "payment \(request.paymentID) has not reached the dispatcher yet (its order is on the way through Kafka); nothing changed, retry"
      )
    case .notRefundable(let status):
      throw RPCError(
        .failedPrecondition,
        "payment \(request.paymentID) is \(Self.name(status)): only a SUCCEEDED payment can be refunded\(status.isTerminal ? "" : " (wait until it is charged)")"
      )
    case .tooManyRefunds(let maximum):
      throw RPCError(
        .failedPrecondition,
        "payment \(request.paymentID) has \(maximum) refunds, the most one payment can have; nothing was stored"
      )
    case .currencyMismatch(let currency):
      throw RPCError(
        .failedPrecondition,
        "payment \(request.paymentID) is in \(currency), not \(PaymentOrderRules.quoted(request.currency)): amount_minor is in the payment's currency"
      )
    case .exceedsRefundable(let amount, let refundable, let currency):
      throw RPCError(
        .failedPrecondition,
        "a refund of \(request.amountMinor) exceeds what is left to refund of payment \(request.paymentID): \(refundable) of \(amount) \(currency) minor units (pending and succeeded refunds count)"
      )
    }
  }

  /// SHA-256 of the request's fields without its key (deterministic protobuf encoding).
  static func fingerprint(of request: Payments_V1_RefundPaymentRequest) -> [UInt8] {
    var fields = request
    fields.idempotencyKey = ""
    fields.unknownFields = UnknownFields()
    return SHA256.hash(fields.serializedBytes())
  }
}
