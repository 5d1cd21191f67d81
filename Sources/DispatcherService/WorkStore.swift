public import Foundation
import Metrics
import PaymentsCore
public import PaymentsProto
public import Postgres
import ProtobufRuntime

/// A payment a worker holds (claimed with a lease).
public struct WorkItem: Sendable {
  public var paymentID: String
  public var clientID: String
  public var order: Payments_V1_PaymentOrderRecord
  public var provider: String
  public var status: Payments_V1_PaymentStatus
  public var version: Int64
  public var attempts: Int32
  public var providerKey: String
  public var outcomeUnknown: Bool
  /// After this the payment is not charged any more (`FAILED`, reason `expired`); `nil`: never.
  public var expiresAt: Date?
}

/// A state change of a held payment: the new status and what goes with it.
public struct Transition: Sendable {
  public var status: Payments_V1_PaymentStatus
  public var attempts: Int32
  public var providerReference = ""
  public var failure: (code: String, message: String)? = nil
  public var outcomeUnknown = false
  /// When the payment is due next (retries); now when omitted.
  public var nextAttemptAt: Date? = nil
  /// Keep the lease (the worker goes on with the payment) or release it.
  public var keepLease = false
}

/// The dispatcher's tables: intake of orders, claiming due work with a lease, and state
/// changes that commit together with their event in the outbox.
public struct WorkStore: Sendable {
  private let pool: PostgresConnectionPool
  public let owner: String
  public let lease: Duration

  public init(pool: PostgresConnectionPool, owner: String, lease: Duration = .seconds(60)) {
    self.pool = pool
    self.owner = owner
    self.lease = lease
  }

  /// Stores orders as work (a redelivered order changes nothing). `provider` picks each
  /// order's provider; `expiry`, if given, is how long after its acceptance a payment may still
  /// be charged.
  public func intake(
    _ orders: [Payments_V1_PaymentOrderRecord], expiry: Duration? = nil,
    provider: (Payments_V1_PaymentOrderRecord) -> String
  ) async throws {
    guard !orders.isEmpty else { return }
    let expirySeconds = expiry.map {
      Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18
    }
    try await pool.execute(
      """
      INSERT INTO dispatcher.payments (payment_id, client_id, order_record, provider, status, version, provider_key,
                                       next_attempt_at, created_at, updated_at, expires_at)
      SELECT payment_id, client_id, order_record, provider, 1, 1, payment_id, now(), created_at, now(),
             created_at + \(expirySeconds)::float8 * interval '1 second'
      FROM unnest(\(PostgresArray(orders.map(\.paymentID)))::text[], \(PostgresArray(orders.map(\.clientID)))::text[],
                  \(PostgresArray(orders.map { $0.serializedBytes() }))::bytea[],
                  \(PostgresArray(orders.map(provider)))::text[],
                  \(PostgresArray(orders.map { $0.acceptedAt?.date ?? Date() }))::timestamptz[])
        AS t (payment_id, client_id, order_record, provider, created_at)
      ON CONFLICT (payment_id) DO NOTHING
      """)
  }

  /// Claims the most overdue payment that is due and not leased, or returns `nil`.
  public func claim() async throws -> WorkItem? {
    let rows = try await pool.query(
      """
      UPDATE dispatcher.payments SET lease_owner = \(owner),
        lease_expires_at = now() + \(lease.seconds) * interval '1 second'
      WHERE payment_id = (
        SELECT payment_id FROM dispatcher.payments
        WHERE status IN (1, 2, 3) AND next_attempt_at <= now()
          AND (lease_expires_at IS NULL OR lease_expires_at < now())
        ORDER BY next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED)
      RETURNING payment_id, client_id, order_record, provider, status, version, attempts, provider_key, outcome_unknown,
                expires_at
      """)
    guard let row = try rows.singleRow() else { return nil }
    return WorkItem(
      paymentID: try row.decode(String.self, at: 0), clientID: try row.decode(String.self, at: 1),
      order: try Payments_V1_PaymentOrderRecord(serializedBytes: try row.decode([UInt8].self, at: 2)),
      provider: try row.decode(String.self, at: 3),
      status: Payments_V1_PaymentStatus(rawValue: try row.decode(Int32.self, at: 4)),
      version: try row.decode(Int64.self, at: 5), attempts: try row.decode(Int32.self, at: 6),
      providerKey: try row.decode(String.self, at: 7), outcomeUnknown: try row.decode(Bool.self, at: 8),
      expiresAt: try row.decode(Date?.self, at: 9))
  }

  /// How long until the next payment is due (nil: nothing pending).
  public func untilNextDue() async throws -> Duration? {
    let rows = try await pool.query(
      """
      SELECT extract(epoch FROM min(greatest(next_attempt_at, coalesce(lease_expires_at, next_attempt_at))) - now())
      FROM dispatcher.payments WHERE status IN (1, 2, 3)
      """)
    guard let seconds = try rows[0].decode(Double?.self, at: 0) else { return nil }
    return .milliseconds(Int64(max(0, seconds) * 1000))
  }

  /// How many payments are due and not leased (waiting for a worker).
  public func dueCount() async throws -> Int {
    try await pool.query(
      """
      SELECT count(*) FROM dispatcher.payments
      WHERE status IN (1, 2, 3) AND next_attempt_at <= now() AND (lease_expires_at IS NULL OR lease_expires_at < now())
      """
    )[0].decode(Int.self, at: 0)
  }

  /// Gives back every payment this instance holds, so that another instance takes it over at
  /// once instead of after the lease (on shutdown). A payment left `PROCESSING` is inquired
  /// about first by whoever takes it, so a call that may have charged is never repeated blindly.
  @discardableResult
  public func releaseLeases() async throws -> Int {
    try await pool.query(
      """
      UPDATE dispatcher.payments SET lease_owner = NULL, lease_expires_at = NULL
      WHERE lease_owner = \(owner) RETURNING payment_id
      """
    ).count
  }

