import ArgumentParser
import Logging
import PaymentsConfiguration
import ProviderSandbox

/// `payments provider-sandbox`: a simulated external payment provider (docs/design.md §8).
struct ProviderSandboxCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "provider-sandbox",
    abstract:
      "Run the provider sandbox: a Stripe-like HTTP/JSON provider with rate limit and failure injection.",
    discussion: "Every option is also a configuration key (docs/configuration.md).")

  @Option(
    help: ArgumentHelp(
      "A configuration file (.yaml, .yml or .json); also $PAYMENTS_CONFIG.", valueName: "path"))
  var config: String?

  @Option(help: "Address to listen on.")
  var host: String?

  @Option(help: "Port (0 picks a free port; the bound port is printed).")
  var port: Int?

  @Option(
    help: "Calls per second it accepts (charges, refunds, lookups); more get 429 and count as violations.")
  var rateLimit: Int?

  @Option(help: "Share of charge requests that fail with 500 (0...1).")
  var internalErrorRate: Double?

  @Option(help: "Share of charge requests that fail with 503 (0...1).")
  var unavailableRate: Double?

  @Option(help: "Share of charges that are made and then answered with 500 or 502 (0...1).")
  var errorAfterChargeRate: Double?

  @Flag(
    inversion: .prefixedNo,
    help: "A repeated Idempotency-Key charges again (as some real providers do). Default: off.")
  var nonIdempotent: Bool?

  @Option(help: "Share of charges whose reply is held back past any client timeout (0...1).")
  var lostResponseRate: Double?

  @Option(help: "How long a lost reply is held, in seconds.")
  var lostResponseSeconds: Double?

  @Option(help: "Share of charges answered slowly (0...1).")
  var slowRate: Double?

  @Option(help: "How long a slow reply takes, in seconds.")
  var slowSeconds: Double?

  @Option(help: "An amount (minor units) that is always declined (repeatable). Default: 402 and 40402.")
  var declineAmount: [Int64] = []

  @Option(help: "Seed of the failure injection.")
  var seed: UInt64?

  func run() async throws {
    LoggingSystem.bootstrap(StreamLogHandler.standardError)
    var logger = Logger(label: "payments.provider-sandbox")
    logger.logLevel = .warning
    let settings = try processSettings(ServiceConfigurationKeys.providerSandbox, config: config)
    var configuration = ProviderSandbox.Configuration()
    let host = settings.string("host", flag: self.host)!
    configuration.host = host
    configuration.port = try settings.integer("port", flag: port, in: 0...65535)!
    configuration.rateLimit = try settings.integer("rate-limit", flag: rateLimit, in: 1...100_000)!
    configuration.internalErrorRate = try settings.number(
      "internal-error-rate", flag: internalErrorRate, in: 0...1)!
    configuration.unavailableRate = try settings.number("unavailable-rate", flag: unavailableRate, in: 0...1)!
    configuration.errorAfterChargeRate = try settings.number(
      "error-after-charge-rate", flag: errorAfterChargeRate, in: 0...1)!
    configuration.nonIdempotent = try settings.boolean("non-idempotent", flag: nonIdempotent)!
    configuration.lostResponseRate = try settings.number(
      "lost-response-rate", flag: lostResponseRate, in: 0...1)!
    let lostSeconds = try settings.number("lost-response-seconds", flag: lostResponseSeconds, in: 0...3600)!
    configuration.lostResponseDelay = .milliseconds(Int64(lostSeconds * 1000))
    configuration.slowRate = try settings.number("slow-rate", flag: slowRate, in: 0...1)!
    let slow = try settings.number("slow-seconds", flag: slowSeconds, in: 0...3600)!
    configuration.slowDelay = .milliseconds(Int64(slow * 1000))
    var declined: Set<Int64> = []
    for amount in settings.list("decline-amounts", flag: declineAmount.map(String.init)) {
      guard let value = Int64(amount), value > 0 else {
        throw settings.invalid(
          "decline-amounts", flag: declineAmount.map(String.init),
          reason: "has '\(amount)', which is not a positive amount")
      }
      declined.insert(value)
    }
    configuration.declinedAmounts = declined
    let seed = try settings.integer("seed", flag: seed.map { Int(truncatingIfNeeded: $0) }, in: 0...Int.max)!
    configuration.seed = UInt64(seed)
    let sandbox = ProviderSandbox(configuration: configuration, logger: logger)
    try await runUntilSignalled(
      name: "provider sandbox", host: host, logger: logger, handlesGracefulShutdown: false
    ) { onListening in
      try await sandbox.run(onListening: onListening)
    }
  }
}
