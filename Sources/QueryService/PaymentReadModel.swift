public import Foundation
import PaymentsCore
public import PaymentsProto
public import Postgres
import ProtobufRuntime

/// The query service's read model in schema `query`: the latest state of each payment and every
/// version seen.
public struct PaymentReadModel: Sendable {
  /// The channel on which a changed payment's ID is announced.
  public static let changeChannel = "query_payments_changed"

  private let pool: PostgresConnectionPool

  public init(pool: PostgresConnectionPool) { self.pool = pool }

  /// A payment state to apply, with the client it belongs to.
  public struct State: Sendable {
    public var payment: Payments_V1_Payment
    public var clientID: String
    public init(payment: Payments_V1_Payment, clientID: String) {
      self.payment = payment
      self.clientID = clientID
    }
  }

  /// Applies one state of a payment (see ``apply(_:)``). Returns whether the latest state changed.
  @discardableResult
  public func apply(_ payment: Payments_V1_Payment, clientID: String) async throws -> Bool {
    try await apply([State(payment: payment, clientID: clientID)]) == 1
  }

  /// Applies payment states in one statement: each is inserted, or replaces the stored state of
  /// its payment if it has a higher version; every version is kept in the history. Redelivered
  /// and late states change nothing, so a payment never moves backwards. Returns how many
  /// payments changed (each is announced on ``changeChannel``).
  ///
  /// The same transaction appends to the client's event feed every state newer than the stored
  /// one (several versions of a payment in one batch in version order), numbered from the
  /// client's counter row in `query.feed_heads`. That row is locked first and stays locked until
  /// the transaction commits, so numbers are handed out in commit order (a reader never sees a
  /// number before a smaller one) and concurrent writers of one client cannot both take the same
  /// state as new (migration query_0004).
  @discardableResult
  public func apply(_ states: [State]) async throws -> Int {
    // One row per payment for the upsert (it cannot touch a row twice): the highest version.
    var latest: [String: State] = [:]
    var history: [String: State] = [:]
    for state in states {
      let id = state.payment.paymentID
      if latest[id].map({ $0.payment.version < state.payment.version }) ?? true { latest[id] = state }
      history["\(id)#\(state.payment.version)"] = state
    }
    let rows = Array(latest.values)
    let versions = Array(history.values)
    let bytes = rows.map { $0.payment.serializedBytes() }
    let clients = Array(Set(rows.map(\.clientID))).sorted()
    let result = try await pool.withTransaction { connection in
      // First the clients' feed counters, locked in a fixed order: from here until commit no
      // other writer of these clients runs, and the statement below (READ COMMITTED: a new
      // snapshot) sees every state they committed, so "newer than stored" is exact.
      try await connection.execute(
        """
        INSERT INTO query.feed_heads (client_id, last_sequence)
        SELECT unnest(\(PostgresArray(clients))::text[]), 0 ON CONFLICT DO NOTHING
        """)
      _ = try await connection.query(
        """
        SELECT client_id FROM query.feed_heads WHERE client_id = ANY(\(PostgresArray(clients))::text[])
        ORDER BY client_id FOR UPDATE
        """)
      // Where each refund is (GetRefund): refunds live inside their payment.
      let refunds = rows.flatMap { state in state.payment.refunds.map { (state, $0.refundID) } }
      if !refunds.isEmpty {
        try await connection.execute(
          """
          INSERT INTO query.refunds (refund_id, payment_id, client_id)
          SELECT * FROM unnest(\(PostgresArray(refunds.map(\.1)))::text[],
                               \(PostgresArray(refunds.map(\.0.payment.paymentID)))::text[],
                               \(PostgresArray(refunds.map(\.0.clientID)))::text[])
          ON CONFLICT (refund_id) DO NOTHING
          """)
      }
      return try await connection.query(
        """
        WITH input AS (
          SELECT * FROM unnest(\(PostgresArray(versions.map(\.payment.paymentID)))::text[],
                               \(PostgresArray(versions.map(\.clientID)))::text[],
                               \(PostgresArray(versions.map(\.payment.version)))::bigint[],
                               \(PostgresArray(versions.map { $0.payment.serializedBytes() }))::bytea[])
            AS t (payment_id, client_id, version, payment)
        ), previous AS (
          SELECT payment_id, version FROM query.payments WHERE payment_id IN (SELECT payment_id FROM input)
        ), history AS (
          INSERT INTO query.payment_history (payment_id, version, payment)
          SELECT payment_id, version, payment FROM input
          ON CONFLICT DO NOTHING
        ), changed AS (
          INSERT INTO query.payments AS p
            (payment_id, client_id, idempotency_key, status, version, created_at, updated_at, payment)
          SELECT * FROM unnest(
            \(PostgresArray(rows.map(\.payment.paymentID)))::text[], \(PostgresArray(rows.map(\.clientID)))::text[],
            \(PostgresArray(rows.map(\.payment.idempotencyKey)))::text[],
            \(PostgresArray(rows.map(\.payment.status.rawValue)))::integer[],
            \(PostgresArray(rows.map(\.payment.version)))::bigint[],
            \(PostgresArray(rows.map { $0.payment.createdAt?.date ?? Date() }))::timestamptz[],
            \(PostgresArray(rows.map { $0.payment.updatedAt?.date ?? $0.payment.createdAt?.date ?? Date() }))::timestamptz[],
            \(PostgresArray(bytes))::bytea[])
          ON CONFLICT (payment_id) DO UPDATE
            SET status = EXCLUDED.status, version = EXCLUDED.version, updated_at = EXCLUDED.updated_at,
                payment = EXCLUDED.payment
            WHERE p.version < EXCLUDED.version
          RETURNING payment_id
        ), fresh AS (
          SELECT i.client_id, i.payment_id, i.version, i.payment,
                 row_number() OVER (PARTITION BY i.client_id ORDER BY i.payment_id, i.version) AS n,
                 count(*) OVER (PARTITION BY i.client_id) AS total
          FROM input i LEFT JOIN previous o USING (payment_id)
          WHERE i.version > coalesce(o.version, 0)
        ), heads AS (
          INSERT INTO query.feed_heads AS h (client_id, last_sequence)
          SELECT client_id, count(*) FROM fresh GROUP BY client_id ORDER BY client_id
          ON CONFLICT (client_id) DO UPDATE SET last_sequence = h.last_sequence + EXCLUDED.last_sequence
          RETURNING client_id, last_sequence
        ), feed AS (
          INSERT INTO query.events (client_id, sequence, payment_id, version, payment, recorded_at)
          SELECT f.client_id, h.last_sequence - f.total + f.n, f.payment_id, f.version, f.payment, clock_timestamp()
          FROM fresh f JOIN heads h USING (client_id)
          ON CONFLICT (payment_id, version) DO NOTHING
        )
        SELECT pg_notify(\(Self.changeChannel), payment_id) FROM changed
        """)
    }
    return result.count
  }

