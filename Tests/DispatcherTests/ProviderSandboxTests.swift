import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import PaymentsTestSupport
import ProviderSandbox
import Synchronization
import Testing

/// Runs a sandbox on a free port and `body` with its base URL and an HTTP client.
func withSandbox<Result: Sendable>(
  _ configure: (inout ProviderSandbox.Configuration) -> Void = { _ in },
  _ body: @Sendable (String, HTTPClient) async throws -> Result
) async throws -> Result {
  var configuration = ProviderSandbox.Configuration()
  configuration.port = 0
  configure(&configuration)
  let sandbox = ProviderSandbox(configuration: configuration, logger: quietLogger("sandbox"))
  let portBox = SendablePort()
  return try await withThrowingTaskGroup(of: Void.self) { group in
    group.addTask { try await sandbox.run { portBox.set($0) } }
    defer { group.cancelAll() }
    let bound = try await portBox.get()
    let client = HTTPClient(eventLoopGroupProvider: .singleton)
    do {
      let result = try await body("http://127.0.0.1:\(bound)", client)
      try await client.shutdown()
      return result
    } catch {
      try? await client.shutdown()
      throw error
    }
  }
}

final class SendablePort: Sendable {
  private let value = Mutex<Int?>(nil)
  func set(_ port: Int) { value.withLock { $0 = port } }
  func get() async throws -> Int {
    for _ in 0..<600 {
      if let port = value.withLock({ $0 }) { return port }
      try await Task.sleep(for: .milliseconds(10))
    }
    throw HarnessError("sandbox did not start")
  }
}

struct SandboxReply: Sendable {
  var status: Int
  var headers: [String: String]
  var json: [String: any Sendable]
  /// The code of an error reply (`{"error": {"code", "message"}}`).
  var errorCode: String? = nil
}

func call(
  _ client: HTTPClient, _ method: String, _ url: String, key: String? = nil, body: String? = nil,
  timeout: TimeAmount = .seconds(10)
) async throws -> SandboxReply {
  var request = HTTPClientRequest(url: url)
  request.method = .init(rawValue: method)
  if let key { request.headers.add(name: "Idempotency-Key", value: key) }
  if let body {
    request.headers.add(name: "Content-Type", value: "application/json")
    request.body = .bytes(ByteBuffer(string: body))
  }
  let response = try await client.execute(request, timeout: timeout)
  let bytes = try await response.body.collect(upTo: 1 << 20)
  let object = (try? JSONSerialization.jsonObject(with: Data(buffer: bytes))) as? [String: Any] ?? [:]
  var headers: [String: String] = [:]
  for header in response.headers { headers[header.name.lowercased()] = header.value }
  return SandboxReply(
    status: Int(response.status.code), headers: headers, json: object.mapValues { "\($0)" as any Sendable },
    errorCode: (object["error"] as? [String: Any])?["code"] as? String)
}

func charge(amount: Int64 = 1234, source: String = "acct_payer") -> String {
  #"{"amount": \#(amount), "currency": "EUR", "source": "\#(source)", "destination": "acct_payee"}"#
}

func refundBody(charge: String, amount: Int64 = 500, currency: String = "EUR") -> String {
  #"{"charge": "\#(charge)", "amount": \#(amount), "currency": "\#(currency)", "#
    + #""reason": "requested_by_customer"}"#
}

/// GETs `path` from the sandbox and decodes it (`/v1/ledger`, `/v1/stats`).
func sandboxGet<T: Decodable>(_ type: T.Type, _ client: HTTPClient, _ base: String, _ path: String)
  async throws -> T
{
  let response = try await client.execute(HTTPClientRequest(url: base + path), timeout: .seconds(10))
  let body = try await response.body.collect(upTo: 16 << 20)
  return try JSONDecoder().decode(T.self, from: body)
}

