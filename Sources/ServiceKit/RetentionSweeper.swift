public import Logging
import Metrics
public import Postgres

/// Deletes rows past their retention, in small batches (each one short statement that skips
/// rows another sweeper has locked), so that tables that only grow — published outbox rows,
/// idempotency records — stay bounded without an operator's job. Every instance may run one.
public struct RetentionSweeper: Sendable {
  /// One table's rule: rows where `condition` holds and `timeColumn` is older than `retention`.
  public struct Rule: Sendable {
    /// A schema-qualified table (a lower-case identifier: it becomes SQL text).
    public var table: String
    /// A `timestamptz` column with a BRIN or B-tree index.
    public var timeColumn: String
    /// Extra SQL condition, or "" (for example: only published rows).
    public var condition: String
    public var retention: Duration

    public init(table: String, timeColumn: String, condition: String = "", retention: Duration) {
      precondition(
        (table + timeColumn).utf8.allSatisfy { (0x61...0x7A).contains($0) || $0 == 0x5F || $0 == 0x2E },
        "table and column must be lower-case identifiers")
      self.table = table
      self.timeColumn = timeColumn
      self.condition = condition
      self.retention = retention
    }
  }

  private let pool: PostgresConnectionPool
  private let rules: [Rule]
  private let interval: Duration
  private let batchSize: Int
  private let logger: Logger

  public init(
    pool: PostgresConnectionPool, rules: [Rule], interval: Duration = .seconds(600), batchSize: Int = 1000,
    logger: Logger
  ) {
    self.pool = pool
    self.rules = rules
    self.interval = interval
    self.batchSize = batchSize
    self.logger = logger
  }

  /// Sweeps every `interval` until cancelled.
  public func run() async {
    while !Task.isCancelled {
      do {
        try await sweep()
      } catch {
        if Task.isCancelled { return }
        logger.warning("retention sweep failed; trying again later", metadata: ["error": "\(error)"])
      }
      try? await Task.sleep(for: interval)
    }
  }

  /// One pass over every rule: deletes batch after batch until a batch is not full. Returns the
  /// rows deleted per table (also counted in `retention_deleted_rows_total{table}`).
  @discardableResult
  public func sweep() async throws -> [String: Int] {
    var deleted: [String: Int] = [:]
    for rule in rules {
      let seconds =
        Double(rule.retention.components.seconds)
        + Double(rule.retention.components.attoseconds) / 1e18
      let condition = rule.condition.isEmpty ? "" : " AND (\(rule.condition))"
      while !Task.isCancelled {
        let count = try await pool.execute(
          PostgresQuery(
            unsafeSQL: """
              DELETE FROM \(rule.table) WHERE ctid = ANY(ARRAY(
                SELECT ctid FROM \(rule.table)
                WHERE \(rule.timeColumn) < now() - $1::float8 * interval '1 second'\(condition)
                LIMIT \(batchSize) FOR UPDATE SKIP LOCKED))
              """, binds: [.text(String(seconds), .float8)]))
        deleted[rule.table, default: 0] += count
        Counter(label: "retention_deleted_rows_total", dimensions: [("table", rule.table)]).increment(
          by: count)
        if count < batchSize { break }
      }
    }
    if deleted.values.contains(where: { $0 > 0 }) {
      logger.info("retention sweep", metadata: ["deleted": "\(deleted)"])
    }
    return deleted
  }
}
