import Foundation
import Glibc
import Logging
import PaymentsTestSupport
import Postgres
import Testing

/// A `payments dev` run in the background, its output collected in a file.
private struct DevRun {
  let pid: Int32
  let outputFile: String

  static func start(_ arguments: [String]) throws -> DevRun {
    let outputFile = FileManager.default.temporaryDirectory.appendingPathComponent("dev-\(UUID()).log").path
    let output = open(outputFile, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    defer { close(output) }
    let pid = try ChildProcess.spawn(try Executables.path("payments"), ["dev"] + arguments, output: output)
    return DevRun(pid: pid, outputFile: outputFile)
  }

  var output: String { (try? String(contentsOfFile: outputFile, encoding: .utf8)) ?? "" }

  /// Waits until the banner is out; returns the output so far.
  func waitUntilReady(timeout: Duration = .seconds(180)) async throws -> String {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
      let text = output
      if text.contains("Ctrl-C stops everything.") { return text }
      var status: Int32 = 0
      if waitpid(pid, &status, WNOHANG) == pid { throw HarnessError("payments dev exited early:\n\(text)") }
      try await Task.sleep(for: .milliseconds(200))
    }
    throw HarnessError("payments dev was not ready within \(timeout):\n\(output)")
  }

  /// Sends SIGINT (a terminal's Ctrl-C) and returns the exit status.
  func interrupt() async throws -> Int32 {
    kill(pid, SIGINT)
    return try await ChildProcess.wait(pid)
  }
}

/// Every process whose parent is `pid`.
private func children(of pid: Int32) -> [Int32] {
  let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
  return entries.compactMap(Int32.init).filter { candidate in
    guard let stat = try? String(contentsOfFile: "/proc/\(candidate)/stat", encoding: .utf8),
      let close = stat.lastIndex(of: ")")
    else { return false }
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    return fields.count > 1 && Int32(fields[1]) == pid
  }
}

/// Processes (other than zombies) whose command line mentions `text`.
private func processes(mentioning text: String) -> [Int32] {
  let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
  return entries.compactMap(Int32.init).filter { pid in
    guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"), !data.isEmpty else {
      return false
    }
    return String(decoding: data.map { $0 == 0 ? 32 : $0 }, as: UTF8.self).contains(text)
  }
}

/// The first of `count` consecutive ports that nothing listens on (see ``fixedPorts(_:)``).
private func fixedPortRange(_ count: Int) throws -> Int {
  while true {
    let first = try fixedPorts(1)[0]
    if first + count <= 32_000, (1..<count).allSatisfy({ Loopback.canBind(port: first + $0) }) {
      return first
    }
  }
}

/// The body of an HTTP GET, fetched by Python's standard library (an independent client).
private func httpGet(_ url: String) async throws -> String {
  let result = try await ChildProcess.run(
    "/usr/bin/env",
    [
      "python3", "-c",
      "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())",
      url,
    ])
  guard result.status == 0 else { throw DevStackError("GET \(url): \(result.output)") }
  return result.output
}

/// `count` ports that nothing listens on, below the kernel's ephemeral range (32768 and up): a
/// port from `freePort()` is released before `payments dev` binds it, and in between the
/// outgoing connections of the other tests running in parallel may take it.
private func fixedPorts(_ count: Int) throws -> [Int] {
  var ports: [Int] = []
  while ports.count < count {
    let port = Int.random(in: 20_000..<32_000)
    let bound = Loopback.canBind(port: port)
    if bound, !ports.contains(port) { ports.append(port) }
  }
  return ports
}

