public import Foundation
public import Kafka
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
  /// This claim's fencing token: every write of the payment is conditional on it.
  public var leaseToken: Int64
  /// The client cancelled the payment while a call of it was in flight or of unknown outcome: it
  /// is never charged again; the next inquiry's answer makes it SUCCEEDED or CANCELED.
  public var cancelRequested: Bool

  public init(
    paymentID: String, clientID: String = "client", order: Payments_V1_PaymentOrderRecord = .init(),
    provider: String = "sandbox", status: Payments_V1_PaymentStatus, version: Int64 = 1, attempts: Int32 = 0,
    providerKey: String? = nil, outcomeUnknown: Bool = false, expiresAt: Date? = nil, leaseToken: Int64 = 0,
    cancelRequested: Bool = false
  ) {
    self.paymentID = paymentID
    self.clientID = clientID
    self.order = order
    self.provider = provider
    self.status = status
    self.version = version
    self.attempts = attempts
    self.providerKey = providerKey ?? paymentID
    self.outcomeUnknown = outcomeUnknown
    self.expiresAt = expiresAt
    self.leaseToken = leaseToken
    self.cancelRequested = cancelRequested
  }
}

/// A state change of a held payment: the new status and what goes with it.
public struct Transition: Sendable, Equatable {
  public var status: Payments_V1_PaymentStatus
  public var attempts: Int32
  public var providerReference = ""
  public var failure: (code: String, message: String)? = nil
  public var outcomeUnknown = false
  /// When the payment is due next (retries); now when omitted.
  public var nextAttemptAt: Date? = nil
  /// Keep the lease (the worker goes on with the payment) or release it.
  public var keepLease = false

  public init(
    status: Payments_V1_PaymentStatus, attempts: Int32, providerReference: String = "",
    failure: (code: String, message: String)? = nil, outcomeUnknown: Bool = false, nextAttemptAt: Date? = nil,
    keepLease: Bool = false
  ) {
    self.status = status
    self.attempts = attempts
    self.providerReference = providerReference
    self.failure = failure
    self.outcomeUnknown = outcomeUnknown
    self.nextAttemptAt = nextAttemptAt
    self.keepLease = keepLease
  }

  public static func == (left: Transition, right: Transition) -> Bool {
    left.status == right.status && left.attempts == right.attempts
      && left.providerReference == right.providerReference && left.failure?.code == right.failure?.code
      && left.failure?.message == right.failure?.message && left.outcomeUnknown == right.outcomeUnknown
      && left.nextAttemptAt == right.nextAttemptAt && left.keepLease == right.keepLease
  }
}

/// The dispatcher's tables: intake of orders, claiming due work with a fenced lease, and state
/// changes that commit together with their event in the outbox.
///
/// Fencing: every claim draws a random token (``WorkItem/leaseToken``); ``begin(_:_:)`` and
/// ``apply(_:to:callOutcome:)`` change the payment only while its row still carries that token.
/// Another claim (after this one's lease ran out) replaces the token, so a worker that lost its
/// payment can neither start a call nor record anything; its payment is then `PROCESSING` for
/// the new owner, which asks the provider before deciding anything.
public struct WorkStore: Sendable {
  let pool: PostgresConnectionPool
  /// This instance (for giving back its leases on shutdown).
  public let owner: String
  /// How long a claim is valid after it is taken and after each call begins; must exceed the
  /// longest call (``PaymentWorker`` checks at start-up).
  public let lease: Duration

