import Foundation
import Glibc
import Kafka
import PaymentsCore
import PaymentsProto
import PaymentsSchema
import PaymentsTestSupport
import Postgres
import ProtobufRuntime
import RPCCore
import RPCTransportHTTP2
import Synchronization
import Testing

/// SIGTERM while clients submit payments as fast as they can (docs/design.md §10, issue 8).
@Suite("Graceful shutdown, as processes")
struct ShutdownTests {
  /// What one submission ended with.
  enum Outcome: Sendable {
    case accepted(String)
    case failed(RPCStatus.Code, String)
  }

  @Test(
    "SIGTERM under load: running calls finish, later ones are refused before they are sent, every accepted payment reaches Kafka, exit 0",
    .timeLimit(.minutes(3)))
  func commandServiceUnderLoad() async throws {
    let (url, migrated, key) = try await migratedDatabase(client: "shutdown")
    try #require(migrated.status == 0, "\(migrated.output)")
    let cluster = try TestKafka.makeCluster(topics: [PaymentsTopic.orders: 3, PaymentsTopic.events: 3])
    let stack = try ProcessStack(databaseURL: url, brokers: cluster.bootstrapServers)
    let pool = PostgresConnectionPool(
      connectionString: url, maximumConnections: 2, logger: quietLogger("shutdown"))
    do {
      let port = try freePort()
      // With the admin endpoint too: it must not keep the process from exiting cleanly.
      try await stack.start(
        "command",
        stack.service(
          "command", port: port, extra: ["--shutdown-grace", "10", "--admin-port", String(try freePort())]),
        port: port)

      // 4 connections with 8 callers each submit until their calls fail.
      let outcomes = OutcomeBox()
      let metadata: Metadata = [("authorization", "Bearer \(key)")]
      let transports = (0..<4).map { _ in
        HTTP2ClientTransport(configuration: .init(host: "127.0.0.1", port: port), logger: quietLogger("load"))
      }
      defer { for transport in transports { transport.close() } }
      try await withThrowingTaskGroup(of: Void.self) { group in
        for (connection, transport) in transports.enumerated() {
          let client = Payments_V1_PaymentCommandService.Client(RPCClient(transport: transport))
          for caller in 0..<8 {
            group.addTask {
              var index = 0
              while true {
                index += 1
                do {
                  let response = try await client.submitPayment(
                    validRequest(key: "load-\(connection)-\(caller)-\(index)"), metadata: metadata)
                  outcomes.values.withLock { $0.append(.accepted(response.payment!.paymentID)) }
                } catch let error as RPCError {
                  outcomes.values.withLock { $0.append(.failed(error.code, error.message)) }
                  return
                }
              }
            }
          }
        }
        // Let the load build up, then ask the service to stop while calls are running.
        while outcomes.values.withLock({ $0.count }) < 300 { try await Task.sleep(for: .milliseconds(20)) }
        let status = try await stack.terminate("command")
        #expect(status == 0, "exit status \(status): \(stack.log("command").suffix(2000))")
        try await group.waitForAll()
      }

      let all = outcomes.values.withLock { $0 }
      let accepted = Set(
        all.compactMap {
          if case .accepted(let id) = $0 { id } else { nil }
        })
      let failures = all.compactMap {
        if case .failed(let code, let message) = $0 { (code, message) } else { nil }
      }
      #expect(accepted.count >= 300)
      #expect(failures.count == 32, "every caller stopped with one failed call")
      // A call is either answered in full or refused before the service saw it: nothing is cut
      // off mid-call ("connection lost", a reset stream or a missing status would be).
      for (code, message) in failures {
        let refusedBeforeSending =
          message.contains("cannot connect") || message.contains("never sent")
          || message.contains("is closing") || message.contains("before it was processed")
        #expect(
          code == .unavailable && refusedBeforeSending, "a call was cut off: \(code) \(message)")
      }

      // Every accepted payment is stored, nothing else is, and the outbox was flushed to Kafka
      // before the process exited.
      let stored = try await pool.query("SELECT payment_id FROM command.payments")
      let storedIDs = Set(stored.map { try! $0.decode(String.self, at: 0) })
      #expect(
        storedIDs.subtracting(accepted).isEmpty,
        "\(storedIDs.subtracting(accepted).count) payments were stored but their calls got no answer")
      #expect(
        accepted.subtracting(storedIDs).isEmpty,
        "\(accepted.subtracting(storedIDs).count) accepted payments were lost")
      let pending = try await pool.query("SELECT count(*) FROM command.outbox WHERE published_at IS NULL")
      #expect(try pending[0].decode(Int.self, at: 0) == 0, "the outbox was drained on shutdown")
      let records = try await readTopic(cluster, PaymentsTopic.orders, atLeast: accepted.count)
      let published = Set(
        try records.map { try Payments_V1_PaymentOrderRecord(serializedBytes: $0.value).paymentID })
      #expect(
        accepted.isSubset(of: published),
        "\(accepted.subtracting(published).count) accepted orders are not on Kafka")
    } catch {
      await stack.stopAll()
      await pool.close()
      throw error
    }
    await stack.stopAll()
    await pool.close()
  }
}

final class OutcomeBox: Sendable {
  let values = Mutex<[ShutdownTests.Outcome]>([])
}
