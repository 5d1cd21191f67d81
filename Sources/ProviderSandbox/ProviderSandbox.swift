import Foundation
import HTTPTypes
import Hummingbird
public import Logging
import NIOCore
import Synchronization
import TLS

/// `payments provider-sandbox`: an HTTP/JSON stand-in for an external payment provider
/// (docs/design.md §8), Stripe-like, that keeps evidence for tests.
///
/// - `POST /v1/charges` with an `Idempotency-Key` header and `{"amount", "currency", "source",
///   "destination", "description"}`: creates a charge (201), or returns the charge made earlier
///   with the same key (200, `Idempotent-Replayed: true`). A key reused with other parameters
///   is 422; a key whose first request is still being answered is 409.
/// - Non-idempotent mode (``Configuration/nonIdempotent``): a repeated key charges again, as
///   some real providers and internal ledgers do. Tests of "never charged twice" use it: against
///   an idempotent sandbox such an assertion could never fail.
/// - `GET /v1/charges/{id}` and `GET /v1/charges?idempotency_key=K`: a charge, or 404.
/// - `POST /v1/refunds` with an `Idempotency-Key` header and `{"charge", "amount", "currency",
///   "reason"}`: refunds (part of) a charge (201), or returns the refund made earlier with the
///   same key (200, `Idempotent-Replayed: true`); 422 and 409 for a reused or busy key, as for
///   charges. An unknown charge is 404 `charge_not_found`, another currency than the charge's is
///   422 `currency_mismatch`, and a refund that would take the charge's refunded total above its
///   amount is 422 `amount_exceeds_charge`, as a real provider answers. A refusal is kept under
///   its key: a repeated request gets it again.
/// - Non-idempotent mode, for refunds: a repeated key refunds again, and no refunded total is
///   checked against the charge's amount (the sandbox trusts the caller). Tests of "refunded
///   totals never exceed charges" use it: a sandbox that refused the excess refund would hide the
///   platform's mistake, and such a test could never fail.
/// - `GET /v1/refunds/{id}` and `GET /v1/refunds?idempotency_key=K`: a refund, its refusal, or 404.
/// - Its own sliding-window rate limit, one for the whole provider: every charge, refund and
///   lookup (`/v1/charges`, `/v1/refunds` and the hmacpay endpoints) counts; a call beyond the
///   limit gets 429 and counts as a window violation.
/// - Failure injection, for charges and refunds alike: rates of 500 and 503 (nothing charged or
///   refunded), slow responses, responses lost after the charge or refund was made (the reply
///   comes only after the client gave up), 500 or 502 after it was made (a crashed handler, a
///   proxy that lost the upstream), and amounts or source accounts whose charges are always
///   declined (402 with a code and message).
/// - `GET /v1/ledger` (every charge and every refund with its arrival time: ``SandboxLedger``)
///   and `GET /v1/stats` (not rate limited).
public struct ProviderSandbox: Sendable {
  public struct Configuration: Sendable {
    public var host = "127.0.0.1"
    /// Default 8090; 0 picks a free port.
    public var port = 8090
    /// Calls per window the sandbox accepts, provider-wide: charges, refunds and their lookups
    /// together, in both API flavours.
    public var rateLimit = 2
    public var window: Duration = .seconds(1)
    /// Probability that a charge or refund request fails with 500 / 503 before anything is
    /// charged or refunded.
    public var internalErrorRate = 0.0
    public var unavailableRate = 0.0
    /// Probability that a charge or refund is made and then answered with 500 or 502
    /// (alternately), as a provider whose handler fails after the charge or a proxy that loses
    /// the upstream reply does.
    public var errorAfterChargeRate = 0.0
    /// A repeated `Idempotency-Key` charges (or refunds) again instead of replaying the first
    /// charge (the ledger then holds two charges under one key; lookups by key find the first).
    /// Refunds are then also not checked against the charge's amount: the sandbox trusts the
    /// caller, so that an over-refund by the platform shows in the ledger instead of being
    /// refused.
    public var nonIdempotent = false
    /// Probability that a charge or refund is made but the reply is held for
    /// ``lostResponseDelay`` (past any sensible client timeout): the client cannot know the
    /// outcome.
    public var lostResponseRate = 0.0
    public var lostResponseDelay: Duration = .seconds(30)
    /// Probability that a reply (of a charge or refund that is made) is delayed by ``slowDelay``.
    public var slowRate = 0.0
    public var slowDelay: Duration = .seconds(3)
    /// Amounts (minor units) that are always declined.
    public var declinedAmounts: Set<Int64> = [402, 40_402]
    /// Source accounts with this prefix are always declined.
    public var declinedAccountPrefix = "acct_decline"
    /// Seed for the failure injection (reproducible runs). Charges and refunds draw from two
    /// streams of it, so adding refunds to a run does not change what happens to its charges.
    public var seed: UInt64 = 1
    /// The shared secret of the second API flavour, `/hmacpay/v2` (secret).
    public var hmacSecret = "sandbox-hmac-secret"