  /// The statuses of payments that still need work.
  static let open: [Int32] = [
    Payments_V1_PaymentStatus.accepted, .processing, .retryScheduled,
  ].map(\.rawValue)
  /// The statuses of payments that wait for their next attempt (not in a call).
  static let waiting: [Int32] = [Payments_V1_PaymentStatus.accepted, .retryScheduled].map(\.rawValue)

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
      SELECT payment_id, client_id, order_record, provider, \(Payments_V1_PaymentStatus.accepted.rawValue), 1,
             payment_id, now(), created_at, now(), created_at + \(expirySeconds)::float8 * interval '1 second'
      FROM unnest(\(PostgresArray(orders.map(\.paymentID)))::text[], \(PostgresArray(orders.map(\.clientID)))::text[],
                  \(PostgresArray(orders.map { $0.serializedBytes() }))::bytea[],
                  \(PostgresArray(orders.map(provider)))::text[],
                  \(PostgresArray(orders.map { $0.acceptedAt?.date ?? Date() }))::timestamptz[])
        AS t (payment_id, client_id, order_record, provider, created_at)
      ON CONFLICT (payment_id) DO NOTHING
      """)
  }

  /// Keeps intake records that are not payment orders in `dispatcher.dead_letters` (a
  /// redelivered one is kept once).
  public func deadLetter(_ records: [(KafkaConsumerRecord, String)]) async throws {
    guard !records.isEmpty else { return }
    try await pool.execute(
      """
      INSERT INTO dispatcher.dead_letters (topic, partition, "offset", key, value, reason)
      SELECT * FROM unnest(\(PostgresArray(records.map(\.0.topic)))::text[],
                           \(PostgresArray(records.map { Int($0.0.partition) }))::integer[],
                           \(PostgresArray(records.map(\.0.offset)))::bigint[],
                           \(PostgresArray(records.map { $0.0.key ?? [] }))::bytea[],
                           \(PostgresArray(records.map(\.0.value)))::bytea[],
                           \(PostgresArray(records.map(\.1)))::text[])
      ON CONFLICT (topic, partition, "offset") DO NOTHING
      """)
  }

  /// Claims the most overdue due payment of `provider` that is not leased, or returns `nil`.
  public func claim(provider: String) async throws -> WorkItem? {
    try await claim(
      """
      UPDATE dispatcher.payments SET lease_owner = \(owner), lease_token = \(Self.newToken()),
        lease_expires_at = now() + \(lease.seconds) * interval '1 second'
      WHERE payment_id = (
        SELECT payment_id FROM dispatcher.payments
        WHERE provider = \(provider) AND status = ANY(\(PostgresArray(Self.open))::integer[])
          AND next_attempt_at <= now() AND (lease_expires_at IS NULL OR lease_expires_at < now())
        ORDER BY next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED)
      RETURNING payment_id, client_id, order_record, provider, status, version, attempts, provider_key,
                outcome_unknown, expires_at, lease_token, cancel_requested
      """)
  }

  /// Claims a payment of one of `providers` that expired or was cancelled and cannot have been
  /// charged (waiting, no call of unknown outcome): it ends without a provider call.
  public func claimSettleable(providers: [String]) async throws -> WorkItem? {
    try await claim(
      """
      UPDATE dispatcher.payments SET lease_owner = \(owner), lease_token = \(Self.newToken()),
        lease_expires_at = now() + \(lease.seconds) * interval '1 second'
      WHERE payment_id = (
        SELECT payment_id FROM dispatcher.payments
        WHERE provider = ANY(\(PostgresArray(providers))::text[])
          AND status = ANY(\(PostgresArray(Self.waiting))::integer[]) AND NOT outcome_unknown
          AND (expires_at <= now() OR cancel_requested) AND next_attempt_at <= now()
          AND (lease_expires_at IS NULL OR lease_expires_at < now())
        ORDER BY next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED)
      RETURNING payment_id, client_id, order_record, provider, status, version, attempts, provider_key,
                outcome_unknown, expires_at, lease_token, cancel_requested
      """)
  }

  private func claim(_ query: PostgresQuery) async throws -> WorkItem? {
    guard let row = try await pool.query(query).singleRow() else { return nil }
    return WorkItem(
      paymentID: try row.decode(String.self, at: 0), clientID: try row.decode(String.self, at: 1),
      order: try Payments_V1_PaymentOrderRecord(serializedBytes: try row.decode([UInt8].self, at: 2)),
      provider: try row.decode(String.self, at: 3),
      status: Payments_V1_PaymentStatus(rawValue: try row.decode(Int32.self, at: 4)),
      version: try row.decode(Int64.self, at: 5), attempts: try row.decode(Int32.self, at: 6),
      providerKey: try row.decode(String.self, at: 7), outcomeUnknown: try row.decode(Bool.self, at: 8),
      expiresAt: try row.decode(Date?.self, at: 9), leaseToken: try row.decode(Int64.self, at: 10),
      cancelRequested: try row.decode(Bool.self, at: 11))
  }

  private static func newToken() -> Int64 { Int64.random(in: 1...Int64.max) }

  /// The provider of the most overdue due payment among `providers` that is not leased.
  public func dueProvider(among providers: [String]) async throws -> String? {
    try await dueWork(among: providers)?.provider
  }

  /// The most overdue due work among `providers` that is not leased: a payment or a refund.
  public func dueWork(among providers: [String]) async throws -> DueWork? {
    guard
      let row = try await pool.query(
        """
        (SELECT provider, next_attempt_at, false FROM dispatcher.payments
         WHERE provider = ANY(\(PostgresArray(providers))::text[]) AND status = ANY(\(PostgresArray(Self.open))::integer[])
           AND next_attempt_at <= now() AND (lease_expires_at IS NULL OR lease_expires_at < now())
         ORDER BY next_attempt_at LIMIT 1)
        UNION ALL
        (SELECT provider, next_attempt_at, true FROM dispatcher.refunds
         WHERE provider = ANY(\(PostgresArray(providers))::text[]) AND status = \(Payments_V1_RefundStatus.pending.rawValue)
           AND next_attempt_at <= now() AND (lease_expires_at IS NULL OR lease_expires_at < now())
         ORDER BY next_attempt_at LIMIT 1)
        ORDER BY 2 LIMIT 1
        """
      ).singleRow()
    else { return nil }
    return DueWork(provider: try row.decode(String.self, at: 0), isRefund: try row.decode(Bool.self, at: 2))
  }

  /// How long until the next payment or refund of `providers` is due (nil: nothing pending).
  public func untilNextDue(providers: [String]) async throws -> Duration? {
    let rows = try await pool.query(
      """
      SELECT extract(epoch FROM min(due) - now()) FROM (
        SELECT min(greatest(next_attempt_at, coalesce(lease_expires_at, next_attempt_at))) AS due
        FROM dispatcher.payments
        WHERE provider = ANY(\(PostgresArray(providers))::text[]) AND status = ANY(\(PostgresArray(Self.open))::integer[])
        UNION ALL
        SELECT min(greatest(next_attempt_at, coalesce(lease_expires_at, next_attempt_at)))
        FROM dispatcher.refunds
        WHERE provider = ANY(\(PostgresArray(providers))::text[]) AND status = \(Payments_V1_RefundStatus.pending.rawValue)
      ) AS t
      """)
    guard let seconds = try rows[0].decode(Double?.self, at: 0) else { return nil }
    return .milliseconds(Int64(max(0, seconds) * 1000))
  }

  /// How many payments and refunds are due and not leased (waiting for a worker).
  public func dueCount() async throws -> Int {
    try await pool.query(
      """
      SELECT (SELECT count(*) FROM dispatcher.payments
              WHERE status = ANY(\(PostgresArray(Self.open))::integer[]) AND next_attempt_at <= now()
                AND (lease_expires_at IS NULL OR lease_expires_at < now()))
           + (SELECT count(*) FROM dispatcher.refunds
              WHERE status = \(Payments_V1_RefundStatus.pending.rawValue) AND next_attempt_at <= now()
                AND (lease_expires_at IS NULL OR lease_expires_at < now()))
      """
    )[0].decode(Int.self, at: 0)
  }

  /// Gives back what this instance holds and has no call of in flight, so that another instance
  /// takes it over at once instead of after the lease (on shutdown). What may have a call in
  /// flight (a payment `PROCESSING`, a refund whose outcome is unknown) keeps its lease until it
  /// runs out: a worker cut off mid-call (the grace period ran out) may have sent a request the
  /// provider has not processed yet, and an inquiry right now could answer "not charged" for it
  /// and lead to a second charge or refund. The lease is longer than any call, so once it ends
  /// the request has been answered or has timed out, and the next owner's inquiry is truthful.
  @discardableResult
  public func releaseLeases() async throws -> Int {
    let payments = try await pool.query(
      """
      UPDATE dispatcher.payments SET lease_owner = NULL, lease_expires_at = NULL, lease_token = NULL
      WHERE lease_owner = \(owner) AND status <> \(Payments_V1_PaymentStatus.processing.rawValue)
      RETURNING payment_id
      """
    ).count
    let refunds = try await pool.query(
      """
      UPDATE dispatcher.refunds SET lease_owner = NULL, lease_expires_at = NULL, lease_token = NULL
      WHERE lease_owner = \(owner) AND NOT outcome_unknown
      RETURNING refund_id
      """
    ).count
    return payments + refunds
  }

  /// The fence before a provider call: if this claim still holds the payment, moves it to
  /// `PROCESSING` (with its event, when the status changes), records the call as started,
  /// renews the lease for a whole ``lease`` from now, and returns the payment as begun with the
  /// database clock (microseconds); `nil` when the claim was taken over. One transaction.
  public func begin(_ item: WorkItem, _ kind: CallKind) async throws -> (WorkItem, now: Int64)? {
    let transition = WorkDecision.begin(item, kind)
    if item.status != transition.status { try PaymentLifecycle.check(item.status, transition.status) }
    return try await pool.withTransaction { connection -> (WorkItem, now: Int64)? in
      let rows = try await connection.query(
        """
        UPDATE dispatcher.payments SET status = \(transition.status.rawValue),
          version = version + CASE WHEN status = \(transition.status.rawValue) THEN 0 ELSE 1 END,
          attempts = \(transition.attempts), outcome_unknown = \(transition.outcomeUnknown),
          lease_expires_at = now() + \(lease.seconds) * interval '1 second', updated_at = now()
        WHERE payment_id = \(item.paymentID) AND lease_token = \(item.leaseToken)
        RETURNING version, updated_at, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint
        """)
      guard let row = try rows.singleRow() else { return nil }
      var begun = item
      begun.status = transition.status
      begun.attempts = transition.attempts
      begun.outcomeUnknown = transition.outcomeUnknown
      begun.version = try row.decode(Int64.self, at: 0)
      try await connection.execute(
        """
        INSERT INTO dispatcher.attempts (payment_id, attempt, kind, provider, provider_key, started_at)
        VALUES (\(item.paymentID), \(begun.attempts), \(kind.rawValue), \(item.provider), \(item.providerKey), now())
        ON CONFLICT (payment_id, attempt, kind) DO UPDATE SET started_at = now(), finished_at = NULL, outcome = NULL
        """)
      if begun.version != item.version {
        let event = Self.event(for: begun, transition: transition, at: try row.decode(Date.self, at: 1))
        try await Self.insertEvent(event, of: item, connection)
      }
      return (begun, try row.decode(Int64.self, at: 2))
    }
  }

  static func insertEvent(
    _ event: Payments_V1_PaymentEvent, of item: WorkItem, _ connection: PostgresConnection
  ) async throws {
    try await connection.execute(
      """
      INSERT INTO dispatcher.outbox (topic, message_key, payload, event_type)
      VALUES ('payments.events.v1', \(item.paymentID), \(event.serializedBytes()), 'payments.v1.PaymentEvent')
      """)
  }

  /// Applies a transition and writes its event to the outbox, in one transaction, if this claim
  /// still holds the payment (its token is on the row; the lease may have run out as long as
  /// nobody took the payment over). Returns the updated item, or `nil` when the claim was taken
  /// over (this worker's result is dropped; the new owner inquires).
  public func apply(
    _ decided: Transition, to item: WorkItem, callOutcome: CallRecord?
  ) async throws -> WorkItem? {
    try PaymentLifecycle.check(item.status, decided.status)
    let applied: (WorkItem, Transition)? = try await pool.withTransaction { connection in
      // A cancellation may have arrived during the call (the item is as claimed).
      guard
        let current = try await connection.query(
          """
          SELECT cancel_requested FROM dispatcher.payments
          WHERE payment_id = \(item.paymentID) AND lease_token = \(item.leaseToken) FOR UPDATE
          """
        ).singleRow()
      else { return nil }
      let transition = WorkDecision.honoring(
        cancelRequested: try current.decode(Bool.self, at: 0), decided, of: item)
      let rows = try await connection.query(
        """
        UPDATE dispatcher.payments SET status = \(transition.status.rawValue), version = version + 1,
          attempts = \(transition.attempts), provider_reference = \(transition.providerReference),
          failure_code = \(transition.failure?.code ?? ""), failure_message = \(transition.failure?.message ?? ""),
          outcome_unknown = \(transition.outcomeUnknown),
          next_attempt_at = CASE WHEN cancel_requested AND NOT \(transition.outcomeUnknown) THEN now()
                                 ELSE coalesce(\(transition.nextAttemptAt), now()) END,
          lease_owner = CASE WHEN \(transition.keepLease) THEN lease_owner ELSE NULL END,
          lease_token = CASE WHEN \(transition.keepLease) THEN lease_token ELSE NULL END,
          lease_expires_at = CASE WHEN \(transition.keepLease) THEN now() + \(lease.seconds) * interval '1 second' ELSE NULL END,
          updated_at = now()
        WHERE payment_id = \(item.paymentID) AND lease_token = \(item.leaseToken)
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
          WHERE payment_id = \(item.paymentID) AND attempt = \(item.attempts) AND kind = \(callOutcome.kind.rawValue)
          """)
      }
      try await Self.insertEvent(
        Self.event(for: updated, transition: transition, at: updatedAt), of: item, connection)
      return (updated, transition)
    }
    guard let (updated, transition) = applied else { return nil }
    recordMetrics(of: transition, to: item, callOutcome: callOutcome)
    return updated
  }

  private func recordMetrics(of transition: Transition, to item: WorkItem, callOutcome: CallRecord?) {
    if let callOutcome {
      Counter(
        label: "provider_calls_total",
        dimensions: [
          ("provider", item.provider), ("kind", callOutcome.kind.rawValue), ("outcome", callOutcome.outcome),
        ]
      ).increment()
    }
    if transition.status == .retryScheduled {
      Counter(label: "payment_retries_total", dimensions: [("provider", item.provider)]).increment()
    }
    if transition.status.isTerminal {
      Self.countCompleted(transition.status, provider: item.provider)
    }
  }

  static func countCompleted(_ status: Payments_V1_PaymentStatus, provider: String) {
    let name =
      switch status {
      case .succeeded: "succeeded"
      case .canceled: "canceled"
      default: "failed"
      }
    Counter(label: "payments_completed_total", dimensions: [("provider", provider), ("status", name)])
      .increment()
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
