import Foundation
import Logging
import PaymentsProto
import PaymentsTestSupport
import Postgres
import ProtobufRuntime
import QueryService
import RPCCore
import ServiceKit
import Synchronization
import Testing

@Suite("Authentication and authorization")
struct SecurityTests {
  @Test("no key, a malformed key, an unknown key, a wrong secret: UNAUTHENTICATED")
  func badKeys() async throws {
    try await withPlatform(PlatformOptions(runQuery: false)) { platform in
      let good = try await platform.key()
      let keyID = try #require(APIKey.keyID(ofToken: good))
      let forged = "pk_\(keyID)_" + String(repeating: "A", count: 43)
      for token in [nil, "not-a-key", APIKey.generate().token, forged] {
        let client = platform.commandClient(token)
        defer { client.close() }
        let error = await rpcError {
          try await client.client.submitPayment(validRequest(), metadata: client.metadata)
        }
        #expect(error?.code == .unauthenticated, "\(token ?? "no key")")
      }
      // The scheme must be Bearer.
      let basic = AuthorizedClient(port: platform.commandPort, token: nil) {
        Payments_V1_PaymentCommandService.Client($0)
      }
      defer { basic.close() }
      let error = await rpcError {
        try await basic.client.submitPayment(validRequest(), metadata: [("authorization", "Basic \(good)")])
      }
      #expect(error?.code == .unauthenticated)
      let count = try await platform.pool.query("SELECT count(*) FROM command.payments")
      #expect(try count[0].decode(Int64.self, at: 0) == 0)
    }
  }

  @Test(
    "an unknown key ID is remembered as unknown, and a key created with it afterwards works within moments")
  func negativeCache() async throws {
    try await withPlatform(PlatformOptions(runQuery: false)) { platform in
      let key = APIKey.generate()
      let client = platform.commandClient(key.token)
      defer { client.close() }
      for _ in 0..<3 {
        let error = await rpcError {
          try await client.client.submitPayment(validRequest(), metadata: client.metadata)
        }
        #expect(error?.code == .unauthenticated)
      }
      // Now the key appears (as `payments keys create` on another machine would write it): the
      // insert is notified, and the remembered "unknown" must not outlive it.
      try await platform.pool.execute(
        """
        INSERT INTO auth.api_keys (key_id, client_id, key_hash, scopes)
        VALUES (\(key.keyID), 'client-a', sha256(convert_to(\(key.token), 'UTF8')),
                '{payments.write,payments.read}'::text[])
        """)
      try await eventually(timeout: .seconds(5)) {
        (try? await client.client.submitPayment(validRequest(), metadata: client.metadata)) != nil
      }
    }
  }

  @Test(
    "an address that keeps failing gets RESOURCE_EXHAUSTED instead of database lookups; a known good key from it still works"
  )
  func failedAuthenticationLimit() async throws {
    // A refill slower than any test run: the budget is spent whatever the machine's speed (with
    // the default 3 s, 21 failures spread over 27 s on a loaded machine never ran out).
    var options = PlatformOptions(runQuery: false)
    options.failedAuthenticationRefill = .seconds(3600)
    try await withPlatform(options) { platform in
      let good = platform.commandClient(try await platform.key())
      defer { good.close() }
      _ = try await good.client.submitPayment(validRequest(), metadata: good.metadata)  // cached now
      let burst = FailedAuthenticationLimiter().burst
      var codes: [RPCStatus.Code?] = []
      var lastMessage = ""
      for _ in 0...burst {
        // A fresh, well-formed key ID each time: only the database could tell it is unknown.
        let bogus = platform.commandClient(APIKey.generate().token)
        defer { bogus.close() }
        let error = await rpcError {
          try await bogus.client.submitPayment(validRequest(), metadata: bogus.metadata)
        }
        codes.append(error?.code)
        lastMessage = error?.message ?? ""
      }
      #expect(codes.prefix(burst).allSatisfy { $0 == .unauthenticated }, "\(codes)")
      #expect(codes.last == .resourceExhausted, "\(codes)")
      #expect(lastMessage.contains("too many failed authentications"), "\(lastMessage)")
      _ = try await good.client.submitPayment(validRequest(), metadata: good.metadata)
      // A key change clears the key cache everywhere; a key that verified before must still work
      // from the locked-out address (one failing client behind a shared proxy must not lock out
      // the others).
      _ = try await platform.key(client: "client-c")
      for _ in 0..<20 {
        _ = try await good.client.submitPayment(validRequest(), metadata: good.metadata)
        try await Task.sleep(for: .milliseconds(100))
      }
    }
  }

