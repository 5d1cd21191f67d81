import ArgumentParser
import Logging
import PaymentsSchema
import Postgres

/// `payments migrate`: applies the schema migrations; safe to run from several instances at once.
struct MigrateCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "migrate",
    abstract: "Apply the database schema migrations (safe to run concurrently).")

  @Option(
    name: .customLong("database-url"),
    help: "PostgreSQL connection string (URL or key=value). Default: $PAYMENTS_DATABASE_URL.")
  var databaseURL: String?

  @Option(help: "Only migrate this schema (auth, command, dispatcher or query). Default: all.")
  var schema: String?

  @Option(
    help: ArgumentHelp(
      "Seconds to keep trying while PostgreSQL does not accept connections yet (a container starting next to it).",
      valueName: "seconds"))
  var wait: Double = 0

  func run() async throws {
    let logger = Logger(label: "payments.migrate")
    guard let url = databaseURL ?? ProcessInfoEnvironment.value("PAYMENTS_DATABASE_URL") else {
      throw ValidationError("no database: pass --database-url or set PAYMENTS_DATABASE_URL")
    }
    let migrations: [PostgresMigration]
    if let schema {
      guard let selected = PaymentsMigrations.forSchema(schema) else {
        throw ValidationError("unknown schema '\(schema)': expected auth, command, dispatcher or query")
      }
      migrations = selected
    } else {
      migrations = PaymentsMigrations.all
    }
    let pool = PostgresConnectionPool(connectionString: url, maximumConnections: 1, logger: logger)
    do {
      try await waitForDatabase(pool)
      let applied = try await PostgresMigrator(pool: pool, logger: logger).migrate(migrations)
      await pool.close()
      print("migrations: \(applied.count) applied, \(migrations.count - applied.count) already present")
    } catch {
      await pool.close()
      throw error
    }
  }

  /// Returns once a query succeeds; retries every second for ``wait`` seconds, then throws the last
  /// error.
  private func waitForDatabase(_ pool: PostgresConnectionPool) async throws {
    guard wait > 0 else { return }
    let deadline = ContinuousClock.now + .milliseconds(Int64(wait * 1000))
    while true {
      do {
        _ = try await pool.query("SELECT 1")
        return
      } catch {
        guard ContinuousClock.now + .seconds(1) < deadline else {
          throw ValidationError("PostgreSQL did not accept a connection within \(wait) s: \(error)")
        }
        print("waiting for PostgreSQL: \(error)")
        try await Task.sleep(for: .seconds(1))
      }
    }
  }
}
