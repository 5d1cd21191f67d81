public import DispatcherService
public import Foundation
import PaymentsCore
public import PaymentsProto
import Synchronization

/// The dispatcher's work table in memory, with the same fencing contract as `WorkStore`: every
/// claim draws a fresh token and a lease of ``lease``; `begin` and `apply` act only while the
/// payment still carries the token (the lease may have run out as long as nobody claimed the
/// payment since). For fast tests of `PaymentWorker` without PostgreSQL.
public final class InMemoryWorkStore: PaymentWorkStore {
  public struct Row: Sendable {
    public var item: WorkItem
    public var nextAttemptAt: Date
    public var leaseToken: Int64?
    public var leaseExpiresAt: Date?
    /// The events written, in order (status after each change).
    public var events: [Payments_V1_PaymentStatus] = []
  }

  public let lease: Duration
  private let rows = Mutex<[String: Row]>([:])
  /// Writes refused because the token was replaced (a fenced-off worker).
  private let fencedWrites = Atomic<Int>(0)

  public init(lease: Duration = .seconds(60)) { self.lease = lease }

  /// Adds payments as `ACCEPTED`, due now.
  public func add(_ items: [WorkItem]) {
    rows.withLock { rows in
      for item in items {
        rows[item.paymentID] = Row(item: item, nextAttemptAt: Date(), events: [item.status])
      }
    }
  }

  /// Every row, by payment ID.
  public var all: [String: Row] { rows.withLock { $0 } }

  /// Changes a stored row behind the workers' backs (as another process or time would).
  public func update(_ paymentID: String, _ change: (inout Row) -> Void) {
    rows.withLock { rows in
      if var row = rows[paymentID] {
        change(&row)
        rows[paymentID] = row
      }
    }
  }

  /// How many `begin`/`apply` calls the fence refused.
  public var refusedWrites: Int { fencedWrites.load(ordering: .relaxed) }

  private static let open: Set<Payments_V1_PaymentStatus> = [.accepted, .processing, .retryScheduled]

  private func due(_ row: Row, _ now: Date) -> Bool {
    Self.open.contains(row.item.status) && row.nextAttemptAt <= now
      && (row.leaseExpiresAt.map { $0 < now } ?? true)
  }

  private func claim(where matches: (Row) -> Bool) -> WorkItem? {
    let now = Date()
    return rows.withLock { rows in
      guard
        let id = rows.values.filter({ due($0, now) && matches($0) }).min(by: {
          $0.nextAttemptAt < $1.nextAttemptAt
        })?
        .item.paymentID
      else { return nil }
      let token = Int64.random(in: 1...Int64.max)
      rows[id]!.leaseToken = token
      rows[id]!.leaseExpiresAt = now + lease.timeInterval
      rows[id]!.item.leaseToken = token
      return rows[id]!.item
    }
  }

  public func claimSettleable(providers: [String]) async throws -> WorkItem? {
    let now = Date()
    return claim { row in
      providers.contains(row.item.provider) && row.item.status != .processing && !row.item.outcomeUnknown
        && (row.item.isExpired(at: now) || row.item.cancelRequested)
    }
  }

  public func dueProvider(among providers: [String]) async throws -> String? {
    let now = Date()
    return rows.withLock { rows in
      rows.values.filter { due($0, now) && providers.contains($0.item.provider) }
        .min { $0.nextAttemptAt < $1.nextAttemptAt }?.item.provider
    }
  }

  public func claim(provider: String) async throws -> WorkItem? {
    claim { $0.item.provider == provider }
  }

  public func begin(_ item: WorkItem, _ kind: CallKind) async throws -> (WorkItem, now: Int64)? {
    let transition = WorkDecision.begin(item, kind)
    let now = Date()
    return rows.withLock { rows -> (WorkItem, now: Int64)? in
      guard var row = rows[item.paymentID], row.leaseToken == item.leaseToken else {
        fencedWrites.add(1, ordering: .relaxed)
        return nil
      }
      let changed = row.item.status != transition.status
      row.item.status = transition.status
      row.item.attempts = transition.attempts
      row.item.outcomeUnknown = transition.outcomeUnknown
      if changed {
        row.item.version += 1
        row.events.append(transition.status)
      }
      row.leaseExpiresAt = now + lease.timeInterval
      rows[item.paymentID] = row
      return (row.item, Int64(now.timeIntervalSince1970 * 1_000_000))
    }
  }

  public func apply(_ transition: Transition, to item: WorkItem, callOutcome: CallRecord?) async throws
    -> WorkItem?
  {
    try PaymentLifecycle.check(item.status, transition.status)
    return rows.withLock { rows -> WorkItem? in
      guard var row = rows[item.paymentID], row.leaseToken == item.leaseToken else {
        fencedWrites.add(1, ordering: .relaxed)
        return nil
      }
      let transition = WorkDecision.honoring(cancelRequested: row.item.cancelRequested, transition, of: item)
      row.item.status = transition.status
      row.item.attempts = transition.attempts
      row.item.outcomeUnknown = transition.outcomeUnknown
      row.item.version += 1
      row.events.append(transition.status)
      row.nextAttemptAt =
        row.item.cancelRequested && !transition.outcomeUnknown ? Date() : transition.nextAttemptAt ?? Date()
      if transition.keepLease {
        row.leaseExpiresAt = Date() + lease.timeInterval
      } else {
        row.leaseToken = nil
        row.leaseExpiresAt = nil
        row.item.leaseToken = 0
      }
      rows[item.paymentID] = row
      return row.item
    }
  }

