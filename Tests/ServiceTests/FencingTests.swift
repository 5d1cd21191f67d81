import AsyncHTTPClient
import DispatcherService
import Foundation
import Kafka
import PaymentsCore
import PaymentsProto
import PaymentsTestSupport
import Postgres
import ProviderSandbox
import Testing

/// Checks the sandbox's ledger against every payment's final state: each payment charged at most
/// once, SUCCEEDED exactly when charged (with that charge's reference), FAILED only when not
/// charged. Returns the final states.
func verifyLedger(
  _ submitted: [Payments_V1_Payment], base: String,
  query: AuthorizedClient<Payments_V1_PaymentQueryService.Client>, deadline: ContinuousClock.Instant
) async throws -> (final: [String: Payments_V1_Payment], stats: SandboxStats) {
  var final: [String: Payments_V1_Payment] = [:]
  for payment in submitted {
    final[payment.paymentID] = try await finalState(payment.paymentID, query, deadline: deadline)
  }
  let client = HTTPClient(eventLoopGroupProvider: .singleton)
  let ledger: Ledger
  let stats: SandboxStats
  do {
    ledger = try await sandboxJSON(Ledger.self, client, base, "/v1/ledger")
    stats = try await sandboxJSON(SandboxStats.self, client, base, "/v1/stats")
  } catch {
    try? await client.shutdown()
    throw error
  }
  try await client.shutdown()
  let charges = Dictionary(grouping: ledger.charges, by: \.idempotencyKey)
  for payment in submitted {
    let state = final[payment.paymentID]
    let charged = charges[payment.paymentID] ?? []
    #expect(
      state?.status.isTerminal == true, "\(payment.paymentID) ended \(String(describing: state?.status))")
    #expect(charged.count <= 1, "\(payment.paymentID) charged \(charged.count) times")
    switch state?.status {
    case .succeeded?:
      #expect(charged.count == 1, "\(payment.paymentID) SUCCEEDED without a charge")
      #expect(state?.providerReference == charged.first?.id)
    case .failed?:
      #expect(
        charged.isEmpty,
        "\(payment.paymentID) charged but FAILED (\(state?.failure?.code ?? ""): \(state?.failure?.message ?? ""))"
      )
    default: break
    }
  }
  #expect(stats.windowViolations == 0)
  return (final, stats)
}

