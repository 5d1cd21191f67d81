import AsyncHTTPClient
import DispatcherService
import PaymentsTestSupport
import ProviderSandbox
import Testing

func chargeRequest(_ key: String, amount: Int64 = 1234, payer: String = "acct_payer") -> ProviderChargeRequest
{
  ProviderChargeRequest(
    idempotencyKey: key, amountMinor: amount, currency: "EUR", payerAccount: payer,
    payeeAccount: "acct_payee",
    description: "test")
}

@Suite("Sandbox provider adapter: outcome classes")
struct SandboxProviderTests {
  @Test("success, decline, 5xx and 429, and the inquiry after a lost reply")
  func outcomes() async throws {
    try await withSandbox({ $0.rateLimit = 1000 }) { base, client in
      let provider = SandboxProvider(baseURL: base, client: client)
      guard case .succeeded(let reference) = await provider.charge(chargeRequest("p1")) else {
        Issue.record("expected success")
        return
      }
      #expect(reference.hasPrefix("ch_"))
      #expect(await provider.charge(chargeRequest("p1")) == .succeeded(reference: reference), "idempotent")
      #expect(await provider.inquire(idempotencyKey: "p1") == .charged(reference: reference))
      #expect(await provider.inquire(idempotencyKey: "never") == .notCharged)
      guard case .permanentFailure(let code, _) = await provider.charge(chargeRequest("p2", amount: 402))
      else {
        Issue.record("expected a permanent failure")
        return
      }
      #expect(code == "card_declined")
      guard case .declined = await provider.inquire(idempotencyKey: "p2") else {
        Issue.record("the inquiry reports the decline")
        return
      }
    }
    try await withSandbox({
      $0.rateLimit = 1000
      $0.unavailableRate = 1
    }) { base, client in
      let outcome = await SandboxProvider(baseURL: base, client: client).charge(chargeRequest("t1"))
      guard case .transientFailure = outcome else {
        return #expect(Bool(false), "503 is transient: \(outcome)")
      }
    }
    try await withSandbox({ $0.rateLimit = 1 }) { base, client in
      let provider = SandboxProvider(baseURL: base, client: client)
      _ = await provider.charge(chargeRequest("r1"))
      let outcome = await provider.charge(chargeRequest("r2"))
      guard case .transientFailure = outcome else {
        return #expect(Bool(false), "429 is transient: \(outcome)")
      }
    }
    try await withSandbox({
      $0.rateLimit = 1000
      $0.lostResponseRate = 1
      $0.lostResponseDelay = .seconds(5)
    }) { base, client in
      let provider = SandboxProvider(baseURL: base, client: client, timeout: .milliseconds(400))
      let outcome = await provider.charge(chargeRequest("u1"))
      guard case .unknown = outcome else {
        return #expect(Bool(false), "a lost reply is unknown: \(outcome)")
      }
      guard case .charged = await provider.inquire(idempotencyKey: "u1") else {
        return #expect(Bool(false), "the inquiry finds the charge")
      }
    }
  }

