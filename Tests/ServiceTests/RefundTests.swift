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

/// Refunds: the refundable amount under concurrency on PostgreSQL, and end to end against the
/// provider sandbox in its non-idempotent mode (a refund sent twice shows as two ledger entries,
/// an over-refund is not refused by the sandbox), with faults on.
@Suite("Refunds")
struct RefundTests {
  @Test(
    "in the work table: 40 concurrent refunds from two instances never exceed the captured amount; a key replays or is refused; only SUCCEEDED payments; a FAILED refund frees its amount; an unknown outcome is inquired, never resent"
  )
  func workStoreRefunds() async throws {
    let url = try await TestPostgres.shared.makeDatabase()
    // The refunds queue on the payment's row lock while holding a connection: the test is about
    // that lock, so waiting for a connection may take as long as a loaded machine needs.
    let pools = (0..<2).map { index in
      PostgresConnectionPool(
        configuration: .init(
          connection: PostgresConnectionConfiguration(connectionString: url), maximumConnections: 8,
          acquireTimeout: .seconds(120)),
        logger: quietLogger("pool-\(index)"))
    }
    defer { Task { for pool in pools { await pool.close() } } }
    try await PostgresMigrator(pool: pools[0], logger: quietLogger("migrate")).migrate(PaymentsMigrations.all)
    let stores = pools.enumerated().map { WorkStore(pool: $1, owner: "instance-\($0)") }
    let pool = pools[0]
    func order(_ id: String, amount: Int64 = 1000) -> Payments_V1_PaymentOrderRecord {
      .with {
        $0.paymentID = id
        $0.clientID = "client-a"
        $0.idempotencyKey = "k-" + id
        $0.amount = .with {
          $0.currency = "EUR"
          $0.amountMinor = amount
        }
      }
    }
    func request(_ key: String, _ payment: String = "pay_r", amount: Int64 = 100, client: String = "client-a")
      -> RefundSubmission
    {
      RefundSubmission(
        clientID: client, idempotencyKey: key, paymentID: payment, amountMinor: amount, reason: "test",
        fingerprint: Array("\(payment)/\(amount)".utf8))
    }
    try await stores[0].intake([order("pay_r"), order("pay_open")]) { _ in "sandbox" }
    #expect(
      try await stores[0].createRefund(request("early")).isNotRefundable,
      "an ACCEPTED payment cannot be refunded")
    try await pool.execute(
      "UPDATE dispatcher.payments SET status = 4, provider_reference = 'ch_r' WHERE payment_id = 'pay_r'")

    // 40 refunds of 100 race on a payment of 1000, half through each instance.
    let results = try await withThrowingTaskGroup(of: RefundCreation.self) { group in
      for index in 0..<40 {
        group.addTask { try await stores[index % 2].createRefund(request("race-\(index)")) }
      }
      return try await group.reduce(into: []) { $0.append($1) }
    }
    let created = results.compactMap(\.createdRefund)
    #expect(created.count == 10, "exactly the captured amount is refundable")
    #expect(results.filter(\.exceeds).count == 30)
    #expect(Set(created.map(\.refundID)).count == 10 && created.allSatisfy { $0.status == .pending })
    let committed = try await pool.query(
      "SELECT sum(amount_minor)::bigint, count(*) FROM dispatcher.refunds WHERE payment_id = 'pay_r'")[0]
    #expect(try committed.decode(Int64.self, at: 0) == 1000)
    // Every creation was an event of the payment, each with its own version.
    let versions = try await pool.query(
      "SELECT version FROM dispatcher.payments WHERE payment_id = 'pay_r'")[0].decode(Int64.self, at: 0)
    #expect(versions == 11)

