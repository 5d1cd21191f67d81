import Foundation
public import Logging
import PaymentsCore
public import PaymentsProto
public import Postgres
import ProtobufRuntime
import Synchronization

/// One accepted-for-storage payment order: what the store needs to write it.
public struct PaymentSubmission: Sendable {
  public var clientID: String
  public var idempotencyKey: String
  /// SHA-256 over the request's order fields (see ``PaymentCommandHandler``).
  public var fingerprint: [UInt8]
  /// The order as it will be published, with its new payment ID and acceptance time.
  public var order: Payments_V1_PaymentOrderRecord

  public init(
    clientID: String, idempotencyKey: String, fingerprint: [UInt8], order: Payments_V1_PaymentOrderRecord
  ) {
    self.clientID = clientID
    self.idempotencyKey = idempotencyKey
    self.fingerprint = fingerprint
    self.order = order
  }
}

/// What became of a submission.
public enum SubmissionOutcome: Sendable, Equatable {
  /// Stored now, with its idempotency record and outbox row, in one committed transaction.
  case accepted(Payments_V1_PaymentOrderRecord)
  /// The client used the key before for the same request: the order stored then.
  case replayed(Payments_V1_PaymentOrderRecord)
  /// The client used the key before for a different request (the payment stored then).
  case keyReused(paymentID: String)
}

/// Writes payment orders with group commit: submissions that arrive while earlier ones are being
/// written are stored together, in one statement and one transaction, so one WAL flush serves
/// many clients (docs/design.md §5, §6).
///
/// Each batch is one `INSERT … ON CONFLICT DO NOTHING` into `command.idempotency_keys` whose
/// winners go on, in the same statement, into `command.payments` and `command.outbox`. The
/// primary key of the idempotency table decides races between concurrent submissions with one
/// key, across batches and instances; the losers read the winner's record afterwards. Nothing is
/// answered before the batch committed.
///
/// ``run()`` drives the writers; ``submit(_:)`` waits for its batch.
public final class PaymentOrderStore: Sendable {
  public struct Configuration: Sendable {
    /// Batches written at the same time (each on its own connection).
    public var concurrentBatches: Int = 2
    /// The most submissions in one batch.
    public var maximumBatchSize: Int = 128
    public init() {}
  }

  private struct Pending: Sendable {
    var submission: PaymentSubmission
    var continuation: CheckedContinuation<SubmissionOutcome, any Error>
  }

  private struct State {
    var queue: [Pending] = []
    var idleWriters: [CheckedContinuation<[Pending], Never>] = []
    var closed = false
  }

  private let pool: PostgresConnectionPool
  private let configuration: Configuration
  private let logger: Logger
  private let state = Mutex(State())

  public init(pool: PostgresConnectionPool, configuration: Configuration = .init(), logger: Logger) {
    self.pool = pool
    self.configuration = configuration
    self.logger = logger
  }

  /// Stores `submission` (or finds its earlier twin) and returns the outcome once committed.
  ///
  /// - Throws: ``PostgresError`` when the batch could not be written: nothing of it is stored,
  ///   and a retry with the same idempotency key is safe.
  public func submit(_ submission: PaymentSubmission) async throws -> SubmissionOutcome {
    try await withCheckedThrowingContinuation { continuation in
      let pending = Pending(submission: submission, continuation: continuation)
      let writer = state.withLock { state -> CheckedContinuation<[Pending], Never>?? in
        // Before run() starts its writers, submissions wait in the queue for them.
        guard !state.closed else { return .none }
        if let writer = state.idleWriters.popLast() { return .some(writer) }
        state.queue.append(pending)
        return .some(nil)
      }
      switch writer {
      case .none:
        continuation.resume(
          throwing: PostgresError(code: .poolClosed, message: "the payment store is shut down"))
      case .some(let writer?):
        writer.resume(returning: [pending])
      case .some(nil):
        break
      }
    }
  }

  /// Runs the writers until the task is cancelled; then fails what is still queued.
  public func run() async {
    await withTaskGroup(of: Void.self) { group in
      for _ in 0..<configuration.concurrentBatches {
        group.addTask {
          while let batch = await self.nextBatch() { await self.write(batch) }
        }
      }
      await withTaskCancellationHandler {
        await group.waitForAll()
      } onCancel: {
        let (writers, queued) = self.state.withLock { state in
          state.closed = true
          defer {
            state.idleWriters = []
            state.queue = []
          }
          return (state.idleWriters, state.queue)
        }
        for writer in writers { writer.resume(returning: []) }
        for pending in queued {
          pending.continuation.resume(
            throwing: PostgresError(code: .poolClosed, message: "the payment store is shutting down"))
        }
      }
    }
  }

  /// The next batch: what is queued, or the first submission to arrive. `nil` once closed.
  private func nextBatch() async -> [Pending]? {
    let batch = await withCheckedContinuation { (continuation: CheckedContinuation<[Pending], Never>) in
      let ready = state.withLock { state -> [Pending]? in
        if state.closed { return [] }
        if state.queue.isEmpty {
          state.idleWriters.append(continuation)
          return nil
        }
        let count = min(state.queue.count, configuration.maximumBatchSize)
        defer { state.queue.removeFirst(count) }
        return Array(state.queue.prefix(count))
      }
      if let ready { continuation.resume(returning: ready) }
    }
    return batch.isEmpty ? nil : batch
  }

