import AsyncHTTPClient
import Foundation
import Kafka
import PaymentsCore
import PaymentsProto
import PaymentsTestSupport
import Postgres
import ProtobufRuntime
import ProviderSandbox
import RPCCore
import Testing

/// Issue 20's acceptance run, as an operator runs the platform: every part a process, the
/// sandbox charging and refunding every request it receives (non-idempotent) with faults on.
@Suite("Refunds and cancellations, as processes")
struct RefundsCancellationsAcceptanceTests {
  @Test(
    "500 payments, 100 cancellations racing 2 dispatchers, 200 refunds (partial, racing, over the remaining amount), faults on: nothing both charged and CANCELED, refunds never above charges, nothing sent twice, all terminal, 0 window violations",
    .timeLimit(.minutes(10)),
    // Heavy (seven processes, 800 provider calls): tools/test runs it in a stage of its own,
    // after the parallel suite, so that its load does not starve timing-sensitive tests.
    .enabled(if: ProcessInfo.processInfo.environment["PAYMENTS_ACCEPTANCE"] != nil))
  func acceptance() async throws {
    let (url, migrated, key) = try await migratedDatabase(client: "acceptance")
    #expect(migrated.status == 0, "\(migrated.output)")
    let cluster = try TestKafka.makeCluster(topics: [PaymentsTopic.orders: 6, PaymentsTopic.events: 6])
    let stack = try ProcessStack(databaseURL: url, brokers: cluster.bootstrapServers)
    let pool = PostgresConnectionPool(
      connectionString: url, maximumConnections: 2, logger: quietLogger("acceptance"))
    let http = HTTPClient(eventLoopGroupProvider: .singleton)
    do {
      try await run(stack, key: key, pool: pool, http: http)
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

  private func run(_ stack: ProcessStack, key: String, pool: PostgresConnectionPool, http: HTTPClient)
    async throws
  {
    let (sandboxPort, commandPort, queryPort) = (try freePort(), try freePort(), try freePort())
    let dispatcherPorts = try (0..<2).map { _ in try freePort() }
    let limit = "20"  // calls per second across charges, refunds and inquiries (2 in production)
    try await stack.start(
      "sandbox",
      [
        "provider-sandbox", "--port", String(sandboxPort), "--rate-limit", limit, "--non-idempotent",
        "--unavailable-rate", "0.05", "--error-after-charge-rate", "0.08", "--lost-response-rate", "0.05",
        "--lost-response-seconds", "0.9", "--slow-rate", "0.1", "--slow-seconds", "0.2", "--seed", "2020",
      ], port: sandboxPort)
    try await stack.start(
      "command",
      stack.service(
        "command", port: commandPort,
        extra: ["--dispatcher-address", "127.0.0.1:\(dispatcherPorts[0])", "--provider", "sandbox"]),
      port: commandPort)
    try await stack.start("query", stack.service("query", port: queryPort), port: queryPort)
    for (index, port) in dispatcherPorts.enumerated() {
      try await stack.start(
        "dispatcher-\(index)",
        stack.service(
          "dispatcher", port: port,
          extra: [
            "--provider", "sandbox=http://127.0.0.1:\(sandboxPort)", "--rate-limit", limit, "--workers", "8",
            "--lease", "3", "--provider-timeout", "0.5", "--retry-base", "0.1", "--retry-cap", "1",
            "--maximum-attempts", "6",
          ]), port: port)
    }
    let command = AuthorizedClient(port: commandPort, token: key) {
      Payments_V1_PaymentCommandService.Client($0)
    }
    let query = AuthorizedClient(port: queryPort, token: key) { Payments_V1_PaymentQueryService.Client($0) }
    defer {
      command.close()
      query.close()
    }

    // 500 payments; every fifth is cancelled 0 to 1.5 s after its submission, while the next
    // ones are submitted: some still waiting, some in a call, some done.
    let (payments, cancellations) = try await withThrowingTaskGroup(
      of: (String, Result<Payments_V1_Payment, RPCError>).self
    ) { group in
      var payments: [Payments_V1_Payment] = []
      var random = SplitMix(state: 5)
      for index in 0..<500 {
        let payment = try await command.client.submitPayment(
          validRequest(key: "acceptance-\(index)", amount: 1000), metadata: command.metadata
        ).payment!
        payments.append(payment)
        if index % 5 == 0 {
          let delay = Duration.milliseconds(Int.random(in: 0...1500, using: &random))
          let id = payment.paymentID
          group.addTask { (id, try await cancel(id, after: delay, command)) }
        }
      }
      var answers: [String: Result<Payments_V1_Payment, RPCError>] = [:]
      for try await (id, answer) in group { answers[id] = answer }
      return (payments, answers)
    }
    #expect(cancellations.count == 100)
    var final: [String: Payments_V1_Payment] = [:]
    for payment in payments {
      final[payment.paymentID] = try await finalState(
        payment.paymentID, query, deadline: .now + .seconds(240))
    }

    // 200 refunds of succeeded payments that were not cancelled: 4 racing per payment, of 300
    // to 1000, so that some ask for more than is left.
    let refundable = payments.map(\.paymentID).filter {
      final[$0]?.status == .succeeded && cancellations[$0] == nil
    }
    #expect(refundable.count >= 50, "\(refundable.count) payments to refund")
    var random = SplitMix(state: 11)
    let requests: [Payments_V1_RefundPaymentRequest] = refundable.prefix(50).flatMap { id in
      (0..<4).map { index in
        .with {
          $0.idempotencyKey = "\(id)-refund-\(index)"
          $0.paymentID = id
          $0.amountMinor = [300, 450, 600, 1000][Int.random(in: 0..<4, using: &random)]
          $0.currency = "EUR"
        }
      }
    }
    #expect(requests.count == 200)
    let answers = try await withThrowingTaskGroup(
      of: (Payments_V1_RefundPaymentRequest, Result<Payments_V1_RefundPaymentResponse, RPCError>).self
    ) { group in
      for request in requests { group.addTask { (request, await refund(request, command)) } }
      return try await group.reduce(into: []) { $0.append($1) }
    }
    var accepted: [String: Payments_V1_Refund] = [:]
    var tooMuch = 0
    for (_, answer) in answers {
      switch answer {
      case .success(let response): accepted[response.refund!.refundID] = response.refund!
      case .failure(let error):
        #expect(
          error.code == .failedPrecondition && error.message.contains("exceeds what is left"),
          "\(error.code): \(error.message)")
        tooMuch += 1
      }
    }
    #expect(tooMuch > 0 && !accepted.isEmpty, "\(accepted.count) accepted, \(tooMuch) over the amount")
    let refunds = try await terminalRefunds(Array(accepted.keys), query, deadline: .now + .seconds(240))

    // The provider's evidence.
    let base = "http://127.0.0.1:\(sandboxPort)"
    let ledger = try await sandboxJSON(SandboxLedger.self, http, base, "/v1/ledger")
    let stats = try await sandboxJSON(SandboxStats.self, http, base, "/v1/stats")
    let charges = Dictionary(grouping: ledger.charges, by: \.idempotencyKey)
    var outcomes: [String: Int] = [:]
    for payment in payments {
      let id = payment.paymentID
      let state = try #require(final[id])
      let charged = charges[id]?.count ?? 0
      #expect(state.status.isTerminal, "\(id) ended \(state.status)")
      #expect(charged <= 1, "\(id) charged \(charged) times")
      #expect(
        (state.status == .succeeded) == (charged == 1), "\(id) is \(state.status) with \(charged) charges")
      if state.status == .canceled { #expect(charged == 0, "\(id) CANCELED and charged") }
      if case .success = cancellations[id] {
        #expect(state.status == .canceled, "\(id) answered CANCELED but ended \(state.status)")
      }
      outcomes["\(state.status)", default: 0] += 1
    }
    #expect((outcomes["canceled"] ?? 0) > 0, "\(outcomes)")
    let refundsByKey = Dictionary(grouping: ledger.refunds, by: \.idempotencyKey)
    for (refundID, refund) in refunds {
      let made = refundsByKey[refundID]?.count ?? 0
      #expect(refund.status.isTerminal, "\(refundID) ended \(refund.status)")
      #expect(
        made == (refund.status == .succeeded ? 1 : 0),
        "\(refundID) is \(refund.status), refunded \(made) times")
    }
    #expect(refunds.count == accepted.count)
    let refunded = Dictionary(
      ledger.refunds.map { ($0.chargeIdempotencyKey, $0.amount) }, uniquingKeysWith: +)
    for (paymentID, total) in refunded {
      #expect(
        total <= (charges[paymentID]?.first?.amount ?? 0), "\(paymentID): refunded \(total) at the provider")
    }
    #expect(stats.windowViolations == 0, "\(stats)")
    #expect(stats.injectedFailures > 0 && stats.lostResponses > 0, "faults were injected: \(stats)")
    let inquiries = try await pool.query(
      "SELECT kind, count(*) FROM dispatcher.attempts WHERE kind IN ('inquiry', 'refund_inquiry') GROUP BY kind"
    )
    #expect(inquiries.count == 2, "charges and refunds both had unknown outcomes, asked about")

    // The dispatcher and the read model agree on every payment.
    let disagree = try await pool.query(
      """
      SELECT d.payment_id FROM dispatcher.payments d JOIN query.payments q USING (payment_id)
      WHERE d.status <> q.status OR d.version <> q.version
      """)
    #expect(disagree.isEmpty, "dispatcher and read model disagree on \(disagree.count) payments")
    let refundOutcomes = Dictionary(grouping: refunds.values, by: { "\($0.status)" }).mapValues(\.count)
    print(
      "acceptance: payments \(outcomes), refunds accepted \(accepted.count) (\(refundOutcomes)), over the amount \(tooMuch), sandbox calls \(stats.calls), injected failures \(stats.injectedFailures), lost replies \(stats.lostResponses), window violations \(stats.windowViolations)"
    )
  }
}