    public init() {}
  }

  public let configuration: Configuration
  private let logger: Logger
  private let state: SandboxState

  public init(configuration: Configuration, logger: Logger) {
    self.configuration = configuration
    self.logger = logger
    self.state = SandboxState(configuration: configuration)
  }

  /// Serves until the task is cancelled; calls `onListening` with the bound port.
  public func run(onListening: @escaping @Sendable (Int) -> Void = { _ in }) async throws {
    let router = Router()
    let state = self.state
    router.post("/v1/charges") { request, context in
      try await state.charge(request, context: context)
    }
    router.get("/v1/charges/{id}") { request, context in
      try await state.lookup(id: context.parameters.require("id"))
    }
    router.get("/v1/charges") { request, context in
      guard let key = request.uri.queryParameters.get("idempotency_key") else {
        return SandboxState.error(400, "invalid_request", "idempotency_key query parameter is required")
      }
      return try await state.lookup(idempotencyKey: key)
    }
    // The same provider behind a second API shape ("hmacpay"): requests signed with HMAC-SHA256,
    // every answer a 200 whose body carries the result and error code.
    router.post("/hmacpay/v2/payments") { request, context in
      try await state.hmacCharge(request, context: context)
    }
    router.post("/hmacpay/v2/payments/status") { request, context in
      try await state.hmacStatus(request, context: context)
    }
    router.post("/v1/refunds") { request, context in
      try await state.refund(request, context: context)
    }
    router.get("/v1/refunds/{id}") { request, context in
      try await state.lookupRefund(id: context.parameters.require("id"))
    }
    router.get("/v1/refunds") { request, context in
      guard let key = request.uri.queryParameters.get("idempotency_key") else {
        return SandboxState.error(400, "invalid_request", "idempotency_key query parameter is required")
      }
      return try await state.lookupRefund(idempotencyKey: key)
    }
    router.post("/hmacpay/v2/refunds") { request, context in
      try await state.hmacRefund(request, context: context)
    }
    router.post("/hmacpay/v2/refunds/status") { request, context in
      try await state.hmacRefundStatus(request, context: context)
    }
    router.get("/v1/ledger") { _, _ in try SandboxState.json(state.ledger()) }
    router.get("/v1/stats") { _, _ in try SandboxState.json(state.stats()) }
    let app = Application(
      router: router,
      configuration: .init(
        address: .hostname(configuration.host, port: configuration.port), serverName: "provider-sandbox"),
      onServerRunning: { channel in onListening(channel.localAddress?.port ?? 0) },
      logger: logger)
    try await app.runService()
  }
}

/// A charge as the sandbox reports it.
public struct SandboxCharge: Codable, Sendable, Hashable {
  public var id: String
  public var idempotencyKey: String
  public var amount: Int64
  public var currency: String
  public var source: String
  public var destination: String
  public var status: String
  /// When the request arrived, microseconds since 1970.
  public var arrivedAtMicros: Int64

  enum CodingKeys: String, CodingKey {
    case id, amount, currency, source, destination, status
    case idempotencyKey = "idempotency_key"
    case arrivedAtMicros = "arrived_at_us"
  }
}

/// A refund as the sandbox reports it.
public struct SandboxRefund: Codable, Sendable, Hashable {
  public var id: String
  public var idempotencyKey: String
  /// The ID of the refunded charge.
  public var charge: String
  /// The idempotency key of the refunded charge (the payment ID, for the platform's charges).
  public var chargeIdempotencyKey: String
  public var amount: Int64
  public var currency: String
  public var reason: String
  public var status: String
  /// When the request arrived, microseconds since 1970.
  public var arrivedAtMicros: Int64

  enum CodingKeys: String, CodingKey {
    case id, charge, amount, currency, reason, status
    case idempotencyKey = "idempotency_key"
    case chargeIdempotencyKey = "charge_idempotency_key"
    case arrivedAtMicros = "arrived_at_us"
  }
}