  @Test("the failure budget of an address refills with time")
  func failureBudgetRefills() {
    let limiter = FailedAuthenticationLimiter(burst: 3, refillInterval: .seconds(2))
    let start = ContinuousClock.now
    for second in 0..<3 {
      #expect(limiter.lockedOut("10.0.0.1", now: start + .seconds(second) / 10) == nil)
      limiter.recordFailure("10.0.0.1", now: start + .seconds(second) / 10)
    }
    let locked = limiter.lockedOut("10.0.0.1", now: start + .milliseconds(300))
    #expect(locked != nil && locked! > .seconds(1) && locked! <= .seconds(2), "\(String(describing: locked))")
    #expect(limiter.lockedOut("10.0.0.2", now: start + .milliseconds(300)) == nil, "another address")
    #expect(limiter.lockedOut("10.0.0.1", now: start + .seconds(3)) == nil, "one failure refilled")
    limiter.recordFailure("10.0.0.1", now: start + .seconds(3))
    #expect(limiter.lockedOut("10.0.0.1", now: start + .seconds(3)) != nil)
  }

  @Test("a revoked key stops working")
  func revokedKey() async throws {
    try await withPlatform(PlatformOptions(runQuery: false)) { platform in
      let token = try await platform.key()
      let client = platform.commandClient(token)
      defer { client.close() }
      _ = try await client.client.submitPayment(validRequest(), metadata: client.metadata)  // cached now
      #expect(try await platform.keys.revoke(token))
      // Another process revoked it: the service hears of it through NOTIFY within moments.
      try await eventually(timeout: .seconds(5)) {
        do {
          _ = try await client.client.submitPayment(validRequest(), metadata: client.metadata)
          return false
        } catch let error as RPCError {
          return error.code == .unauthenticated
        }
      }
      #expect(try await platform.keys.revoke(token) == false, "revoking twice reports nothing revoked")
    }
  }

  @Test("a read-only key cannot submit; a write-only key cannot read")
  func scopes() async throws {
    try await withPlatform { platform in
      let reader = platform.commandClient(try await platform.key(scopes: [.paymentsRead]))
      defer { reader.close() }
      let error = await rpcError {
        try await reader.client.submitPayment(validRequest(), metadata: reader.metadata)
      }
      #expect(error?.code == .permissionDenied)
      #expect(error?.message.contains("payments.write") == true)

      let writerToken = try await platform.key(scopes: [.paymentsWrite])
      let writer = platform.queryClient(writerToken)
      defer { writer.close() }
      let readError = await rpcError {
        try await writer.client.getPayment(
          .with { $0.lookup = .paymentID(PaymentIDs.example) }, metadata: writer.metadata)
      }
      #expect(readError?.code == .permissionDenied)
      #expect(readError?.message.contains("payments.read") == true)
    }
  }

