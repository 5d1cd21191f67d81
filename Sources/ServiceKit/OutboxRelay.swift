public import Kafka
public import Logging
import Metrics
public import Postgres

/// Publishes a schema's transactional outbox (`<schema>.outbox`) to Kafka: at least once, in id
/// order, marking rows published only after Kafka acknowledged them (docs/design.md §5).
///
/// Any number of relays may run against one schema: each batch first takes a session-level
/// advisory lock on the outbox (on the connection the batch uses), so one relay publishes at a
/// time and rows leave in id order (which keeps the events of one payment in order). No
/// transaction stays open while Kafka delivers: the batch selects (one statement), publishes,
/// then marks what Kafka acknowledged with a conditional update (one statement), and unlocks.
/// A relay that dies between publishing and marking leaves its rows unmarked, and the next
/// batch publishes them again; consumers deduplicate. A relay that vanishes holding the lock
/// (kill -9, a cut network) loses it with its session, within the database session's TCP
/// bounds when the pool sets them (``PostgresConnectionConfiguration/limits``).
///
/// The relay sleeps until a trigger on the outbox table notifies `<schema>_outbox`, with a
/// slow sweep as a safety net for notifications lost while the listening connection was down.
public struct OutboxRelay: Sendable {
  public struct Configuration: Sendable {
    /// The schema whose `outbox` table is relayed (`command`, `dispatcher`).
    public var schema: String
    /// The most rows published in one batch.
    public var batchSize: Int = 500
    /// How long the relay sleeps without a notification before it looks anyway.
    public var sweepInterval: Duration = .seconds(30)
    /// The pause after a batch in which Kafka refused records, before they are tried again.
    public var failureBackoff: Duration = .seconds(1)

    public init(schema: String) { self.schema = schema }
  }

  /// The outcome of one batch.
  public enum BatchOutcome: Sendable, Equatable {
    /// Rows published and marked (0: the outbox was empty).
    case published(Int, failed: Int)
    /// Another relay holds the outbox; it will publish the rows.
    case busy
  }

  private let pool: PostgresConnectionPool
  private let producer: KafkaProducer
  private let configuration: Configuration
  private let logger: Logger
  private let table: String
  private let afterPublish: @Sendable ([Int64]) async throws -> Void

  /// - Parameter afterPublish: called with the ids of a batch after Kafka acknowledged it and
  ///   before the rows are marked; tests use it to stop a relay at the worst moment.
  public init(
    pool: PostgresConnectionPool, producer: KafkaProducer, configuration: Configuration, logger: Logger,
    afterPublish: @escaping @Sendable ([Int64]) async throws -> Void = { _ in }
  ) {
    precondition(
      !configuration.schema.isEmpty
        && configuration.schema.utf8.allSatisfy { (0x61...0x7A).contains($0) || $0 == 0x5F },
      "outbox schema must be a lower-case identifier")
    self.pool = pool
    self.producer = producer
    self.configuration = configuration
    self.logger = logger
    self.table = configuration.schema + ".outbox"
    self.afterPublish = afterPublish
  }

  /// The notification channel the outbox trigger uses.
  public var channel: String { configuration.schema + "_outbox" }

