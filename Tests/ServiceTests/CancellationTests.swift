import AsyncHTTPClient
import DispatcherService
import Foundation
import PaymentsCore
import PaymentsProto
import PaymentsSchema
import PaymentsTestSupport
import Postgres
import ProtobufRuntime
import ProviderSandbox
import RPCCore
import ServiceKit
import Synchronization
import Testing

/// `CancelPayment` end to end: command service → dispatcher (which decides) → event → read model,
/// against the provider sandbox in its non-idempotent mode, so that a cancellation that let a
/// charge through would show in its ledger.
@Suite("Cancellation")
struct CancellationTests {
  @Test(
    "a waiting payment is cancelled at once and never charged; cancelling again returns it; the read model shows CANCELED; errors name the problem"
  )
  func cancelWaiting() async throws {
    try await withDispatcherStack(
      sandbox: { $0.nonIdempotent = true },
      dispatcher: { $0.routes = ["CHF": "elsewhere"] }  // CHF payments wait: no instance serves them
    ) { platform, base, command, query in
      try await warmUp(command, query)
      let submitted = try await command.client.submitPayment(
        validRequest(key: "to-cancel", currency: "CHF"), metadata: command.metadata
      ).payment!
      let cancel = Payments_V1_CancelPaymentRequest.with { $0.paymentID = submitted.paymentID }
      let cancelled = try await command.client.cancelPayment(cancel, metadata: command.metadata).payment!
      #expect(cancelled.status == .canceled)
      #expect(cancelled.paymentID == submitted.paymentID && cancelled.amount == submitted.amount)
      #expect(cancelled.version >= 2)
      let again = try await command.client.cancelPayment(cancel, metadata: command.metadata).payment!
      #expect(again.status == .canceled && again.version == cancelled.version, "idempotent")
      let final = try await finalState(submitted.paymentID, query, deadline: .now + .seconds(30))
      #expect(final?.status == .canceled, "the read model got the event")
      #expect(final?.version == cancelled.version)

      // A charged payment cannot be cancelled.
      let charged = try await command.client.submitPayment(
        validRequest(key: "charged"), metadata: command.metadata
      ).payment!
      #expect(
        try await finalState(charged.paymentID, query, deadline: .now + .seconds(30))?.status == .succeeded)
      let refused = await rpcError {
        try await command.client.cancelPayment(
          .with { $0.paymentID = charged.paymentID }, metadata: command.metadata)
      }
      #expect(refused?.code == .failedPrecondition)
      #expect(refused?.message.contains("is SUCCEEDED: it was charged") == true, "\(refused?.message ?? "")")

      // Another client's payment does not exist for this one; malformed IDs are named.
      let other = platform.commandClient(try await platform.key(client: "client-b"))
      defer { other.close() }
      let notFound = await rpcError {
        try await other.client.cancelPayment(cancel, metadata: other.metadata)
      }
      #expect(notFound?.code == .notFound)
      let invalid = await rpcError {
        try await command.client.cancelPayment(.with { $0.paymentID = "x\u{0}y" }, metadata: command.metadata)
      }
      #expect(invalid?.code == .invalidArgument)
      #expect(invalid?.message.contains("payment_id must be a payment ID") == true)
      let readOnly = platform.commandClient(try await platform.key(scopes: [.paymentsRead]))
      defer { readOnly.close() }
      #expect(
        await rpcError { try await readOnly.client.cancelPayment(cancel, metadata: readOnly.metadata) }?.code
          == .permissionDenied)