/// What `GET /v1/ledger` answers: every charge and every refund made, in arrival order.
public struct SandboxLedger: Codable, Sendable, Hashable {
  public var charges: [SandboxCharge]
  public var refunds: [SandboxRefund]

  public init(charges: [SandboxCharge], refunds: [SandboxRefund]) {
    self.charges = charges
    self.refunds = refunds
  }

  /// Decodes a ledger; one without `refunds` (a sandbox from before refunds) has none.
  public init(from decoder: any Decoder) throws {
    let container = try decoder.container(keyedBy: CodingKeys.self)
    charges = try container.decode([SandboxCharge].self, forKey: .charges)
    refunds = try container.decodeIfPresent([SandboxRefund].self, forKey: .refunds) ?? []
  }

  /// The refunded total of each charge, by charge ID.
  public var refundedByCharge: [String: Int64] {
    refunds.reduce(into: [:]) { $0[$1.charge, default: 0] += $1.amount }
  }
}

/// What `GET /v1/stats` answers.
public struct SandboxStats: Codable, Sendable, Hashable {
  /// Every rate-limited request (charges, refunds and their lookups, in both API flavours),
  /// including refused ones.
  public var calls = 0
  public var charges = 0
  public var declines = 0
  /// Refunds made (each ledger entry; in non-idempotent mode a repeated key counts again).
  public var refunds = 0
  /// Refund requests refused for good (`charge_not_found`, `currency_mismatch`,
  /// `amount_exceeds_charge`); replays of a refusal do not count again.
  public var refusedRefunds = 0
  /// Requests refused with 429: each is a violation of the sliding-window limit.
  public var windowViolations = 0
  /// Charge and refund requests answered with the result of an earlier one with their key.
  public var idempotentReplays = 0
  /// Requests refused with 409 because a request with the same key was still being answered.
  public var conflicts = 0
  /// Charges or refunds made and then answered with 500 or 502.
  public var errorsAfterCharge = 0
  public var injectedFailures = 0
  public var lostResponses = 0
  public var slowResponses = 0
  /// The most served calls seen inside one window (never above the limit).
  public var maximumCallsInWindow = 0

  enum CodingKeys: String, CodingKey {
    case calls, charges, declines, refunds
    case refusedRefunds = "refused_refunds"
    case windowViolations = "window_violations"
    case idempotentReplays = "idempotent_replays"
    case conflicts
    case errorsAfterCharge = "errors_after_charge"
    case injectedFailures = "injected_failures"
    case lostResponses = "lost_responses"
    case slowResponses = "slow_responses"
    case maximumCallsInWindow = "maximum_calls_in_window"
  }
}

struct ChargeRequest: Codable, Equatable {
  var amount: Int64
  var currency: String
  var source: String
  var destination: String
  var description: String?
}

struct RefundRequest: Codable, Equatable {
  var charge: String
  var amount: Int64
  var currency: String
  var reason: String?
}

final class SandboxState: Sendable {
  private struct State {
    var servedCalls: [ContinuousClock.Instant] = []
    var charges: [String: SandboxCharge] = [:]
    var ledger: [SandboxCharge] = []
    /// Idempotency key → the request and its outcome (a charge ID or a decline).
    var keys: [String: (request: ChargeRequest, outcome: Outcome)] = [:]
    /// Keys whose charge request is still being answered (idempotent mode: a second one is 409).
    var inFlight: Set<String> = []
    var refunds: [String: SandboxRefund] = [:]
    var refundLedger: [SandboxRefund] = []
    /// Charge ID → the total refunded so far.
    var refunded: [String: Int64] = [:]
    /// Refund idempotency key → the first request and its outcome.
    var refundKeys: [String: (request: RefundRequest, outcome: RefundOutcome)] = [:]
    /// Refund keys whose request is still being answered.
    var refundsInFlight: Set<String> = []
    var stats = SandboxStats()
    var random: SplitMix64
    /// The failure injection of refunds: a stream of its own, so that refunds do not change
    /// which charges fail.
    var refundRandom: SplitMix64
  }

  enum Outcome {
    case charged(String)
    case declined(code: String, message: String)
  }

  enum RefundOutcome {
    case refunded(String)
    /// Refused for good, with the HTTP status, code and message of the refusal.
    case refused(status: Int, code: String, message: String)
  }

  private let configuration: ProviderSandbox.Configuration
  private let state: Mutex<State>

