import Foundation
import Glibc

/// Runs programs with `posix_spawn` and `waitpid`.
///
/// Foundation's `Process.waitUntilExit` relies on a run loop and a SIGCHLD monitor that can miss
/// exits when many tests spawn processes concurrently; plain `waitpid` cannot.
public enum ChildProcess {
  /// Runs `program` with `arguments`, waits for it, and returns its exit status and combined
  /// output (written to a temporary file, so a daemon that keeps the descriptors open — such as
  /// a server that `pg_ctl` starts — cannot make this wait).
  public static func run(_ program: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
    var template = Array("/tmp/payments-child-XXXXXX".utf8CString)
    let outputDescriptor = mkstemp(&template)
    guard outputDescriptor >= 0 else { throw DevStackError("mkstemp failed: \(errno)") }
    let outputPath = String(
      decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    defer {
      close(outputDescriptor)
      unlink(outputPath)
    }
    let pid = try spawn(program, arguments, output: outputDescriptor)
    let status = try wait(pid)
    var output = [UInt8]()
    var buffer = [UInt8](repeating: 0, count: 4096)
    lseek(outputDescriptor, 0, SEEK_SET)
    while true {
      let count = read(outputDescriptor, &buffer, buffer.count)
      if count <= 0 { break }
      output.append(contentsOf: buffer[0..<count])
    }
    return (status, String(decoding: output, as: UTF8.self))
  }

  /// Starts `program` with standard input from /dev/null and standard output and error to
  /// `output` (or /dev/null); returns its process ID. `environment` entries are added to this
  /// process's; with `newProcessGroup` the child leads a process group of its own (a terminal's
  /// Ctrl-C reaches only this process, which then stops the child in its own order).
  public static func spawn(
    _ program: String, _ arguments: [String], output: Int32? = nil, environment: [String: String] = [:],
    newProcessGroup: Bool = false
  ) throws -> Int32 {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    if let output {
      posix_spawn_file_actions_adddup2(&actions, output, 1)
      posix_spawn_file_actions_adddup2(&actions, output, 2)
    } else {
      posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
      posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
    }
    let argv: [UnsafeMutablePointer<CChar>?] = ([program] + arguments).map { strdup($0) } + [nil]
    defer { for pointer in argv { free(pointer) } }
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    if newProcessGroup {
      posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
      posix_spawnattr_setpgroup(&attributes, 0)
    }
    var variables = ProcessInfo.processInfo.environment
    variables.merge(environment) { $1 }
    let envp: [UnsafeMutablePointer<CChar>?] = variables.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer { for pointer in envp { free(pointer) } }
    var pid: pid_t = 0
    let result = posix_spawn(&pid, program, &actions, &attributes, argv, envp)
    guard result == 0 else {
      throw DevStackError("could not start \(program): \(String(cString: strerror(result)))")
    }
    return pid
  }

  /// Waits for `pid` and returns its exit status (128 + signal when it was killed).
  public static func wait(_ pid: Int32) throws -> Int32 {
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 {
      guard errno == EINTR else { throw DevStackError("waitpid failed: \(errno)") }
    }
    let signal = status & 0x7f
    return signal == 0 ? (status >> 8) & 0xff : 128 + signal
  }
}

extension ChildProcess {
  /// ``run(_:_:)`` on a thread of its own: the caller's task waits without holding one of the
  /// cooperative pool's threads (two on this machine), which servers in the same test process
  /// need in order to answer the child.
  public static func run(_ program: String, _ arguments: [String]) async throws -> (
    status: Int32, output: String
  ) {
    try await offPool { try run(program, arguments) }
  }

  /// ``wait(_:)`` on a thread of its own (see ``run(_:_:)-async``).
  public static func wait(_ pid: Int32) async throws -> Int32 {
    try await offPool { try wait(pid) }
  }

  private static func offPool<Result: Sendable>(_ work: @escaping @Sendable () throws -> Result) async throws
    -> Result
  {
    try await withCheckedThrowingContinuation { continuation in
      let thread = Thread { continuation.resume(with: Swift.Result { try work() }) }
      thread.start()
    }
  }
}