  /// Relays until the task is cancelled.
  public func run() async throws {
    let doorbell = Doorbell()
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { await listen(doorbell) }
      group.addTask { await sampleBacklog() }
      group.addTask {
        while !Task.isCancelled {
          do {
            var outcome = try await relayBatch()
            while case .published(let count, let failed) = outcome, count == configuration.batchSize,
              failed == 0, !Task.isCancelled
            {
              outcome = try await relayBatch()
            }
            if case .published(_, let failed) = outcome, failed > 0 {
              try await Task.sleep(for: configuration.failureBackoff)
              continue
            }
          } catch {
            if Task.isCancelled { return }
            logger.warning("outbox batch failed", metadata: ["outbox": "\(table)", "error": "\(error)"])
            try? await Task.sleep(for: configuration.failureBackoff)
            continue
          }
          await doorbell.wait(upTo: configuration.sweepInterval)
        }
      }
      try await group.next()
      group.cancelAll()
    }
  }

  /// Publishes what the outbox holds now, batch after batch, until it is empty, another relay
  /// has held it for a second, Kafka refuses records, or `timeout` has passed; returns the rows
  /// published. Used on shutdown so that what was accepted leaves before the process does (what
  /// is left stays in the outbox for the next relay).
  ///
  /// "Busy" is retried for a second, because the holder is often this process's own relay,
  /// still finishing the batch it had begun when shutdown cancelled it; giving up at once left
  /// rows behind whenever shutdown met a running batch (ShutdownTests under load).
  @discardableResult
  public func drain(timeout: Duration) async -> Int {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    var total = 0
    var busySince: ContinuousClock.Instant?
    while clock.now < deadline {
      switch try? await relayBatch() {
      case .published(let count, let failed)?:
        busySince = nil
        total += count
        if count == 0 || failed > 0 { return total }
      case .busy?:
        let since = busySince ?? clock.now
        busySince = since
        guard clock.now < since + .seconds(1) else { return total }
        try? await Task.sleep(for: .milliseconds(20))
      case nil:
        return total
      }
    }
    return total
  }

  /// Publishes the oldest unpublished rows, at most ``Configuration/batchSize``.
  public func relayBatch() async throws -> BatchOutcome {
    try await pool.withConnection { connection in
      let lock = try await connection.query("SELECT pg_try_advisory_lock(hashtext(\(table)))")
      guard try lock[0].decode(Bool.self, at: 0) else { return .busy }
      do {
        let outcome = try await publishBatch(connection)
        try await connection.execute("SELECT pg_advisory_unlock(hashtext(\(table)))")
        return outcome
      } catch {
        // The lock must not stay with a pooled connection: give up the session (its lock with
        // it) unless the unlock still works.
        if (try? await connection.execute("SELECT pg_advisory_unlock(hashtext(\(table)))")) == nil {
          await connection.close()
        }
        throw error
      }
    }
  }

  /// Select, publish, mark: the body of ``relayBatch()``, run while holding the outbox's lock.
  private func publishBatch(_ connection: PostgresConnection) async throws -> BatchOutcome {
    let rows = try await connection.query(
      PostgresQuery(
        unsafeSQL: """
          SELECT id, topic, message_key, payload, event_type FROM \(table)
          WHERE published_at IS NULL AND dead_lettered_at IS NULL ORDER BY id LIMIT \(configuration.batchSize)
          """))
    guard !rows.isEmpty else { return .published(0, failed: 0) }
    var ids: [Int64] = []
    var records: [KafkaProducerRecord] = []
    for row in rows {
      ids.append(try row.decode(Int64.self, at: 0))
      records.append(
        KafkaProducerRecord(
          topic: try row.decode(String.self, at: 1), key: try row.decode(String.self, at: 2),
          value: try row.decode([UInt8].self, at: 3),
          headers: [
            KafkaHeader(key: "event-type", string: try row.decode(String.self, at: 4)),
            KafkaHeader(key: "content-type", string: "application/x-protobuf"),
          ]))
    }
    let results = try await producer.sendInOrder(records)
    var published: [Int64] = []
    var deadLetters: [(id: Int64, reason: String)] = []
    var firstError: KafkaError?
    for (id, result) in zip(ids, results) {
      switch result {
      case .success: published.append(id)
      case .failure(let error) where error.isRecordError: deadLetters.append((id, error.message))
      case .failure(let error): firstError = firstError ?? error
      }
    }
    try await afterPublish(published)
    for deadLetter in deadLetters {
      // Retrying cannot help this row, and holding it would hold every row behind it.
      try await connection.execute(
        PostgresQuery(
          unsafeSQL: """
            UPDATE \(table) SET dead_lettered_at = now(), dead_letter_reason = $1
            WHERE id = $2::bigint AND published_at IS NULL
            """,
          binds: [.text(deadLetter.reason, .text), .text(String(deadLetter.id), .text)]))
      Counter(label: "outbox_dead_letters_total", dimensions: [("outbox", table)]).increment()
      logger.error(
        "Kafka refuses an outbox record for good; it is dead-lettered (payments dead-letters list)",
        metadata: ["outbox": "\(table)", "id": "\(deadLetter.id)", "reason": "\(deadLetter.reason)"])
    }
    if !published.isEmpty {
      let list = "{" + published.map(String.init).joined(separator: ",") + "}"
      try await connection.execute(
        PostgresQuery(
          unsafeSQL:
            "UPDATE \(table) SET published_at = now() WHERE id = ANY($1::bigint[]) AND published_at IS NULL",
          binds: [.text(list, .text)]))
    }
    if let firstError {
      logger.warning(
        "Kafka refused outbox records; they stay pending",
        metadata: [
          "outbox": "\(table)", "failed": "\(ids.count - published.count - deadLetters.count)",
          "error": "\(firstError)",
        ])
    }
    return .published(published.count, failed: ids.count - published.count - deadLetters.count)
  }

  /// Records the number of unpublished rows as the gauge `outbox_backlog{outbox}`, every 5 s.
  private func sampleBacklog() async {
    let gauge = Gauge(label: "outbox_backlog", dimensions: [("outbox", table)])
    while !Task.isCancelled {
      if let rows = try? await pool.query(
        PostgresQuery(
          unsafeSQL: "SELECT count(*) FROM \(table) WHERE published_at IS NULL AND dead_lettered_at IS NULL")),
        let count = try? rows[0].decode(Int.self, at: 0)
      {
        gauge.record(count)
      }
      try? await Task.sleep(for: .seconds(5))
    }
  }

  /// Rings `doorbell` on every notification; while the listener is down, once a second.
  private func listen(_ doorbell: Doorbell) async {
    while !Task.isCancelled {
      do {
        try await pool.withConnection { connection in
          let notifications = try await connection.listen(channel)
          doorbell.ring()  // rows may have arrived while nobody listened
          for try await _ in notifications { doorbell.ring() }
        }
      } catch {
        if Task.isCancelled { return }
        logger.warning(
          "outbox listener failed; sweeping every second",
          metadata: ["outbox": "\(table)", "error": "\(error)"])
      }
      doorbell.ring()
      try? await Task.sleep(for: .seconds(1))
    }
  }
}
