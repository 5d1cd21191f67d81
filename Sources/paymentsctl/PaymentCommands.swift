import ArgumentParser
import Foundation
import PaymentsClient
import RPCCore

/// Where the platform is, for the payment shortcuts.
struct PlatformOptions: ParsableArguments {
  @Option(help: "The command service, HOST:PORT (default $PAYMENTS_COMMAND_ADDRESS or 127.0.0.1:50051).")
  var command: String?

  @Option(help: "The query service, HOST:PORT (default $PAYMENTS_QUERY_ADDRESS or 127.0.0.1:50052).")
  var query: String?

  @Flag(help: "Speak plaintext HTTP/2 (h2c) instead of TLS.")
  var plaintext = false

  @Option(help: "With TLS: trust the certificate authorities in this PEM file (default: the system's).")
  var cacert: String?

  @Option(
    name: .customLong("cert"),
    help: "With TLS: present this PEM client certificate (with --key), for services that require one.")
  var clientCertificate: String?

  @Option(name: .customLong("key"), help: "With TLS: the PEM private key of --cert.")
  var clientKey: String?

  @Option(help: "With TLS: the name the services' certificates must carry (default: the address's host).")
  var servername: String?

  /// The SDK's configuration; the API key comes from `PAYMENTS_API_KEY` (never a flag, so that it
  /// stays out of shell history and process lists).
  func configuration() throws -> PaymentsClient.Configuration {
    let environment = ProcessInfo.processInfo.environment
    guard let key = environment["PAYMENTS_API_KEY"], !key.isEmpty else {
      throw CtlError.other("set PAYMENTS_API_KEY to an API key (payments keys create)")
    }
    var configuration = PaymentsClient.Configuration(apiKey: key)
    configuration.command = try .init(command ?? environment["PAYMENTS_COMMAND_ADDRESS"] ?? "127.0.0.1:50051")
    configuration.query = try .init(query ?? environment["PAYMENTS_QUERY_ADDRESS"] ?? "127.0.0.1:50052")
    switch (plaintext, clientCertificate, clientKey) {
    case (true, _, _): configuration.transportSecurity = .plaintext
    case (false, let cert?, let key?):
      configuration.transportSecurity = .mutualTLS(
        trustedCertificatesPath: cacert, certificateChainPath: cert, privateKeyPath: key)
    case (false, nil, nil): configuration.transportSecurity = .tls(trustedCertificatesPath: cacert)
    default: throw CtlError.other("--cert and --key go together")
    }
    configuration.serverName = servername
    return configuration
  }

  /// Runs `body` with a client; a ``PaymentsError`` becomes exit status 64 + its code.
  func withClient(_ body: (PaymentsClient) async throws -> Void) async throws {
    try await reportingErrors {
      do {
        try await withPaymentsClient(configuration: try configuration()) { try await body($0) }
      } catch let error as PaymentsError {
        throw CtlError.rpc(error.code, error.message + violations(error))
      }
    }
  }

  private func violations(_ error: PaymentsError) -> String {
    error.fieldViolations.isEmpty
      ? "" : "\n" + error.fieldViolations.map { "  \($0.field): \($0.description)" }.joined(separator: "\n")
  }
}

/// `paymentsctl submit`.
struct SubmitCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "submit", abstract: "Submit a payment.")

  @Option(help: "The amount as a decimal, e.g. 12.34.") var amount: String
  @Option(help: "ISO 4217 currency code, e.g. EUR.") var currency: String
  @Option(help: "The payer's account.") var payer: String
  @Option(help: "The payee's account.") var payee: String
  @Option(help: "The idempotency key (default: a new UUID).") var idempotencyKey: String?
  @Option(help: "Free text.") var description: String = ""
  @Option(help: "A provider instead of the routing rules.") var provider: String?
  @Flag(help: "Wait until the payment is terminal; exit 1 if it FAILED or was CANCELED.") var wait = false
  @Option(help: "Seconds --wait waits.") var waitTimeout: Double = 120
  @OptionGroup var platform: PlatformOptions

  func run() async throws {
    try await platform.withClient { client in
      let money = try Money(amount: amount, currency: currency.uppercased())
      let submitted = try await client.submitPayment(
        PaymentOrder(
          amount: money, payer: payer, payee: payee, idempotencyKey: idempotencyKey, description: description,
          provider: provider))
      print(render(submitted.payment) + "\nreplayed: \(submitted.replayed)")
      guard wait else { return }
      let final = try await client.waitForCompletion(
        id: submitted.payment.id, timeout: .milliseconds(Int64(waitTimeout * 1000)))
      print("---\n" + render(final))
      if final.status == .failed || final.status == .canceled { throw ExitCode(1) }
    }
  }
}