  /// One event of a client's feed.
  public struct FeedEntry: Sendable {
    public var sequence: Int64
    public var payment: Payments_V1_Payment
    public var recordedAt: Date
  }

  /// The client's feed after `sequence`, oldest first, at most `limit` entries.
  public func events(clientID: String, after sequence: Int64, limit: Int) async throws -> [FeedEntry] {
    try await pool.query(
      """
      SELECT sequence, payment, recorded_at FROM query.events
      WHERE client_id = \(clientID) AND sequence > \(sequence) ORDER BY sequence LIMIT \(limit)
      """
    ).map {
      FeedEntry(
        sequence: try $0.decode(Int64.self, at: 0),
        payment: try Payments_V1_Payment(serializedBytes: try $0.decode([UInt8].self, at: 1)),
        recordedAt: try $0.decode(Date.self, at: 2))
    }
  }

  /// The bounds of the client's feed: the last number handed out (0: none yet) and the smallest
  /// still kept (`nil`: none kept).
  public func feedBounds(clientID: String) async throws -> (last: Int64, first: Int64?) {
    let row = try await pool.query(
      """
      SELECT coalesce((SELECT last_sequence FROM query.feed_heads WHERE client_id = \(clientID)), 0),
             (SELECT min(sequence) FROM query.events WHERE client_id = \(clientID))
      """)[0]
    return (try row.decode(Int64.self, at: 0), try row.decode(Int64?.self, at: 1))
  }