  @Test("client A cannot see client B's payment: NOT_FOUND, as if it did not exist")
  func isolation() async throws {
    var options = PlatformOptions()
    options.query.watchNotFoundGrace = .milliseconds(300)
    try await withPlatform(options) { platform in
      let tokenB = try await platform.key(client: "client-b")
      let submitB = platform.commandClient(tokenB)
      defer { submitB.close() }
      let payment = try await submitB.client.submitPayment(
        validRequest(key: "b-1"), metadata: submitB.metadata
      ).payment!
      let readB = platform.queryClient(tokenB)
      defer { readB.close() }
      // B reads its own payment (waiting for the projection).
      let own = try await readB.client.getPayment(
        .with {
          $0.lookup = .paymentID(payment.paymentID)
          $0.minVersion = 1
        }, metadata: readB.metadata)
      #expect(own.paymentID == payment.paymentID)

      let readA = platform.queryClient(try await platform.key(client: "client-a"))
      defer { readA.close() }
      let byID = await rpcError {
        try await readA.client.getPayment(
          .with { $0.lookup = .paymentID(payment.paymentID) }, metadata: readA.metadata)
      }
      #expect(byID?.code == .notFound)
      let byKey = await rpcError {
        try await readA.client.getPayment(
          .with { $0.lookup = .idempotencyKey("b-1") }, metadata: readA.metadata)
      }
      #expect(byKey?.code == .notFound)
      let list = try await readA.client.listPayments(.init(), metadata: readA.metadata)
      #expect(list.payments.isEmpty)
      let watch = await rpcError {
        try await readA.client.watchPayment(
          .with { $0.paymentID = payment.paymentID }, metadata: readA.metadata
        ) {
          stream in
          for try await _ in stream {}
        }
      }
      #expect(watch?.code == .notFound)
      // The same answer as for an ID nobody has.
      let unknown = await rpcError {
        try await readA.client.getPayment(
          .with { $0.lookup = .paymentID(PaymentIDs.example) }, metadata: readA.metadata)
      }
      #expect(unknown?.code == byID?.code)
      #expect(
        unknown?.message.replacingOccurrences(of: PaymentIDs.example, with: "")
          == byID?.message.replacingOccurrences(of: payment.paymentID, with: ""))
    }
  }

  @Test("API keys never appear in the services' logs, even at trace level")
  func keysNotLogged() async throws {
    let capture = LogCapture()
    var logger = Logger(label: "captured") { _ in CapturingLogHandler(capture: capture) }
    logger.logLevel = .trace
    var options = PlatformOptions()
    options.logger = logger
    let tokens = try await withPlatform(options) { platform in
      let good = try await platform.key()
      let keyID = try #require(APIKey.keyID(ofToken: good))
      let forged = "pk_\(keyID)_" + String(repeating: "B", count: 43)
      for token in [good, forged] {
        let command = platform.commandClient(token)
        let query = platform.queryClient(token)
        defer {
          command.close()
          query.close()
        }
        _ = try? await command.client.submitPayment(validRequest(), metadata: command.metadata)
        _ = try? await query.client.getPayment(
          .with { $0.lookup = .paymentID(PaymentIDs.example) }, metadata: query.metadata)
      }
      return [good, forged]
    }
    let lines = capture.lines.withLock { $0 }
    #expect(!lines.isEmpty, "the services logged something at trace level")
    for token in tokens {
      // Everything after `pk_<key id>_` (the secret is base64url, so it may contain `_` itself).
      let keyID = try #require(APIKey.keyID(ofToken: token))
      let secret = String(token.dropFirst("pk_\(keyID)_".count))
      try #require(secret.count == 43)
      #expect(!lines.contains { $0.contains(secret) }, "a key's secret part appears in the log")
    }
  }

  @Test("health and reflection need no key")
  func openServices() async throws {
    try await withPlatform(PlatformOptions(runQuery: false)) { platform in
      let output = try await PythonPeer.run(
        "interop/payments_client.py", ["--command", "127.0.0.1:\(platform.commandPort)", "--only", "health"])
      #expect(output.contains("health SERVING"))
    }
  }
}

enum PaymentIDs {
  /// A well-formed payment ID that no test creates.
  static let example = "pay_0190000000007000800000000000000a"
}

final class LogCapture: Sendable {
  let lines = Mutex<[String]>([])
}

/// Keeps every log line, with its metadata, for inspection.
struct CapturingLogHandler: LogHandler {
  let capture: LogCapture
  var metadata: Logger.Metadata = [:]
  var logLevel: Logger.Level = .trace

  subscript(metadataKey key: String) -> Logger.Metadata.Value? {
    get { metadata[key] }
    set { metadata[key] = newValue }
  }

  func log(event: LogEvent) {
    let all = metadata.merging(event.metadata ?? [:]) { $1 }
    capture.lines.withLock { $0.append("\(event.level) \(event.message) \(all) \(event.source)") }
  }
}
