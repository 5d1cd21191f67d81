import DispatcherService
import Foundation
import PaymentsCore
import PaymentsProto
import PaymentsTestSupport
import Synchronization
import Testing

/// `PaymentWorker`'s I/O around `WorkDecision`, against the in-memory store, limiter and a
/// provider that charges every request it receives: fast, no PostgreSQL (the same worker runs
/// against PostgreSQL in ServiceTests/FencingTests and tools/chaos).
@Suite("Payment worker against in-memory seams")
struct PaymentWorkerTests {
  static let retry = RetryPolicy(
    base: .milliseconds(5), factor: 2, cap: .milliseconds(40), maximumAttempts: 4)

  /// Runs `workers` workers until every payment of `store` is terminal or `limit` has passed.
  func drain(_ worker: PaymentWorker, _ store: InMemoryWorkStore, workers: Int, limit: Duration) async throws
  {
    let deadline = ContinuousClock.now + limit
    try await withThrowingTaskGroup(of: Void.self) { group in
      for _ in 0..<workers {
        group.addTask {
          while ContinuousClock.now < deadline,
            store.all.values.contains(where: { !$0.item.status.isTerminal })
          {
            if try await !worker.round() { try await Task.sleep(for: .milliseconds(2)) }
          }
        }
      }
      try await group.waitForAll()
    }
  }

