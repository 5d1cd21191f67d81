import ArgumentParser
import Foundation
import Logging
import Postgres

/// `payments dead-letters list|retry`: the records the platform set aside because they can never
/// be delivered as they are (docs/services.md, Dead letters).
struct DeadLettersCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "dead-letters",
    abstract: "List dead-lettered records (outbox rows Kafka refuses, intake records that are not orders).",
    subcommands: [List.self, Retry.self])

  struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "List every dead letter: outbox rows (command, dispatcher) and dispatcher intake records.")

    @OptionGroup var database: KeysCommand.DatabaseOption

    func run() async throws {
      try await database.withPool { pool in
        var count = 0
        for schema in ["command", "dispatcher"] {
          let rows = try await pool.query(
            PostgresQuery(
              unsafeSQL: """
                SELECT id, topic, message_key, length(payload), dead_lettered_at, dead_letter_reason
                FROM \(schema).outbox WHERE dead_lettered_at IS NOT NULL ORDER BY id
                """))
          for row in rows {
            count += 1
            print(
              "outbox \(schema) id=\(try row.decode(Int64.self, at: 0)) topic=\(try row.decode(String.self, at: 1)) "
                + "key=\(try row.decode(String.self, at: 2)) bytes=\(try row.decode(Int.self, at: 3)) "
                + "at=\(try row.decode(Date.self, at: 4)) reason=\(try row.decode(String.self, at: 5))")
          }
        }
        let intake = try await pool.query(
          """
          SELECT id, topic, partition, "offset", length(value), created_at, reason
          FROM dispatcher.dead_letters ORDER BY id
          """)
        for row in intake {
          count += 1
          print(
            "intake id=\(try row.decode(Int64.self, at: 0)) topic=\(try row.decode(String.self, at: 1)) "
              + "partition=\(try row.decode(Int.self, at: 2)) offset=\(try row.decode(Int64.self, at: 3)) "
              + "bytes=\(try row.decode(Int.self, at: 4)) at=\(try row.decode(Date.self, at: 5)) "
              + "reason=\(try row.decode(String.self, at: 6))")
        }
        print("\(count) dead letter(s)")
      }
    }
  }

  struct Retry: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract:
        "Give a dead-lettered outbox row back to its relay (after fixing what Kafka refused, e.g. its size limit)."
    )

    @Option(help: "The outbox: command or dispatcher.")
    var schema: String

    @Option(help: "The row's id (from `list`).")
    var id: Int64

    @OptionGroup var database: KeysCommand.DatabaseOption

    func validate() throws {
      guard ["command", "dispatcher"].contains(schema) else {
        throw ValidationError("--schema must be command or dispatcher")
      }
    }

    func run() async throws {
      try await database.withPool { pool in
        let changed = try await pool.execute(
          PostgresQuery(
            unsafeSQL: """
              UPDATE \(schema).outbox SET dead_lettered_at = NULL, dead_letter_reason = NULL
              WHERE id = $1::bigint AND dead_lettered_at IS NOT NULL
              """, binds: [.text(String(id), .text)]))
        guard changed == 1 else { throw ValidationError("no dead-lettered row \(id) in \(schema).outbox") }
        print("\(schema).outbox row \(id) goes back to the relay")
      }
    }
  }
}

extension KeysCommand.DatabaseOption {
  /// Runs `body` with a one-connection pool on the database.
  func withPool<Result>(_ body: (PostgresConnectionPool) async throws -> Result) async throws -> Result {
    guard let url = databaseURL ?? ProcessInfoEnvironment.value("PAYMENTS_DATABASE_URL") else {
      throw ValidationError("no database: pass --database-url or set PAYMENTS_DATABASE_URL")
    }
    return try await withAdminPool(url, body)
  }
}

/// Runs `body` with a one-connection pool on `url` (quiet below warnings), closing it afterwards.
func withAdminPool<Result>(
  _ url: String, _ body: (PostgresConnectionPool) async throws -> Result
) async throws -> Result {
  var logger = Logger(label: "payments.admin")
  logger.logLevel = .warning
  let pool = PostgresConnectionPool(connectionString: url, maximumConnections: 1, logger: logger)
  do {
    let result = try await body(pool)
    await pool.close()
    return result
  } catch {
    await pool.close()
    throw error
  }
}