  init(configuration: ProviderSandbox.Configuration) {
    self.configuration = configuration
    self.state = Mutex(
      State(
        random: SplitMix64(seed: configuration.seed),
        refundRandom: SplitMix64(seed: configuration.seed ^ 0x5245_4655_4E44_5321)))
  }

  /// Counts a call against the sliding window; `false` when it exceeds the limit.
  private func admit() -> Bool {
    let now = ContinuousClock.now
    return state.withLock { state in
      state.stats.calls += 1
      state.servedCalls.removeAll { now - $0 >= configuration.window }
      guard state.servedCalls.count < configuration.rateLimit else {
        state.stats.windowViolations += 1
        return false
      }
      state.servedCalls.append(now)
      state.stats.maximumCallsInWindow = max(state.stats.maximumCallsInWindow, state.servedCalls.count)
      return true
    }
  }

  func charge(_ request: Request, context: BasicRequestContext) async throws -> Response {
    let arrived = Date()
    guard admit() else { return rateLimited() }
    guard let key = request.headers[HTTPField.Name("Idempotency-Key")!], !key.isEmpty else {
      return Self.error(400, "invalid_request", "the Idempotency-Key header is required")
    }
    let body: ChargeRequest
    do {
      body = try await request.decode(as: ChargeRequest.self, context: context)
    } catch {
      return Self.error(400, "invalid_request", "the body must be {amount, currency, source, destination}")
    }
    guard body.amount > 0, body.currency.count == 3, !body.source.isEmpty, !body.destination.isEmpty else {
      return Self.error(
        400, "invalid_request", "amount must be positive; currency, source and destination are required")
    }
    switch decide(key: key, body: body, arrived: arrived) {
    case .inProgress:
      return Self.error(
        409, "idempotency_key_in_use", "a request with Idempotency-Key \(key) is still being processed")
    case .replay(let earlier, let outcome):
      guard earlier == body else {
        return Self.error(
          422, "idempotency_key_reused", "Idempotency-Key \(key) was used with other parameters")
      }
      switch outcome {
      case .charged(let id):
        var response = try Self.json(state.withLock { $0.charges[id]! })
        response.headers[HTTPField.Name("Idempotent-Replayed")!] = "true"
        return response
      case .declined(let code, let message):
        return Self.error(402, code, message)
      }
    case .fail(let status):
      return Self.error(
        status, status == 500 ? "internal_error" : "unavailable", "injected failure; nothing was charged")
    case .decline(let code, let message):
      return Self.error(402, code, message)
    case .charged(let charge, let reply):
      defer { finished(key) }
      if let status = try await deliver(reply) {
        return Self.error(status, "internal_error", "the charge was made, but its reply was lost")
      }
      return try Self.json(charge, status: 201)
    }
  }

  /// How the reply to a charge (or refund) that was made goes out.
  enum Reply: Equatable {
    case normal
    case slow
    /// Held past any client timeout.
    case lost
    /// An error status (500 or 502) although the charge (or refund) was made.
    case error(Int)
  }

  enum Decision {
    /// Idempotent mode: a request with this key is still being answered.
    case inProgress
    case replay(ChargeRequest, Outcome)
    case fail(Int)
    case decline(String, String)
    /// Charged; the caller answers as `reply` says and then calls ``finished(_:)``.
    case charged(SandboxCharge, reply: Reply)
  }

  /// The reply to the charge request with `key` went out.
  func finished(_ key: String) {
    state.withLock { _ = $0.inFlight.remove(key) }
  }

  /// The provider's decision on a charge request (and its bookkeeping), shared by both API
  /// flavours.
  func decide(key: String, body: ChargeRequest, arrived: Date) -> Decision {
    state.withLock { state -> Decision in
      if !configuration.nonIdempotent {
        if state.inFlight.contains(key) {
          state.stats.conflicts += 1
          return .inProgress
        }
        if let earlier = state.keys[key] {
          state.stats.idempotentReplays += 1
          return .replay(earlier.request, earlier.outcome)
        }
      }
      if let status = injectedFailure(Self.draw(&state.random), &state.stats) { return .fail(status) }
      if configuration.declinedAmounts.contains(body.amount)
        || body.source.hasPrefix(configuration.declinedAccountPrefix)
      {
        state.stats.declines += 1
        let outcome = Outcome.declined(code: "card_declined", message: "the payer's bank declined the charge")
        state.keys[key] = (body, outcome)
        return .decline("card_declined", "the payer's bank declined the charge")
      }
      let charge = SandboxCharge(
        id: "ch_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased(),
        idempotencyKey: key,
        amount: body.amount, currency: body.currency, source: body.source, destination: body.destination,
        status: "succeeded", arrivedAtMicros: Int64((arrived.timeIntervalSince1970 * 1_000_000).rounded()))
      state.charges[charge.id] = charge
      state.ledger.append(charge)
      if state.keys[key] == nil { state.keys[key] = (body, .charged(charge.id)) }
      state.stats.charges += 1
      state.inFlight.insert(key)
      return .charged(charge, reply: reply(Self.draw(&state.random), &state.stats))
    }
  }