  @Test(
    "8 workers, calls that outlive the lease, every fate a request can meet: never charged twice, never charged-but-FAILED, every payment ends"
  )
  func fencedUnderStalls() async throws {
    // A 30-ms lease and calls of up to 60 ms: payments are taken over while their call is still
    // running, which the fence must stop from turning into a second charge or a lost result.
    let store = InMemoryWorkStore(lease: .milliseconds(30))
    store.add((0..<150).map { WorkItem(paymentID: "pay_\($0)", status: .accepted) })
    let random = Mutex(SplitMix(state: 42))
    let provider = LedgerProvider(
      delay: { .milliseconds(random.withLock { Int.random(in: 0...3, using: &$0) == 0 ? 60 : 2 }) }
    ) { _ in
      random.withLock { generator -> LedgerProvider.Fate in
        switch Int.random(in: 0..<100, using: &generator) {
        case 0..<10: .chargeButLoseReply
        case 10..<20: .neverArrives
        case 20..<30: .notProcessed
        case 30..<35: .decline
        default: .charge
        }
      }
    }
    let limiter = InMemoryRateLimiter(limit: 10_000, callTimeout: .milliseconds(100))
    var registry = ProviderRegistry(defaultProvider: "sandbox")
    registry.register(provider)
    let worker = PaymentWorker(
      store: store, limiter: limiter, providers: registry, retry: Self.retry, logger: quietLogger("worker"))
    try await drain(worker, store, workers: 8, limit: .seconds(60))

    let ledger = provider.ledger
    for (id, row) in store.all {
      #expect(row.item.status.isTerminal, "\(id) is \(row.item.status)")
      let charges = ledger[id]?.count ?? 0
      #expect(charges <= 1, "\(id) charged \(charges) times")
      if row.item.status == .failed { #expect(charges == 0, "\(id) charged but FAILED") }
      if row.item.status == .succeeded { #expect(charges == 1, "\(id) SUCCEEDED without a charge") }
      for (from, to) in zip(row.events, row.events.dropFirst()) {
        #expect(PaymentLifecycle.allows(from, to) || from == to, "\(id): \(from) → \(to)")
      }
    }
    #expect(store.refusedWrites > 0, "payments were taken over mid-call, and the fence refused the old owner")
    let counts = limiter.counts
    #expect(counts.granted == counts.finished + counts.cancelled, "every grant finished or given back")
  }

  @Test(
    "cancellations racing 8 workers, lost replies and calls that outlive the lease: never both charged and CANCELED"
  )
  func cancellationsRaceWorkers() async throws {
    let store = InMemoryWorkStore(lease: .milliseconds(30))
    let ids = (0..<300).map { "pay_\($0)" }
    store.add(ids.map { WorkItem(paymentID: $0, status: .accepted) })
    let random = Mutex(SplitMix(state: 99))
    let provider = LedgerProvider(
      delay: { .milliseconds(random.withLock { Int.random(in: 0...9, using: &$0) == 0 ? 50 : 3 }) }
    ) { _ in
      random.withLock { generator -> LedgerProvider.Fate in
        switch Int.random(in: 0..<100, using: &generator) {
        case 0..<15: .chargeButLoseReply
        case 15..<25: .neverArrives
        case 25..<40: .notProcessed
        default: .charge
        }
      }
    }
    let limiter = InMemoryRateLimiter(limit: 10_000, callTimeout: .milliseconds(100))
    var registry = ProviderRegistry(defaultProvider: "sandbox")
    registry.register(provider)
    let worker = PaymentWorker(
      store: store, limiter: limiter, providers: registry, retry: Self.retry, logger: quietLogger("worker"))
    let decisions = try await withThrowingTaskGroup(of: [String: CancelDecision].self) { group in
      group.addTask {
        try await drain(worker, store, workers: 8, limit: .seconds(60))
        return [:]
      }
      group.addTask {
        var decisions: [String: CancelDecision] = [:]
        var order = SplitMix(state: 5)
        for id in ids.shuffled(using: &order) {
          decisions[id] = store.cancel(id)
          try await Task.sleep(for: .microseconds(Int.random(in: 0...1500, using: &order)))
        }
        return decisions
      }
      return try await group.reduce(into: [:]) { $0.merge($1) { first, _ in first } }
    }
    // Payments marked for an inquiry may still be settling once the canceller is done.
    try await drain(worker, store, workers: 8, limit: .seconds(30))

    let ledger = provider.ledger
    var seen: [String: Int] = [:]
    for (id, row) in store.all {
      let charges = ledger[id]?.count ?? 0
      #expect(row.item.status.isTerminal, "\(id) is \(row.item.status)")
      #expect(charges <= 1, "\(id) charged \(charges) times")
      if row.item.status == .canceled { #expect(charges == 0, "\(id) charged and CANCELED") }
      if row.item.status == .succeeded { #expect(charges == 1, "\(id) SUCCEEDED without a charge") }
      let decision = try #require(decisions[id])
      switch decision {
      case .cancelNow:
        #expect(row.item.status == .canceled, "\(id) cancelled at once but ended \(row.item.status)")
      case .refuse(let status): #expect(row.item.status == status)
      case .awaitInquiry: #expect(row.item.status == .canceled || row.item.status == .succeeded)
      case .alreadyCanceled: Issue.record("\(id) was cancelled once only")
      }
      seen["\(decision)".components(separatedBy: "(")[0], default: 0] += 1
      for (from, to) in zip(row.events, row.events.dropFirst()) {
        #expect(PaymentLifecycle.allows(from, to) || from == to, "\(id): \(from) → \(to)")
      }
    }
    // The race has to have happened: each kind of answer occurred.
    #expect(
      (seen["cancelNow"] ?? 0) > 0 && (seen["refuse"] ?? 0) > 0 && (seen["awaitInquiry"] ?? 0) > 0, "\(seen)")
  }

  @Test("past its expiry, a payment whose charge may have happened is asked about, not failed: it succeeds")
  func expiryAfterUnknownOutcome() async throws {
    let store = InMemoryWorkStore()
    store.add([WorkItem(paymentID: "pay_1", status: .accepted, expiresAt: Date() + 3600)])
    let calls = Atomic<Int>(0)
    // The charge is made and its answer lost, and the payment expires while the call is out (no
    // wall-clock race: the expiry moves into the past at the moment the charge arrives).
    let provider = LedgerProvider { _ in
      store.update("pay_1") { $0.item.expiresAt = Date() - 1 }
      return calls.add(1, ordering: .relaxed).oldValue == 0 ? .chargeButLoseReply : .charge
    }
    var registry = ProviderRegistry(defaultProvider: "sandbox")
    registry.register(provider)
    let worker = PaymentWorker(
      store: store, limiter: InMemoryRateLimiter(limit: 10_000), providers: registry, retry: Self.retry,
      logger: quietLogger("worker"))
    try await drain(worker, store, workers: 1, limit: .seconds(30))
    let row = try #require(store.all["pay_1"])
    #expect(row.item.status == .succeeded)
    #expect(provider.ledger["pay_1"]?.count == 1)
    #expect(calls.load(ordering: .relaxed) == 1, "one charge; then only the inquiry")
    #expect(row.events == [.accepted, .processing, .retryScheduled, .processing, .succeeded])
  }

  @Test(
    "refused credentials fail no payment and use up no attempt; once accepted, every payment is charged once")
  func refusedCredentials() async throws {
    let store = InMemoryWorkStore()
    store.add((0..<10).map { WorkItem(paymentID: "pay_\($0)", status: .accepted) })
    let refusing = Atomic<Bool>(true)
    let provider = LedgerProvider { _ in refusing.load(ordering: .relaxed) ? .refuseCredentials : .charge }
    var registry = ProviderRegistry(defaultProvider: "sandbox")
    registry.register(provider)
    let health = ProviderHealth()
    let worker = PaymentWorker(
      store: store, limiter: InMemoryRateLimiter(limit: 10_000), providers: registry, retry: Self.retry,
      health: health, logger: quietLogger("worker"))
    // Far more rounds than the 4 attempts of the retry policy.
    for _ in 0..<200 {
      if try await !worker.round() { try await Task.sleep(for: .milliseconds(2)) }
    }
    #expect(provider.calls >= 40, "the provider was tried again and again")
    for row in store.all.values {
      #expect(row.item.status == .retryScheduled || row.item.status == .accepted, "\(row.item.status)")
      #expect(row.item.attempts == 0, "no attempt used up")
    }
    #expect(!health.isHealthy)
    #expect(health.misconfigured == ["sandbox"])
    refusing.store(false, ordering: .relaxed)
    try await drain(worker, store, workers: 2, limit: .seconds(30))
    #expect(store.all.values.allSatisfy { $0.item.status == .succeeded })
    #expect(provider.ledger.values.allSatisfy { $0.count == 1 })
    #expect(provider.ledger.count == 10)
    #expect(health.isHealthy)
  }
}