  /// The payment with `paymentID` if it belongs to `clientID`.
  public func payment(id paymentID: String, clientID: String) async throws -> Payments_V1_Payment? {
    try await single(
      "SELECT payment FROM query.payments WHERE payment_id = \(paymentID) AND client_id = \(clientID)")
  }

  /// The refund with `refundID` if its payment belongs to `clientID`, as the latest state of
  /// its payment has it.
  public func refund(id refundID: String, clientID: String) async throws -> Payments_V1_Refund? {
    let payment = try await single(
      """
      SELECT p.payment FROM query.refunds r JOIN query.payments p USING (payment_id)
      WHERE r.refund_id = \(refundID) AND r.client_id = \(clientID)
      """)
    return payment?.refunds.first { $0.refundID == refundID }
  }

  /// The client's payment submitted with `idempotencyKey`.
  public func payment(idempotencyKey: String, clientID: String) async throws -> Payments_V1_Payment? {
    try await single(
      """
      SELECT payment FROM query.payments WHERE client_id = \(clientID) AND idempotency_key = \(idempotencyKey)
      """)
  }

  /// The stored versions of a payment after `version`, oldest first.
  public func history(of paymentID: String, after version: Int64) async throws -> [Payments_V1_Payment] {
    try await pool.query(
      """
      SELECT payment FROM query.payment_history
      WHERE payment_id = \(paymentID) AND version > \(version) ORDER BY version
      """
    ).map { try Payments_V1_Payment(serializedBytes: try $0.decode([UInt8].self, at: 0)) }
  }

  /// One page of a client's payments, newest first.
  public struct ListFilter: Sendable, Hashable {
    public var statuses: [Int32] = []
    public var createdAfter: Date?
    public var createdBefore: Date?
    public init() {}
  }

  /// A position in the newest-first order: the last row of the previous page.
  public struct Cursor: Sendable, Hashable {
    public var createdAt: Date
    public var paymentID: String
  }

  public func list(
    clientID: String, filter: ListFilter, after cursor: Cursor?, limit: Int
  ) async throws -> [(payment: Payments_V1_Payment, cursor: Cursor)] {
    var query: PostgresQuery =
      "SELECT payment, created_at, payment_id FROM query.payments WHERE client_id = \(clientID)"
    if !filter.statuses.isEmpty {
      let list = "{" + filter.statuses.map(String.init).joined(separator: ",") + "}"
      query.append(" AND status = ANY(\(list)::integer[])")
    }
    if let after = filter.createdAfter { query.append(" AND created_at > \(after)") }
    if let before = filter.createdBefore { query.append(" AND created_at < \(before)") }
    if let cursor {
      query.append(" AND (created_at, payment_id) < (\(cursor.createdAt), \(cursor.paymentID))")
    }
    query.append(" ORDER BY created_at DESC, payment_id DESC LIMIT \(limit)")
    return try await pool.query(query).map { row in
      (
        try Payments_V1_Payment(serializedBytes: try row.decode([UInt8].self, at: 0)),
        Cursor(createdAt: try row.decode(Date.self, at: 1), paymentID: try row.decode(String.self, at: 2))
      )
    }
  }

  /// The key that signs page tokens: made (32 random bytes) by the first instance that asks,
  /// the same for every instance afterwards.
  public func pageTokenKey() async throws -> [UInt8] {
    var generator = SystemRandomNumberGenerator()
    let candidate = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
    try await pool.execute(
      "INSERT INTO query.page_token_keys (id, key) VALUES (1, \(candidate)) ON CONFLICT (id) DO NOTHING")
    return try await pool.query("SELECT key FROM query.page_token_keys WHERE id = 1")[0].decode(
      [UInt8].self, at: 0)
  }

  private func single(_ query: PostgresQuery) async throws -> Payments_V1_Payment? {
    guard let row = try await pool.query(query).singleRow() else { return nil }
    return try Payments_V1_Payment(serializedBytes: try row.decode([UInt8].self, at: 0))
  }
}