  /// A uniform draw in [0, 1) from `random`.
  private static func draw(_ random: inout SplitMix64) -> Double {
    Double(random.next() >> 11) / Double(1 << 53)
  }

  /// The injected failure (500 or 503, before anything is done) of a request that drew `roll`,
  /// if any.
  private func injectedFailure(_ roll: Double, _ stats: inout SandboxStats) -> Int? {
    if roll < configuration.internalErrorRate {
      stats.injectedFailures += 1
      return 500
    }
    if roll < configuration.internalErrorRate + configuration.unavailableRate {
      stats.injectedFailures += 1
      return 503
    }
    return nil
  }

  /// How the reply to a charge or refund that was made goes out, for a request that drew `roll`.
  private func reply(_ roll: Double, _ stats: inout SandboxStats) -> Reply {
    if roll < configuration.lostResponseRate {
      stats.lostResponses += 1
      return .lost
    }
    if roll < configuration.lostResponseRate + configuration.slowRate {
      stats.slowResponses += 1
      return .slow
    }
    if roll < configuration.lostResponseRate + configuration.slowRate + configuration.errorAfterChargeRate {
      defer { stats.errorsAfterCharge += 1 }
      return .error(stats.errorsAfterCharge % 2 == 0 ? 500 : 502)
    }
    return .normal
  }

  /// Holds the reply to a charge or refund that was made as `reply` says; the error status to
  /// answer with instead of the result, if any.
  private func deliver(_ reply: Reply) async throws -> Int? {
    switch reply {
    case .lost: try await Task.sleep(for: configuration.lostResponseDelay)
    case .slow: try await Task.sleep(for: configuration.slowDelay)
    case .error(let status): return status
    case .normal: break
    }
    return nil
  }

  private func rateLimited() -> Response {
    Self.error(429, "rate_limited", "more than \(configuration.rateLimit) calls per \(configuration.window)")
  }

  // MARK: - Refunds

  enum RefundDecision {
    /// Idempotent mode: a request with this key is still being answered.
    case inProgress
    case replay(RefundRequest, RefundOutcome)
    case fail(Int)
    /// Refused for good (recorded under the key).
    case refuse(status: Int, code: String, message: String)
    /// Refunded; the caller answers as `reply` says and then calls ``finishedRefund(_:)``.
    case refunded(SandboxRefund, reply: Reply)
  }

  func refund(_ request: Request, context: BasicRequestContext) async throws -> Response {
    let arrived = Date()
    guard admit() else { return rateLimited() }
    guard let key = request.headers[HTTPField.Name("Idempotency-Key")!], !key.isEmpty else {
      return Self.error(400, "invalid_request", "the Idempotency-Key header is required")
    }
    let body: RefundRequest
    do {
      body = try await request.decode(as: RefundRequest.self, context: context)
    } catch {
      return Self.error(400, "invalid_request", "the body must be {charge, amount, currency, reason}")
    }
    guard body.amount > 0, body.currency.count == 3, !body.charge.isEmpty else {
      return Self.error(400, "invalid_request", "amount must be positive; charge and currency are required")
    }
    switch decideRefund(key: key, body: body, arrived: arrived) {
    case .inProgress:
      return Self.error(
        409, "idempotency_key_in_use", "a request with Idempotency-Key \(key) is still being processed")
    case .replay(let earlier, let outcome):
      guard earlier == body else {
        return Self.error(
          422, "idempotency_key_reused", "Idempotency-Key \(key) was used with other parameters")
      }
      switch outcome {
      case .refunded(let id):
        var response = try Self.json(state.withLock { $0.refunds[id]! })
        response.headers[HTTPField.Name("Idempotent-Replayed")!] = "true"
        return response
      case .refused(let status, let code, let message):
        return Self.error(status, code, message)
      }
    case .fail(let status):
      return Self.error(
        status, status == 500 ? "internal_error" : "unavailable", "injected failure; nothing was refunded")
    case .refuse(let status, let code, let message):
      return Self.error(status, code, message)
    case .refunded(let refund, let reply):
      defer { finishedRefund(key) }
      if let status = try await deliver(reply) {
        return Self.error(status, "internal_error", "the refund was made, but its reply was lost")
      }
      return try Self.json(refund, status: 201)
    }
  }