  /// Records a provider call before it is made (before its rate-limit grant, so
  /// `started_at` includes the wait for the grant).
  public func recordCall(_ item: WorkItem, kind: String) async throws {
    try await pool.execute(
      """
      INSERT INTO dispatcher.attempts (payment_id, attempt, kind, provider, provider_key, started_at)
      VALUES (\(item.paymentID), \(item.attempts), \(kind), \(item.provider), \(item.providerKey), now())
      ON CONFLICT (payment_id, attempt, kind) DO UPDATE SET started_at = now(), finished_at = NULL, outcome = NULL
      """)
  }

  /// Records the outcome of a call that changes no state (an inquiry that found no charge, before
  /// the charge that follows it).
  public func finishCall(_ item: WorkItem, kind: String, outcome: String, detail: String) async throws {
    try await pool.execute(
      """
      UPDATE dispatcher.attempts SET finished_at = now(), outcome = \(outcome), detail = \(detail)
      WHERE payment_id = \(item.paymentID) AND attempt = \(item.attempts) AND kind = \(kind)
      """)
    Counter(
      label: "provider_calls_total",
      dimensions: [("provider", item.provider), ("kind", kind), ("outcome", outcome)]
    ).increment()
  }

  /// Applies a transition and writes its event to the outbox, in one transaction, if this worker
  /// still holds the lease. Returns the updated item, or `nil` when the lease was lost (another
  /// instance took the payment over; this worker's result is dropped).
  public func apply(
    _ transition: Transition, to item: WorkItem, callOutcome: (kind: String, outcome: String, detail: String)?
  ) async throws -> WorkItem? {
    try PaymentLifecycle.check(item.status, transition.status)
    let applied: WorkItem? = try await pool.withTransaction { connection in
      let rows = try await connection.query(
        """
        UPDATE dispatcher.payments SET status = \(transition.status.rawValue), version = version + 1,
          attempts = \(transition.attempts), provider_reference = \(transition.providerReference),
          failure_code = \(transition.failure?.code ?? ""), failure_message = \(transition.failure?.message ?? ""),
          outcome_unknown = \(transition.outcomeUnknown),
          next_attempt_at = coalesce(\(transition.nextAttemptAt), now()),
          lease_owner = CASE WHEN \(transition.keepLease) THEN lease_owner ELSE NULL END,
          lease_expires_at = CASE WHEN \(transition.keepLease) THEN now() + \(lease.seconds) * interval '1 second' ELSE NULL END,
          updated_at = now()
        WHERE payment_id = \(item.paymentID) AND lease_owner = \(owner) AND lease_expires_at > now()
        RETURNING version, updated_at
        """)
      guard let row = try rows.singleRow() else { return nil }
      var updated = item
      updated.status = transition.status
      updated.version = try row.decode(Int64.self, at: 0)
      updated.attempts = transition.attempts
      updated.outcomeUnknown = transition.outcomeUnknown
      let updatedAt = try row.decode(Date.self, at: 1)
      if let callOutcome {
        try await connection.execute(
          """
          UPDATE dispatcher.attempts SET finished_at = now(), outcome = \(callOutcome.outcome), detail = \(callOutcome.detail)
          WHERE payment_id = \(item.paymentID) AND attempt = \(item.attempts) AND kind = \(callOutcome.kind)
          """)
      }
      let event = Self.event(for: updated, transition: transition, at: updatedAt)
      try await connection.execute(
        """
        INSERT INTO dispatcher.outbox (topic, message_key, payload, event_type)
        VALUES ('payments.events.v1', \(item.paymentID), \(event.serializedBytes()), 'payments.v1.PaymentEvent')
        """)
      return updated
    }
    guard let applied else { return nil }
    recordMetrics(of: transition, to: item, callOutcome: callOutcome)
    return applied
  }

  private func recordMetrics(
    of transition: Transition, to item: WorkItem,
    callOutcome: (kind: String, outcome: String, detail: String)?
  ) {
    if let callOutcome {
      Counter(
        label: "provider_calls_total",
        dimensions: [
          ("provider", item.provider), ("kind", callOutcome.kind), ("outcome", callOutcome.outcome),
        ]
      ).increment()
    }
    if transition.status == .retryScheduled {
      Counter(label: "payment_retries_total", dimensions: [("provider", item.provider)]).increment()
    }
    if transition.status == .succeeded || transition.status == .failed {
      Counter(
        label: "payments_completed_total",
        dimensions: [
          ("provider", item.provider), ("status", transition.status == .succeeded ? "succeeded" : "failed"),
        ]
      ).increment()
    }
  }

  /// The domain event of a state change, with the payment as it is afterwards.
  static func event(for item: WorkItem, transition: Transition, at time: Date) -> Payments_V1_PaymentEvent {
    var payment = Payments_V1_Payment(acceptedOrder: item.order)
    payment.status = item.status
    payment.provider = item.provider
    payment.providerReference = transition.providerReference
    payment.attempts = item.attempts
    if let failure = transition.failure {
      payment.failure = .with {
        $0.code = failure.code
        $0.message = failure.message
      }
    }
    payment.updatedAt = Google_Protobuf_Timestamp(date: time)
    payment.version = item.version
    return .with { event in
      event.eventID = "\(item.paymentID):\(item.version)"
      event.paymentID = item.paymentID
      event.type = Payments_V1_PaymentEventType(rawValue: item.status.rawValue)
      event.version = item.version
      event.occurredAt = payment.updatedAt
      event.payment = payment
      event.clientID = item.clientID
    }
  }
}

extension Duration {
  var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