@Suite("Dispatcher: fenced execution against a provider that charges every repeated request")
struct FencingTests {
  @Test(
    "3 dispatchers × 16 workers, waits far beyond a 2-s lease, 5xx after charges, lost and slow replies: never charged twice, never charged-but-FAILED"
  )
  func waitsOutliveTheLease() async throws {
    try await withDispatcherStack(
      dispatchers: 3,
      sandbox: {
        $0.nonIdempotent = true
        $0.rateLimit = 5
        $0.unavailableRate = 0.05
        $0.errorAfterChargeRate = 0.08
        $0.lostResponseRate = 0.04
        $0.lostResponseDelay = .milliseconds(1500)
        $0.slowRate = 0.04
        $0.slowDelay = .milliseconds(300)
        $0.seed = 15
      },
      dispatcher: {
        $0.workers = 16
        $0.rateLimiter.defaultLimit = 5
        $0.lease = .seconds(2)
        $0.providerTimeout = .milliseconds(700)
        $0.retry = RetryPolicy(base: .milliseconds(100), factor: 2, cap: .seconds(1), maximumAttempts: 4)
      }
    ) { platform, base, command, query in
      var submitted: [Payments_V1_Payment] = []
      for index in 0..<60 {
        let request = validRequest(
          key: "fenced-\(index)", amount: index % 10 == 9 ? 402 : 1000 + Int64(index))
        submitted.append(try await command.client.submitPayment(request, metadata: command.metadata).payment!)
      }
      let (final, stats) = try await verifyLedger(
        submitted, base: base, query: query, deadline: .now + .seconds(150))
      #expect(
        final.values.filter { $0.status == .failed }.allSatisfy {
          $0.amount?.amountMinor == 402 || $0.failure?.code == "retries_exhausted"
        })
      #expect(
        stats.errorsAfterCharge > 0 && stats.lostResponses > 0, "the faults that hide a charge were injected")
      // Inquiries only where an outcome was unknown: at most one per such fault, plus retries of
      // inquiries that met a 503 (the sandbox injects those on charges only).
      let calls = try await platform.pool.query(
        "SELECT count(*) FILTER (WHERE kind = 'inquiry'), count(*) FROM dispatcher.attempts")
      let inquiries = try calls[0].decode(Int.self, at: 0)
      #expect(inquiries <= stats.errorsAfterCharge + stats.lostResponses + 3, "inquiries: \(inquiries)")
    }
  }

  @Test("an intake record that is not an order is dead-lettered, and the orders behind it are charged")
  func intakePoison() async throws {
    try await withDispatcherStack { platform, base, command, query in
      try await warmUp(command, query)
      let producer = try platform.producer()
      // Garbage and an order without a payment ID, straight onto the orders topic.
      _ = try await producer.send(
        KafkaProducerRecord(topic: PaymentsTopic.orders, key: "poison", value: [0xFF, 0xFF, 0xFF, 0x01]))
      _ = try await producer.send(
        KafkaProducerRecord(topic: PaymentsTopic.orders, key: "empty", value: []))
      await producer.close()
      var submitted: [Payments_V1_Payment] = []
      for index in 0..<20 {
        submitted.append(
          try await command.client.submitPayment(
            validRequest(key: "behind-\(index)"), metadata: command.metadata
          )
          .payment!)
      }
      for payment in submitted {
        let final = try await finalState(payment.paymentID, query, deadline: .now + .seconds(60))
        #expect(final?.status == .succeeded)
      }
      let rows = try await platform.pool.query(
        "SELECT encode(key, 'escape'), reason FROM dispatcher.dead_letters")
      // Two keys, two partitions: in no particular order.
      let reasons = Dictionary(
        uniqueKeysWithValues: try rows.map {
          (try $0.decode(String.self, at: 0), try $0.decode(String.self, at: 1))
        })
      #expect(Set(reasons.keys) == ["poison", "empty"], "\(reasons)")
      #expect(reasons["poison"]?.contains("not a payments.v1.PaymentOrderRecord") == true)
      #expect(reasons["empty"] == "the order has no payment_id")
    }
  }

  @Test("an instance without a provider's configuration never touches that provider's payments")
  func unservedProvider() async throws {
    try await withDispatcherStack(
      dispatcher: { configuration in
        // This instance serves "sandbox" only; orders for "elsewhere" are routed but not served.
        configuration.routes = ["CHF": "elsewhere"]
      }
    ) { platform, base, command, query in
      try await warmUp(command, query)
      let other = try await command.client.submitPayment(
        validRequest(key: "unserved", currency: "CHF"), metadata: command.metadata
      ).payment!
      let served = try await command.client.submitPayment(
        validRequest(key: "served"), metadata: command.metadata
      ).payment!
      let done = try await finalState(served.paymentID, query, deadline: .now + .seconds(30))
      #expect(done?.status == .succeeded)
      // By now the unserved payment has been in the work table for as long as the served one took.
      let rows = try await platform.pool.query(
        """
        SELECT status, attempts, lease_owner IS NULL, provider FROM dispatcher.payments WHERE payment_id = \(other.paymentID)
        """)
      let row = try #require(try rows.singleRow())
      #expect(try row.decode(Int32.self, at: 0) == Payments_V1_PaymentStatus.accepted.rawValue)
      #expect(try row.decode(Int32.self, at: 1) == 0)
      #expect(try row.decode(Bool.self, at: 2))
      #expect(try row.decode(String.self, at: 3) == "elsewhere")
      let calls = try await platform.pool.query(
        "SELECT count(*) FROM dispatcher.attempts WHERE payment_id = \(other.paymentID)")
      #expect(try calls[0].decode(Int.self, at: 0) == 0)
    }
  }
}
