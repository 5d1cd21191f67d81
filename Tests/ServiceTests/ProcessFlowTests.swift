import AsyncHTTPClient
import Foundation
import Glibc
import Kafka
import NIOCore
import NIOFoundationCompat
import PaymentsCore
import PaymentsProto
import PaymentsSchema
import PaymentsTestSupport
import Postgres
import ProtobufRuntime
import ProviderSandbox
import RPCCore
import RPCTransportHTTP2
import Synchronization
import Testing

/// The platform as separate processes, as an operator runs it.
final class ProcessStack: Sendable {
  let directory: String
  let databaseURL: String
  let brokers: String
  private let pids = SlotPIDs()

  init(databaseURL: String, brokers: String) throws {
    directory = FileManager.default.temporaryDirectory.appendingPathComponent("stack-\(UUID())").path
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    self.databaseURL = databaseURL
    self.brokers = brokers
  }

  /// Starts `payments <arguments>` with its output in `<name>.log` and waits until `port` listens.
  @discardableResult
  func start(_ name: String, _ arguments: [String], port: Int) async throws -> Int32 {
    let log = directory + "/\(name).log"
    let fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0o644)
    defer { close(fd) }
    let pid = try ChildProcess.spawn(try Executables.path("payments"), arguments, output: fd)
    pids.add(name, pid)
    try await waitForListener(port, pid: pid, log: log)
    return pid
  }

  func service(_ role: String, port: Int, extra: [String] = []) -> [String] {
    [
      role, "--port", String(port), "--host", "127.0.0.1", "--database-url", databaseURL, "--kafka-brokers",
      brokers,
      "--log-level", "warning",
    ] + extra
  }

  func kill(_ name: String, signal: Int32 = SIGKILL) async throws {
    guard let pid = pids.remove(name) else { return }
    Glibc.kill(pid, signal)
    _ = try await ChildProcess.wait(pid)
  }

  /// Sends SIGTERM to `name` and returns its exit status once it has exited.
  func terminate(_ name: String) async throws -> Int32 {
    guard let pid = pids.remove(name) else { throw HarnessError("no process \(name)") }
    Glibc.kill(pid, SIGTERM)
    return try await ChildProcess.wait(pid)
  }

  /// The output of `name` so far.
  func log(_ name: String) -> String {
    (try? String(contentsOfFile: directory + "/\(name).log", encoding: .utf8)) ?? ""
  }

  func stopAll() async {
    for (_, pid) in pids.removeAll() {
      Glibc.kill(pid, SIGKILL)
      _ = try? await ChildProcess.wait(pid)
    }
    try? FileManager.default.removeItem(atPath: directory)
  }

}

/// A fresh database with the schema applied by `payments migrate` (its result, for the caller
/// to check) and an API key for `client` made by `payments keys create`.
func migratedDatabase(client: String) async throws -> (
  url: String, migration: (status: Int32, output: String), key: String
) {
  let url = try await TestPostgres.shared.makeDatabase()
  let payments = try Executables.path("payments")
  let migration = try await ChildProcess.run(payments, ["migrate", "--database-url", url])
  let key = try await ChildProcess.run(
    payments, ["keys", "create", "--client", client, "--database-url", url]
  )
  .output.trimmingCharacters(in: .whitespacesAndNewlines)
  return (url, migration, key)
}

final class SlotPIDs: Sendable {
  private let pids = Mutex<[String: Int32]>([:])
  func add(_ name: String, _ pid: Int32) { pids.withLock { $0[name] = pid } }
  func remove(_ name: String) -> Int32? { pids.withLock { $0.removeValue(forKey: name) } }
  func removeAll() -> [String: Int32] {
    pids.withLock { pids in
      let all = pids
      pids = [:]
      return all
    }
  }
}

