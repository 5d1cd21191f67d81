import ArgumentParser
import DevStack
import Foundation
import Glibc
import Postgres
import UnixSignals

/// `payments dev`: the whole platform on this machine, in one command.
struct DevCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "dev",
    abstract:
      "Run the whole platform locally: PostgreSQL, the dev Kafka broker, the provider sandbox and all services.",
    discussion: """
      Starts (as child processes of this one) a PostgreSQL cluster in --data-dir, the development
      Kafka broker, the provider sandbox, the command service, --dispatchers dispatchers and the
      query service; applies the migrations; creates a development API key (kept in the data
      directory); prints the endpoints and a paymentsctl line to try. Every line of output is
      marked with the part that wrote it. Ctrl-C (or SIGTERM) stops everything; running it again
      reuses the data directory (--fresh starts over).
      """)

  @Option(help: "Where PostgreSQL's data, the dev API key and the broker address live.")
  var dataDir: String = ".payments-dev"

  @Flag(help: "Delete the data directory first.")
  var fresh = false

  @Option(help: "Number of dispatcher instances.")
  var dispatchers: Int = 1

  @Option(help: "The command service's port.") var commandPort: Int = 50051
  @Option(help: "The query service's port.") var queryPort: Int = 50052
  @Option(help: "The first dispatcher's health port (the next ones count up).") var dispatcherPort: Int =
    50053
  @Option(help: "The provider sandbox's port.") var sandboxPort: Int = 8090
  @Option(help: "PostgreSQL's port.") var postgresPort: Int = 54329
  @Option(
    help:
      "The first admin port serving /metrics: the command service's; the query service's is the next, then the dispatchers'."
  )
  var metricsPort: Int = 9101

  @Option(help: "Log level of the services: trace, debug, info, notice, warning, error, critical.")
  var logLevel: String = "info"

  func validate() throws {
    guard dispatchers >= 1 else { throw ValidationError("--dispatchers must be at least 1") }
    for (name, port) in [
      ("--command-port", commandPort), ("--query-port", queryPort), ("--dispatcher-port", dispatcherPort),
      ("--sandbox-port", sandboxPort), ("--postgres-port", postgresPort),
      ("--metrics-port", metricsPort + 1 + dispatchers),
    ] where !(1...65535).contains(port) {
      throw ValidationError("\(name) \(port) is not a port number")
    }
  }

  func run() async throws {
    let output = PrefixedOutput()
    let directory = URL(fileURLWithPath: dataDir).standardizedFileURL.path
    let postgresDirectory = Self.postgresDirectory(in: directory)
    let cluster = LocalPostgresCluster(directory: postgresDirectory, port: postgresPort)
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    // One `payments dev` per data directory: the lock lives as long as this process.
    let lock = open(directory + "/lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
    guard lock >= 0, flock(lock, LOCK_EX | LOCK_NB) == 0 else {
      throw ValidationError("another payments dev is using \(directory)")
    }
    if fresh {
      output.line("dev", "--fresh: deleting what \(directory) holds")
      try? cluster.stop()
      if !postgresDirectory.hasPrefix(directory + "/") {
        try? FileManager.default.removeItem(atPath: postgresDirectory)
      }
      for item in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where item != "lock"
      {
        try FileManager.default.removeItem(atPath: directory + "/" + item)
      }
    }

    // PostgreSQL.
    output.line("dev", "PostgreSQL in \(postgresDirectory) on port \(postgresPort)")
    do {
      try LocalPostgresCluster.initialize(directory: postgresDirectory)
      try? cluster.stop()  // a server left behind by a run that was killed (we hold the lock)
      try cluster.start()
    } catch {
      throw ValidationError(
        "cannot start PostgreSQL in \(postgresDirectory): \(error)"
      )
    }
    let database = "postgresql://postgres@127.0.0.1:\(postgresPort)/postgres"
    let supervisor = Supervisor(output: output)
    var stopped = false
    func stopEverything() {
      guard !stopped else { return }
      stopped = true
      supervisor.stopAll()
      output.line("dev", "stopping PostgreSQL")
      try? cluster.stop()
    }

    do {
      let me = try Self.executablePath()
      // Migrations and the development key.
      let migrate = try await ChildProcess.run(me, ["migrate", "--database-url", database])
      output.line("migrate", migrate.output.trimmingCharacters(in: .whitespacesAndNewlines))
      guard migrate.status == 0 else { throw ExitCode(1) }
      let keyFile = directory + "/api-key"
      var apiKey =
        (try? String(contentsOfFile: keyFile, encoding: .utf8))?.trimmingCharacters(
          in: .whitespacesAndNewlines) ?? ""
      if apiKey.isEmpty {
        let created = try await ChildProcess.run(
          me, ["keys", "create", "--client", "dev", "--database-url", database])
        guard created.status == 0 else {
          output.line("keys", created.output)
          throw ExitCode(1)
        }
        apiKey = created.output.trimmingCharacters(in: .whitespacesAndNewlines)
        FileManager.default.createFile(
          atPath: keyFile, contents: Data((apiKey + "\n").utf8), attributes: [.posixPermissions: 0o600])
      }

      // The dev broker keeps nothing between runs: what the relays marked published to the last
      // one and the consumers had not yet taken in would never arrive.
      let (orders, events) = try await Self.republishUnseen(database)
      if orders + events > 0 {
        output.line(
          "dev",
          "the dev broker starts empty: publishing again \(orders) orders and \(events) events that the dispatchers or the query service had not taken in"
        )
      }

      // The broker, then the parts that need it.
      let bootstrapFile = directory + "/bootstrap"
      try? FileManager.default.removeItem(atPath: bootstrapFile)
      try supervisor.start("broker", me, ["broker", "--brokers", "1", "--bootstrap-file", bootstrapFile])
      let brokers = try await Self.waitForFile(bootstrapFile, timeout: .seconds(30))
      let environment = [
        "PAYMENTS_DATABASE_URL": database, "PAYMENTS_KAFKA_BROKERS": brokers, "PAYMENTS_LOG_LEVEL": logLevel,
        // Well inside the supervisor's 15 s before SIGKILL (the grace, then closing the clients).
        "PAYMENTS_SHUTDOWN_GRACE": "3",
      ]
      try supervisor.start(
        "sandbox", me, ["provider-sandbox", "--host", "127.0.0.1", "--port", "\(sandboxPort)"], restart: true)
      try supervisor.start(
        "command", me,
        [
          "command", "--host", "127.0.0.1", "--port", "\(commandPort)", "--admin-port", "\(metricsPort)",
          "--dispatcher-address", "127.0.0.1:\(dispatcherPort)",
        ],
        environment: environment, restart: true)
      var ports = [sandboxPort, commandPort, queryPort]
      for index in 0..<dispatchers {
        let port = dispatcherPort + index
        ports.append(port)
        try supervisor.start(
          dispatchers == 1 ? "dispatcher" : "dispatcher-\(index + 1)", me,
          [
            "dispatcher", "--host", "127.0.0.1", "--port", "\(port)", "--provider",
            "sandbox=http://127.0.0.1:\(sandboxPort)", "--admin-port", "\(metricsPort + 2 + index)",
          ], environment: environment, restart: true)
      }
      try supervisor.start(
        "query", me,
        ["query", "--host", "127.0.0.1", "--port", "\(queryPort)", "--admin-port", "\(metricsPort + 1)"],
        environment: environment, restart: true)
      for port in ports { try await Self.waitForPort(port, timeout: .seconds(60), supervisor: supervisor) }

      let ctl = URL(fileURLWithPath: me).deletingLastPathComponent().appendingPathComponent("paymentsctl")
        .path
      let ctlCommand = FileManager.default.isExecutableFile(atPath: ctl) ? ctl : "swift run paymentsctl"
      output.banner(
        """

        The payments platform is running.
          command service     127.0.0.1:\(commandPort)   (gRPC, plaintext)
          query service       127.0.0.1:\(queryPort)   (gRPC, plaintext)
          dispatcher health   127.0.0.1:\(dispatcherPort)\(dispatchers > 1 ? "-\(dispatcherPort + dispatchers - 1)" : "")
          provider sandbox    http://127.0.0.1:\(sandboxPort)   (/v1/ledger, /v1/stats)
          metrics             http://127.0.0.1:\(metricsPort)/metrics (command), :\(metricsPort + 1) (query), :\(metricsPort + 2)\(dispatchers > 1 ? "-\(metricsPort + 1 + dispatchers)" : "") (dispatchers)
          PostgreSQL          \(database)
          Kafka               \(brokers)
          API key             \(apiKey)   (also in \(keyFile))

        Try it:
          PAYMENTS_API_KEY=\(apiKey) \(ctlCommand) submit --amount 12.34 --currency EUR --payer acct_1 --payee acct_2 --plaintext --command 127.0.0.1:\(commandPort) --query 127.0.0.1:\(queryPort) --wait

        Ctrl-C stops everything.

        """)

      // Until Ctrl-C / SIGTERM, or until a part dies.
      let signals = await UnixSignalsSequence(trapping: .sigint, .sigterm)
      let reason = await withTaskGroup(of: String.self) { group in
        group.addTask {
          for await signal in signals { return "\(signal)" }
          return "signal"
        }
        group.addTask { await supervisor.firstUnexpectedExit() }
        let first = await group.next()!
        group.cancelAll()
        return first
      }
      output.line("dev", "shutting down (\(reason))")
      stopEverything()
      if supervisor.failed { throw ExitCode(1) }
    } catch {
      stopEverything()
      throw error
    }
  }

  /// Where PostgreSQL's cluster lives: `DIRECTORY/postgres`, unless this runs as root and the
  /// `postgres` user (which `initdb` and `pg_ctl` run as) cannot reach that place, as under
  /// `/root`; then a directory of its own under /var/tmp, named after the data directory.
  static func postgresDirectory(in directory: String) -> String {
    let inside = directory + "/postgres"
    guard getuid() == 0 else { return inside }
    var path = ""
    for component in directory.split(separator: "/") {
      path += "/" + component
      guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
        let mode = attributes[.posixPermissions] as? Int
      else { break }  // made below, by root with mode 755
      if mode & 0o001 == 0 {
        let name = directory.map { $0.isLetter || $0.isNumber ? $0 : "-" }
        return "/var/tmp/payments-dev-postgres" + String(name)
      }
    }
    return inside
  }

  /// This executable's path.
  /// Marks for publishing again every outbox row whose effect is not in the database yet: an
  /// order that a dispatcher or the query service has not stored, an event of a payment whose read
  /// model is behind the dispatcher's version (the consumers ignore what they already have, by
  /// payment ID and version). Dead-lettered rows stay as they are. Returns the rows of each kind.
  static func republishUnseen(_ database: String) async throws -> (orders: Int, events: Int) {
    try await withAdminPool(database) { try await republishUnseen($0) }
  }

  private static func republishUnseen(_ pool: PostgresConnectionPool) async throws -> (
    orders: Int, events: Int
  ) {
    let orders = try await pool.execute(
      """
      UPDATE command.outbox o SET published_at = NULL
      WHERE o.published_at IS NOT NULL AND o.dead_lettered_at IS NULL
        AND (NOT EXISTS (SELECT 1 FROM dispatcher.payments d WHERE d.payment_id = o.message_key)
             OR NOT EXISTS (SELECT 1 FROM query.payments q WHERE q.payment_id = o.message_key))
      """)
    let events = try await pool.execute(
      """
      UPDATE dispatcher.outbox o SET published_at = NULL
      FROM dispatcher.payments d
      WHERE o.published_at IS NOT NULL AND o.dead_lettered_at IS NULL AND d.payment_id = o.message_key
        AND NOT EXISTS (
          SELECT 1 FROM query.payments q WHERE q.payment_id = d.payment_id AND q.version >= d.version)
      """)
    return (orders, events)
  }

  static func executablePath() throws -> String {
    var buffer = [CChar](repeating: 0, count: 4096)
    let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    guard length > 0 else { throw ValidationError("cannot find this executable's path") }
    return String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
  }

  static func waitForFile(_ path: String, timeout: Duration) async throws -> String {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
      if let text = try? String(contentsOfFile: path, encoding: .utf8), !text.isEmpty {
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
      }
      try await Task.sleep(for: .milliseconds(100))
    }
    throw ValidationError("the broker did not write \(path) within \(timeout)")
  }

  static func waitForPort(_ port: Int, timeout: Duration, supervisor: Supervisor) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
      if supervisor.failed { throw ExitCode(1) }
      if Loopback.canConnect(port: port) { return }
      try await Task.sleep(for: .milliseconds(100))
    }
    throw ValidationError("nothing listens on port \(port) after \(timeout)")
  }
}