/// Makes a charge of `amount` with `key` and returns its ID.
func makeCharge(_ client: HTTPClient, _ base: String, key: String, amount: Int64 = 1000) async throws
  -> String
{
  let reply = try await call(client, "POST", base + "/v1/charges", key: key, body: charge(amount: amount))
  #expect(reply.status == 201)
  return try #require(reply.json["id"] as? String)
}

@Suite("Provider sandbox")
struct ProviderSandboxTests {
  @Test("charges are idempotent by key; lookups by ID and key; declines; ledger and stats")
  func charges() async throws {
    try await withSandbox({ $0.rateLimit = 1000 }) { base, client in
      let missingKey = try await call(client, "POST", base + "/v1/charges", body: charge())
      #expect(missingKey.status == 400)
      let first = try await call(client, "POST", base + "/v1/charges", key: "k1", body: charge())
      #expect(first.status == 201)
      let id = try #require(first.json["id"] as? String)
      let replay = try await call(client, "POST", base + "/v1/charges", key: "k1", body: charge())
      #expect(replay.status == 200)
      #expect(replay.json["id"] as? String == id)
      #expect(replay.headers["idempotent-replayed"] == "true")
      let reused = try await call(client, "POST", base + "/v1/charges", key: "k1", body: charge(amount: 999))
      #expect(reused.status == 422)
      let reply1 = try await call(client, "GET", base + "/v1/charges/\(id)")
      #expect(reply1.json["id"] as? String == id)
      let reply2 = try await call(client, "GET", base + "/v1/charges?idempotency_key=k1")
      #expect(reply2.json["id"] as? String == id)
      let reply3 = try await call(client, "GET", base + "/v1/charges?idempotency_key=nope")
      #expect(reply3.status == 404)
      let declined = try await call(
        client, "POST", base + "/v1/charges", key: "k2", body: charge(amount: 402))
      #expect(declined.status == 402)
      #expect(declined.json["error"].map { "\($0)".contains("card_declined") } == true)
      let account = try await call(
        client, "POST", base + "/v1/charges", key: "k3", body: charge(source: "acct_decline_1"))
      #expect(account.status == 402)
      let ledger = try await call(client, "GET", base + "/v1/ledger")
      #expect("\(ledger.json["charges"] ?? "")".components(separatedBy: "ch_").count - 1 == 1)
      let stats = try await call(client, "GET", base + "/v1/stats")
      #expect(stats.json["charges"] as? String == "1")
      #expect(stats.json["declines"] as? String == "2")
      #expect(stats.json["idempotent_replays"] as? String == "2")
      #expect(stats.json["window_violations"] as? String == "0")
    }
  }

  @Test("calls beyond the sliding-window limit get 429 and count as violations")
  func rateLimit() async throws {
    // A 60-s window: three calls in a row fall into it however slow the machine is (with a 1-s
    // window a loaded CI run once spread them over more than a second).
    try await withSandbox({
      $0.rateLimit = 2
      $0.window = .seconds(60)
    }) { base, client in
      var statuses: [Int] = []
      for index in 0..<3 {
        statuses.append(
          try await call(client, "POST", base + "/v1/charges", key: "r\(index)", body: charge()).status)
      }
      #expect(statuses == [201, 201, 429])
      let stats = try await call(client, "GET", base + "/v1/stats")
      #expect(stats.json["window_violations"] as? String == "1")
      #expect(stats.json["maximum_calls_in_window"] as? String == "2")
    }
    // The window slides: once it has passed (waiting longer is always safe), calls go through.
    try await withSandbox({
      $0.rateLimit = 2
      $0.window = .milliseconds(200)
    }) { base, client in
      for index in 0..<2 {
        _ = try await call(client, "POST", base + "/v1/charges", key: "s\(index)", body: charge())
      }
      try await Task.sleep(for: .milliseconds(300))
      let later = try await call(client, "POST", base + "/v1/charges", key: "s2", body: charge())
      #expect(later.status == 201)
    }
  }