  /// The reply to the refund request with `key` went out.
  func finishedRefund(_ key: String) {
    state.withLock { _ = $0.refundsInFlight.remove(key) }
  }

  /// The provider's decision on a refund request (and its bookkeeping), shared by both API
  /// flavours. In idempotent mode a refund beyond the charge's amount is refused; in
  /// non-idempotent mode it is made (the sandbox trusts the caller, so that a test can see an
  /// over-refund).
  func decideRefund(key: String, body: RefundRequest, arrived: Date) -> RefundDecision {
    state.withLock { state -> RefundDecision in
      if !configuration.nonIdempotent {
        if state.refundsInFlight.contains(key) {
          state.stats.conflicts += 1
          return .inProgress
        }
        if let earlier = state.refundKeys[key] {
          state.stats.idempotentReplays += 1
          return .replay(earlier.request, earlier.outcome)
        }
      }
      if let status = injectedFailure(Self.draw(&state.refundRandom), &state.stats) { return .fail(status) }
      guard let charge = state.charges[body.charge] else {
        return Self.refuse(&state, key, body, 404, "charge_not_found", "no charge \(body.charge)")
      }
      guard charge.currency == body.currency else {
        return Self.refuse(
          &state, key, body, 422, "currency_mismatch",
          "the charge is in \(charge.currency), the refund in \(body.currency)")
      }
      let refunded = state.refunded[charge.id, default: 0]
      if !configuration.nonIdempotent, refunded + body.amount > charge.amount {
        return Self.refuse(
          &state, key, body, 422, "amount_exceeds_charge",
          "refunding \(body.amount) would take the refunded total of \(charge.id) to "
            + "\(refunded + body.amount), above its amount \(charge.amount)")
      }
      let refund = SandboxRefund(
        id: "re_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased(),
        idempotencyKey: key, charge: charge.id, chargeIdempotencyKey: charge.idempotencyKey,
        amount: body.amount, currency: body.currency, reason: body.reason ?? "", status: "succeeded",
        arrivedAtMicros: Int64((arrived.timeIntervalSince1970 * 1_000_000).rounded()))
      state.refunds[refund.id] = refund
      state.refundLedger.append(refund)
      state.refunded[charge.id] = refunded + body.amount
      if state.refundKeys[key] == nil { state.refundKeys[key] = (body, .refunded(refund.id)) }
      state.stats.refunds += 1
      state.refundsInFlight.insert(key)
      return .refunded(refund, reply: reply(Self.draw(&state.refundRandom), &state.stats))
    }
  }

  /// Records the refusal of the refund request with `key` (the first outcome of a key is kept).
  private static func refuse(
    _ state: inout State, _ key: String, _ body: RefundRequest, _ status: Int, _ code: String,
    _ message: String
  ) -> RefundDecision {
    state.stats.refusedRefunds += 1
    if state.refundKeys[key] == nil {
      state.refundKeys[key] = (body, .refused(status: status, code: code, message: message))
    }
    return .refuse(status: status, code: code, message: message)
  }

  func lookupRefund(id: String) async throws -> Response {
    guard admit() else { return rateLimited() }
    guard let refund = state.withLock({ $0.refunds[id] }) else {
      return Self.error(404, "not_found", "no refund \(id)")
    }
    return try Self.json(refund)
  }

  /// The first refund with `key`, its refusal (with the refusal's status and code), or 404
  /// `not_found`.
  func lookupRefund(idempotencyKey key: String) async throws -> Response {
    guard admit() else { return rateLimited() }
    enum Found {
      case refund(SandboxRefund)
      case refused(Int, String, String)
      case none
    }
    let found = state.withLock { state -> Found in
      switch state.refundKeys[key]?.outcome {
      case .refunded(let id)?: .refund(state.refunds[id]!)
      case .refused(let status, let code, let message)?: .refused(status, code, message)
      case nil: .none
      }
    }
    switch found {
    case .refund(let refund): return try Self.json(refund)
    case .refused(let status, let code, let message): return Self.error(status, code, message)
    case .none: return Self.error(404, "not_found", "no refund with idempotency key \(key)")
    }
  }