  private func write(_ batch: [Pending]) async {
    do {
      let outcomes = try await store(batch.map(\.submission))
      for (pending, outcome) in zip(batch, outcomes) { pending.continuation.resume(with: outcome) }
    } catch let error as PostgresError where batch.count > 1 && !error.isConnectionProblem {
      // Something in the batch is wrong (validation should have caught it): write each alone, so
      // that one bad order cannot fail the others.
      logger.warning("payment batch failed; writing its orders one by one", metadata: ["error": "\(error)"])
      for pending in batch { await write([pending]) }
    } catch {
      logger.error(
        "could not store payment orders", metadata: ["error": "\(error)", "count": "\(batch.count)"])
      for pending in batch { pending.continuation.resume(throwing: error) }
    }
  }

  /// Writes one batch; returns each submission's outcome (or the error that is its outcome).
  private func store(_ submissions: [PaymentSubmission]) async throws -> [Result<
    SubmissionOutcome, any Error
  >] {
    let orders = submissions.map(\.order)
    // One fixed statement text for every batch size: the server plans it once per connection.
    let statement: PostgresQuery = """
      WITH input AS (
        SELECT * FROM unnest(
          \(PostgresArray(orders.map(\.paymentID)))::text[], \(PostgresArray(submissions.map(\.clientID)))::text[],
          \(PostgresArray(submissions.map(\.idempotencyKey)))::text[], \(PostgresArray(submissions.map(\.fingerprint)))::bytea[],
          \(PostgresArray(orders.map { $0.amount?.currency ?? "" }))::text[],
          \(PostgresArray(orders.map { $0.amount?.amountMinor ?? 0 }))::bigint[],
          \(PostgresArray(orders.map { $0.payer?.accountID ?? "" }))::text[],
          \(PostgresArray(orders.map { $0.payee?.accountID ?? "" }))::text[],
          \(PostgresArray(orders.map(\.provider)))::text[], \(PostgresArray(orders.map { $0.serializedBytes() }))::bytea[],
          \(PostgresArray(orders.map { $0.acceptedAt?.date ?? Date() }))::timestamptz[]
        ) AS t (payment_id, client_id, idempotency_key, fingerprint, currency, amount_minor,
                payer_account_id, payee_account_id, provider, order_record, created_at)
      ), claimed AS (
        INSERT INTO command.idempotency_keys (client_id, idempotency_key, fingerprint, payment_id, created_at)
        SELECT client_id, idempotency_key, fingerprint, payment_id, created_at FROM input
        ON CONFLICT (client_id, idempotency_key) DO NOTHING
        RETURNING payment_id
      ), stored AS (
        INSERT INTO command.payments (payment_id, client_id, idempotency_key, currency, amount_minor,
                                      payer_account_id, payee_account_id, provider, order_record, created_at)
        SELECT i.payment_id, i.client_id, i.idempotency_key, i.currency, i.amount_minor,
               i.payer_account_id, i.payee_account_id, i.provider, i.order_record, i.created_at
        FROM input i JOIN claimed USING (payment_id)
        RETURNING payment_id
      ), queued AS (
        INSERT INTO command.outbox (topic, message_key, payload, event_type)
        SELECT 'payments.orders.v1', i.payment_id, i.order_record, 'payments.v1.PaymentOrderRecord'
        FROM input i JOIN claimed USING (payment_id) ORDER BY i.payment_id
        RETURNING id
      )
      SELECT payment_id FROM claimed
      """
    let claimed = Set(try await pool.query(statement).map { try $0.decode(String.self, at: 0) })

    // The rest lost to an earlier submission with the same key (committed by now).
    let losers = submissions.filter { !claimed.contains($0.order.paymentID) }
    var earlier: [String: (fingerprint: [UInt8], order: [UInt8])] = [:]
    if !losers.isEmpty {
      let lookup: PostgresQuery = """
        SELECT k.client_id, k.idempotency_key, k.fingerprint, p.order_record
        FROM command.idempotency_keys k JOIN command.payments p USING (payment_id)
        WHERE (k.client_id, k.idempotency_key) IN (
          SELECT * FROM unnest(\(PostgresArray(losers.map(\.clientID)))::text[],
                               \(PostgresArray(losers.map(\.idempotencyKey)))::text[]))
        """
      for row in try await pool.query(lookup) {
        let scope = Self.scope(try row.decode(String.self, at: 0), try row.decode(String.self, at: 1))
        earlier[scope] = (try row.decode([UInt8].self, at: 2), try row.decode([UInt8].self, at: 3))
      }
    }
    return submissions.map { submission in
      if claimed.contains(submission.order.paymentID) { return .success(.accepted(submission.order)) }
      guard let found = earlier[Self.scope(submission.clientID, submission.idempotencyKey)] else {
        return .failure(
          PostgresError(code: .server, message: "idempotency record vanished during the submission"))
      }
      guard found.fingerprint == submission.fingerprint else {
        let order = try? Payments_V1_PaymentOrderRecord(serializedBytes: found.order)
        return .success(.keyReused(paymentID: order?.paymentID ?? ""))
      }
      return Result { .replayed(try Payments_V1_PaymentOrderRecord(serializedBytes: found.order)) }
    }
  }

  private static func scope(_ clientID: String, _ key: String) -> String { clientID + "\u{0}" + key }

  /// The stored order of `clientID`'s payment `paymentID`, or `nil` (none, or another client's).
  public func order(paymentID: String, clientID: String) async throws -> Payments_V1_PaymentOrderRecord? {
    guard
      let row = try await pool.query(
        """
        SELECT order_record FROM command.payments WHERE payment_id = \(paymentID) AND client_id = \(clientID)
        """
      ).singleRow()
    else { return nil }
    return try Payments_V1_PaymentOrderRecord(serializedBytes: try row.decode([UInt8].self, at: 0))
  }
}

extension PostgresError {
  /// The connection or pool failed (as opposed to a statement the server refused).
  var isConnectionProblem: Bool {
    [.connectionLost, .connectionFailed, .poolTimeout, .poolClosed, .cancelled].contains(code)
  }
}