/// `paymentsctl cancel ID`.
struct CancelCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "cancel",
    abstract: "Cancel a payment that has not been charged.",
    discussion: """
      Prints the payment, now CANCELED. Exits 64 + 9 (FAILED_PRECONDITION) when it was charged, \
      failed, or its charge is still undecided (the message says which).
      """)

  @Argument(help: "The payment ID (pay_…).") var id: String
  @OptionGroup var platform: PlatformOptions

  func run() async throws {
    try await platform.withClient { client in
      print(render(try await client.cancelPayment(id)))
    }
  }
}

/// `paymentsctl refund PAYMENT_ID --amount A` and `paymentsctl refund --get REFUND_ID`.
struct RefundCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "refund",
    abstract: "Refund part or all of a succeeded payment, or show a refund.",
    discussion: """
      Prints the refund (PENDING when new). Exits 64 + 9 (FAILED_PRECONDITION) when the payment \
      is not SUCCEEDED or the amount exceeds what is left to refund (the message names the \
      amounts). With --wait, waits until the refund is SUCCEEDED (exit 0) or FAILED (exit 1).
      """)

  @Argument(help: "The payment ID (pay_…) to refund.") var paymentID: String?
  @Option(help: "The amount to give back, as a decimal in the payment's currency, e.g. 2.50.") var amount:
    String?
  @Option(help: "The payment's ISO 4217 currency code, e.g. EUR.") var currency: String?
  @Option(help: "Free text.") var reason: String = ""
  @Option(help: "The idempotency key (default: a new UUID).") var idempotencyKey: String?
  @Option(name: .customLong("get"), help: "Show this refund (ref_…) instead of creating one.") var refundID:
    String?
  @Flag(help: "Wait until the refund is terminal; exit 1 if it FAILED.") var wait = false
  @Option(help: "Seconds --wait waits.") var waitTimeout: Double = 120
  @OptionGroup var platform: PlatformOptions

  func validate() throws {
    if refundID != nil {
      guard paymentID == nil, amount == nil, currency == nil, reason.isEmpty, idempotencyKey == nil else {
        throw ValidationError(
          "--get takes only the refund ID (no payment ID, --amount, --currency, --reason or --idempotency-key)"
        )
      }
    } else {
      guard paymentID != nil, amount != nil, currency != nil else {
        throw ValidationError("give a payment ID, --amount and --currency (or --get REFUND_ID)")
      }
    }
  }

  func run() async throws {
    try await platform.withClient { client in
      var refund: Refund
      if let refundID {
        refund = try await client.refund(id: refundID)
        print(render(refund))
      } else {
        let money = try Money(amount: amount!, currency: currency!.uppercased())
        let submitted = try await client.refundPayment(
          paymentID!, amount: money, reason: reason, idempotencyKey: idempotencyKey)
        refund = submitted.refund
        print(render(refund) + "\nreplayed: \(submitted.replayed)")
      }
      guard wait else { return }
      let clock = ContinuousClock()
      let end = clock.now + .milliseconds(Int64(waitTimeout * 1000))
      while !refund.status.isTerminal {
        guard clock.now < end else {
          throw CtlError.rpc(
            .deadlineExceeded, "refund \(refund.id) is still \(refund.status.rawValue) after \(waitTimeout) s"
          )
        }
        try await Task.sleep(for: .milliseconds(200))
        do {
          refund = try await client.refund(id: refund.id)
        } catch let error as PaymentsError where error.code == .notFound {
          continue  // not in the read model yet
        }
      }
      print("---\n" + render(refund))
      if refund.status == .failed { throw ExitCode(1) }
    }
  }
}

/// `paymentsctl get ID`.
struct GetCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "get", abstract: "Show a payment, by ID or idempotency key.")

  @Argument(help: "The payment ID (pay_…).") var id: String?
  @Option(help: "Look the payment up by its idempotency key instead.") var idempotencyKey: String?
  @OptionGroup var platform: PlatformOptions

  func validate() throws {
    guard (id == nil) != (idempotencyKey == nil) else {
      throw ValidationError("give a payment ID or --idempotency-key")
    }
  }

  func run() async throws {
    try await platform.withClient { client in
      let payment =
        if let id { try await client.payment(id: id) } else {
          try await client.payment(idempotencyKey: idempotencyKey!)
        }
      print(render(payment))
    }
  }
}

/// `paymentsctl list-payments`.
struct ListPaymentsCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "list-payments", abstract: "List payments, newest first, one line each.")

  @Option(
    help: "Only this status (repeatable): ACCEPTED, PROCESSING, RETRY_SCHEDULED, SUCCEEDED, FAILED, CANCELED."
  )
  var status: [String] = []
  @Option(help: "Only payments created at or after this time (ISO 8601, e.g. 2026-11-29T10:00:00Z).")
  var since: String?
  @Option(help: "At most this many payments.") var limit: Int = 100
  @OptionGroup var platform: PlatformOptions

  func run() async throws {
    var statuses: Set<PaymentStatus> = []
    for name in status {
      guard let parsed = PaymentStatus(rawValue: name.uppercased()), parsed != .unknown else {
        throw ValidationError("--status '\(name)' is not a payment status")
      }
      statuses.insert(parsed)
    }
    var after: Date?
    if let since {
      guard let date = ISO8601DateFormatter().date(from: since) else {
        throw ValidationError("--since '\(since)' is not an ISO 8601 time like 2026-11-29T10:00:00Z")
      }
      after = date
    }
    let filter = PaymentFilter(statuses: statuses, createdAfter: after, pageSize: min(limit, 100))
    try await platform.withClient { client in
      var count = 0
      for try await payment in client.payments(filter: filter) {
        guard count < limit else { break }
        count += 1
        print(
          [
            payment.id, payment.status.rawValue, payment.amount.description, payment.idempotencyKey,
            ISO8601DateFormatter().string(from: payment.createdAt),
          ].joined(separator: "  "))
      }
    }
  }
}