      // The sandbox never saw the cancelled payment.
      let ledger = try await ledgerCharges(base)
      #expect(ledger[submitted.paymentID] == nil)
    }
  }

  @Test(
    "in the work table: a claimed payment cancelled before its call cannot begin it; nothing is decided before intake; an unknown outcome is inquired after its backoff and ends CANCELED; a cancellation during a call wins over retries_exhausted"
  )
  func workStoreCancellation() async throws {
    let url = try await TestPostgres.shared.makeDatabase()
    let pool = PostgresConnectionPool(
      connectionString: url, maximumConnections: 4, logger: quietLogger("pool"))
    defer { Task { await pool.close() } }
    try await PostgresMigrator(pool: pool, logger: quietLogger("migrate")).migrate(PaymentsMigrations.all)
    let store = WorkStore(pool: pool, owner: "test")
    func order(_ id: String) -> Payments_V1_PaymentOrderRecord {
      .with {
        $0.paymentID = id
        $0.clientID = "client-a"
        $0.idempotencyKey = "k-" + id
        $0.amount = .with {
          $0.currency = "EUR"
          $0.amountMinor = 100
        }
      }
    }
    func status(_ id: String) async throws -> (Int32, Int64, Bool) {
      let row = try #require(
        try await pool.query(
          "SELECT status, version, cancel_requested FROM dispatcher.payments WHERE payment_id = \(id)"
        ).singleRow())
      return (
        try row.decode(Int32.self, at: 0), try row.decode(Int64.self, at: 1), try row.decode(Bool.self, at: 2)
      )
    }
    let canceled = Payments_V1_PaymentStatus.canceled.rawValue

    // Claimed, not begun: the cancellation wins and the claim's begin is refused.
    try await store.intake([order("pay_a")]) { _ in "sandbox" }
    let claimed = try #require(try await store.claim(provider: "sandbox"))
    #expect(try await store.cancel(paymentID: "pay_a", clientID: "client-a")?.decision == .cancelNow)
    #expect(try await store.begin(claimed, .charge) == nil, "the fence refuses the call")
    #expect(try await status("pay_a") == (canceled, 2, true))
    let again = try await store.cancel(paymentID: "pay_a", clientID: "client-a")
    #expect(again?.decision == .alreadyCanceled && again?.payment.version == 2)

    // Not here yet: the dispatcher decides nothing on data it has not consumed itself.
    #expect(try await store.cancel(paymentID: "pay_b", clientID: "client-a") == nil)

    // A call in flight: marked; its unknown outcome keeps its backoff, then the inquiry decides.
    try await store.intake([order("pay_c")]) { _ in "sandbox" }
    let held = try #require(try await store.claim(provider: "sandbox"))
    let (begun, _) = try #require(try await store.begin(held, .charge))
    #expect(try await store.cancel(paymentID: "pay_c", clientID: "client-a")?.decision == .awaitInquiry)
    _ = try #require(
      try await store.apply(
        Transition(status: .retryScheduled, attempts: 1, outcomeUnknown: true, nextAttemptAt: Date() + 3600),
        to: begun, callOutcome: CallRecord(kind: .charge, outcome: "unknown", detail: "timeout")))
    let backoff = try await pool.query(
      "SELECT next_attempt_at > now() + interval '59 minutes' FROM dispatcher.payments WHERE payment_id = 'pay_c'"
    )
    #expect(try backoff[0].decode(Bool.self, at: 0), "an unknown outcome keeps its backoff")
    // The hour passes.
    try await pool.execute(
      "UPDATE dispatcher.payments SET next_attempt_at = now() WHERE payment_id = 'pay_c'")
    let due = try #require(try await store.claim(provider: "sandbox"), "due after the backoff")
    #expect(due.cancelRequested && due.outcomeUnknown)
    #expect(WorkDecision.plan(due, now: Date()) == .call(.inquiry))
    let (asking, _) = try #require(try await store.begin(due, .inquiry))
    let (transition, record) = WorkDecision.after(
      asking, .inquiry(.notCharged), retry: RetryPolicy(), now: Date()
    ) { _ in 1 }
    #expect(transition.status == .canceled)
    _ = try #require(try await store.apply(transition, to: asking, callOutcome: record))
    #expect(try await status("pay_c").0 == canceled)

    // Another client cannot cancel it; the events went to the outbox in version order.
    await #expect(throws: RPCError.self) { try await store.cancel(paymentID: "pay_a", clientID: "client-b") }
    let versions = try await pool.query(
      """
      SELECT message_key, count(*) FROM dispatcher.outbox WHERE topic = 'payments.events.v1'
      GROUP BY message_key ORDER BY message_key
      """
    ).map { (try $0.decode(String.self, at: 0), try $0.decode(Int.self, at: 1)) }
    #expect(versions.map(\.0) == ["pay_a", "pay_c"])
    #expect(versions.map(\.1) == [1, 4], "pay_c: PROCESSING, RETRY_SCHEDULED, PROCESSING… CANCELED")

    // A cancellation that arrives during a call whose result uses up the attempts: CANCELED,
    // not FAILED (the worker decided without knowing of it).
    try await store.intake([order("pay_d")]) { _ in "sandbox" }
    let d = try #require(try await store.claim(provider: "sandbox"))
    let (calling, _) = try #require(try await store.begin(d, .charge))
    #expect(try await store.cancel(paymentID: "pay_d", clientID: "client-a")?.decision == .awaitInquiry)
    let (failed, _) = WorkDecision.after(
      calling, .charge(.transientFailure(reason: "503")),
      retry: RetryPolicy(base: .milliseconds(1), factor: 1, cap: .milliseconds(1), maximumAttempts: 1),
      now: Date()
    ) { _ in 0 }
    #expect(failed.failure?.code == "retries_exhausted")
    #expect(try await store.apply(failed, to: calling, callOutcome: nil)?.status == .canceled)
  }

  @Test(
    "100 cancellations racing 2 dispatchers against a provider that charges every request, with faults: no payment both charged and CANCELED"
  )
  func cancellationsRaceTheDispatcher() async throws {
    try await withDispatcherStack(
      dispatchers: 2,
      sandbox: { racingSandbox(&$0, seed: 20) }, dispatcher: racingDispatcher
    ) { platform, base, command, query in
      try await warmUp(command, query)
      // Each payment is cancelled once, 0 to 1.5 s after its own submission, while the next ones
      // are submitted: some are still waiting, some in a call, some done.
      let (submitted, answers) = try await withThrowingTaskGroup(
        of: (String, Result<Payments_V1_Payment, RPCError>).self
      ) { group in
        var submitted: [Payments_V1_Payment] = []
        for index in 0..<100 {
          let payment = try await command.client.submitPayment(
            validRequest(key: "race-\(index)", amount: 1000 + Int64(index)), metadata: command.metadata
          ).payment!
          submitted.append(payment)
          var random = SplitMix(state: UInt64(index) &+ 1)
          let delay = Duration.milliseconds(Int.random(in: 0...1500, using: &random))
          let id = payment.paymentID
          group.addTask { (id, try await cancel(id, after: delay, command)) }
        }
        var answers: [String: Result<Payments_V1_Payment, RPCError>] = [:]
        for try await (id, answer) in group { answers[id] = answer }
        return (submitted, answers)
      }
      let (final, stats) = try await verifyLedger(
        submitted, base: base, query: query, deadline: .now + .seconds(120))
      let ledger = try await ledgerCharges(base)
      var outcomes: [String: Int] = [:]
      for payment in submitted {
        let id = payment.paymentID
        let state = try #require(final[id])
        let charges = ledger[id]?.count ?? 0
        guard let answer = answers[id] else {
          Issue.record("\(id) got no answer")
          continue
        }
        switch answer {
        case .success(let cancelled):
          #expect(cancelled.status == .canceled)
          #expect(state.status == .canceled, "\(id) answered CANCELED but ended \(state.status)")
          #expect(charges == 0, "\(id) answered CANCELED but charged")
          outcomes["canceled", default: 0] += 1
        case .failure(let error):
          #expect(error.code == .failedPrecondition, "\(id): \(error.code) \(error.message)")
          if error.message.contains("is SUCCEEDED") {
            #expect(state.status == .succeeded && charges == 1)
            outcomes["succeeded", default: 0] += 1
          } else if error.message.contains("not known yet") {
            // Undecided within the wait: recorded, and decided later by the inquiry.
            #expect(state.status == .canceled || state.status == .succeeded)
            outcomes["undecided", default: 0] += 1
          } else {
            #expect(state.status == .failed, "\(id): \(error.message)")
            outcomes["failed", default: 0] += 1
          }
        }
      }
      #expect((outcomes["canceled"] ?? 0) > 0 && (outcomes["succeeded"] ?? 0) > 0, "\(outcomes)")
      #expect(stats.windowViolations == 0)
    }
  }
}