    // The same key: the same refund, whichever instance answers; other fields: refused.
    let first = try #require(created.first)
    let key = first.idempotencyKey
    guard case .replayed(let replayed) = try await stores[1].createRefund(request(key)) else {
      Issue.record("a repeated request is a replay")
      return
    }
    #expect(replayed.refundID == first.refundID)
    guard case .keyReused(let reusedFor) = try await stores[0].createRefund(request(key, amount: 50)) else {
      Issue.record("a key reused with another amount is refused")
      return
    }
    #expect(reusedFor == first.refundID)
    await #expect(throws: RPCError.self, "another client's payment does not exist for it") {
      try await stores[0].createRefund(request("other", client: "client-b"))
    }
    #expect(try await stores[0].createRefund(request("missing", "pay_missing")).isPaymentNotHere)

    // A refund whose provider refused it frees its amount.
    let claimed = try #require(try await stores[0].claimRefund(provider: "sandbox"))
    #expect(claimed.chargeReference == "ch_r" && claimed.chargeKey == "pay_r")
    #expect(RefundDecision.plan(claimed) == .refund)
    let (sending, _) = try #require(try await stores[0].beginRefund(claimed, .refund))
    let (refused, record) = RefundDecision.after(
      sending, .charge(.permanentFailure(code: "amount_exceeds_charge", message: "no")), retry: RetryPolicy(),
      now: Date()
    ) { _ in 1 }
    #expect(try await stores[0].applyRefund(refused, to: sending, callOutcome: record)?.status == .failed)
    #expect(try await stores[1].createRefund(request("after-failure")).createdRefund != nil)
    #expect(try await stores[1].createRefund(request("one-too-many", amount: 1)).exceeds)

    // A call that may have refunded: the next owner (after the lease) asks, and never sends it again.
    let second = try #require(try await stores[1].claimRefund(provider: "sandbox"))
    try await pool.execute(
      """
      UPDATE dispatcher.refunds SET next_attempt_at = now() + interval '1 hour'
      WHERE refund_id <> \(second.refundID) AND status = 1
      """)
    let (calling, _) = try #require(try await stores[1].beginRefund(second, .refund))
    // Shutdown cut the call off: its lease is not given back (the request may still land).
    try await stores[1].releaseLeases()
    #expect(try await stores[0].claimRefund(provider: "sandbox") == nil, "claimable while its call may land")
    try await pool.execute(
      "UPDATE dispatcher.refunds SET lease_expires_at = now() - interval '1 second' WHERE refund_id = \(second.refundID)"
    )
    let takenOver = try #require(try await stores[0].claimRefund(provider: "sandbox"))
    #expect(takenOver.refundID == second.refundID && takenOver.outcomeUnknown)
    #expect(RefundDecision.plan(takenOver) == .refundInquiry)
    let (lateAnswer, _) = RefundDecision.after(
      calling, .charge(.succeeded(reference: "re_late")), retry: RetryPolicy(), now: Date()
    ) { _ in 1 }
    #expect(
      try await stores[1].applyRefund(lateAnswer, to: calling, callOutcome: nil) == nil,
      "the fence drops the old owner's answer")
    let (asking, _) = try #require(try await stores[0].beginRefund(takenOver, .refundInquiry))
    let (found, _) = RefundDecision.after(
      asking, .inquiry(.charged(reference: "re_found")), retry: RetryPolicy(), now: Date()
    ) { _ in 1 }
    #expect(try await stores[0].applyRefund(found, to: asking, callOutcome: nil)?.status == .succeeded)

    // The last event carries the payment with every refund and the refunded total.
    let last = try await pool.query(
      """
      SELECT payload FROM dispatcher.outbox WHERE message_key = 'pay_r' ORDER BY id DESC LIMIT 1
      """)[0].decode([UInt8].self, at: 0)
    let event = try Payments_V1_PaymentEvent(serializedBytes: last)
    #expect(event.type == .refundSucceeded && event.refundID == second.refundID)
    let payment = try #require(event.payment)
    #expect(payment.status == .succeeded && payment.version == event.version)
    #expect(payment.refunds.count == 11)
    #expect(payment.refunded?.amountMinor == 100 && payment.refunded?.currency == "EUR")
    #expect(payment.refunds.first { $0.refundID == second.refundID }?.providerReference == "re_found")

    // The same for a payment whose charge call shutdown cut off: it stays with its lease.
    let held = try #require(try await stores[0].claim(provider: "sandbox"))
    _ = try #require(try await stores[0].begin(held, .charge))
    try await stores[0].releaseLeases()
    #expect(try await stores[1].claim(provider: "sandbox")?.paymentID != held.paymentID)
  }

  @Test(
    "end to end, 2 dispatchers, a provider that refunds every request it gets, with faults: 24 payments, 96 racing refunds (partial, repeated, over the remaining amount): every refund terminal, refunded totals never above the charge, none sent twice, the read model and the feed agree"
  )
  func refundsRaceEndToEnd() async throws {
    try await withDispatcherStack(
      dispatchers: 2,
      sandbox: { racingSandbox(&$0, seed: 31) }, dispatcher: racingDispatcher
    ) { platform, base, command, query in
      try await warmUp(command, query)
      var payments: [Payments_V1_Payment] = []
      for index in 0..<24 {
        payments.append(
          try await command.client.submitPayment(
            validRequest(key: "refund-race-\(index)", amount: 1000), metadata: command.metadata
          ).payment!)
      }
      let (charged, _) = try await verifyLedger(
        payments, base: base, query: query, deadline: .now + .seconds(120))
      let succeeded = payments.filter { charged[$0.paymentID]?.status == .succeeded }.map(\.paymentID)
      #expect(succeeded.count >= 18, "most payments are charged (the rest failed for good)")

      // Four refund requests race per payment: amounts of 300 to 1000, one key sent twice.
      var random = SplitMix(state: 99)
      var requests: [Payments_V1_RefundPaymentRequest] = []
      for id in succeeded {
        let amounts = (0..<3).map { _ in [300, 450, 600, 1000][Int.random(in: 0..<4, using: &random)] }
        for index in 0..<4 {
          requests.append(
            .with {
              $0.idempotencyKey = "\(id)-r\(index % 3)"  // the fourth repeats the first
              $0.paymentID = id
              $0.amountMinor = Int64(amounts[index % 3])
              $0.reason = "race"
            })
        }
      }
      let answers = try await withThrowingTaskGroup(
        of: (Payments_V1_RefundPaymentRequest, Result<Payments_V1_RefundPaymentResponse, RPCError>).self
      ) { group in
        for request in requests { group.addTask { (request, await refund(request, command)) } }
        return try await group.reduce(into: []) { $0.append($1) }
      }
      var accepted: [String: Payments_V1_Refund] = [:]
      var refused = 0
      for (request, answer) in answers {
        switch answer {
        case .success(let response):
          let refund = try #require(response.refund)
          if let earlier = accepted[refund.refundID] {
            #expect(earlier.idempotencyKey == refund.idempotencyKey, "one refund per key")
          }
          accepted[refund.refundID] = refund
          #expect(refund.amount?.amountMinor == request.amountMinor && refund.paymentID == request.paymentID)
        case .failure(let error):
          #expect(error.code == .failedPrecondition, "\(error.code): \(error.message)")
          #expect(error.message.contains("exceeds what is left to refund"), "\(error.message)")
          refused += 1
        }
      }
      #expect(refused > 0, "some refunds asked for more than was left")
      #expect(Set(accepted.values.map(\.idempotencyKey)).count == accepted.count)
      let acceptedByPayment = Dictionary(grouping: accepted.values, by: \.paymentID)
      for (id, refunds) in acceptedByPayment {
        #expect(
          refunds.reduce(0) { $0 + ($1.amount?.amountMinor ?? 0) } <= 1000, "\(id): accepted over the amount")
      }

      // Every refund ends; the ledger holds exactly the succeeded ones, once each.
      let final = try await terminalRefunds(Array(accepted.keys), query, deadline: .now + .seconds(120))
      let client = HTTPClient(eventLoopGroupProvider: .singleton)
      let ledger: SandboxLedger
      let stats: SandboxStats
      do {
        ledger = try await sandboxJSON(SandboxLedger.self, client, base, "/v1/ledger")
        stats = try await sandboxJSON(SandboxStats.self, client, base, "/v1/stats")
        try await client.shutdown()
      } catch {
        try? await client.shutdown()
        throw error
      }
      let ledgerByKey = Dictionary(grouping: ledger.refunds, by: \.idempotencyKey)
      var statuses: [String: Int] = [:]
      for (refundID, refund) in final {
        let entries = ledgerByKey[refundID]?.count ?? 0
        switch refund.status {
        case .succeeded:
          #expect(entries == 1, "\(refundID) SUCCEEDED with \(entries) refunds at the provider")
          statuses["succeeded", default: 0] += 1
        case .failed:
          #expect(entries == 0, "\(refundID) FAILED but refunded \(entries) time(s)")
          statuses["failed", default: 0] += 1
        default:
          Issue.record("\(refundID) did not end: \(refund.status)")
        }
      }
      #expect((statuses["succeeded"] ?? 0) > 0, "\(statuses)")
      let chargedAmount = Dictionary(
        ledger.charges.map { ($0.idempotencyKey, $0.amount) }, uniquingKeysWith: +)
      for (paymentID, refunded) in Dictionary(
        ledger.refunds.map { ($0.chargeIdempotencyKey, $0.amount) }, uniquingKeysWith: +)
      {
        #expect(
          refunded <= chargedAmount[paymentID] ?? 0, "\(paymentID): refunded \(refunded) at the provider")
      }
      #expect(stats.windowViolations == 0)
      // The faults reached refunds: some refund calls ended unknown and were asked about.
      let pool = PostgresConnectionPool(
        connectionString: platform.databaseURL, maximumConnections: 1, logger: quietLogger("check"))
      let inquiries = try await pool.query(
        "SELECT count(*) FROM dispatcher.attempts WHERE kind = 'refund_inquiry'")[0].decode(Int.self, at: 0)
      await pool.close()
      #expect(inquiries > 0, "no refund call had an unknown outcome: the faults did not reach refunds")

      // The read model: each payment lists its refunds and the refunded total of the ledger.
      for (paymentID, refunds) in acceptedByPayment {
        let payment = try await query.client.getPayment(
          .with { $0.lookup = .paymentID(paymentID) }, metadata: query.metadata)
        #expect(Set(payment.refunds.map(\.refundID)) == Set(refunds.map(\.refundID)))
        let succeededTotal = payment.refunds.filter { $0.status == .succeeded }.reduce(Int64(0)) {
          $0 + ($1.amount?.amountMinor ?? 0)
        }
        #expect((payment.refunded?.amountMinor ?? 0) == succeededTotal)
        #expect(
          succeededTotal
            == ledger.refunds.filter { $0.chargeIdempotencyKey == paymentID }.reduce(0) { $0 + $1.amount })
      }

      // The feed has every refund change of the client's payments, versions increasing per payment.
      var cursor = ""
      var events: [Payments_V1_FeedEvent] = []
      while true {
        let page = try await query.client.listEvents(
          .with {
            $0.after = cursor
            $0.pageSize = 500
          }, metadata: query.metadata)
        events += page.events
        guard let last = page.events.last else { break }
        cursor = last.cursor
      }
      var lastVersion: [String: Int64] = [:]
      for event in events {
        let payment = try #require(event.payment)
        #expect(payment.version > lastVersion[payment.paymentID] ?? 0, "versions increase per payment")
        lastVersion[payment.paymentID] = payment.version
      }
      for (refundID, refund) in final {
        let seen = events.contains { event in
          event.payment?.refunds.contains { $0.refundID == refundID && $0.status == refund.status } ?? false
        }
        #expect(seen, "the feed shows \(refundID) \(refund.status)")
      }

      // Another client sees none of it.
      let other = platform.queryClient(try await platform.key(client: "client-b"))
      defer { other.close() }
      let someRefund = try #require(final.keys.first)
      #expect(
        await rpcError {
          try await other.client.getRefund(.with { $0.refundID = someRefund }, metadata: other.metadata)
        }?.code == .notFound)
    }
  }

  @Test(
    "RefundPayment errors name the problem: fields, state, amounts, currency; a read-only key may not refund")
  func refundErrors() async throws {
    try await withDispatcherStack(
      dispatcher: { $0.routes = ["CHF": "elsewhere"] }  // CHF payments wait: no instance serves them
    ) { platform, _, command, query in
      try await warmUp(command, query)
      let payment = try await command.client.submitPayment(
        validRequest(key: "to-refund", amount: 500), metadata: command.metadata
      ).payment!
      #expect(
        try await finalState(payment.paymentID, query, deadline: .now + .seconds(30))?.status == .succeeded)
      func refundRequest(_ change: (inout Payments_V1_RefundPaymentRequest) -> Void)
        -> Payments_V1_RefundPaymentRequest
      {
        var request = Payments_V1_RefundPaymentRequest.with {
          $0.idempotencyKey = "refund-\(UUID().uuidString)"
          $0.paymentID = payment.paymentID
          $0.amountMinor = 100
        }
        change(&request)
        return request
      }
      let invalid = await rpcError {
        try await command.client.refundPayment(
          refundRequest {
            $0.idempotencyKey = ""
            $0.paymentID = "pay_x"
            $0.amountMinor = 0
            $0.currency = "EURO"
          }, metadata: command.metadata)
      }
      #expect(invalid?.code == .invalidArgument)
      for field in [
        "idempotency_key: is required", "payment_id: must be a payment ID",
        "amount_minor: must be greater than 0", "currency:",
      ] {
        #expect(invalid?.message.contains(field) == true, "\(invalid?.message ?? "")")
      }
      let currency = await rpcError {
        try await command.client.refundPayment(
          refundRequest { $0.currency = "USD" }, metadata: command.metadata)
      }
      #expect(
        currency?.code == .failedPrecondition && currency?.message.contains("is in EUR, not USD") == true)
      let tooMuch = await rpcError {
        try await command.client.refundPayment(
          refundRequest { $0.amountMinor = 501 }, metadata: command.metadata)
      }
      #expect(tooMuch?.code == .failedPrecondition)
      #expect(tooMuch?.message.contains("500 of 500 EUR") == true, "\(tooMuch?.message ?? "")")
      let first = try await command.client.refundPayment(
        refundRequest {
          $0.idempotencyKey = "partial-1"
          $0.amountMinor = 200
          $0.currency = "EUR"
        }, metadata: command.metadata)
      #expect(first.refund?.status == .pending && !first.replayed)
      #expect(first.refund.map { RefundID.isWellFormed($0.refundID) } == true)
      let replay = try await command.client.refundPayment(
        refundRequest {
          $0.idempotencyKey = "partial-1"
          $0.amountMinor = 200
          $0.currency = "EUR"
        }, metadata: command.metadata)
      #expect(replay.replayed && replay.refund?.refundID == first.refund?.refundID)
      let reused = await rpcError {
        try await command.client.refundPayment(
          refundRequest {
            $0.idempotencyKey = "partial-1"
            $0.amountMinor = 300
          }, metadata: command.metadata)
      }
      #expect(reused?.code == .alreadyExists)
      let left = await rpcError {
        try await command.client.refundPayment(
          refundRequest { $0.amountMinor = 301 }, metadata: command.metadata)
      }
      #expect(left?.message.contains("300 of 500 EUR") == true, "\(left?.message ?? "")")

      let other = platform.commandClient(try await platform.key(client: "client-b"))
      defer { other.close() }
      #expect(
        await rpcError {
          try await other.client.refundPayment(refundRequest { _ in }, metadata: other.metadata)
        }?
        .code == .notFound)
      let readOnly = platform.commandClient(try await platform.key(scopes: [.paymentsRead]))
      defer { readOnly.close() }
      #expect(
        await rpcError {
          try await readOnly.client.refundPayment(refundRequest { _ in }, metadata: readOnly.metadata)
        }?
        .code == .permissionDenied)
      let waiting = try await command.client.submitPayment(
        validRequest(key: "not-yet", currency: "CHF"), metadata: command.metadata
      ).payment!
      let notCharged = await rpcError {
        try await command.client.refundPayment(
          refundRequest { $0.paymentID = waiting.paymentID }, metadata: command.metadata)
      }
      #expect(notCharged?.code == .failedPrecondition, "\(notCharged?.message ?? "")")
      #expect(notCharged?.message.contains("is ACCEPTED: only a SUCCEEDED payment can be refunded") == true)
      let malformed = await rpcError {
        try await query.client.getRefund(.with { $0.refundID = "ref_\u{0}" }, metadata: query.metadata)
      }
      #expect(malformed?.code == .invalidArgument)
    }
  }
}

