import Logging
import PaymentsTestSupport
import Postgres

/// A pool on a fresh database of the shared test cluster.
func makePool(
  maximumConnections: Int = 4, acquireTimeout: Duration = .seconds(10),
  applicationName: String = "payments-test"
)
  async throws -> PostgresConnectionPool
{
  let url = try await TestPostgres.shared.makeDatabase()
  return PostgresConnectionPool(
    configuration: .init(
      connection: PostgresConnectionConfiguration(connectionString: url, applicationName: applicationName),
      maximumConnections: maximumConnections, acquireTimeout: acquireTimeout),
    logger: quietLogger("postgres-test"))
}

/// A single connection on a fresh database.
func makeConnection() async throws -> PostgresConnection {
  let url = try await TestPostgres.shared.makeDatabase()
  return try await PostgresConnection.connect(
    configuration: PostgresConnectionConfiguration(connectionString: url),
    logger: quietLogger("postgres-test"))
}