/// The sandbox of the race tests: it charges and refunds every request it receives (a repeated
/// key again), with faults on: 503s, errors after the money moved, replies lost past the
/// client's timeout, slow replies.
func racingSandbox(_ configuration: inout ProviderSandbox.Configuration, seed: UInt64) {
  configuration.nonIdempotent = true
  configuration.rateLimit = 10
  configuration.unavailableRate = 0.05
  configuration.errorAfterChargeRate = 0.08
  configuration.lostResponseRate = 0.05
  configuration.lostResponseDelay = .milliseconds(900)
  configuration.slowRate = 0.1
  configuration.slowDelay = .milliseconds(200)
  configuration.seed = seed
}

/// The dispatchers of the race tests: short leases, timeouts and backoffs, so that calls outlive
/// leases and unknown outcomes are inquired within the test.
@Sendable func racingDispatcher(_ configuration: inout DispatcherServer.Configuration) {
  configuration.workers = 8
  configuration.rateLimiter.defaultLimit = 10
  configuration.lease = .seconds(3)
  configuration.providerTimeout = .milliseconds(500)
  configuration.retry = RetryPolicy(base: .milliseconds(100), factor: 2, cap: .seconds(1), maximumAttempts: 6)
}

/// Cancels payment `id` after `delay`; the answer or the RPC error.
func cancel(
  _ id: String, after delay: Duration, _ command: AuthorizedClient<Payments_V1_PaymentCommandService.Client>
) async throws -> Result<Payments_V1_Payment, RPCError> {
  try await Task.sleep(for: delay)
  do {
    let response = try await command.client.cancelPayment(
      .with { $0.paymentID = id }, metadata: command.metadata, options: .init(timeout: .seconds(20)))
    return .success(response.payment ?? .init())
  } catch let error as RPCError {
    return .failure(error)
  }
}

/// The sandbox ledger's charges by idempotency key.
func ledgerCharges(_ base: String) async throws -> [String: [SandboxCharge]] {
  let client = HTTPClient(eventLoopGroupProvider: .singleton)
  do {
    let ledger = try await sandboxJSON(Ledger.self, client, base, "/v1/ledger")
    try await client.shutdown()
    return Dictionary(grouping: ledger.charges, by: \.idempotencyKey)
  } catch {
    try? await client.shutdown()
    throw error
  }
}