@Suite("payments dev")
struct DevCommandTests {
  @Test(
    "from a clean state: the printed paymentsctl line gets a payment to SUCCEEDED; Ctrl-C leaves nothing behind; a second run reuses the data"
  )
  func devStack() async throws {
    let directory = "/tmp/payments-dev-test-\(UUID().uuidString.prefix(8))"
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let ports = try fixedPorts(5)
    let metrics = try fixedPortRange(3)
    let arguments = [
      "--data-dir", directory, "--command-port", "\(ports[0])", "--query-port", "\(ports[1])",
      "--dispatcher-port", "\(ports[2])", "--sandbox-port", "\(ports[3])", "--postgres-port", "\(ports[4])",
      "--metrics-port", "\(metrics)", "--log-level", "warning",
    ]
    let first = try DevRun.start(arguments + ["--fresh"])
    var stopped = false
    defer {
      if !stopped {
        kill(first.pid, SIGKILL)
        _ = try? ChildProcess.wait(first.pid)
      }
    }
    let banner = try await first.waitUntilReady()
    let lines = banner.split(separator: "\n").map(String.init)
    let tryLine = try #require(
      lines.first { $0.contains("PAYMENTS_API_KEY=") && $0.contains("submit") }?.trimmingCharacters(
        in: .whitespaces))
    let parts = Set(lines.compactMap { $0.split(separator: "|").first?.trimmingCharacters(in: .whitespaces) })
    #expect(
      parts.isSuperset(of: ["dev", "migrate", "broker"]), "every line is marked with its part: \(parts)")

    // A second one on the same data directory is refused (it would stop this one's PostgreSQL).
    let rival = try await ChildProcess.run(try Executables.path("payments"), ["dev"] + arguments)
    #expect(rival.status != 0)
    #expect(rival.output.contains("another payments dev is using"), "\(rival.output)")

    // The printed line, as a user would paste it.
    let submitted = try await ChildProcess.run("/usr/bin/timeout", ["120", "/bin/sh", "-c", tryLine])
    #expect(submitted.status == 0, "\(submitted.output)")
    #expect(submitted.output.contains("status: SUCCEEDED"), "\(submitted.output)")
    let paymentID = submitted.output.split(separator: "\n").first { $0.hasPrefix("payment_id: ") }?.dropFirst(
      12)

    // The services' metrics: the payment was submitted once and charged once.
    let commandMetrics = try await httpGet("http://127.0.0.1:\(metrics)/metrics")
    #expect(
      commandMetrics.contains(
        #"rpc_server_requests_total{method="payments.v1.PaymentCommandService/SubmitPayment",code="OK"} 1"#)
        || commandMetrics.contains(
          #"rpc_server_requests_total{code="OK",method="payments.v1.PaymentCommandService/SubmitPayment"} 1"#),
      "\(commandMetrics)")
    let dispatcherMetrics = try await httpGet("http://127.0.0.1:\(metrics + 2)/metrics")
    #expect(dispatcherMetrics.contains("provider_calls_total{"), "\(dispatcherMetrics)")

    // Every gRPC port serves reflection, the dispatcher's health port too (grpcurl and
    // paymentsctl need it to call anything there).
    let listed = try await ChildProcess.run(
      try Executables.path("paymentsctl"), ["list", "127.0.0.1:\(ports[2])", "--plaintext"])
    #expect(listed.status == 0, "\(listed.output)")
    #expect(listed.output.contains("grpc.health.v1.Health"), "\(listed.output)")
    #expect(
      listed.output.split(separator: "\n").filter { $0.hasPrefix("payments.v1") } == [
        "payments.v1.PaymentDispatcherService"
      ], "the dispatcher's own (internal) service only: \(listed.output)")

    // A service that dies is started again: kill the query service and read the payment through
    // it once more.
    let queryProcess = try #require(
      children(of: first.pid).first { pid in
        let line = (try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? ""
        return line.split(separator: "\0").dropFirst().first == "query"
      })
    kill(queryProcess, SIGKILL)
    if let paymentID {
      let key = try String(contentsOfFile: directory + "/api-key", encoding: .utf8).trimmingCharacters(
        in: .whitespacesAndNewlines)
      var shown = ""
      let deadline = ContinuousClock.now + .seconds(60)
      while !shown.contains("status: SUCCEEDED"), ContinuousClock.now < deadline {
        try await Task.sleep(for: .milliseconds(500))
        shown =
          (try? await ChildProcess.run(
            "/usr/bin/env",
            [
              "PAYMENTS_API_KEY=\(key)",
              try Executables.path("paymentsctl"), "get", String(paymentID), "--plaintext", "--command",
              "127.0.0.1:\(ports[0])", "--query", "127.0.0.1:\(ports[1])",
            ]
          ).output) ?? ""
      }
      #expect(shown.contains("status: SUCCEEDED"), "the restarted query service answers: \(shown)")
    }
    #expect(first.output.contains("query exited unexpectedly"), "\(first.output)")
    #expect(first.output.contains("restarting it in"))

    let spawned = children(of: first.pid)
    #expect(spawned.count == 5, "broker, sandbox, command, dispatcher and query: \(spawned)")
    #expect(!spawned.contains(queryProcess))
    #expect(try await first.interrupt() == 0, "\(first.output)")
    stopped = true
    #expect(spawned.filter { kill($0, 0) == 0 }.isEmpty, "no child left running")
    #expect(
      processes(mentioning: directory).isEmpty, "no process (PostgreSQL included) uses the data directory")
    #expect(first.output.contains("stopping PostgreSQL"))

    // Again, without --fresh: the same key, the same data.
    let second = try DevRun.start(arguments)
    defer {
      kill(second.pid, SIGKILL)
      _ = try? ChildProcess.wait(second.pid)
    }
    let again = try await second.waitUntilReady()
    let key = try String(contentsOfFile: directory + "/api-key", encoding: .utf8).trimmingCharacters(
      in: .whitespacesAndNewlines)
    #expect(tryLine.contains("PAYMENTS_API_KEY=\(key) "))
    #expect(again.contains("PAYMENTS_API_KEY=\(key) "), "the key is reused")
    if let paymentID {
      let ctl = try Executables.path("paymentsctl")
      let shown = try await ChildProcess.run(
        "/usr/bin/env",
        [
          "PAYMENTS_API_KEY=\(key)", ctl, "get", String(paymentID), "--plaintext", "--command",
          "127.0.0.1:\(ports[0])",
          "--query", "127.0.0.1:\(ports[1])",
        ])
      #expect(shown.output.contains("status: SUCCEEDED"), "the payment survived the restart: \(shown.output)")
    }
    #expect(try await second.interrupt() == 0)
    #expect(processes(mentioning: directory).isEmpty)
  }

  @Test(
    "Ctrl-C right after a burst of payments, then a restart: every payment still ends terminal (the new broker gets what the old one took)"
  )
  func restartLosesNothing() async throws {
    let directory = "/tmp/payments-dev-test-\(UUID().uuidString.prefix(8))"
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let ports = try fixedPorts(5)
    let metrics = try fixedPortRange(3)
    let arguments = [
      "--data-dir", directory, "--command-port", "\(ports[0])", "--query-port", "\(ports[1])",
      "--dispatcher-port", "\(ports[2])", "--sandbox-port", "\(ports[3])", "--postgres-port", "\(ports[4])",
      "--metrics-port", "\(metrics)", "--log-level", "warning",
    ]
    // (The platform charges 2 payments a second: 40 take 20 s after the restart.)
    let count = 40
    let first = try DevRun.start(arguments + ["--fresh"])
    var firstStopped = false
    defer {
      if !firstStopped {
        kill(first.pid, SIGKILL)
        _ = try? ChildProcess.wait(first.pid)
      }
    }
    _ = try await first.waitUntilReady()
    let key = try String(contentsOfFile: directory + "/api-key", encoding: .utf8).trimmingCharacters(
      in: .whitespacesAndNewlines)
    let load = try await ChildProcess.run(
      "/usr/bin/env",
      [
        "PAYMENTS_API_KEY=\(key)", try Executables.path("paymentsctl"), "load", "--count", "\(count)",
        "--concurrency", "16", "--plaintext", "--command", "127.0.0.1:\(ports[0])", "--query",
        "127.0.0.1:\(ports[1])",
      ])
    #expect(load.status == 0, "\(load.output)")
    // At once: most orders are published to the broker that is about to vanish, few taken in.
    #expect(try await first.interrupt() == 0, "\(first.output)")
    firstStopped = true

    let second = try DevRun.start(arguments)
    defer {
      kill(second.pid, SIGKILL)
      _ = try? ChildProcess.wait(second.pid)
    }
    _ = try await second.waitUntilReady()
    var logger = Logger(label: "dev-test")
    logger.logLevel = .warning
    let pool = PostgresConnectionPool(
      connectionString: "postgresql://postgres@127.0.0.1:\(ports[4])/postgres", maximumConnections: 1,
      logger: logger)
    var terminal: Int64 = 0
    let deadline = ContinuousClock.now + .seconds(240)
    while terminal < count, ContinuousClock.now < deadline {
      try await Task.sleep(for: .seconds(1))
      // SUCCEEDED (4) or FAILED (5), as the read model shows them.
      let rows = try await pool.query("SELECT count(*) FROM query.payments WHERE status IN (4, 5)")
      terminal = try rows[0].decode(Int64.self, at: 0)
    }
    await pool.close()
    #expect(terminal == Int64(count), "terminal in the read model after the restart:\n\(second.output)")
    #expect(try await second.interrupt() == 0)
  }
}