@Suite("End to end, as processes")
struct ProcessFlowTests {
  @Test(
    "300 payments, 3 dispatchers (one SIGKILLed mid-run and restarted), 20 % transient failures, 5 % lost replies, declines: all terminal, charged once, limit kept",
    .timeLimit(.minutes(10)))
  func endToEnd() async throws {
    let (url, migrated, key) = try await migratedDatabase(client: "e2e")
    #expect(migrated.status == 0, "\(migrated.output)")
    let cluster = try TestKafka.makeCluster(topics: [PaymentsTopic.orders: 6, PaymentsTopic.events: 6])
    let stack = try ProcessStack(databaseURL: url, brokers: cluster.bootstrapServers)
    let pool = PostgresConnectionPool(
      connectionString: url, maximumConnections: 2, logger: quietLogger("e2e"))
    let http = HTTPClient(eventLoopGroupProvider: .singleton)
    do {
      let (sandboxPort, commandPort, queryPort) = (try freePort(), try freePort(), try freePort())
      let dispatcherPorts = try (0..<3).map { _ in try freePort() }
      try await stack.start(
        "sandbox",
        [
          "provider-sandbox", "--port", String(sandboxPort), "--rate-limit", "2", "--unavailable-rate", "0.2",
          "--lost-response-rate", "0.05", "--lost-response-seconds", "10", "--decline-amount", "402",
        ], port: sandboxPort)
      // Every service serves /metrics on an admin port; the test scrapes them during the run.
      let (commandAdmin, queryAdmin) = (try freePort(), try freePort())
      let dispatcherAdmin = try (0..<3).map { _ in try freePort() }
      try await stack.start(
        "command",
        stack.service("command", port: commandPort, extra: ["--admin-port", String(commandAdmin)]),
        port: commandPort)
      try await stack.start(
        "query", stack.service("query", port: queryPort, extra: ["--admin-port", String(queryAdmin)]),
        port: queryPort)
      let dispatcherArguments = { (index: Int) in
        stack.service(
          "dispatcher", port: dispatcherPorts[index],
          extra: [
            "--provider", "sandbox=http://127.0.0.1:\(sandboxPort)", "--provider-timeout", "2", "--workers",
            "3", "--admin-port", String(dispatcherAdmin[index]),
          ])
      }
      for index in 0..<3 {
        try await stack.start("dispatcher-\(index)", dispatcherArguments(index), port: dispatcherPorts[index])
      }

      // Submit 300 payments; every 20th has the amount the sandbox always declines.
      let transport = HTTP2ClientTransport(
        configuration: .init(host: "127.0.0.1", port: commandPort), logger: quietLogger("e2e"))
      let client = Payments_V1_PaymentCommandService.Client(RPCClient(transport: transport))
      let metadata: Metadata = [("authorization", "Bearer \(key)")]
      var declinedIDs: Set<String> = []
      var allIDs: Set<String> = []
      for index in 0..<300 {
        let declined = index % 20 == 7
        let response = try await client.submitPayment(
          validRequest(key: "e2e-\(index)", amount: declined ? 402 : 500 + Int64(index)), metadata: metadata)
        allIDs.insert(response.payment!.paymentID)
        if declined { declinedIDs.insert(response.payment!.paymentID) }
      }
      transport.close()

      // A dispatcher dies in the middle of provider calls and comes back.
      try await Task.sleep(for: .seconds(20))
      try await stack.kill("dispatcher-0")
      try await Task.sleep(for: .seconds(3))
      try await stack.start("dispatcher-0", dispatcherArguments(0), port: dispatcherPorts[0])

      // Mid-run, with a backlog at the limiter: the metrics of every part are there and plausible.
      try await Task.sleep(for: .seconds(12))
      let command = try await MetricsPage.scrape(http, port: commandAdmin)
      let submit = ["method": "payments.v1.PaymentCommandService/SubmitPayment"]
      #expect(command.sum("rpc_server_requests_total", submit.merging(["code": "OK"]) { $1 }) == 300)
      #expect(command.sum("rpc_server_duration_seconds_count", submit) == 300)
      #expect(command.select("rpc_server_duration_seconds_bucket", submit).count > 5, "a latency histogram")
      #expect(command.sum("outbox_backlog", ["outbox": "command.outbox"]) == 0, "the orders were relayed")
      let query = try await MetricsPage.scrape(http, port: queryAdmin)
      #expect((query.sum("kafka_consumer_lag", ["group": "payments-query"]) ?? -1) >= 0)
      var dispatchers: [MetricsPage] = []
      for port in dispatcherAdmin { dispatchers.append(try await MetricsPage.scrape(http, port: port)) }
      let total = { (name: String, labels: [String: String]) in
        dispatchers.compactMap { $0.sum(name, labels) }.reduce(0, +)
      }
      #expect(total("provider_calls_total", ["kind": "charge", "outcome": "succeeded"]) > 0)
      #expect(total("provider_calls_total", ["kind": "charge", "outcome": "transient_failure"]) > 0)
      #expect(total("payment_retries_total", ["provider": "sandbox"]) > 0)
      #expect(total("rate_limiter_wait_seconds_count", ["provider": "sandbox"]) > 0)
      for page in dispatchers {
        #expect((page.sum("dispatcher_work_queue_depth") ?? -1) >= 0, "\(page.text.prefix(300))")
        #expect((page.sum("outbox_backlog", ["outbox": "dispatcher.outbox"]) ?? -1) >= 0)
      }
      // The group reports its lag. (Per partition it is assigned, every 5 s: the restarted
      // instance may hold no partition yet, or not have sampled, so not every page has it.)
      #expect(
        dispatchers.contains { ($0.sum("kafka_consumer_lag", ["group": "payments-dispatcher"]) ?? -1) >= 0 })
      // Each instance's share of the allowance over its last 10 s: at most the whole allowance
      // plus what the edges of a 10 s window can hold (one more call per place, 2 of 20); the
      // instances sample at different moments, so their sum is only roughly the global share.
      // The exact check of the limit is the sandbox's, below.
      for page in dispatchers {
        let share = page.sum("rate_limiter_slot_utilization", ["provider": "sandbox"]) ?? -1
        #expect(share >= 0 && share <= 1.1, "utilization \(share)")
      }
      let utilization = total("rate_limiter_slot_utilization", ["provider": "sandbox"])
      #expect(utilization > 0.2, "a backlog is waiting, so the allowance is being used: \(utilization)")

      // Every payment becomes terminal in the read model (2 charges per second: about 150 s of
      // charges, plus retries).
      let deadline = ContinuousClock.now + .seconds(420)
      while ContinuousClock.now < deadline {
        let done = try await pool.query("SELECT count(*) FROM query.payments WHERE status IN (4, 5)")
        if try done[0].decode(Int.self, at: 0) == 300 { break }
        try await Task.sleep(for: .seconds(2))
      }
      let rows = try await pool.query("SELECT payment_id, status, version, payment FROM query.payments")
      #expect(rows.count == 300)
      var succeeded: Set<String> = []
      var failed: Set<String> = []
      for row in rows {
        let id = try row.decode(String.self, at: 0)
        switch try row.decode(Int.self, at: 1) {
        case 4: succeeded.insert(id)
        case 5: failed.insert(id)
        default: Issue.record("payment \(id) is not terminal")
        }
      }
      #expect(Set(rows.map { try! $0.decode(String.self, at: 0) }) == allIDs)
      #expect(failed == declinedIDs, "exactly the declined amounts failed")

      // The provider's evidence: one charge per succeeded payment, none for declined ones, and
      // never more than 2 calls in any 1-second window.
      let ledger = try await sandboxJSON(Ledger.self, http, "http://127.0.0.1:\(sandboxPort)", "/v1/ledger")
      let stats = try await sandboxJSON(
        SandboxStats.self, http, "http://127.0.0.1:\(sandboxPort)", "/v1/stats")
      let byKey = Dictionary(grouping: ledger.charges, by: \.idempotencyKey)
      #expect(byKey.count == ledger.charges.count, "no payment was charged twice")
      #expect(Set(byKey.keys) == succeeded)
      #expect(stats.windowViolations == 0)
      #expect(stats.maximumCallsInWindow <= 2)
      #expect(stats.injectedFailures > 0 && stats.lostResponses > 0, "faults were injected: \(stats)")

      // The dispatcher agrees with the query service on every payment.
      let dispatcher = try await pool.query(
        """
        SELECT d.payment_id FROM dispatcher.payments d JOIN query.payments q USING (payment_id)
        WHERE d.status <> q.status OR d.version <> q.version
        """)
      #expect(dispatcher.isEmpty, "dispatcher and read model disagree on \(dispatcher.count) payments")

      // payments.events.v1 holds a terminal event for each payment.
      let events = try await readTopic(cluster, PaymentsTopic.events, atLeast: 900, timeout: .seconds(30))
      var terminal: Set<String> = []
      for record in events {
        let event = try Payments_V1_PaymentEvent(serializedBytes: record.value)
        if event.type == .succeeded || event.type == .failed { terminal.insert(event.paymentID) }
      }
      #expect(terminal == allIDs)

      // SIGTERM stops every part cleanly: exit status 0, and no dispatcher keeps a lease.
      for name in ["dispatcher-0", "dispatcher-1", "dispatcher-2", "query", "command", "sandbox"] {
        let status = try await stack.terminate(name)
        #expect(status == 0, "\(name) exited with \(status) after SIGTERM: \(stack.log(name).suffix(2000))")
      }
      let leased = try await pool.query(
        "SELECT count(*) FROM dispatcher.payments WHERE lease_owner IS NOT NULL")
      #expect(try leased[0].decode(Int.self, at: 0) == 0)
    } catch {
      await stack.stopAll()
      try? await http.shutdown()
      await pool.close()
      throw error
    }
    await stack.stopAll()
    try await http.shutdown()
    await pool.close()
  }
}

/// Waits until something accepts TCP connections on `port`; fails when process `pid` exits first.
func waitForListener(_ port: Int, pid: Int32, log: String) async throws {
  let deadline = ContinuousClock.now + .seconds(30)
  while ContinuousClock.now < deadline {
    let connected = Loopback.canConnect(port: port)
    if connected { return }
    var status: Int32 = 0
    if waitpid(pid, &status, WNOHANG) == pid {
      throw HarnessError("payments exited: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
    }
    try await Task.sleep(for: .milliseconds(50))
  }
  throw HarnessError("nothing listens on \(port)")
}
