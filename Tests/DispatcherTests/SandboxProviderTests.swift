import AsyncHTTPClient
import DispatcherService
import Foundation
import Glibc
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

func refundRequest(
  _ key: String, charge: String, amount: Int64 = 500, currency: String = "EUR", chargeKey: String = "p1"
) -> ProviderRefundRequest {
  ProviderRefundRequest(
    idempotencyKey: key, chargeReference: charge, chargeKey: chargeKey, amountMinor: amount,
    currency: currency, reason: "requested_by_customer")
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
      $0.slowDelay = .seconds(3)
    }) { base, client in
      let provider = SandboxProvider(baseURL: base, client: client)
      async let first = provider.charge(chargeRequest("c1"))
      // The second request goes once the sandbox has the first (it answers it 3 s later), not
      // after a fixed sleep that a loaded machine can outlast or fall short of.
      for _ in 0..<400 {
        if try await sandboxGet(SandboxStats.self, client, base, "/v1/stats").calls >= 1 { break }
        try await Task.sleep(for: .milliseconds(25))
      }
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

  @Test(
    "an inquiry says 'not made' only for the provider's own 404 not_found; a proxy's 404 page or an unknown refusal code is asked again, not taken as not refunded or refused"
  )
  func inquiryAllowList() async throws {
    // A stand-in that answers each lookup as the idempotency key asks.
    let script = """
      import http.server, json, sys, urllib.parse
      class H(http.server.BaseHTTPRequestHandler):
          timeout = 10
          def log_message(self, *a): pass
          def do_GET(self):
              key = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)["idempotency_key"][0]
              status, body, kind = {
                  "made": (200, {"id": "re_1"}, "json"),
                  "not_found": (404, {"error": {"code": "not_found", "message": "no"}}, "json"),
                  "proxy404": (404, "404 page not found", "text"),
                  "resource_missing": (404, {"error": {"code": "resource_missing", "message": "?"}}, "json"),
                  "exceeds": (422, {"error": {"code": "amount_exceeds_charge", "message": "no"}}, "json"),
                  "odd422": (422, {"error": {"code": "something_else", "message": "?"}}, "json"),
              }[key]
              data = (json.dumps(body) if kind == "json" else body).encode()
              self.send_response(status)
              self.send_header("Content-Type", "application/json" if kind == "json" else "text/plain")
              self.send_header("Content-Length", str(len(data)))
              self.end_headers()
              self.wfile.write(data)
      http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
      """
    let port = try freePort()
    let pid = try ChildProcess.spawn("/usr/bin/python3", ["-c", script, String(port)])
    defer {
      kill(pid, SIGKILL)
      _ = try? ChildProcess.wait(pid)
    }
    for _ in 0..<100 where !Loopback.canConnect(port: port) { try await Task.sleep(for: .milliseconds(50)) }
    let client = HTTPClient(eventLoopGroupProvider: .singleton)
    let provider = SandboxProvider(baseURL: "http://127.0.0.1:\(port)", client: client)
    var answers: [String: ProviderInquiry] = [:]
    for key in ["made", "not_found", "proxy404", "resource_missing", "exceeds", "odd422"] {
      answers[key] = await provider.inquireRefund(idempotencyKey: key)
    }
    let chargeProxy404 = await provider.inquire(idempotencyKey: "proxy404")
    try await client.shutdown()
    #expect(answers["made"] == .charged(reference: "re_1"))
    #expect(answers["not_found"] == .notCharged)
    #expect(answers["exceeds"] == .declined(code: "amount_exceeds_charge", message: "no"))
    for key in ["proxy404", "resource_missing", "odd422"] {
      guard case .unavailable = answers[key] else {
        Issue.record("\(key): \(String(describing: answers[key])) says something about the money")
        continue
      }
    }
    guard case .unavailable = chargeProxy404 else {
      return #expect(Bool(false), "a charge lookup too: \(chargeProxy404)")
    }
  }

  @Test("a refused connection is transient: nothing reached the provider")
  func refused() async throws {
    let port = try freePort()
    let client = HTTPClient(eventLoopGroupProvider: .singleton)
    let provider = SandboxProvider(baseURL: "http://127.0.0.1:\(port)", client: client)
    let outcome = await provider.charge(chargeRequest("c1"))
    let refundOutcome = await provider.refund(refundRequest("r1", charge: "ch_1"))
    try await client.shutdown()
    guard case .transientFailure = outcome else {
      return #expect(Bool(false), "refused is transient: \(outcome)")
    }
    guard case .transientFailure = refundOutcome else {
      return #expect(Bool(false), "also for a refund: \(refundOutcome)")
    }
  }

  @Test(
    "refunds: success and replay, the inquiry by key, refusals are permanent failures the inquiry reports")
  func refunds() async throws {
    try await withSandbox({ $0.rateLimit = 1000 }) { base, client in
      let provider = SandboxProvider(baseURL: base, client: client)
      guard case .succeeded(let charge) = await provider.charge(chargeRequest("p1", amount: 1000)) else {
        return #expect(Bool(false), "expected a charge")
      }
      guard
        case .succeeded(let reference) = await provider.refund(
          refundRequest("rf1", charge: charge, amount: 600))
      else { return #expect(Bool(false), "expected a refund") }
      #expect(reference.hasPrefix("re_"))
      #expect(
        await provider.refund(refundRequest("rf1", charge: charge, amount: 600))
          == .succeeded(reference: reference),
        "idempotent")
      #expect(await provider.inquireRefund(idempotencyKey: "rf1") == .charged(reference: reference))
      #expect(await provider.inquireRefund(idempotencyKey: "never") == .notCharged)
      #expect(
        await provider.inquireRefund(idempotencyKey: "p1") == .notCharged, "a charge key is no refund key")
      #expect(await provider.inquire(idempotencyKey: "rf1") == .notCharged, "a refund key is no charge key")

      // 600 + 500 is more than the charge.
      let excess = await provider.refund(refundRequest("rf2", charge: charge, amount: 500))
      guard case .permanentFailure(let code, _) = excess else {
        return #expect(Bool(false), "422 is permanent: \(excess)")
      }
      #expect(code == "amount_exceeds_charge")
      guard case .declined(let declined, _) = await provider.inquireRefund(idempotencyKey: "rf2") else {
        return #expect(Bool(false), "the inquiry reports the refusal")
      }
      #expect(declined == "amount_exceeds_charge")
      let unknown = await provider.refund(refundRequest("rf3", charge: "ch_missing"))
      guard case .permanentFailure(let unknownCode, _) = unknown else {
        return #expect(Bool(false), "404 is permanent: \(unknown)")
      }
      #expect(unknownCode == "charge_not_found")
      guard case .declined(let unknownDeclined, _) = await provider.inquireRefund(idempotencyKey: "rf3")
      else {
        return #expect(Bool(false), "a 404 charge_not_found kept under the key is a refusal, not 'no refund'")
      }
      #expect(unknownDeclined == "charge_not_found")
      let otherCurrency = await provider.refund(
        refundRequest("rf4", charge: charge, amount: 100, currency: "USD"))
      guard case .permanentFailure(let currencyCode, _) = otherCurrency else {
        return #expect(Bool(false), "422 is permanent: \(otherCurrency)")
      }
      #expect(currencyCode == "currency_mismatch")
      // What is left of the charge can still be refunded.
      guard case .succeeded = await provider.refund(refundRequest("rf5", charge: charge, amount: 400)) else {
        return #expect(Bool(false), "600 + 400 is exactly the charge")
      }
      let ledger = try await sandboxGet(SandboxLedger.self, client, base, "/v1/ledger")
      #expect(ledger.refunds.map(\.idempotencyKey) == ["rf1", "rf5"])
      #expect(ledger.refundedByCharge == [charge: 1000])
    }
  }

  @Test("refunds: 429 and 503 are transient; a 5xx after the refund and 409 in progress are unknown")
  func refundOutcomeClasses() async throws {
    try await withSandbox({
      $0.rateLimit = 2
      $0.window = .seconds(60)
    }) { base, client in
      let provider = SandboxProvider(baseURL: base, client: client)
      guard case .succeeded(let charge) = await provider.charge(chargeRequest("p1")),
        case .succeeded = await provider.refund(refundRequest("rf1", charge: charge))
      else { return #expect(Bool(false), "two calls fit the limit") }
      let limited = await provider.refund(refundRequest("rf2", charge: charge))
      guard case .transientFailure = limited else {
        return #expect(Bool(false), "429 is transient, and refunds count with charges: \(limited)")
      }
      guard case .unavailable = await provider.inquireRefund(idempotencyKey: "rf1") else {
        return #expect(Bool(false), "an inquiry refused with 429 is unavailable")
      }
    }
    try await withSandbox({
      $0.rateLimit = 1000
      $0.unavailableRate = 1
    }) { base, client in
      let outcome = await SandboxProvider(baseURL: base, client: client).refund(
        refundRequest("t1", charge: "ch_1"))
      guard case .transientFailure = outcome else {
        return #expect(Bool(false), "503 is transient: \(outcome)")
      }
    }
    try await withSandbox({
      $0.rateLimit = 1000
      $0.errorAfterChargeRate = 1
    }) { base, client in
      let provider = SandboxProvider(baseURL: base, client: client)
      guard case .unknown = await provider.charge(chargeRequest("p1")),
        case .charged(let charge) = await provider.inquire(idempotencyKey: "p1")
      else { return #expect(Bool(false), "charged, answered 500, found by the inquiry") }
      let outcome = await provider.refund(refundRequest("rf1", charge: charge))
      guard case .unknown = outcome else {
        return #expect(Bool(false), "a 502 after the refund is unknown: \(outcome)")
      }
      guard case .charged(let reference) = await provider.inquireRefund(idempotencyKey: "rf1") else {
        return #expect(Bool(false), "the inquiry finds the refund")
      }
      #expect(reference.hasPrefix("re_"))
    }
    try await withSandbox({
      $0.rateLimit = 1000
      $0.slowRate = 1
      $0.slowDelay = .milliseconds(800)
    }) { base, client in
      let provider = SandboxProvider(baseURL: base, client: client)
      guard case .succeeded(let charge) = await provider.charge(chargeRequest("p1")) else {
        return #expect(Bool(false), "the (slow) charge succeeds")
      }
      async let first = provider.refund(refundRequest("rf1", charge: charge))
      try await Task.sleep(for: .milliseconds(200))
      let second = await provider.refund(refundRequest("rf1", charge: charge))
      guard case .unknown = second else {
        return #expect(Bool(false), "409 while the first refund is in progress is unknown: \(second)")
      }
      guard case .succeeded = await first else { return #expect(Bool(false), "the first one refunds") }
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

  @Test("refunds over the hmacpay API: signed, idempotent, refusals declined, the status call by key")
  func refunds() async throws {
    try await withSandbox({
      $0.rateLimit = 1000
      $0.hmacSecret = "s3cret"
    }) { base, client in
      let provider = HMACPayProvider(baseURL: base, secret: "s3cret", client: client)
      guard case .succeeded(let charge) = await provider.charge(chargeRequest("h1", amount: 1000)) else {
        return #expect(Bool(false), "expected a charge")
      }
      guard
        case .succeeded(let reference) = await provider.refund(
          refundRequest("hr1", charge: charge, amount: 700))
      else { return #expect(Bool(false), "expected a refund") }
      #expect(reference.hasPrefix("re_"))
      #expect(
        await provider.refund(refundRequest("hr1", charge: charge, amount: 700))
          == .succeeded(reference: reference),
        "idempotent")
      #expect(await provider.inquireRefund(idempotencyKey: "hr1") == .charged(reference: reference))
      #expect(await provider.inquireRefund(idempotencyKey: "nope") == .notCharged)
      #expect(
        await provider.refund(refundRequest("hr2", charge: charge, amount: 301))
          == .permanentFailure(code: "amount_exceeds_charge", message: "declined by hmacpay"))
      #expect(
        await provider.inquireRefund(idempotencyKey: "hr2")
          == .declined(code: "amount_exceeds_charge", message: "declined by hmacpay"))
      #expect(
        await provider.refund(refundRequest("hr3", charge: "ch_missing"))
          == .permanentFailure(code: "charge_not_found", message: "declined by hmacpay"))
      // One provider behind both API shapes: the refund is in the sandbox's ledger.
      let ledger = try await sandboxGet(SandboxLedger.self, client, base, "/v1/ledger")
      #expect(ledger.refunds.map(\.idempotencyKey) == ["hr1"])
      #expect(ledger.refunds.first?.chargeIdempotencyKey == "h1")
      #expect(ledger.refundedByCharge == [charge: 700])
      let forged = HMACPayProvider(baseURL: base, secret: "wrong", client: client)
      guard case .configurationError = await forged.refund(refundRequest("hr4", charge: charge)) else {
        return #expect(Bool(false), "a bad signature is a configuration error")
      }
      guard case .configurationError = await forged.inquireRefund(idempotencyKey: "hr1") else {
        return #expect(Bool(false), "also for refund inquiries")
      }
    }
    try await withSandbox({
      $0.rateLimit = 1000
      $0.errorAfterChargeRate = 1
    }) { base, client in
      let provider = HMACPayProvider(baseURL: base, secret: "sandbox-hmac-secret", client: client)
      guard case .unknown = await provider.charge(chargeRequest("h1")),
        case .charged(let charge) = await provider.inquire(idempotencyKey: "h1")
      else { return #expect(Bool(false), "charged, answered 500, found by the status call") }
      guard case .unknown = await provider.refund(refundRequest("hr1", charge: charge)) else {
        return #expect(Bool(false), "a 502 after the refund is unknown")
      }
      guard case .charged = await provider.inquireRefund(idempotencyKey: "hr1") else {
        return #expect(Bool(false), "the status call finds the refund")
      }
    }
  }
}
