import Foundation
import PaymentsCore
import PaymentsProto
import PaymentsTestSupport
import Postgres
import ProtobufRuntime
import QueryService
import RPCCore
import Testing

@Suite("SubmitPayment validation")
struct ValidationTests {
  /// One broken request: what to change, and the field the error must name.
  struct Case: Sendable, CustomTestStringConvertible {
    var name: String
    var field: String
    var change: @Sendable (inout Payments_V1_SubmitPaymentRequest) -> Void
    var testDescription: String { name }
  }

  static let cases: [Case] = [
    Case(name: "no idempotency key", field: "idempotency_key") { $0.idempotencyKey = "" },
    Case(name: "256-character key", field: "idempotency_key") {
      $0.idempotencyKey = String(repeating: "k", count: 256)
    },
    Case(name: "key with a space", field: "idempotency_key") { $0.idempotencyKey = "order 1" },
    Case(name: "key with non-ASCII", field: "idempotency_key") { $0.idempotencyKey = "заказ-1" },
    Case(name: "key with a control character", field: "idempotency_key") { $0.idempotencyKey = "a\u{7}b" },
    Case(name: "no amount", field: "amount") { $0.amount = nil },
    Case(name: "no currency", field: "amount.currency") { $0.amount?.currency = "" },
    Case(name: "unknown currency", field: "amount.currency") { $0.amount?.currency = "ABC" },
    Case(name: "no-currency code XXX", field: "amount.currency") { $0.amount?.currency = "XXX" },
    Case(name: "test code XTS", field: "amount.currency") { $0.amount?.currency = "XTS" },
    Case(name: "gold XAU", field: "amount.currency") { $0.amount?.currency = "XAU" },
    Case(name: "withdrawn HRK", field: "amount.currency") { $0.amount?.currency = "HRK" },
    Case(name: "lower-case code", field: "amount.currency") { $0.amount?.currency = "eur" },
    Case(name: "zero amount", field: "amount.amount_minor") { $0.amount?.amountMinor = 0 },
    Case(name: "negative amount", field: "amount.amount_minor") { $0.amount?.amountMinor = -100 },
    Case(name: "amount above the maximum", field: "amount.amount_minor") {
      $0.amount?.amountMinor = 1_000_000_001
    },
    Case(name: "no payer", field: "payer") { $0.payer = nil },
    Case(name: "no payee", field: "payee") { $0.payee = nil },
    Case(name: "empty payer account", field: "payer.account_id") { $0.payer?.accountID = "" },
    Case(name: "65-character payee account", field: "payee.account_id") {
      $0.payee?.accountID = String(repeating: "a", count: 65)
    },
    Case(name: "payer pays itself", field: "payee.account_id") { $0.payee?.accountID = $0.payer!.accountID },
    Case(name: "501-character description", field: "description") {
      $0.description = String(repeating: "d", count: 501)
    },
    Case(name: "21 metadata entries", field: "metadata") {
      $0.metadata = Dictionary(uniqueKeysWithValues: (0..<21).map { ("k\($0)", "v") })
    },
    Case(name: "41-character metadata key", field: "metadata") {
      $0.metadata = [String(repeating: "k", count: 41): "v"]
    },
    Case(name: "501-character metadata value", field: "metadata[note]") {
      $0.metadata = ["note": String(repeating: "v", count: 501)]
    },
    Case(name: "unknown provider", field: "provider") { $0.provider = "nope" },
    // Limits count Unicode code points, not grapheme clusters: one "character" of 1.2 MB (an
    // "a" and 600,000 combining marks) would otherwise be accepted and refused by Kafka forever.
    Case(name: "1.2 MB of combining marks in one character", field: "description") {
      $0.description = "a" + String(repeating: "\u{301}", count: 600_000)
    },
    Case(name: "one character of 201 code points in a name", field: "payer.name") {
      $0.payer?.name = "a" + String(repeating: "\u{301}", count: 200)
    },
    Case(name: "an account of 65 code points", field: "payee.account_id") {
      $0.payee?.accountID = "e" + String(repeating: "\u{301}", count: 64)
    },
    Case(name: "a metadata value of 501 code points", field: "metadata[note]") {
      $0.metadata = ["note": "v" + String(repeating: "\u{301}", count: 500)]
    },
  ]