  // MARK: - The "hmacpay" API flavour

  struct HMACPaymentRequest: Codable {
    var requestID: String
    var amountMinor: Int64
    var currency: String
    var payer: String
    var payee: String
    enum CodingKeys: String, CodingKey {
      case requestID = "request_id"
      case amountMinor = "amount_minor"
      case currency, payer, payee
    }
  }

  struct HMACRefundRequest: Codable {
    var requestID: String
    /// The reference of the payment (charge) to refund.
    var paymentReference: String
    var amountMinor: Int64
    var currency: String
    var reason: String?
    enum CodingKeys: String, CodingKey {
      case requestID = "request_id"
      case paymentReference = "payment_reference"
      case amountMinor = "amount_minor"
      case currency, reason
    }
  }

  struct HMACStatusRequest: Codable {
    var requestID: String
    enum CodingKeys: String, CodingKey { case requestID = "request_id" }
  }

  struct HMACResult: Codable {
    /// `approved`, `declined` or `error`.
    var result: String
    var code: String
    var reference: String
  }

  /// The verified body of a signed request, or `nil` when the signature is wrong.
  private func verifiedBody(_ request: Request) async throws -> [UInt8]? {
    let buffer = try await request.body.collect(upTo: 1 << 20)
    let bytes = Array(buffer.readableBytesView)
    let expected = hexString(hmacSHA256(key: Array(configuration.hmacSecret.utf8), message: bytes))
    guard let signature = request.headers[HTTPField.Name("X-Signature")!],
      constantTimeEquals(Array(signature.utf8), Array(expected.utf8))
    else { return nil }
    return bytes
  }

  func hmacCharge(_ request: Request, context: BasicRequestContext) async throws -> Response {
    let arrived = Date()
    guard admit() else {
      return try Self.json(HMACResult(result: "error", code: "rate_limited", reference: ""))
    }
    guard let bytes = try await verifiedBody(request) else {
      return try Self.json(HMACResult(result: "error", code: "bad_signature", reference: ""))
    }
    guard let body = try? JSONDecoder().decode(HMACPaymentRequest.self, from: Data(bytes)),
      body.amountMinor > 0
    else {
      return try Self.json(HMACResult(result: "error", code: "invalid_request", reference: ""))
    }
    let charge = ChargeRequest(
      amount: body.amountMinor, currency: body.currency, source: body.payer, destination: body.payee,
      description: nil)
    switch decide(key: body.requestID, body: charge, arrived: arrived) {
    case .inProgress:
      return try Self.json(HMACResult(result: "error", code: "request_in_progress", reference: ""))
    case .replay(_, .charged(let id)):
      return try Self.json(HMACResult(result: "approved", code: "", reference: id))
    case .replay(_, .declined(let code, _)), .decline(let code, _):
      return try Self.json(HMACResult(result: "declined", code: code, reference: ""))
    case .fail:
      return try Self.json(HMACResult(result: "error", code: "temporarily_unavailable", reference: ""))
    case .charged(let charge, let reply):
      defer { finished(body.requestID) }
      if let status = try await deliver(reply) { return Response(status: .init(code: status)) }
      return try Self.json(HMACResult(result: "approved", code: "", reference: charge.id))
    }
  }

  func hmacStatus(_ request: Request, context: BasicRequestContext) async throws -> Response {
    guard admit() else {
      return try Self.json(HMACResult(result: "error", code: "rate_limited", reference: ""))
    }
    guard let bytes = try await verifiedBody(request),
      let body = try? JSONDecoder().decode(HMACStatusRequest.self, from: Data(bytes))
    else { return try Self.json(HMACResult(result: "error", code: "bad_signature", reference: "")) }
    let outcome = state.withLock { $0.keys[body.requestID]?.outcome }
    switch outcome {
    case .charged(let id)?: return try Self.json(HMACResult(result: "approved", code: "", reference: id))
    case .declined(let code, _)?:
      return try Self.json(HMACResult(result: "declined", code: code, reference: ""))
    case nil: return try Self.json(HMACResult(result: "unknown_request", code: "", reference: ""))
    }
  }

