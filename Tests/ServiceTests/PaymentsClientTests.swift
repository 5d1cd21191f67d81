import DispatcherService
import Foundation
import Logging
import PaymentsClient
import PaymentsTestSupport
import Postgres
import ProviderSandbox
import RPCCore
import ServiceLifecycle
import Testing

/// The SDK's configuration for a platform of the harness.
func sdkConfiguration(_ platform: Platform, key: String) -> PaymentsClient.Configuration {
  var configuration = PaymentsClient.Configuration(apiKey: key)
  configuration.command = .init(host: "127.0.0.1", port: platform.commandPort)
  configuration.query = .init(host: "127.0.0.1", port: platform.queryPort)
  configuration.transportSecurity = .plaintext  // the harness's services speak h2c
  return configuration
}

@Suite("SDK: Money")
struct MoneyTests {
  @Test("parses decimal strings by the currency's exponent, never through Double")
  func parsing() throws {
    #expect(try Money("12.34 EUR") == Money(minorUnits: 1234, currency: "EUR"))
    #expect(try Money("12.3 EUR").minorUnits == 1230)
    #expect(try Money("12 EUR").minorUnits == 1200)
    #expect(try Money("1500 JPY").minorUnits == 1500)
    #expect(try Money("1.250 BHD").minorUnits == 1250)
    #expect(try Money(amount: "0.07", currency: "EUR").minorUnits == 7)
    // 0.1 + 0.2 style values stay exact.
    #expect(try Money("92233720368547758.07 EUR").minorUnits == Int64.max)
  }

  @Test(
    "formats minor units back",
    arguments: [
      (1234, "EUR", "12.34 EUR"), (5, "EUR", "0.05 EUR"), (1500, "JPY", "1500 JPY"),
      (1250, "BHD", "1.250 BHD"),
      (100, "EUR", "1.00 EUR"), (-5, "EUR", "-0.05 EUR"),
    ])
  func formatting(minor: Int64, currency: String, text: String) throws {
    let money = Money(minorUnits: minor, currency: currency)
    #expect(money.description == text)
    if minor > 0 { #expect(try Money(text) == money) }
  }

  @Test(
    "rejects what is not an amount, with a message that names the problem",
    arguments: [
      ("12.345 EUR", "3 decimal places"), ("1.5 JPY", "JPY has 0"), ("12,34 EUR", "not a decimal"),
      ("abc EUR", "not a decimal"), ("12.34 XYZ", "not a known ISO 4217"), ("12.34", "not an amount"),
      ("-1 EUR", "not a decimal"), (". EUR", "not a decimal"), ("1. EUR", "not a decimal"),
      ("92233720368547758.08 EUR", "too large"), ("1e3 EUR", "not a decimal"),
    ])
  func rejects(text: String, problem: String) {
    #expect {
      try Money(text)
    } throws: { error in
      let error = error as? PaymentsError
      return error?.code == .invalidArgument && error?.message.contains(problem) == true
    }
  }
}

