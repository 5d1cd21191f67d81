public import Logging

/// One versioned schema change: a SQL script that runs once, in a transaction.
public struct PostgresMigration: Sendable, Hashable {
  /// The schema (service) it belongs to, for example `command`. Versions count per schema.
  public var schema: String
  /// Its position within the schema; migrations run in ascending order.
  public var version: Int
  /// A short description, for logs and the `schema_migrations` table.
  public var name: String
  /// The SQL. It may hold several statements but must not manage transactions itself.
  public var sql: String

  public init(schema: String, version: Int, name: String, sql: String) {
    self.schema = schema
    self.version = version
    self.name = name
    self.sql = sql
  }

  /// A fingerprint of ``sql`` (64-bit FNV-1a, hex), stored when applied, so that editing an
  /// applied migration is detected instead of silently ignored.
  public var checksum: String {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in sql.utf8 {
      hash ^= UInt64(byte)
      hash &*= 0x0000_0100_0000_01b3
    }
    let hex = String(hash, radix: 16)
    return String(repeating: "0", count: 16 - hex.count) + hex
  }
}

/// Applies ``PostgresMigration``s: each one once, in order, in its own transaction.
///
/// Every transaction first takes a transaction-scoped advisory lock, so any number of instances
/// may start at the same time: they apply each migration exactly once between them, and each
/// waits for the others instead of failing. Applied versions are recorded in
/// `public.schema_migrations` together with their checksum.
public struct PostgresMigrator: Sendable {
  /// The advisory lock key (the ASCII bytes of "paymigr").
  static let lockKey: Int64 = 0x70_6179_6d69_6772

  private let pool: PostgresConnectionPool
  private let logger: Logger

  public init(pool: PostgresConnectionPool, logger: Logger) {
    self.pool = pool
    self.logger = logger
  }

  /// Applies every migration that is not applied yet and returns those this call applied.
  ///
  /// - Throws: ``PostgresError``; also when an applied migration's SQL has changed (checksum
  ///   mismatch) or when versions are duplicated.
  @discardableResult
  public func migrate(_ migrations: [PostgresMigration]) async throws -> [PostgresMigration] {
    var seen = Set<[String]>()
    for migration in migrations where !seen.insert([migration.schema, String(migration.version)]).inserted {
      throw PostgresError(
        code: .invalidUsage,
        message: "duplicate migration \(migration.schema) version \(migration.version)")
    }
    let ordered = migrations.sorted { ($0.schema, $0.version) < ($1.schema, $1.version) }
    var applied: [PostgresMigration] = []
    for migration in ordered where try await apply(migration) {
      applied.append(migration)
    }
    return applied
  }

  /// Applies one migration unless it is already recorded; returns whether it ran.
  private func apply(_ migration: PostgresMigration) async throws -> Bool {
    try await pool.withTransaction { connection in
      try await connection.query("SELECT pg_advisory_xact_lock(\(Self.lockKey))")
      try await connection.query(
        """
        CREATE TABLE IF NOT EXISTS public.schema_migrations (
          schema_name text NOT NULL,
          version integer NOT NULL,
          name text NOT NULL,
          checksum text NOT NULL,
          applied_at timestamptz NOT NULL DEFAULT now(),
          PRIMARY KEY (schema_name, version)
        )
        """)
      let existing = try await connection.query(
        "SELECT checksum FROM public.schema_migrations WHERE schema_name = \(migration.schema) AND version = \(migration.version)"
      )
      if let row = try existing.singleRow() {
        let checksum = try row.decode(String.self, at: 0)
        guard checksum == migration.checksum else {
          throw PostgresError(
            code: .invalidUsage,
            message:
              "migration \(migration.schema)/\(migration.version) (\(migration.name)) was changed after it was applied (checksum \(checksum), now \(migration.checksum))"
          )
        }
        return false
      }
      logger.info(
        "applying migration",
        metadata: [
          "schema": "\(migration.schema)", "version": "\(migration.version)", "name": "\(migration.name)",
        ])
      try await connection.executeScript(migration.sql)
      try await connection.query(
        """
        INSERT INTO public.schema_migrations (schema_name, version, name, checksum)
        VALUES (\(migration.schema), \(Int32(migration.version)), \(migration.name), \(migration.checksum))
        """)
      return true
    }
  }
}