  @Test("each broken rule gives INVALID_ARGUMENT naming the field, and stores nothing")
  func everyRule() async throws {
    try await withPlatform(PlatformOptions(runQuery: false)) { platform in
      let client = platform.commandClient(try await platform.key())
      defer { client.close() }
      for rule in Self.cases {
        var request = validRequest()
        rule.change(&request)
        let error = await rpcError {
          try await client.client.submitPayment(request, metadata: client.metadata)
        }
        #expect(
          error?.code == .invalidArgument, "\(rule.name): \(error.map { String(describing: $0) } ?? "")")
        #expect(error?.message.contains(rule.field + ":") == true, "\(rule.name): \(error?.message ?? "")")
      }
      let stored = try await platform.pool.query("SELECT count(*) FROM command.payments")
      #expect(try stored[0].decode(Int64.self, at: 0) == 0)
      let outbox = try await platform.pool.query("SELECT count(*) FROM command.outbox")
      #expect(try outbox[0].decode(Int64.self, at: 0) == 0)
    }
  }

  @Test("one error names every bad field")
  func everyField() async throws {
    try await withPlatform(PlatformOptions(runQuery: false)) { platform in
      let client = platform.commandClient(try await platform.key())
      defer { client.close() }
      var request = validRequest(key: "bad key")
      request.amount = .with {
        $0.currency = "ZZZ"
        $0.amountMinor = 0
      }
      request.payee = nil
      request.provider = "nope"
      let error = await rpcError { try await client.client.submitPayment(request, metadata: client.metadata) }
      #expect(error?.code == .invalidArgument)
      for field in ["idempotency_key:", "amount.currency:", "amount.amount_minor:", "payee:", "provider:"] {
        #expect(error?.message.contains(field) == true, "\(field) in \(error?.message ?? "")")
      }
    }
  }

  @Test("requests at every limit are accepted")
  func limitsAreInclusive() async throws {
    try await withPlatform(PlatformOptions(runQuery: false)) { platform in
      let client = platform.commandClient(try await platform.key())
      defer { client.close() }
      var request = validRequest(key: String(repeating: "~", count: 254) + "!")
      request.amount = .with {
        $0.currency = "JPY"
        $0.amountMinor = 1_000_000_000
      }
      request.payer?.accountID = String(repeating: "p", count: 64)
      request.payee?.accountID = "é"
      request.description = String(repeating: "ü", count: 500)
      request.metadata = Dictionary(
        uniqueKeysWithValues: (0..<20).map {
          (String(format: "%040d", $0), String(repeating: "v", count: 500))
        })
      request.provider = "hmacpay"
      let response = try await client.client.submitPayment(request, metadata: client.metadata)
      #expect(response.payment?.status == .accepted)
      #expect(response.payment?.amount?.currency == "JPY")
    }
  }

  @Test("the currency table has ISO 4217 exponents and no non-currencies")
  func currencyTable() {
    #expect(Currency.named("EUR")?.exponent == 2)
    #expect(Currency.named("JPY")?.exponent == 0)
    #expect(Currency.named("BHD")?.exponent == 3)
    #expect(Currency.named("KWD")?.exponent == 3)
    #expect(Currency.named("CLP")?.exponent == 0)
    #expect(Currency.named("XOF")?.exponent == 0)
    for code in ["XXX", "XTS", "XAU", "XAG", "XPT", "XPD", "XDR", "XBA", "XSU", "XUA", "CLF", "USN", "HRK"] {
      #expect(Currency.named(code) == nil, "\(code)")
    }
    #expect(Currency.all.count > 150)
    #expect(Currency.all.allSatisfy { $0.code.count == 3 && $0.code == $0.code.uppercased() })
  }

  @Test("payment IDs are well-formed and sort by creation time")
  func paymentIDs() {
    let early = PaymentID.generate(at: Date(timeIntervalSince1970: 1_700_000_000))
    let late = PaymentID.generate(at: Date(timeIntervalSince1970: 1_700_000_001))
    #expect(PaymentID.isWellFormed(early))
    #expect(early < late)
    #expect(!PaymentID.isWellFormed("pay_xyz"))
    #expect(Set((0..<1000).map { _ in PaymentID.generate() }).count == 1000)
  }
}
