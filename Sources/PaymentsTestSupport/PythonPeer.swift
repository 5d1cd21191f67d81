public import Foundation
import Glibc

/// The independent Python peers (Google's protobuf and grpcio, installed into `.venv` by
/// tools/python-env) and the scripts in tools/ that drive them.
public enum PythonPeer {
  /// The repository root.
  public static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent()

  /// The venv's interpreter.
  public static func python() throws -> String {
    let python = repository.appendingPathComponent(".venv/bin/python").path
    guard FileManager.default.isExecutableFile(atPath: python) else {
      throw HarnessError("\(python) is missing: run tools/python-env (tools/test does)")
    }
    return python
  }

  /// Runs `tools/<script>` with `arguments`; returns its standard output, or throws with the
  /// output when it fails.
  public static func run(_ script: String, _ arguments: [String]) async throws -> String {
    // Bounded: a peer stuck on a misbehaving server fails the test instead of hanging the run.
    let result = try await ChildProcess.run(
      "/usr/bin/timeout",
      ["120", try python(), repository.appendingPathComponent("tools/" + script).path] + arguments)
    guard result.status == 0 else {
      throw HarnessError("\(script) failed (\(result.status)):\n\(result.output)")
    }
    return result.output
  }

  /// A running Python server.
  public final class Server: Sendable {
    /// Its process ID.
    public let pid: Int32
    /// The port it listens on.
    public let port: Int

    init(pid: Int32, port: Int) {
      self.pid = pid
      self.port = port
    }

    /// Stops the server (the process is reaped on a thread of its own).
    public func stop() {
      kill(pid, SIGKILL)
      let pid = pid
      Thread { _ = try? ChildProcess.wait(pid) }.start()
    }
  }

  /// Starts `tools/<script> --port-file FILE` (and `arguments`) and waits until it wrote its port.
  public static func startServer(
    _ script: String, arguments: [String] = [], timeout: Duration = .seconds(30)
  ) async throws -> Server {
    let portFile = FileManager.default.temporaryDirectory.appendingPathComponent("python-peer-\(UUID()).port")
    defer { try? FileManager.default.removeItem(at: portFile) }
    let pid = try ChildProcess.spawn(
      try python(),
      [repository.appendingPathComponent("tools/" + script).path, "--port-file", portFile.path] + arguments)
    let deadline = ContinuousClock.now.advanced(by: timeout)
    while ContinuousClock.now < deadline {
      if let text = try? String(contentsOf: portFile, encoding: .utf8), let port = Int(text) {
        return Server(pid: pid, port: port)
      }
      var status: Int32 = 0
      if waitpid(pid, &status, WNOHANG) == pid { throw HarnessError("\(script) exited before it listened") }
      try await Task.sleep(for: .milliseconds(50))
    }
    kill(pid, SIGKILL)
    _ = try? await ChildProcess.wait(pid)
    throw HarnessError("\(script) did not report a port within \(timeout)")
  }
}
