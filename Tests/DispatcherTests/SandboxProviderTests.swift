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
      // A wrong secret is refused for good, not retried.
      let forged = HMACPayProvider(baseURL: base, secret: "wrong", client: client)
      guard case .permanentFailure(let code, _) = await forged.charge(chargeRequest("h3")) else {
        return #expect(Bool(false), "a bad signature is permanent")
      }
      #expect(code == "bad_signature")
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
