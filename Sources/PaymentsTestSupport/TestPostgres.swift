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

/// A PostgreSQL cluster in a local directory, driven by `initdb` and `pg_ctl`.
public struct LocalPostgresCluster: Sendable {
  /// The directory holding `data/`, the server log and the Unix socket.
  public let directory: String
  public let port: Int
  public var dataDirectory: String { directory + "/data" }
  public var logFile: String { directory + "/postgres.log" }

  /// `host=127.0.0.1 port=... user=postgres dbname=postgres`.
  public var connectionString: String {
    "host=127.0.0.1 port=\(port) user=postgres dbname=postgres"
  }

  /// Makes a fresh temporary directory and runs `initdb` in it.
  public static func create(prefix: String) throws -> LocalPostgresCluster {
    var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
    guard let made = mkdtemp(&template) else { throw HarnessError("mkdtemp failed: \(errno)") }
    let directory = String(cString: made)
    try initialize(directory: directory)
    return LocalPostgresCluster(directory: directory, port: try freePort())
  }

  /// Runs `initdb` in `directory` (which may exist) unless it already holds a cluster.
  public static func initialize(directory: String) throws {
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    if getuid() == 0 { try run("/bin/chown", ["-R", "postgres:postgres", directory]) }
    guard !FileManager.default.fileExists(atPath: directory + "/data/PG_VERSION") else { return }
    try runAsPostgres(
      try binary("initdb"),
      [
        "-D", directory + "/data", "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync",
        "--no-instructions",
      ])
  }

  public init(directory: String, port: Int) {
    self.directory = directory
    self.port = port
  }

  /// Starts the server and waits until it accepts connections.
  public func start(settings: [String: String] = [:]) throws {
    var options = "-p \(port) -k \(directory) -c listen_addresses=127.0.0.1"
    for (key, value) in settings.sorted(by: { $0.key < $1.key }) { options += " -c \(key)=\(value)" }
    try Self.runAsPostgres(
      try Self.binary("pg_ctl"),
      ["-D", dataDirectory, "-l", logFile, "-w", "-t", "60", "-o", options, "start"])
  }

  /// Stops the server (fast shutdown: open transactions are rolled back).
  public func stop() throws {
    try Self.runAsPostgres(try Self.binary("pg_ctl"), ["-D", dataDirectory, "-m", "fast", "-w", "stop"])
  }

  /// Starts a detached watchdog that, once process `pid` has exited, stops this cluster and
  /// deletes its directory.
  public func watchProcess(_ pid: Int32) throws {
    let stop = Self.asPostgresCommandLine(
      try Self.binary("pg_ctl"), ["-D", dataDirectory, "-m", "immediate", "-w", "stop"])
    let script =
      "while kill -0 \(pid) 2>/dev/null; do sleep 0.5; done; \(stop) >/dev/null 2>&1; rm -rf '\(directory)'"
    _ = try ChildProcess.spawn("/usr/bin/setsid", ["/bin/sh", "-c", script])
  }

  /// The path of a PostgreSQL 15 server program.
  public static func binary(_ name: String) throws -> String {
    for directory in [
      "/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/17/bin",
    ] {
      let path = directory + "/" + name
      if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    throw HarnessError("\(name) not found: install postgresql-15 (tools/setup does)")
  }

  static func asPostgresCommandLine(_ program: String, _ arguments: [String]) -> String {
    let quoted = ([program] + arguments).map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }
    let prefix = getuid() == 0 ? "runuser -u postgres -- " : ""
    return prefix + quoted.joined(separator: " ")
  }

  static func runAsPostgres(_ program: String, _ arguments: [String]) throws {
    if getuid() == 0 {
      try run("/usr/sbin/runuser", ["-u", "postgres", "--", program] + arguments)
    } else {
      try run(program, arguments)
    }
  }

  static func run(_ program: String, _ arguments: [String]) throws {
    let (status, output) = try ChildProcess.run(program, arguments)
    guard status == 0 else {
      throw HarnessError("\(program) \(arguments.joined(separator: " ")) failed (\(status)): \(output)")
    }
  }
}

/// A free TCP port on 127.0.0.1 (bound once and released).
public func freePort() throws -> Int {
  let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
  guard descriptor >= 0 else { throw HarnessError("socket failed: \(errno)") }
  defer { close(descriptor) }
  var address = sockaddr_in()
  address.sin_family = sa_family_t(AF_INET)
  address.sin_addr.s_addr = inet_addr("127.0.0.1")
  address.sin_port = 0
  var length = socklen_t(MemoryLayout<sockaddr_in>.size)
  let bound = withUnsafePointer(to: &address) {
    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) }
  }
  guard bound == 0 else { throw HarnessError("bind failed: \(errno)") }
  let named = withUnsafeMutablePointer(to: &address) {
    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
  }
  guard named == 0 else { throw HarnessError("getsockname failed: \(errno)") }
  return Int(UInt16(bigEndian: address.sin_port))
}

/// A failure of the test harness itself (not of the code under test).
public struct HarnessError: Error, CustomStringConvertible {
  public let description: String
  public init(_ description: String) { self.description = description }
}