/// `paymentsctl watch ID`.
struct WatchCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "watch",
    abstract: "Print each state of a payment as it changes, until a terminal one.")

  @Argument(help: "The payment ID.") var id: String
  @OptionGroup var platform: PlatformOptions

  func run() async throws {
    try await platform.withClient { client in
      for try await payment in client.watchPayment(id: id) {
        var line =
          "\(ISO8601DateFormatter().string(from: payment.updatedAt))  \(payment.id)  v\(payment.version)  \(payment.status.rawValue)"
        if let failure = payment.failure { line += "  \(failure.code): \(failure.message)" }
        if !payment.providerReference.isEmpty { line += "  \(payment.providerReference)" }
        print(line)
        fflush(nil)
      }
    }
  }
}

/// `paymentsctl events [--after CURSOR] [--follow]`.
struct EventsCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "events",
    abstract: "Print the event feed: every change of your payments, one line each, oldest first.",
    discussion: """
      Each line starts with the event's cursor; pass the last one as --after to continue behind \
      it. With --follow the command keeps printing new events until interrupted (reconnecting \
      by itself); without it, it prints what is there and ends.
      """)

  @Option(help: "Continue after this cursor (default: the oldest event still kept).") var after: String = ""
  @Flag(help: "Keep printing new events as they happen.") var follow = false
  @Option(help: "Without --follow: print at most this many events.") var limit: Int = 1000
  @OptionGroup var platform: PlatformOptions

  func run() async throws {
    try await platform.withClient { client in
      if follow {
        for try await event in client.watchEvents(after: after) { Self.print(event) }
        return
      }
      var cursor = after
      var printed = 0
      while printed < limit {
        let (events, next) = try await client.events(after: cursor, pageSize: min(500, limit - printed))
        guard !events.isEmpty else { break }
        for event in events { Self.print(event) }
        printed += events.count
        cursor = next
      }
    }
  }

  static func print(_ event: PaymentEvent) {
    let payment = event.payment
    var line =
      "\(event.cursor)  \(ISO8601DateFormatter().string(from: event.recordedAt))  \(payment.id)  v\(payment.version)  \(payment.status.rawValue)  \(payment.amount)"
    if let failure = payment.failure { line += "  \(failure.code): \(failure.message)" }
    Swift.print(line)
    fflush(nil)
  }
}

/// A payment, one `key: value` per line.
func render(_ payment: Payment) -> String {
  var lines = [
    "payment_id: \(payment.id)", "status: \(payment.status.rawValue)", "amount: \(payment.amount)",
    "payer: \(payment.payer)", "payee: \(payment.payee)", "idempotency_key: \(payment.idempotencyKey)",
    "provider: \(payment.provider)", "attempts: \(payment.attempts)", "version: \(payment.version)",
    "created_at: \(ISO8601DateFormatter().string(from: payment.createdAt))",
    "updated_at: \(ISO8601DateFormatter().string(from: payment.updatedAt))",
  ]
  if !payment.providerReference.isEmpty { lines.append("provider_reference: \(payment.providerReference)") }
  if let failure = payment.failure { lines.append("failure: \(failure.code): \(failure.message)") }
  if !payment.refunds.isEmpty {
    lines.append("refunded: \(payment.refunded)")
    for refund in payment.refunds {
      lines.append("refund: \(refund.id) \(refund.status.rawValue) \(refund.amount)")
    }
  }
  return lines.joined(separator: "\n")
}

func render(_ refund: Refund) -> String {
  var lines = [
    "refund_id: \(refund.id)", "payment_id: \(refund.paymentID)", "status: \(refund.status.rawValue)",
    "amount: \(refund.amount)", "idempotency_key: \(refund.idempotencyKey)", "attempts: \(refund.attempts)",
    "created_at: \(ISO8601DateFormatter().string(from: refund.createdAt))",
    "updated_at: \(ISO8601DateFormatter().string(from: refund.updatedAt))",
  ]
  if !refund.reason.isEmpty { lines.append("reason: \(refund.reason)") }
  if !refund.providerReference.isEmpty { lines.append("provider_reference: \(refund.providerReference)") }
  if let failure = refund.failure { lines.append("failure: \(failure.code): \(failure.message)") }
  return lines.joined(separator: "\n")
}
