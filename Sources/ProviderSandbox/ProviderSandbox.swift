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
/// - Its own sliding-window rate limit on all `/v1/charges` calls: a call beyond the limit gets
///   429 and counts as a window violation.
/// - Failure injection: rates of 500 and 503 (nothing charged), slow responses, responses lost
///   after the charge was made (the reply comes only after the client gave up), 500 or 502 after
///   the charge was made (a crashed handler, a proxy that lost the upstream), and amounts or
///   source accounts that are always declined (402 with a code and message).
/// - `GET /v1/ledger` (every charge with its arrival time) and `GET /v1/stats` (not rate limited).
public struct ProviderSandbox: Sendable {
  public struct Configuration: Sendable {
    public var host = "127.0.0.1"
    /// Default 8090; 0 picks a free port.
    public var port = 8090
    /// Calls per window the sandbox accepts on `/v1/charges` (charges and lookups together).
    public var rateLimit = 2
    public var window: Duration = .seconds(1)
    /// Probability that a charge request fails with 500 / 503 before anything is charged.
    public var internalErrorRate = 0.0
    public var unavailableRate = 0.0
    /// Probability that a charge is made and then answered with 500 or 502 (alternately), as a
    /// provider whose handler fails after the charge or a proxy that loses the upstream reply does.
    public var errorAfterChargeRate = 0.0
    /// A repeated `Idempotency-Key` charges again instead of replaying the first charge (the
    /// ledger then holds two charges under one key; lookups by key find the first).
    public var nonIdempotent = false
    /// Probability that a charge is made but the reply is held for ``lostResponseDelay``
    /// (past any sensible client timeout): the client cannot know the outcome.
    public var lostResponseRate = 0.0
    public var lostResponseDelay: Duration = .seconds(30)
    /// Probability that a reply (of a charge that is made) is delayed by ``slowDelay``.
    public var slowRate = 0.0
    public var slowDelay: Duration = .seconds(3)
    /// Amounts (minor units) that are always declined.
    public var declinedAmounts: Set<Int64> = [402, 40_402]
    /// Source accounts with this prefix are always declined.
    public var declinedAccountPrefix = "acct_decline"
    /// Seed for the failure injection (reproducible runs).
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
    router.get("/v1/ledger") { _, _ in try SandboxState.json(LedgerResponse(charges: state.ledger())) }
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

/// What `GET /v1/stats` answers.
public struct SandboxStats: Codable, Sendable, Hashable {
  /// Every request to `/v1/charges` (charges and lookups), including refused ones.
  public var calls = 0
  public var charges = 0
  public var declines = 0
  /// Requests refused with 429: each is a violation of the sliding-window limit.
  public var windowViolations = 0
  public var idempotentReplays = 0
  /// Requests refused with 409 because a request with the same key was still being answered.
  public var conflicts = 0
  /// Charges made and then answered with 500 or 502.
  public var errorsAfterCharge = 0
  public var injectedFailures = 0
  public var lostResponses = 0
  public var slowResponses = 0
  /// The most served calls seen inside one window (never above the limit).
  public var maximumCallsInWindow = 0

  enum CodingKeys: String, CodingKey {
    case calls, charges, declines
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

struct LedgerResponse: Codable {
  var charges: [SandboxCharge]
}

struct ChargeRequest: Codable, Equatable {
  var amount: Int64
  var currency: String
  var source: String
  var destination: String
  var description: String?
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
    var stats = SandboxStats()
    var random: SplitMix64
  }

  enum Outcome {
    case charged(String)
    case declined(code: String, message: String)
  }

  private let configuration: ProviderSandbox.Configuration
  private let state: Mutex<State>

  init(configuration: ProviderSandbox.Configuration) {
    self.configuration = configuration
    self.state = Mutex(State(random: SplitMix64(seed: configuration.seed)))
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
    guard admit() else {
      return Self.error(
        429, "rate_limited", "more than \(configuration.rateLimit) calls per \(configuration.window)")
    }
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
      switch reply {
      case .lost: try await Task.sleep(for: configuration.lostResponseDelay)
      case .slow: try await Task.sleep(for: configuration.slowDelay)
      case .error(let status):
        return Self.error(status, "internal_error", "the charge was made, but its reply was lost")
      case .normal: break
      }
      return try Self.json(charge, status: 201)
    }
  }

  /// How the reply to a charge that was made goes out.
  enum Reply: Equatable {
    case normal
    case slow
    /// Held past any client timeout.
    case lost
    /// An error status (500 or 502) although the charge was made.
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
      let roll = Double(state.random.next() >> 11) / Double(1 << 53)
      if roll < configuration.internalErrorRate {
        state.stats.injectedFailures += 1
        return .fail(500)
      }
      if roll < configuration.internalErrorRate + configuration.unavailableRate {
        state.stats.injectedFailures += 1
        return .fail(503)
      }
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
      let second = Double(state.random.next() >> 11) / Double(1 << 53)
      var reply = Reply.normal
      if second < configuration.lostResponseRate {
        reply = .lost
        state.stats.lostResponses += 1
      } else if second < configuration.lostResponseRate + configuration.slowRate {
        reply = .slow
        state.stats.slowResponses += 1
      } else if second < configuration.lostResponseRate + configuration.slowRate
        + configuration.errorAfterChargeRate
      {
        reply = .error(state.stats.errorsAfterCharge % 2 == 0 ? 500 : 502)
        state.stats.errorsAfterCharge += 1
      }
      return .charged(charge, reply: reply)
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
      switch reply {
      case .lost: try await Task.sleep(for: configuration.lostResponseDelay)
      case .slow: try await Task.sleep(for: configuration.slowDelay)
      case .error(let status):
        return Response(status: .init(code: status))
      case .normal: break
      }
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

  func lookup(id: String) async throws -> Response {
    guard admit() else {
      return Self.error(
        429, "rate_limited", "more than \(configuration.rateLimit) calls per \(configuration.window)")
    }
    guard let charge = state.withLock({ $0.charges[id] }) else {
      return Self.error(404, "not_found", "no charge \(id)")
    }
    return try Self.json(charge)
  }

  func lookup(idempotencyKey key: String) async throws -> Response {
    guard admit() else {
      return Self.error(
        429, "rate_limited", "more than \(configuration.rateLimit) calls per \(configuration.window)")
    }
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

  func ledger() -> [SandboxCharge] { state.withLock { $0.ledger } }
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
