import DevStack
import Foundation
import Glibc

/// Writes lines of many parts to standard output, each marked with its part, whole lines only.
final class PrefixedOutput: @unchecked Sendable {
  private let lock = NSLock()

  func line(_ part: String, _ text: String) {
    let padded = part.count >= 12 ? part : part + String(repeating: " ", count: 12 - part.count)
    let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
    lock.withLock {
      for line in lines { print("\(padded)| \(line)") }
      fflush(nil)
    }
  }

  /// Text printed as it is (the banner).
  func banner(_ text: String) {
    lock.withLock {
      print(text)
      fflush(nil)
    }
  }
}

/// The child processes of `payments dev`: started in process groups of their own (so that a
/// terminal's Ctrl-C reaches only `payments dev`, which stops them in order), their output
/// relayed line by line with their name, their exits watched. A part started with `restart`
/// that dies is started again after a backoff (1 s, doubling up to 30 s); one that died 5 times
/// within 5 minutes, or any other part, ends the whole run.
final class Supervisor: @unchecked Sendable {
  private struct Child {
    let name: String
    let pid: Int32
  }

  private struct Part {
    let name: String
    let program: String
    let arguments: [String]
    let environment: [String: String]
    let restart: Bool
  }

  private let output: PrefixedOutput
  private let lock = NSLock()
  private var children: [Child] = []
  private var exited: [Int32: Int32] = [:]
  private var stopping = false
  private let unexpected: AsyncStream<String>
  private let unexpectedContinuation: AsyncStream<String>.Continuation

  /// True once a part exited that was not asked to (and was not restarted).
  private(set) var failed: Bool {
    get { lock.withLock { _failed } }
    set { lock.withLock { _failed = newValue } }
  }
  private var _failed = false

  init(output: PrefixedOutput) {
    self.output = output
    (unexpected, unexpectedContinuation) = AsyncStream.makeStream()
  }

  /// Starts `program` as part `name`; `restart`: start it again when it dies.
  func start(
    _ name: String, _ program: String, _ arguments: [String], environment: [String: String] = [:],
    restart: Bool = false
  ) throws {
    try launch(
      Part(name: name, program: program, arguments: arguments, environment: environment, restart: restart),
      deaths: [])
  }

  private func launch(_ part: Part, deaths: [ContinuousClock.Instant]) throws {
    let name = part.name
    var descriptors: [Int32] = [0, 0]
    guard pipe(&descriptors) == 0 else { throw DevStackError("pipe failed: \(errno)") }
    // The read end must not leak into the children.
    _ = fcntl(descriptors[0], F_SETFD, FD_CLOEXEC)
    let pid: Int32
    do {
      pid = try ChildProcess.spawn(
        part.program, part.arguments, output: descriptors[1], environment: part.environment,
        newProcessGroup: true)
    } catch {
      close(descriptors[0])
      close(descriptors[1])
      throw error
    }
    close(descriptors[1])
    let lateForShutdown = lock.withLock { () -> Bool in
      children.append(Child(name: name, pid: pid))
      return stopping
    }
    // A restart that raced a shutdown: stopAll may not have seen this child.
    if lateForShutdown { kill(pid, SIGTERM) }
    let output = output
    let reader = descriptors[0]
    Thread {
      var pending: [UInt8] = []
      var buffer = [UInt8](repeating: 0, count: 16 << 10)
      while true {
        let count = read(reader, &buffer, buffer.count)
        if count < 0, errno == EINTR { continue }
        if count <= 0 { break }
        pending.append(contentsOf: buffer[0..<count])
        while let newline = pending.firstIndex(of: 10) {
          output.line(name, String(decoding: pending[..<newline], as: UTF8.self))
          pending.removeSubrange(...newline)
        }
      }
      if !pending.isEmpty { output.line(name, String(decoding: pending, as: UTF8.self)) }
      close(reader)
    }.start()
    Thread { [self] in
      let status = (try? ChildProcess.wait(pid)) ?? -1
      let expected = lock.withLock { () -> Bool in
        exited[pid] = status
        return stopping
      }
      guard !expected else { return }
      let now = ContinuousClock.now
      let recent = (deaths + [now]).filter { now - $0 < .seconds(300) }
      if part.restart, recent.count < 5 {
        let delay = Duration.seconds(min(30, 1 << (recent.count - 1)))
        output.line("dev", "\(name) exited unexpectedly (status \(status)); restarting it in \(delay)")
        let restartAt = now + delay
        while ContinuousClock.now < restartAt {
          if lock.withLock({ stopping }) { return }
          usleep(50_000)
        }
        if lock.withLock({ stopping }) { return }
        do {
          try launch(part, deaths: recent)
          return
        } catch {
          output.line("dev", "\(name) could not be started again: \(error)")
        }
      }
      failed = true
      output.line("dev", "\(name) exited unexpectedly (status \(status))")
      unexpectedContinuation.yield("\(name) exited with status \(status)")
    }.start()
  }

  /// Returns when a part exits without being asked to.
  func firstUnexpectedExit() async -> String {
    for await reason in unexpected { return reason }
    return "stopped"
  }

  /// Stops every part: the services first (SIGTERM, then SIGKILL after `grace`), the broker last.
  func stopAll(grace: Duration = .seconds(15)) {
    let all = lock.withLock { () -> [Child] in
      stopping = true
      return children
    }
    let services = all.filter { $0.name != "broker" }
    let broker = all.filter { $0.name == "broker" }
    for group in [services, broker] where !group.isEmpty {
      for child in group where !hasExited(child.pid) { kill(child.pid, SIGTERM) }
      let deadline = ContinuousClock.now + grace
      while ContinuousClock.now < deadline, group.contains(where: { !hasExited($0.pid) }) {
        usleep(50_000)
      }
      for child in group where !hasExited(child.pid) {
        output.line("dev", "\(child.name) did not stop within \(grace); killing it")
        kill(child.pid, SIGKILL)
      }
      while group.contains(where: { !hasExited($0.pid) }) { usleep(20_000) }
      for child in group {
        let status = lock.withLock { exited[child.pid] ?? -1 }
        output.line("dev", "\(child.name) stopped (exit status \(status))")
      }
    }
    unexpectedContinuation.finish()
  }

  private func hasExited(_ pid: Int32) -> Bool { lock.withLock { exited[pid] != nil } }
}
