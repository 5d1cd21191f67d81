import AsyncHTTPClient
import DispatcherService
import Foundation
import Kafka
import NIOCore
import NIOFoundationCompat
import PaymentsCore
import PaymentsProto
import PaymentsTestSupport
import Postgres
import ProtobufRuntime
import ProviderSandbox
import RPCCore
import RPCTransportHTTP2
import Synchronization
import Testing

/// GETs `path` from the sandbox and decodes it.
func sandboxJSON<T: Decodable>(_ type: T.Type, _ client: HTTPClient, _ base: String, _ path: String)
  async throws -> T
{
  let response = try await client.execute(HTTPClientRequest(url: base + path), timeout: .seconds(10))
  let body = try await response.body.collect(upTo: 16 << 20)
  return try JSONDecoder().decode(T.self, from: body)
}

struct Ledger: Decodable {
  var charges: [SandboxCharge]
}

@Suite("Dispatcher: orders to provider charges")
struct DispatcherFlowTests {
  @Test(
    "two dispatchers, faults injected: every payment ends terminal, charged at most once, within the limit")
  func endToEnd() async throws {
    var sandboxConfiguration = ProviderSandbox.Configuration()
    sandboxConfiguration.port = 0
    sandboxConfiguration.rateLimit = 10
    sandboxConfiguration.unavailableRate = 0.2
    sandboxConfiguration.lostResponseRate = 0.1
    sandboxConfiguration.lostResponseDelay = .seconds(3)
    let sandbox = ProviderSandbox(configuration: sandboxConfiguration, logger: quietLogger("sandbox"))
    let sandboxPort = PortBox()
    try await withThrowingTaskGroup(of: Void.self) { outer in
      outer.addTask { try await sandbox.run { sandboxPort.set($0) } }
      defer { outer.cancelAll() }
      let base = "http://127.0.0.1:\(try await sandboxPort.get())"
      try await withPlatform { platform in
        var configuration = DispatcherServer.Configuration(
          databaseURL: platform.databaseURL,
          consumer: TestKafka.consumer(platform.cluster, group: "payments-dispatcher", id: "dispatcher"),
          producer: TestKafka.client(platform.cluster, id: "dispatcher"))
        configuration.transport = .init(host: "127.0.0.1", port: 0)
        configuration.sandboxProviders = ["sandbox": base]
        configuration.rateLimiter.defaultLimit = 10
        configuration.providerTimeout = .milliseconds(800)
        configuration.retry = RetryPolicy(
          base: .milliseconds(100), factor: 2, cap: .seconds(1), maximumAttempts: 8)
        configuration.lease = .seconds(10)
        let dispatcherConfiguration = configuration
        try await withThrowingTaskGroup(of: Void.self) { dispatchers in
          for index in 0..<2 {
            dispatchers.addTask {
              try await DispatcherServer(
                configuration: dispatcherConfiguration, logger: quietLogger("dispatcher-\(index)")
              )
              .run()
            }
          }
          defer { dispatchers.cancelAll() }
          let token = try await platform.key()
          let command = platform.commandClient(token)
          let query = platform.queryClient(token)
          defer {
            command.close()
            query.close()
          }
          var submitted: [Payments_V1_Payment] = []
          for index in 0..<30 {
            // Every 10th payment has an amount the sandbox always declines.
            let request = validRequest(
              key: "flow-\(index)", amount: index % 10 == 9 ? 402 : 1000 + Int64(index))
            submitted.append(
              try await command.client.submitPayment(request, metadata: command.metadata).payment!)
          }
          // Every payment reaches a terminal state in the read model.
          var final: [String: Payments_V1_Payment] = [:]
          let deadline = ContinuousClock.now + .seconds(90)
          for payment in submitted {
            let last = try await query.client.watchPayment(
              .with { $0.paymentID = payment.paymentID }, metadata: query.metadata,
              options: .init(timeout: deadline - ContinuousClock.now)
            ) { stream in
              var last: Payments_V1_Payment?
              for try await update in stream { last = update }
              return last
            }
            final[payment.paymentID] = last
          }
          #expect(final.count == 30)
          #expect(final.values.allSatisfy { $0.status.isTerminal })
          var succeeded: [Payments_V1_Payment] = []
          var failed: [Payments_V1_Payment] = []
          for payment in final.values {
            switch payment.status {
            case .succeeded: succeeded.append(payment)
            case .failed: failed.append(payment)
            default: Issue.record("payment \(payment.paymentID) is \(payment.status)")
            }
          }
          #expect(failed.count == 3)
          #expect(failed.allSatisfy { $0.failure?.code == "card_declined" && $0.amount?.amountMinor == 402 })
          #expect(succeeded.count == 27)

          let client = HTTPClient(eventLoopGroupProvider: .singleton)
          let ledger = try await sandboxJSON(Ledger.self, client, base, "/v1/ledger")
          let stats = try await sandboxJSON(SandboxStats.self, client, base, "/v1/stats")
          try await client.shutdown()
          // Exactly one charge per succeeded payment (the provider key is the payment ID), none
          // for declined ones, and the provider never saw the limit broken.
          let charged = Dictionary(grouping: ledger.charges, by: \.idempotencyKey)
          #expect(charged.count == ledger.charges.count, "no payment charged twice")
          #expect(Set(charged.keys) == Set(succeeded.map(\.paymentID)))
          for payment in succeeded {
            #expect(payment.providerReference == charged[payment.paymentID]?.first?.id)
          }
          #expect(stats.windowViolations == 0)
          #expect(stats.injectedFailures > 0, "faults were injected")

          // The dispatcher's own table agrees with the read model.
          let rows = try await platform.pool.query(
            "SELECT payment_id, status, version FROM dispatcher.payments")
          #expect(rows.count == 30)
          for row in rows {
            let id = try row.decode(String.self, at: 0)
            #expect(Int32(try row.decode(Int.self, at: 1)) == final[id]?.status.rawValue)
            #expect(try row.decode(Int64.self, at: 2) == final[id]?.version)
          }
        }
      }
    }
  }
}
