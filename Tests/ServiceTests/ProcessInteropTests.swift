import Foundation
import Glibc
import Kafka
import PaymentsCore
import PaymentsProto
import PaymentsTestSupport
import Postgres
import ProtobufRuntime
import QueryService
import RPCCore
import Testing

/// The services as an operator runs them: `payments migrate`, `payments keys`, `payments command`
/// and `payments query` as processes, driven by an independent client (Python grpcio).
@Suite("Services as processes")
struct ProcessInteropTests {
  /// Starts `payments <arguments>` with its output in a log file; returns the process ID.
  func start(_ arguments: [String], log: String) throws -> Int32 {
    let fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    defer { close(fd) }
    return try ChildProcess.spawn(try Executables.path("payments"), arguments, output: fd)
  }

  @Test("Python grpcio submits and reads a payment using only the .proto files")
  func pythonClient() async throws {
    let url = try await TestPostgres.shared.makeDatabase()
    let payments = try Executables.path("payments")
    let migrated = try await ChildProcess.run(payments, ["migrate", "--database-url", url])
    #expect(migrated.status == 0, "\(migrated.output)")
    let created = try await ChildProcess.run(
      payments,
      [
        "keys", "create", "--client", "python-shop", "--scopes", "payments.write,payments.read",
        "--database-url", url,
      ])
    #expect(created.status == 0, "\(created.output)")
    let key = created.output.trimmingCharacters(in: .whitespacesAndNewlines)
    #expect(key.hasPrefix("pk_"))

    let cluster = try TestKafka.makeCluster(topics: [PaymentsTopic.orders: 3, PaymentsTopic.events: 3])
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("interop-\(UUID())").path
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let commandPort = try freePort()
    let queryPort = try freePort()
    let dispatcherPort = try freePort()
    let sandboxPort = try freePort()
    let common = ["--database-url", url, "--kafka-brokers", cluster.bootstrapServers, "--host", "127.0.0.1"]
    let command = try start(
      [
        "command", "--port", String(commandPort), "--dispatcher-address", "127.0.0.1:\(dispatcherPort)",
        "--provider", "sandbox", "--provider", "parked",
      ] + common,
      log: directory + "/command.log")
    let query = try start(["query", "--port", String(queryPort)] + common, log: directory + "/query.log")
    // The sandbox in its non-idempotent mode: a refund sent twice would show as two.
    let sandbox = try start(
      ["provider-sandbox", "--host", "127.0.0.1", "--port", String(sandboxPort), "--non-idempotent"],
      log: directory + "/sandbox.log")
    // A dispatcher that does not serve "parked", the Python client's first provider: that payment
    // waits, ACCEPTED, to be cancelled; its "sandbox" payment is charged, then refunded.
    let dispatcher = try start(
      [
        "dispatcher", "--port", String(dispatcherPort), "--provider",
        "sandbox=http://127.0.0.1:\(sandboxPort)",
      ]
        + common,
      log: directory + "/dispatcher.log")
    defer {
      for pid in [command, query, dispatcher, sandbox] { kill(pid, SIGKILL) }
    }
    try await waitForListener(commandPort, pid: command, log: directory + "/command.log")
    try await waitForListener(queryPort, pid: query, log: directory + "/query.log")
    try await waitForListener(dispatcherPort, pid: dispatcher, log: directory + "/dispatcher.log")
    try await waitForListener(sandboxPort, pid: sandbox, log: directory + "/sandbox.log")

    let output = try await PythonPeer.run(
      "interop/payments_client.py",
      ["--command", "127.0.0.1:\(commandPort)", "--query", "127.0.0.1:\(queryPort)", "--key", key])
    let lines = output.split(separator: "\n").map(String.init)
    #expect(lines.contains("health SERVING"), "\(output)")
    let submitted = try #require(lines.first { $0.hasPrefix("submitted ") }, "\(output)").split(
      separator: " ")
    let paymentID = String(submitted[1])
    #expect(PaymentID.isWellFormed(paymentID))
    #expect(submitted[2] == "PAYMENT_STATUS_ACCEPTED" && submitted[3] == "False")
    #expect(lines.contains("replayed \(paymentID) True"), "\(output)")
    #expect(
      lines.contains { $0.hasPrefix("invalid INVALID_ARGUMENT") && $0.contains("amount.currency") },
      "\(output)")
    #expect(lines.contains("got \(paymentID) PAYMENT_STATUS_ACCEPTED BHD 12345 python"), "\(output)")
    #expect(lines.contains("by-key \(paymentID)"), "\(output)")
    #expect(lines.contains("listed 1 \(paymentID)"), "\(output)")
    #expect(lines.contains("cancelled \(paymentID) PAYMENT_STATUS_CANCELED 2"), "\(output)")
    #expect(lines.contains("cancelled-again \(paymentID) PAYMENT_STATUS_CANCELED 2"), "\(output)")
    #expect(
      lines.contains { $0.hasPrefix("cancel-invalid INVALID_ARGUMENT") && $0.contains("payment_id") },
      "\(output)")
    #expect(lines.contains("got-cancelled \(paymentID) PAYMENT_STATUS_CANCELED"), "\(output)")
    let refunded = try #require(lines.first { $0.hasPrefix("refunded ") }, "\(output)").split(separator: " ")
    let refundID = String(refunded[1])
    #expect(RefundID.isWellFormed(refundID))
    #expect(refunded[2] == "REFUND_STATUS_PENDING" && refunded[3] == "False" && refunded[4] == "2345")
    #expect(lines.contains("refund-replayed \(refundID) True"), "\(output)")
    #expect(
      lines.contains {
        $0.hasPrefix("refund-too-much FAILED_PRECONDITION") && $0.contains("10000 of 12345 BHD")
      }, "\(output)")
    #expect(
      lines.contains { $0.hasPrefix("refund-cancelled FAILED_PRECONDITION") && $0.contains("is CANCELED") },
      "\(output)")
    #expect(
      lines.contains { $0.hasPrefix("got-refund \(refundID) REFUND_STATUS_SUCCEEDED pay_") }, "\(output)")
    #expect(lines.contains("payment-refunds 1 2345 BHD"), "\(output)")

    // SIGTERM stops the services cleanly.
    for pid in [command, query, dispatcher, sandbox] {
      kill(pid, SIGTERM)
      let status = try await ChildProcess.wait(pid)
      #expect(status == 0, "exit status \(status)")
    }
  }

  @Test("`payments keys`: bad scopes are named; revoke takes the key or its ID")
  func keysCommand() async throws {
    let url = try await TestPostgres.shared.makeDatabase()
    let payments = try Executables.path("payments")
    _ = try await ChildProcess.run(payments, ["migrate", "--database-url", url])
    let bad = try await ChildProcess.run(
      payments, ["keys", "create", "--client", "shop", "--scopes", "payments.admin", "--database-url", url])
    #expect(bad.status != 0)
    #expect(bad.output.contains("payments.admin"))
    let created = try await ChildProcess.run(
      payments, ["keys", "create", "--client", "shop", "--database-url", url])
    let key = created.output.trimmingCharacters(in: .whitespacesAndNewlines)
    let keyID = String(key.split(separator: "_")[1])
    let revoked = try await ChildProcess.run(payments, ["keys", "revoke", keyID, "--database-url", url])
    #expect(revoked.status == 0, "\(revoked.output)")
    let again = try await ChildProcess.run(payments, ["keys", "revoke", key, "--database-url", url])
    #expect(again.status != 0)
    #expect(again.output.contains("no active key"))
  }
}