  func hmacRefund(_ request: Request, context: BasicRequestContext) async throws -> Response {
    let arrived = Date()
    guard admit() else {
      return try Self.json(HMACResult(result: "error", code: "rate_limited", reference: ""))
    }
    guard let bytes = try await verifiedBody(request) else {
      return try Self.json(HMACResult(result: "error", code: "bad_signature", reference: ""))
    }
    guard let body = try? JSONDecoder().decode(HMACRefundRequest.self, from: Data(bytes)),
      body.amountMinor > 0, !body.paymentReference.isEmpty
    else {
      return try Self.json(HMACResult(result: "error", code: "invalid_request", reference: ""))
    }
    let refundRequest = RefundRequest(
      charge: body.paymentReference, amount: body.amountMinor, currency: body.currency, reason: body.reason)
    switch decideRefund(key: body.requestID, body: refundRequest, arrived: arrived) {
    case .inProgress:
      return try Self.json(HMACResult(result: "error", code: "request_in_progress", reference: ""))
    case .replay(_, .refunded(let id)):
      return try Self.json(HMACResult(result: "approved", code: "", reference: id))
    case .replay(_, .refused(_, let code, _)), .refuse(_, let code, _):
      return try Self.json(HMACResult(result: "declined", code: code, reference: ""))
    case .fail:
      return try Self.json(HMACResult(result: "error", code: "temporarily_unavailable", reference: ""))
    case .refunded(let refund, let reply):
      defer { finishedRefund(body.requestID) }
      if let status = try await deliver(reply) { return Response(status: .init(code: status)) }
      return try Self.json(HMACResult(result: "approved", code: "", reference: refund.id))
    }
  }

  func hmacRefundStatus(_ request: Request, context: BasicRequestContext) async throws -> Response {
    guard admit() else {
      return try Self.json(HMACResult(result: "error", code: "rate_limited", reference: ""))
    }
    guard let bytes = try await verifiedBody(request),
      let body = try? JSONDecoder().decode(HMACStatusRequest.self, from: Data(bytes))
    else { return try Self.json(HMACResult(result: "error", code: "bad_signature", reference: "")) }
    let outcome = state.withLock { $0.refundKeys[body.requestID]?.outcome }
    switch outcome {
    case .refunded(let id)?: return try Self.json(HMACResult(result: "approved", code: "", reference: id))
    case .refused(_, let code, _)?:
      return try Self.json(HMACResult(result: "declined", code: code, reference: ""))
    case nil: return try Self.json(HMACResult(result: "unknown_request", code: "", reference: ""))
    }
  }

  func lookup(id: String) async throws -> Response {
    guard admit() else { return rateLimited() }
    guard let charge = state.withLock({ $0.charges[id] }) else {
      return Self.error(404, "not_found", "no charge \(id)")
    }
    return try Self.json(charge)
  }

  func lookup(idempotencyKey key: String) async throws -> Response {
    guard admit() else { return rateLimited() }
    enum Found {
      case charge(SandboxCharge)
      case declined(String, String)
      case none
    }
    let found = state.withLock { state -> Found in
      switch state.keys[key]?.outcome {
      case .charged(let id)?: .charge(state.charges[id]!)
      case .declined(let code, let message)?: .declined(code, message)
      case nil: .none
      }
    }
    switch found {
    case .charge(let charge): return try Self.json(charge)
    case .declined(let code, let message): return Self.error(402, code, message)
    case .none: return Self.error(404, "not_found", "no charge with idempotency key \(key)")
    }
  }

  func ledger() -> SandboxLedger {
    state.withLock { SandboxLedger(charges: $0.ledger, refunds: $0.refundLedger) }
  }
  func stats() -> SandboxStats { state.withLock { $0.stats } }

  static func json(_ value: some Encodable, status: Int = 200) throws -> Response {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    let data = try encoder.encode(value)
    return Response(
      status: .init(code: status), headers: [.contentType: "application/json"],
      body: .init(byteBuffer: ByteBuffer(bytes: data)))
  }

  static func error(_ status: Int, _ code: String, _ message: String) -> Response {
    struct Body: Encodable {
      struct Detail: Encodable {
        var code: String
        var message: String
      }
      var error: Detail
    }
    return (try? json(Body(error: .init(code: code, message: message)), status: status))
      ?? Response(status: .internalServerError)
  }
}

/// A small seeded generator, so failure injection is reproducible.
struct SplitMix64: RandomNumberGenerator {
  var state: UInt64
  init(seed: UInt64) { state = seed }
  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}