extension RefundTests {
  @Test(
    "a payment can have 100 refunds, not 101; pages of the feed stay near 1 MiB however large its events grow, and continue without gaps"
  )
  func manyRefunds() async throws {
    try await withDispatcherStack(
      sandbox: { $0.rateLimit = 50 }, dispatcher: { $0.rateLimiter.defaultLimit = 50 }
    ) { _, _, command, query in
      try await warmUp(command, query)
      let payment = try await command.client.submitPayment(
        validRequest(key: "many-refunds", amount: 100_000), metadata: command.metadata
      ).payment!
      #expect(
        try await finalState(payment.paymentID, query, deadline: .now + .seconds(30))?.status == .succeeded)
      // The largest refunds there can be: a 255-byte key and a 200-character reason each.
      func request(_ index: Int) -> Payments_V1_RefundPaymentRequest {
        .with {
          $0.idempotencyKey = String(format: "%03d-", index) + String(repeating: "k", count: 251)
          $0.paymentID = payment.paymentID
          $0.amountMinor = 1
          $0.reason = String(repeating: "r", count: 200)
        }
      }
      for index in 0..<WorkStore.maximumRefundsPerPayment {
        _ = try await command.client.refundPayment(request(index), metadata: command.metadata)
      }
      let refused = await rpcError {
        try await command.client.refundPayment(request(999), metadata: command.metadata)
      }
      #expect(refused?.code == .failedPrecondition && refused?.message.contains("has 100 refunds") == true)
      // Every refund's event reaches the read model.
      let deadline = ContinuousClock.now + .seconds(60)
      var latest = Payments_V1_Payment()
      while ContinuousClock.now < deadline {
        latest = try await query.client.getPayment(
          .with { $0.lookup = .paymentID(payment.paymentID) }, metadata: query.metadata)
        if latest.refunds.count == 100, latest.refunds.allSatisfy({ $0.status == .succeeded }) { break }
        try await Task.sleep(for: .milliseconds(200))
      }
      #expect(latest.refunds.count == 100 && latest.refunded?.amountMinor == 100)
      #expect(
        latest.serializedBytes().count > 40_000, "a large payment: \(latest.serializedBytes().count) bytes")