  /// A client's cancellation, decided as `WorkStore.cancel` decides it (the same
  /// ``WorkDecision/cancel(status:outcomeUnknown:)`` on the locked row): cancelled now (the claim
  /// token removed, so a worker that claimed it cannot begin its call), or marked for an inquiry.
  /// `nil` for an unknown payment.
  public func cancel(_ paymentID: String) -> CancelDecision? {
    rows.withLock { rows -> CancelDecision? in
      guard var row = rows[paymentID] else { return nil }
      let decision = WorkDecision.cancel(status: row.item.status, outcomeUnknown: row.item.outcomeUnknown)
      switch decision {
      case .cancelNow:
        row.item.status = .canceled
        row.item.version += 1
        row.item.cancelRequested = true
        row.events.append(.canceled)
        row.leaseToken = nil
        row.leaseExpiresAt = nil
      case .awaitInquiry:
        row.item.cancelRequested = true
      case .alreadyCanceled, .refuse:
        break
      }
      rows[paymentID] = row
      return decision
    }
  }

  public func untilNextDue(providers: [String]) async throws -> Duration? {
    let now = Date()
    return rows.withLock { rows in
      rows.values.filter { Self.open.contains($0.item.status) && providers.contains($0.item.provider) }
        .map { max($0.nextAttemptAt, $0.leaseExpiresAt ?? $0.nextAttemptAt) }.min()
        .map { .milliseconds(Int64(max(0, $0.timeIntervalSince(now)) * 1000)) }
    }
  }
}

/// The global rate limiter in memory: ``RateLimitWindow``'s rule on this process's clock, with a
/// record of every grant and whether it was finished or cancelled.
public final class InMemoryRateLimiter: ProviderRateLimiter {
  public let callSlack: Duration
  private let rule: RateLimitWindow
  private let maximumCallDuration: Duration
  private struct State {
    var calls: [RateLimitWindow.Call] = []
    var granted = 0
    var finished = 0
    var cancelled = 0
  }
  private let state = Mutex(State())
  private let start = ContinuousClock.now

  public init(
    limit: Int, window: Duration = .seconds(1), callTimeout: Duration = .seconds(1),
    callSlack: Duration = .seconds(1)
  ) {
    self.rule = RateLimitWindow(limit: limit, window: window)
    self.callSlack = callSlack
    self.maximumCallDuration = callTimeout + callSlack
  }

  /// Grants made, finished and cancelled so far.
  public var counts: (granted: Int, finished: Int, cancelled: Int) {
    state.withLock { ($0.granted, $0.finished, $0.cancelled) }
  }

  private var now: Int64 { (ContinuousClock.now - start).microsecondsValue }

  public func acquire(_ provider: String, unless stop: @Sendable () -> Bool) async throws -> RateLimitGrant? {
    let id = Int64.random(in: 1...Int64.max)
    while !stop() {
      let now = self.now
      let decision = state.withLock { state -> RateLimitWindow.Decision in
        let (decision, kept) = rule.reserve(
          calls: state.calls, now: now, id: id, maximumCallDuration: maximumCallDuration)
        state.calls = kept
        if decision == .granted { state.granted += 1 }
        return decision
      }
      switch decision {
      case .granted:
        return RateLimitGrant(
          provider: provider, group: provider, id: id,
          grantedAt: Int64(Date().timeIntervalSince1970 * 1_000_000), waited: .zero)
      case .wait(let until):
        try await Task.sleep(for: .microseconds(min(until - now, 100_000)))
      }
    }
    return nil
  }

  public func finish(_ grant: RateLimitGrant) async {
    let now = self.now
    state.withLock { state in
      state.calls = rule.finish(calls: state.calls, id: grant.id, now: now)
      state.finished += 1
    }
  }

  public func cancel(_ grant: RateLimitGrant) async {
    state.withLock { state in
      state.calls = rule.cancel(calls: state.calls, id: grant.id)
      state.cancelled += 1
    }
  }
}

/// A provider in memory that, like some real ones, charges every charge request it receives —
/// a repeated key charges again — and answers inquiries by key truthfully. `script` decides, per
/// charge request, whether it arrives at all and what the caller hears; the ledger records
/// every charge, so a test can see a double charge or a charged payment that failed.
///
/// Refunds work the same way: every refund request that arrives refunds (a repeated key refunds
/// again, and nothing is checked against the charge), ``refunds`` records each one, `refundScript`
/// decides their fates, and ``inquireRefund(idempotencyKey:)`` answers from the refunds ledger.
public final class LedgerProvider: PaymentProvider {
  /// What happens to one charge (or refund) request.
  public enum Fate: Sendable {
    /// Charged (refunded), and the caller hears it.
    case charge
    /// Charged (refunded), but the caller hears "unknown" (a 502 after the charge, a lost reply).
    case chargeButLoseReply
    /// Never arrives (a timeout before it reached the provider): the caller hears "unknown".
    case neverArrives
    /// Refused before processing: 503.
    case notProcessed
    /// Declined for good.
    case decline
    /// The platform's credentials are refused (401).
    case refuseCredentials
  }

