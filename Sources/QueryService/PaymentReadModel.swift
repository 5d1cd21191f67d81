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

  /// Applies one state of a payment: inserts it, or replaces the stored state if this one has a
  /// higher version. Returns whether the latest state changed. Redelivered and late states change
  /// nothing, so the payment never moves backwards.
  @discardableResult
  public func apply(_ payment: Payments_V1_Payment, clientID: String) async throws -> Bool {
    let bytes = payment.serializedBytes()
    let createdAt = payment.createdAt?.date ?? Date()
    let updatedAt = payment.updatedAt?.date ?? createdAt
    let rows = try await pool.query(
      """
      WITH history AS (
        INSERT INTO query.payment_history (payment_id, version, payment)
        VALUES (\(payment.paymentID), \(payment.version), \(bytes))
        ON CONFLICT DO NOTHING
      ), changed AS (
        INSERT INTO query.payments AS p
          (payment_id, client_id, idempotency_key, status, version, created_at, updated_at, payment)
        VALUES (\(payment.paymentID), \(clientID), \(payment.idempotencyKey), \(payment.status.rawValue),
                \(payment.version), \(createdAt), \(updatedAt), \(bytes))
        ON CONFLICT (payment_id) DO UPDATE
          SET status = EXCLUDED.status, version = EXCLUDED.version, updated_at = EXCLUDED.updated_at,
              payment = EXCLUDED.payment
          WHERE p.version < EXCLUDED.version
        RETURNING payment_id
      )
      SELECT pg_notify(\(Self.changeChannel), payment_id) FROM changed
      """)
    return !rows.isEmpty
  }

  /// The payment with `paymentID` if it belongs to `clientID`.
  public func payment(id paymentID: String, clientID: String) async throws -> Payments_V1_Payment? {
    try await single(
      "SELECT payment FROM query.payments WHERE payment_id = \(paymentID) AND client_id = \(clientID)")
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

  private func single(_ query: PostgresQuery) async throws -> Payments_V1_Payment? {
    guard let row = try await pool.query(query).singleRow() else { return nil }
    return try Payments_V1_Payment(serializedBytes: try row.decode([UInt8].self, at: 0))
  }
}