@Suite("SDK: PaymentsClient against the real services")
struct PaymentsClientTests {
  @Test(
    "submit, wait for completion, read by ID and by key, list page by page, watch, cancel, the event feed, refunds"
  )
  func happyPath() async throws {
    try await withDispatcherStack(
      sandbox: { $0.rateLimit = 20 }, dispatcher: { $0.rateLimiter.defaultLimit = 20 }
    ) {
      platform, _, _, _ in
      let key = try await platform.key()
      try await withPaymentsClient(configuration: sdkConfiguration(platform, key: key)) { client in
        var submitted: [SubmittedPayment] = []
        for index in 0..<3 {
          submitted.append(
            try await client.submitPayment(
              PaymentOrder(amount: try Money("12.3\(index) EUR"), payer: "acct_sdk_1", payee: "acct_sdk_2")))
        }
        #expect(submitted.allSatisfy { $0.payment.status == .accepted && !$0.replayed })
        #expect(submitted.allSatisfy { $0.idempotencyKey.hasPrefix("sdk-") }, "keys were generated")
        let first = submitted[0].payment
        #expect(first.amount == Money(minorUnits: 1230, currency: "EUR"))

        let final = try await client.waitForCompletion(id: first.id, timeout: .seconds(60))
        #expect(final.status == .succeeded)
        #expect(!final.providerReference.isEmpty)
        #expect(try await client.payment(id: first.id, minimumVersion: final.version) == final)
        #expect(try await client.payment(idempotencyKey: submitted[0].idempotencyKey).id == first.id)

        // Pages of one: the sequence follows the page tokens.
        var listed: [String] = []
        for try await payment in client.payments(filter: PaymentFilter(pageSize: 1)) {
          listed.append(payment.id)
        }
        #expect(Set(listed) == Set(submitted.map(\.payment.id)))
        #expect(listed.count == 3)
        var succeeded: [String] = []
        for try await payment in client.payments(filter: PaymentFilter(statuses: [.succeeded])) {
          succeeded.append(payment.id)
        }
        #expect(succeeded.contains(first.id))

        // A watch of a terminal payment: its current state, then the end.
        var states: [Payment] = []
        for try await state in client.watchPayment(id: first.id) { states.append(state) }
        #expect(states.last == final)

        // Cancelling a charged payment is refused, naming the state.
        let refused = await sdkError { _ = try await client.cancelPayment(first.id) }
        #expect(refused?.code == .failedPrecondition && refused?.message.contains("SUCCEEDED") == true)

        // The event feed: pages that continue at their cursor, and a watch that starts behind one.
        let (page, next) = try await client.events(pageSize: 2)
        #expect(page.count == 2 && next == page.last?.cursor)
        let (more, _) = try await client.events(after: next, pageSize: 1000)
        let all = page + more
        #expect(all.filter { $0.payment.id == first.id }.map(\.payment.version) == Array(1...final.version))
        var watched: [PaymentEvent] = []
        for try await event in client.watchEvents(after: all[all.count - 2].cursor) {
          watched.append(event)
          break
        }
        #expect(watched == [all[all.count - 1]])

        // Refunds: partial, retried with its key (a replay), too much (the amounts named),
        // in another currency (refused); the refund and its payment as the query side has them.
        let refund = try await client.refundPayment(
          first.id, amount: try Money("2.30 EUR"), reason: "returned", idempotencyKey: "sdk-refund-1")
        #expect(
          refund.refund.status == .pending && !refund.replayed && refund.idempotencyKey == "sdk-refund-1")
        #expect(
          refund.refund.amount == Money(minorUnits: 230, currency: "EUR")
            && refund.refund.paymentID == first.id)
        let replay = try await client.refundPayment(
          first.id, amount: try Money("2.30 EUR"), reason: "returned", idempotencyKey: "sdk-refund-1")
        #expect(replay.replayed && replay.refund.id == refund.refund.id)
        let tooMuch = await sdkError {
          _ = try await client.refundPayment(first.id, amount: try Money("10.01 EUR"))
        }
        #expect(tooMuch?.code == .failedPrecondition && tooMuch?.message.contains("1000 of 1230 EUR") == true)
        let otherCurrency = await sdkError {
          _ = try await client.refundPayment(first.id, amount: try Money("1.00 USD"))
        }
        #expect(
          otherCurrency?.code == .failedPrecondition && otherCurrency?.message.contains("is in EUR") == true)
        var shown: Refund?
        let clock = ContinuousClock()
        let end = clock.now + .seconds(60)
        while clock.now < end {
          shown = try? await client.refund(id: refund.refund.id)
          if shown?.status.isTerminal == true { break }
          try await Task.sleep(for: .milliseconds(100))
        }
        #expect(
          shown?.status == .succeeded && shown?.reason == "returned"
            && shown?.providerReference.isEmpty == false)
        let refunded = try await client.payment(id: first.id)
        #expect(refunded.status == .succeeded && refunded.refunded == Money(minorUnits: 230, currency: "EUR"))
        #expect(refunded.refunds.map(\.id) == [refund.refund.id] && refunded.version > final.version)
      }
    }
  }

  @Test(
    "a submit whose connection drops after the server stored it is retried with the same key: one payment")
  func retryAfterDroppedConnection() async throws {
    try await withPlatform { platform in
      let proxy = try await PythonPeer.startServer(
        "interop/dropping_proxy.py", arguments: ["--target-port", "\(platform.commandPort)"])
      defer { proxy.stop() }
      var configuration = sdkConfiguration(platform, key: try await platform.key())
      configuration.command = .init(host: "127.0.0.1", port: proxy.port)
      try await withPaymentsClient(configuration: configuration) { client in
        let result = try await client.submitPayment(
          PaymentOrder(amount: try Money("5.00 EUR"), payer: "acct_drop_1", payee: "acct_drop_2"))
        // The first attempt was stored but its answer was lost; the retry got the same payment.
        #expect(result.replayed)
        let rows = try await platform.pool.query(
          "SELECT payment_id FROM command.payments WHERE idempotency_key = \(result.idempotencyKey)")
        #expect(rows.count == 1)
        #expect(try rows.first?.decode(String.self, at: 0) == result.payment.id)
        let all = try await platform.pool.query("SELECT count(*) FROM command.payments")
        #expect(try all[0].decode(Int.self, at: 0) == 1)
      }
    }
  }

  @Test("every error path is a PaymentsError with the gRPC code, the message and field violations")
  func errors() async throws {
    try await withPlatform { platform in
      let key = try await platform.key()
      try await withPaymentsClient(configuration: sdkConfiguration(platform, key: key)) { client in
        // INVALID_ARGUMENT, with each bad field listed.
        let invalid = await sdkError {
          _ = try await client.submitPayment(
            PaymentOrder(
              amount: Money(minorUnits: 0, currency: "XXX"), payer: "acct_same", payee: "acct_same"))
        }
        #expect(invalid?.code == .invalidArgument)
        let fields = Set(invalid?.fieldViolations.map(\.field) ?? [])
        #expect(
          fields.isSuperset(of: ["amount.currency", "amount.amount_minor", "payee.account_id"]), "\(fields)")
        #expect(invalid?.fieldViolations.allSatisfy { !$0.description.isEmpty } == true)

        // ALREADY_EXISTS: the key again with another amount; not retried.
        _ = try await client.submitPayment(
          PaymentOrder(amount: try Money("1.00 EUR"), payer: "acct_a", payee: "acct_b", idempotencyKey: "k-1")
        )
        let reused = await sdkError {
          _ = try await client.submitPayment(
            PaymentOrder(
              amount: try Money("2.00 EUR"), payer: "acct_a", payee: "acct_b", idempotencyKey: "k-1"))
        }
        #expect(reused?.code == .alreadyExists)
        #expect(reused?.message.contains("k-1") == true)

        // NOT_FOUND by ID, by key, and for a watch.
        #expect(
          await sdkError { _ = try await client.payment(id: "pay_0190d5e9c5a07c1c9b6b5a8e3d2f1a0b") }?.code
            == .notFound)
        #expect(
          await sdkError { _ = try await client.payment(idempotencyKey: "nobody-used-this") }?.code
            == .notFound)
        #expect(
          await sdkError {
            for try await _ in client.watchPayment(id: "pay_0190d5e9c5a07c1c9b6b5a8e3d2f1a0b") {}
          }?.code == .notFound)

        // DEADLINE_EXCEEDED: no dispatcher runs, so nothing completes.
        let accepted = try await client.submitPayment(
          PaymentOrder(amount: try Money("3.00 EUR"), payer: "acct_a", payee: "acct_b"))
        let late = await sdkError {
          _ = try await client.waitForCompletion(id: accepted.payment.id, timeout: .seconds(1))
        }
        #expect(late?.code == .deadlineExceeded)
        #expect(late?.message.contains("ACCEPTED") == true, "\(late?.message ?? "")")
      }

      // UNAUTHENTICATED: a key that does not exist; not retried (it returns at once).
      try await withPaymentsClient(
        configuration: sdkConfiguration(platform, key: "pk_nokey_0000000000000000000000000000000000000000")
      ) { client in
        let denied = await sdkError {
          _ = try await client.submitPayment(
            PaymentOrder(amount: try Money("1.00 EUR"), payer: "a_1", payee: "a_2"))
        }
        #expect(denied?.code == .unauthenticated)
      }

      // UNAVAILABLE: nothing listens; retried until the submit timeout, then given up.
      var nowhere = sdkConfiguration(platform, key: key)
      nowhere.command = .init(host: "127.0.0.1", port: try freePort())
      nowhere.submitTimeout = .seconds(2)
      try await withPaymentsClient(configuration: nowhere) { client in
        let unavailable = await sdkError {
          _ = try await client.submitPayment(
            PaymentOrder(amount: try Money("1.00 EUR"), payer: "a_1", payee: "a_2"))
        }
        #expect(unavailable?.code == .unavailable)
        #expect(unavailable?.message.contains("gave up after") == true, "\(unavailable?.message ?? "")")
      }
    }
  }

  @Test("as a Service: runs until graceful shutdown, then its connections are closed")
  func asService() async throws {
    try await withPlatform { platform in
      let client = try PaymentsClient(
        configuration: sdkConfiguration(platform, key: try await platform.key()))
      let group = ServiceGroup(
        configuration: .init(services: [.init(service: client)], logger: Logger(label: "test")))
      try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await group.run() }
        _ = try await client.submitPayment(
          PaymentOrder(amount: try Money("1.00 EUR"), payer: "a_1", payee: "a_2"))
        await group.triggerGracefulShutdown()
        try await tasks.waitForAll()
      }
      let closed = await sdkError {
        _ = try await client.submitPayment(
          PaymentOrder(amount: try Money("1.00 EUR"), payer: "a_1", payee: "a_2"), timeout: .milliseconds(300)
        )
      }
      #expect(closed?.code == .unavailable)
    }
  }
}

/// The PaymentsError `body` throws (nil, and a recorded issue, when it throws something else).
func sdkError(_ body: () async throws -> Void) async -> PaymentsError? {
  do {
    try await body()
    return nil
  } catch let error as PaymentsError {
    return error
  } catch {
    Issue.record("not a PaymentsError: \(error)")
    return nil
  }
}
