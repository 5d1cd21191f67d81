import Foundation
import Logging
import Postgres

/// A throwaway PostgreSQL 15 cluster for tests, started once per test process.
///
/// The cluster lives in a temporary directory on a free loopback port, with `fsync=off` (tests
/// only). As root, `initdb` and `pg_ctl` run as the `postgres` user through `runuser`. A
/// detached watchdog process stops the cluster and deletes its directory as soon as the test
/// process is gone — after a normal exit, a crash, or Ctrl-C — so nothing is left behind.
///
/// Every test asks for its own database (``makeDatabase()``), so tests run in parallel without
/// seeing each other's data. Set `PAYMENTS_TEST_DATABASE_URL` to use an existing server instead.
public actor TestPostgres {
  /// The cluster of this test process.
  public static let shared = TestPostgres()

  private var server: Task<String, any Error>?
  private var databaseCounter = 0

  /// A connection string for a new, empty database.
  public func makeDatabase() async throws -> String {
    let admin = try await adminConnectionString()
    databaseCounter += 1
    let name = "test_\(getpid())_\(databaseCounter)_\(UInt32.random(in: 0...UInt32.max))"
    let logger = Logger(label: "test-postgres")
    let connection = try await PostgresConnection.connect(
      configuration: PostgresConnectionConfiguration(connectionString: admin), logger: logger)
    // CREATE DATABASE takes an identifier; the name is generated above from digits only.
    try await connection.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"))
    await connection.close()
    return Self.connectionString(admin, database: name)
  }

  /// `connectionString` pointed at `database`, for both libpq forms: key/value pairs (a later
  /// `dbname` overrides an earlier one) and `postgresql://` URLs (the path names the database).
  public static func connectionString(_ connectionString: String, database: String) -> String {
    guard connectionString.hasPrefix("postgres://") || connectionString.hasPrefix("postgresql://") else {
      return connectionString + " dbname=\(database)"
    }
    let schemeEnd = connectionString.range(of: "://")!.upperBound
    let rest = connectionString[schemeEnd...]
    let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
    let queryStart = rest[authorityEnd...].firstIndex(of: "?") ?? rest.endIndex
    return String(connectionString[..<authorityEnd]) + "/" + database + String(rest[queryStart...])
  }

  /// The connection string of the cluster's `postgres` database (starts the cluster if needed).
  public func adminConnectionString() async throws -> String {
    if let server { return try await server.value }
    let task = Task { try Self.start() }
    server = task
    return try await task.value
  }

  private static func start() throws -> String {
    if let url = ProcessInfo.processInfo.environment["PAYMENTS_TEST_DATABASE_URL"] {
      return url
    }
    let cluster = try LocalPostgresCluster.create(prefix: "payments-test-pg")
    try cluster.start(settings: [
      "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off", "max_connections": "1000",
    ])
    try cluster.watchProcess(getpid())
    return cluster.connectionString
  }
}

/// A failure of the test harness itself (not of the code under test).
public struct HarnessError: Error, CustomStringConvertible {
  public let description: String
  public init(_ description: String) { self.description = description }
}