      // The feed, 1000 events a page asked for: pages end before 1 MiB, and every event comes once.
      var cursor = ""
      var sequences: [Int] = []
      var pages = 0
      while true {
        let page = try await query.client.listEvents(
          .with {
            $0.after = cursor
            $0.pageSize = 1000
          }, metadata: query.metadata)
        guard let last = page.events.last else { break }
        pages += 1
        #expect(page.serializedBytes().count <= (1 << 20) + 300_000, "one event beyond the budget at most")
        sequences += page.events.map { Int($0.cursor.dropFirst())! }
        cursor = last.cursor
      }
      #expect(pages > 1, "the events did not fit one page")
      #expect(sequences == Array(1...sequences.count), "no gaps, no repeats")
      let versions = try await query.client.listEvents(
        .with {
          $0.after = ""
          $0.pageSize = 1000
        }, metadata: query.metadata)
      #expect(versions.events.count < sequences.count)
    }
  }
}

/// Requests a refund; the answer or the RPC error.
func refund(
  _ request: Payments_V1_RefundPaymentRequest,
  _ command: AuthorizedClient<Payments_V1_PaymentCommandService.Client>
) async -> Result<Payments_V1_RefundPaymentResponse, RPCError> {
  do {
    return .success(
      try await command.client.refundPayment(
        request, metadata: command.metadata, options: .init(timeout: .seconds(20))))
  } catch let error as RPCError {
    return .failure(error)
  } catch {
    return .failure(RPCError(.unknown, "\(error)"))
  }
}

/// Each refund as the query service has it once terminal (or as last seen at `deadline`).
func terminalRefunds(
  _ ids: [String], _ query: AuthorizedClient<Payments_V1_PaymentQueryService.Client>,
  deadline: ContinuousClock.Instant
) async throws -> [String: Payments_V1_Refund] {
  var final: [String: Payments_V1_Refund] = [:]
  var open = Set(ids)
  while !open.isEmpty, ContinuousClock.now < deadline {
    for id in open {
      guard
        let refund = try? await query.client.getRefund(.with { $0.refundID = id }, metadata: query.metadata)
      else { continue }
      final[id] = refund
      if refund.status.isTerminal { open.remove(id) }
    }
    if !open.isEmpty { try await Task.sleep(for: .milliseconds(200)) }
  }
  return final
}

extension RefundCreation {
  var createdRefund: Payments_V1_Refund? { if case .created(let refund) = self { refund } else { nil } }
  var exceeds: Bool { if case .exceedsRefundable = self { true } else { false } }
  var isNotRefundable: Bool { if case .notRefundable = self { true } else { false } }
  var isPaymentNotHere: Bool { if case .paymentNotHere = self { true } else { false } }
}