  @Test(
    "every HTTP status: only 2xx is success; only 'not processed' answers are transient; the rest may have charged"
  )
  func statusClasses() {
    let success = Array(#"{"id":"ch_1"}"#.utf8)
    let error = Array(#"{"error":{"code":"card_declined","message":"no"}}"#.utf8)
    for status in 100...599 {
      let outcome = SandboxProvider.classify(
        status: status, body: (200..<300).contains(status) ? success : error)
      switch status {
      case 200..<300: #expect(outcome == .succeeded(reference: "ch_1"), "\(status)")
      case 400, 402, 404, 422:
        #expect(outcome == .permanentFailure(code: "card_declined", message: "no"), "\(status)")
      case 429, 503:
        guard case .transientFailure = outcome else { return #expect(Bool(false), "\(status): \(outcome)") }
      case 401, 403:
        guard case .configurationError = outcome else { return #expect(Bool(false), "\(status): \(outcome)") }
      default:
        // 408, 409, 500, 502, 504, redirects, anything unexpected: the money may have moved.
        guard case .unknown = outcome else { return #expect(Bool(false), "\(status): \(outcome)") }
      }
    }
    guard case .unknown = SandboxProvider.classify(status: 201, body: Array("garbage".utf8)) else {
      return #expect(Bool(false), "an unreadable success is unknown")
    }
  }

  @Test(
    "the realistic sandbox: 5xx after the charge and 409 while in progress are unknown; non-idempotent mode charges twice"
  )
  func realisticSandbox() async throws {
    try await withSandbox({
      $0.rateLimit = 1000
      $0.errorAfterChargeRate = 1
    }) { base, client in
      let provider = SandboxProvider(baseURL: base, client: client)
      for key in ["e1", "e2"] {
        guard case .unknown = await provider.charge(chargeRequest(key)) else {
          return #expect(Bool(false), "a 500/502 after the charge is unknown")
        }
        guard case .charged = await provider.inquire(idempotencyKey: key) else {
          return #expect(Bool(false), "and the inquiry finds the charge")
        }
      }
    }
    try await withSandbox({
      $0.rateLimit = 1000
      $0.slowRate = 1
      $0.slowDelay = .milliseconds(800)
    }) { base, client in
      let provider = SandboxProvider(baseURL: base, client: client)
      async let first = provider.charge(chargeRequest("c1"))
      try await Task.sleep(for: .milliseconds(200))
      let second = await provider.charge(chargeRequest("c1"))
      guard case .unknown = second else {
        return #expect(Bool(false), "409 while the first request is in progress is unknown: \(second)")
      }
      guard case .succeeded = await first else { return #expect(Bool(false), "the first one charges") }
    }
    try await withSandbox({
      $0.rateLimit = 1000
      $0.nonIdempotent = true
    }) { base, client in
      let provider = SandboxProvider(baseURL: base, client: client)
      guard case .succeeded(let first) = await provider.charge(chargeRequest("n1")),
        case .succeeded(let second) = await provider.charge(chargeRequest("n1"))
      else { return #expect(Bool(false), "both charges succeed") }
      #expect(first != second, "a repeated key charges again")
      #expect(await provider.inquire(idempotencyKey: "n1") == .charged(reference: first))
    }
  }

  @Test("a refused connection is transient: nothing reached the provider")
  func refused() async throws {
    let port = try freePort()
    let client = HTTPClient(eventLoopGroupProvider: .singleton)
    let outcome = await SandboxProvider(baseURL: "http://127.0.0.1:\(port)", client: client).charge(
      chargeRequest("c1"))
    try await client.shutdown()
    guard case .transientFailure = outcome else {
      return #expect(Bool(false), "refused is transient: \(outcome)")
    }
  }
}

@Suite("HMAC provider adapter: a second API shape")
struct HMACPayProviderTests {
  @Test("signed requests; result codes in 200 bodies map to the same outcome classes")
  func outcomes() async throws {
    try await withSandbox({
      $0.rateLimit = 1000
      $0.hmacSecret = "s3cret"
    }) { base, client in
      let provider = HMACPayProvider(baseURL: base, secret: "s3cret", client: client)
      guard case .succeeded(let reference) = await provider.charge(chargeRequest("h1")) else {
        return #expect(Bool(false), "expected success")
      }
      #expect(await provider.charge(chargeRequest("h1")) == .succeeded(reference: reference), "idempotent")
      #expect(await provider.inquire(idempotencyKey: "h1") == .charged(reference: reference))
      #expect(await provider.inquire(idempotencyKey: "nope") == .notCharged)
      #expect(
        await provider.charge(chargeRequest("h2", amount: 402))
          == .permanentFailure(code: "card_declined", message: "declined by hmacpay"))
      // A wrong secret is the platform's fault, not the payment's: a configuration error (the
      // payment waits and the instance reports it), never a permanent failure of the payment.
      let forged = HMACPayProvider(baseURL: base, secret: "wrong", client: client)
      guard case .configurationError = await forged.charge(chargeRequest("h3")) else {
        return #expect(Bool(false), "a bad signature is a configuration error")
      }
      guard case .configurationError = await forged.inquire(idempotencyKey: "h1") else {
        return #expect(Bool(false), "also for inquiries")
      }
    }
    try await withSandbox({
      $0.rateLimit = 1000
      $0.unavailableRate = 1
    }) { base, client in
      let outcome = await HMACPayProvider(baseURL: base, secret: "sandbox-hmac-secret", client: client)
        .charge(chargeRequest("t1"))
      guard case .transientFailure = outcome else {
        return #expect(Bool(false), "unavailable is transient: \(outcome)")
      }
    }
    try await withSandbox({
      $0.rateLimit = 1000
      $0.lostResponseRate = 1
      $0.lostResponseDelay = .seconds(5)
    }) { base, client in
      let provider = HMACPayProvider(
        baseURL: base, secret: "sandbox-hmac-secret", client: client, timeout: .milliseconds(400))
      let outcome = await provider.charge(chargeRequest("u1"))
      guard case .unknown = outcome else {
        return #expect(Bool(false), "a lost reply is unknown: \(outcome)")
      }
      guard case .charged = await provider.inquire(idempotencyKey: "u1") else {
        return #expect(Bool(false), "the status call finds the charge")
      }
    }
  }
}
