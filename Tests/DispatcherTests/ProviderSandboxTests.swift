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
    status: Int(response.status.code), headers: headers, json: object.mapValues { "\($0)" as any Sendable })
}

func charge(amount: Int64 = 1234, source: String = "acct_payer") -> String {
  #"{"amount": \#(amount), "currency": "EUR", "source": "\#(source)", "destination": "acct_payee"}"#
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
}
