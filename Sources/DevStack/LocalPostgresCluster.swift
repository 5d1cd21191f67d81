import Foundation
import Glibc

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
    guard let made = mkdtemp(&template) else { throw DevStackError("mkdtemp failed: \(errno)") }
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
    throw DevStackError("\(name) not found: install postgresql-15 (tools/setup does)")
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
      throw DevStackError("\(program) \(arguments.joined(separator: " ")) failed (\(status)): \(output)")
    }
  }
}

/// A free TCP port on 127.0.0.1 (bound once and released).
public func freePort() throws -> Int {
  let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
  guard descriptor >= 0 else { throw DevStackError("socket failed: \(errno)") }
  defer { close(descriptor) }
  var address = sockaddr_in()
  address.sin_family = sa_family_t(AF_INET)
  address.sin_addr.s_addr = inet_addr("127.0.0.1")
  address.sin_port = 0
  var length = socklen_t(MemoryLayout<sockaddr_in>.size)
  let bound = withUnsafePointer(to: &address) {
    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) }
  }
  guard bound == 0 else { throw DevStackError("bind failed: \(errno)") }
  let named = withUnsafeMutablePointer(to: &address) {
    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
  }
  guard named == 0 else { throw DevStackError("getsockname failed: \(errno)") }
  return Int(UInt16(bigEndian: address.sin_port))
}
