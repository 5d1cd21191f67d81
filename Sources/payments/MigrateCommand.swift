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
      let applied = try await PostgresMigrator(pool: pool, logger: logger).migrate(migrations)
      await pool.close()
      print("migrations: \(applied.count) applied, \(migrations.count - applied.count) already present")
    } catch {
      await pool.close()
      throw error
    }
  }
}