  public let name: String
  private let script: @Sendable (String) -> Fate
  private let refundScript: @Sendable (String) -> Fate
  private let delay: @Sendable () -> Duration
  private struct State {
    /// Charge references by idempotency key.
    var ledger: [String: [String]] = [:]
    var declined: Set<String> = []
    /// Refunds (reference and amount) by refund idempotency key.
    var refunds: [String: [(reference: String, amount: Int64)]] = [:]
    var declinedRefunds: Set<String> = []
    var calls = 0
  }
  private let state = Mutex(State())

  /// - Parameters:
  ///   - script: the fate of each charge request, by idempotency key.
  ///   - refundScript: the fate of each refund request, by its idempotency key (``Fate/charge``
  ///     means refunded); by default every refund is made and heard.
  ///   - delay: how long each call takes.
  public init(
    name: String = "sandbox", delay: @escaping @Sendable () -> Duration = { .zero },
    script: @escaping @Sendable (String) -> Fate,
    refundScript: @escaping @Sendable (String) -> Fate = { _ in .charge }
  ) {
    self.name = name
    self.script = script
    self.refundScript = refundScript
    self.delay = delay
  }

  /// Charges by idempotency key (more than one: charged twice).
  public var ledger: [String: [String]] { state.withLock { $0.ledger } }
  /// Refunded amounts by refund idempotency key (more than one: refunded twice).
  public var refunds: [String: [Int64]] { state.withLock { $0.refunds.mapValues { $0.map(\.amount) } } }
  /// Every charge, refund and inquiry call.
  public var calls: Int { state.withLock { $0.calls } }

  public func charge(_ request: ProviderChargeRequest) async -> ProviderOutcome {
    let fate = script(request.idempotencyKey)
    let reference = "ch_\(UUID().uuidString.prefix(8))"
    state.withLock { state in
      state.calls += 1
      switch fate {
      case .charge, .chargeButLoseReply: state.ledger[request.idempotencyKey, default: []].append(reference)
      case .decline: state.declined.insert(request.idempotencyKey)
      case .neverArrives, .notProcessed, .refuseCredentials: break
      }
    }
    try? await Task.sleep(for: delay())
    switch fate {
    case .charge: return .succeeded(reference: reference)
    case .chargeButLoseReply, .neverArrives: return .unknown(reason: "no answer")
    case .notProcessed: return .transientFailure(reason: "503")
    case .decline: return .permanentFailure(code: "card_declined", message: "declined")
    case .refuseCredentials: return .configurationError(reason: "401")
    }
  }

  public func inquire(idempotencyKey: String) async -> ProviderInquiry {
    try? await Task.sleep(for: delay())
    return state.withLock { state in
      state.calls += 1
      if let first = state.ledger[idempotencyKey]?.first { return .charged(reference: first) }
      if state.declined.contains(idempotencyKey) {
        return .declined(code: "card_declined", message: "declined")
      }
      return .notCharged
    }
  }

  public func refund(_ request: ProviderRefundRequest) async -> ProviderOutcome {
    let fate = refundScript(request.idempotencyKey)
    let reference = "re_\(UUID().uuidString.prefix(8))"
    state.withLock { state in
      state.calls += 1
      switch fate {
      case .charge, .chargeButLoseReply:
        state.refunds[request.idempotencyKey, default: []].append((reference, request.amountMinor))
      case .decline: state.declinedRefunds.insert(request.idempotencyKey)
      case .neverArrives, .notProcessed, .refuseCredentials: break
      }
    }
    try? await Task.sleep(for: delay())
    switch fate {
    case .charge: return .succeeded(reference: reference)
    case .chargeButLoseReply, .neverArrives: return .unknown(reason: "no answer")
    case .notProcessed: return .transientFailure(reason: "503")
    case .decline: return .permanentFailure(code: "refund_declined", message: "declined")
    case .refuseCredentials: return .configurationError(reason: "401")
    }
  }

  public func inquireRefund(idempotencyKey: String) async -> ProviderInquiry {
    try? await Task.sleep(for: delay())
    return state.withLock { state in
      state.calls += 1
      if let first = state.refunds[idempotencyKey]?.first { return .charged(reference: first.reference) }
      if state.declinedRefunds.contains(idempotencyKey) {
        return .declined(code: "refund_declined", message: "declined")
      }
      return .notCharged
    }
  }
}

extension Duration {
  fileprivate var timeInterval: TimeInterval {
    Double(components.seconds) + Double(components.attoseconds) / 1e18
  }

  fileprivate var microsecondsValue: Int64 {
    components.seconds * 1_000_000 + components.attoseconds / 1_000_000_000_000
  }
}