  @Test("injected failures charge nothing; a lost response leaves a charge the client can look up")
  func injection() async throws {
    try await withSandbox({
      $0.rateLimit = 1000
      $0.internalErrorRate = 1
    }) { base, client in
      let reply5 = try await call(client, "POST", base + "/v1/charges", key: "f1", body: charge())
      #expect(reply5.status == 500)
      let reply6 = try await call(client, "GET", base + "/v1/charges?idempotency_key=f1")
      #expect(reply6.status == 404)
    }
    try await withSandbox({
      $0.rateLimit = 1000
      $0.lostResponseRate = 1
      $0.lostResponseDelay = .seconds(3)
    }) { base, client in
      await #expect(throws: (any Error).self) {
        try await call(
          client, "POST", base + "/v1/charges", key: "l1", body: charge(), timeout: .milliseconds(500))
      }
      let found = try await call(client, "GET", base + "/v1/charges?idempotency_key=l1")
      #expect(found.status == 200, "the charge was made although the reply was lost")
      let stats = try await call(client, "GET", base + "/v1/stats")
      #expect(stats.json["lost_responses"] as? String == "1")
    }
  }

  @Test(
    "refunds are idempotent by key; lookups by ID and key; unknown charges and other currencies are refused; ledger and stats"
  )
  func refunds() async throws {
    try await withSandbox({ $0.rateLimit = 1000 }) { base, client in
      let chargeID = try await makeCharge(client, base, key: "pay_1", amount: 1000)
      let missingKey = try await call(
        client, "POST", base + "/v1/refunds", body: refundBody(charge: chargeID))
      #expect(missingKey.status == 400)
      for amount: Int64 in [0, -5] {
        let invalid = try await call(
          client, "POST", base + "/v1/refunds", key: "ref_bad",
          body: refundBody(charge: chargeID, amount: amount))
        #expect(invalid.status == 400, "amount \(amount)")
        #expect(invalid.errorCode == "invalid_request")
      }

      let first = try await call(
        client, "POST", base + "/v1/refunds", key: "ref_1", body: refundBody(charge: chargeID, amount: 400))
      #expect(first.status == 201)
      let id = try #require(first.json["id"] as? String)
      #expect(id.hasPrefix("re_"))
      #expect(first.json["charge"] as? String == chargeID)
      #expect(first.json["charge_idempotency_key"] as? String == "pay_1")
      #expect(first.json["idempotency_key"] as? String == "ref_1")
      #expect(first.json["amount"] as? String == "400")
      #expect(first.json["currency"] as? String == "EUR")
      #expect(first.json["reason"] as? String == "requested_by_customer")
      #expect(first.json["status"] as? String == "succeeded")
      #expect(first.headers["idempotent-replayed"] == nil)
      let replay = try await call(
        client, "POST", base + "/v1/refunds", key: "ref_1", body: refundBody(charge: chargeID, amount: 400))
      #expect(replay.status == 200)
      #expect(replay.json["id"] as? String == id)
      #expect(replay.headers["idempotent-replayed"] == "true")
      let reused = try await call(
        client, "POST", base + "/v1/refunds", key: "ref_1", body: refundBody(charge: chargeID, amount: 300))
      #expect(reused.status == 422)
      #expect(reused.errorCode == "idempotency_key_reused")

      let byID = try await call(client, "GET", base + "/v1/refunds/\(id)")
      #expect(byID.status == 200)
      #expect(byID.json["id"] as? String == id)
      let noSuchID = try await call(client, "GET", base + "/v1/refunds/re_nope")
      #expect(noSuchID.status == 404)
      #expect(noSuchID.errorCode == "not_found")
      let byKey = try await call(client, "GET", base + "/v1/refunds?idempotency_key=ref_1")
      #expect(byKey.status == 200)
      #expect(byKey.json["id"] as? String == id)
      let noSuchKey = try await call(client, "GET", base + "/v1/refunds?idempotency_key=ref_none")
      #expect(noSuchKey.status == 404)
      #expect(noSuchKey.errorCode == "not_found")
      let chargeKeyIsNoRefundKey = try await call(client, "GET", base + "/v1/refunds?idempotency_key=pay_1")
      #expect(chargeKeyIsNoRefundKey.status == 404)

      let unknownCharge = try await call(
        client, "POST", base + "/v1/refunds", key: "ref_2", body: refundBody(charge: "ch_missing"))
      #expect(unknownCharge.status == 404)
      #expect(unknownCharge.errorCode == "charge_not_found")
      let unknownAgain = try await call(
        client, "POST", base + "/v1/refunds", key: "ref_2", body: refundBody(charge: "ch_missing"))
      #expect(unknownAgain.status == 404, "the refusal is kept under its key")
      #expect(unknownAgain.errorCode == "charge_not_found")
      let refusedByKey = try await call(client, "GET", base + "/v1/refunds?idempotency_key=ref_2")
      #expect(refusedByKey.status == 404)
      #expect(refusedByKey.errorCode == "charge_not_found")
      let otherCurrency = try await call(
        client, "POST", base + "/v1/refunds", key: "ref_3",
        body: refundBody(charge: chargeID, currency: "USD"))
      #expect(otherCurrency.status == 422)
      #expect(otherCurrency.errorCode == "currency_mismatch")

      let ledger = try await sandboxGet(SandboxLedger.self, client, base, "/v1/ledger")
      #expect(ledger.charges.map(\.id) == [chargeID])
      #expect(ledger.refunds.map(\.id) == [id])
      #expect(ledger.refunds.first?.idempotencyKey == "ref_1")
      #expect(ledger.refunds.first?.chargeIdempotencyKey == "pay_1")
      #expect(ledger.refunds.first?.amount == 400)
      #expect((ledger.refunds.first?.arrivedAtMicros ?? 0) >= (ledger.charges.first?.arrivedAtMicros ?? .max))
      #expect(ledger.refundedByCharge == [chargeID: 400])
      let stats = try await sandboxGet(SandboxStats.self, client, base, "/v1/stats")
      #expect(stats.charges == 1)
      #expect(stats.refunds == 1)
      #expect(stats.refusedRefunds == 2, "ref_2 and ref_3; the replayed refusal does not count again")
      #expect(stats.idempotentReplays == 3, "ref_1 twice (once with other parameters) and ref_2")
      #expect(stats.declines == 0)
    }
  }

  @Test("idempotent mode: a refund beyond the charge's amount is refused with 422 amount_exceeds_charge")
  func overRefundRefused() async throws {
    try await withSandbox({ $0.rateLimit = 1000 }) { base, client in
      let chargeID = try await makeCharge(client, base, key: "pay_1", amount: 1000)
      var statuses: [String: Int] = [:]
      for (key, amount) in [("ref_a", 600), ("ref_b", 500), ("ref_c", 400), ("ref_d", 1)] as [(String, Int64)]
      {
        let reply = try await call(
          client, "POST", base + "/v1/refunds", key: key, body: refundBody(charge: chargeID, amount: amount))
        statuses[key] = reply.status
        if reply.status == 422 { #expect(reply.errorCode == "amount_exceeds_charge", "\(key)") }
      }
      // 600 + 400 is exactly the charge; 600 + 500 and 1000 + 1 are more.
      #expect(statuses == ["ref_a": 201, "ref_b": 422, "ref_c": 201, "ref_d": 422])
      let replayed = try await call(
        client, "POST", base + "/v1/refunds", key: "ref_b", body: refundBody(charge: chargeID, amount: 500))
      #expect(replayed.status == 422)
      #expect(replayed.errorCode == "amount_exceeds_charge")
      let byKey = try await call(client, "GET", base + "/v1/refunds?idempotency_key=ref_b")
      #expect(byKey.status == 422)
      #expect(byKey.errorCode == "amount_exceeds_charge")

      let ledger = try await sandboxGet(SandboxLedger.self, client, base, "/v1/ledger")
      #expect(ledger.refunds.map(\.idempotencyKey) == ["ref_a", "ref_c"])
      #expect(ledger.refundedByCharge == [chargeID: 1000])
      let stats = try await sandboxGet(SandboxStats.self, client, base, "/v1/stats")
      #expect(stats.refunds == 2)
      #expect(stats.refusedRefunds == 2)
    }
  }

  @Test(
    "non-idempotent mode: a repeated key refunds again, and refunds beyond the charge are made and recorded")
  func nonIdempotentRefunds() async throws {
    try await withSandbox({
      $0.rateLimit = 1000
      $0.nonIdempotent = true
    }) { base, client in
      let chargeID = try await makeCharge(client, base, key: "pay_1", amount: 1000)
      let first = try await call(
        client, "POST", base + "/v1/refunds", key: "ref_1", body: refundBody(charge: chargeID, amount: 800))
      let second = try await call(
        client, "POST", base + "/v1/refunds", key: "ref_1", body: refundBody(charge: chargeID, amount: 800))
      let third = try await call(
        client, "POST", base + "/v1/refunds", key: "ref_2", body: refundBody(charge: chargeID, amount: 1000))
      #expect([first.status, second.status, third.status] == [Int](repeating: 201, count: 3))
      let firstID = try #require(first.json["id"] as? String)
      let secondID = try #require(second.json["id"] as? String)
      #expect(firstID != secondID, "a repeated key refunds again")
      #expect(second.headers["idempotent-replayed"] == nil)
      let byKey = try await call(client, "GET", base + "/v1/refunds?idempotency_key=ref_1")
      #expect(byKey.json["id"] as? String == firstID, "a lookup by key finds the first refund")
      // There is still nothing to refund on a charge that does not exist.
      let unknownCharge = try await call(
        client, "POST", base + "/v1/refunds", key: "ref_3", body: refundBody(charge: "ch_missing"))
      #expect(unknownCharge.status == 404)

      let ledger = try await sandboxGet(SandboxLedger.self, client, base, "/v1/ledger")
      #expect(ledger.refunds.map(\.idempotencyKey) == ["ref_1", "ref_1", "ref_2"])
      let thirdID = try #require(third.json["id"] as? String)
      #expect(ledger.refunds.map(\.id) == [firstID, secondID, thirdID])
      #expect(ledger.refundedByCharge == [chargeID: 2600], "the over-refund shows in the ledger")
      let stats = try await sandboxGet(SandboxStats.self, client, base, "/v1/stats")
      #expect(stats.refunds == 3)
      #expect(stats.idempotentReplays == 0)
    }
  }

  @Test("refunds and refund lookups count in the same sliding window as charges")
  func refundsShareTheRateLimit() async throws {
    try await withSandbox({
      $0.rateLimit = 2
      $0.window = .seconds(60)
    }) { base, client in
      let charged = try await call(client, "POST", base + "/v1/charges", key: "pay_1", body: charge())
      let chargeID = try #require(charged.json["id"] as? String)
      let refunded = try await call(
        client, "POST", base + "/v1/refunds", key: "ref_1", body: refundBody(charge: chargeID))
      let lookup = try await call(client, "GET", base + "/v1/refunds?idempotency_key=ref_1")
      let secondRefund = try await call(
        client, "POST", base + "/v1/refunds", key: "ref_2", body: refundBody(charge: chargeID))
      let secondCharge = try await call(client, "POST", base + "/v1/charges", key: "pay_2", body: charge())
      #expect(
        [charged.status, refunded.status, lookup.status, secondRefund.status, secondCharge.status]
          == [Int]([201, 201, 429, 429, 429]))
      #expect(lookup.errorCode == "rate_limited")
      let stats = try await sandboxGet(SandboxStats.self, client, base, "/v1/stats")
      #expect(stats.calls == 5)
      #expect(stats.windowViolations == 3)
      #expect(stats.maximumCallsInWindow == 2)
      #expect(stats.refunds == 1)
    }
  }

  @Test(
    "failure injection applies to refunds: nothing refunded on an injected 500; a 502 or a lost reply after the refund leaves a refund to look up"
  )
  func refundInjection() async throws {
    try await withSandbox({
      $0.rateLimit = 1000
      $0.internalErrorRate = 1
    }) { base, client in
      let failed = try await call(
        client, "POST", base + "/v1/refunds", key: "ref_1", body: refundBody(charge: "ch_any"))
      #expect(failed.status == 500, "injected before the charge is even looked up")
      let lookup = try await call(client, "GET", base + "/v1/refunds?idempotency_key=ref_1")
      #expect(lookup.status == 404)
      let ledger = try await sandboxGet(SandboxLedger.self, client, base, "/v1/ledger")
      #expect(ledger.refunds.isEmpty)
    }
    try await withSandbox({
      $0.rateLimit = 1000
      $0.errorAfterChargeRate = 1
    }) { base, client in
      let charged = try await call(client, "POST", base + "/v1/charges", key: "pay_1", body: charge())
      #expect(charged.status == 500, "charged, then answered 500")
      let found = try await call(client, "GET", base + "/v1/charges?idempotency_key=pay_1")
      let chargeID = try #require(found.json["id"] as? String)
      let refunded = try await call(
        client, "POST", base + "/v1/refunds", key: "ref_1", body: refundBody(charge: chargeID))
      #expect(refunded.status == 502, "refunded, then answered 502 (500 and 502 alternate)")
      let lookup = try await call(client, "GET", base + "/v1/refunds?idempotency_key=ref_1")
      #expect(lookup.status == 200, "the refund was made although the reply was an error")
      let stats = try await sandboxGet(SandboxStats.self, client, base, "/v1/stats")
      #expect(stats.errorsAfterCharge == 2)
      #expect(stats.refunds == 1)
    }
    try await withSandbox({
      $0.rateLimit = 1000
      $0.lostResponseRate = 1
      $0.lostResponseDelay = .seconds(1)
    }) { base, client in
      let chargeID = try await makeCharge(client, base, key: "pay_1")
      await #expect(throws: (any Error).self) {
        try await call(
          client, "POST", base + "/v1/refunds", key: "ref_1", body: refundBody(charge: chargeID),
          timeout: .milliseconds(300))
      }
      let lookup = try await call(client, "GET", base + "/v1/refunds?idempotency_key=ref_1")
      #expect(lookup.status == 200, "the refund was made although the reply was lost")
      let stats = try await sandboxGet(SandboxStats.self, client, base, "/v1/stats")
      #expect(stats.lostResponses == 2)
    }
  }

  @Test("the failure injection is reproducible by seed, and refunds do not change which charges fail")
  func refundInjectionIsSeeded() async throws {
    func run(withRefunds: Bool) async throws -> (charges: [Int], refunds: [Int]) {
      try await withSandbox({
        $0.rateLimit = 1000
        $0.internalErrorRate = 0.5
        $0.seed = 7
      }) { base, client in
        var charges: [Int] = []
        var refunds: [Int] = []
        for index in 0..<12 {
          charges.append(
            try await call(client, "POST", base + "/v1/charges", key: "pay_\(index)", body: charge()).status)
          if withRefunds {
            refunds.append(
              try await call(
                client, "POST", base + "/v1/refunds", key: "ref_\(index)", body: refundBody(charge: "ch_none")
              ).status)
          }
        }
        return (charges: charges, refunds: refunds)
      }
    }
    let chargesOnly = try await run(withRefunds: false)
    let first = try await run(withRefunds: true)
    let second = try await run(withRefunds: true)
    #expect(Set(first.refunds) == [500, 404], "both fates occur: \(first.refunds)")
    #expect(first.refunds == second.refunds)
    #expect(first.charges == second.charges)
    #expect(first.charges == chargesOnly.charges)
  }
}
