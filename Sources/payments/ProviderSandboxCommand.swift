import ArgumentParser
import Logging
import ProviderSandbox

/// `payments provider-sandbox`: a simulated external payment provider (ARCHITECTURE.md §8).
struct ProviderSandboxCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "provider-sandbox",
    abstract:
      "Run the provider sandbox: a Stripe-like HTTP/JSON provider with rate limit and failure injection.")

  @Option(help: "Address to listen on.")
  var host: String = "127.0.0.1"

  @Option(help: "Port (0 picks a free port; the bound port is printed).")
  var port: Int = 8090

  @Option(help: "Calls per second it accepts on /v1/charges; more get 429 and count as violations.")
  var rateLimit: Int = 2

  @Option(help: "Share of charge requests that fail with 500 (0...1).")
  var internalErrorRate: Double = 0

  @Option(help: "Share of charge requests that fail with 503 (0...1).")
  var unavailableRate: Double = 0

  @Option(help: "Share of charges whose reply is held back past any client timeout (0...1).")
  var lostResponseRate: Double = 0

  @Option(help: "How long a lost reply is held, in seconds.")
  var lostResponseSeconds: Double = 30

  @Option(help: "Share of charges answered slowly (0...1).")
  var slowRate: Double = 0

  @Option(help: "How long a slow reply takes, in seconds.")
  var slowSeconds: Double = 3

  @Option(help: "An amount (minor units) that is always declined (repeatable). Default: 402 and 40402.")
  var declineAmount: [Int64] = []

  @Option(help: "Seed of the failure injection.")
  var seed: UInt64 = 1

  func validate() throws {
    for (name, rate) in [
      ("--internal-error-rate", internalErrorRate), ("--unavailable-rate", unavailableRate),
      ("--lost-response-rate", lostResponseRate), ("--slow-rate", slowRate),
    ] where !(0...1).contains(rate) {
      throw ValidationError("\(name) must be between 0 and 1")
    }
    guard rateLimit >= 1 else { throw ValidationError("--rate-limit must be at least 1") }
  }

  func run() async throws {
    LoggingSystem.bootstrap(StreamLogHandler.standardError)
    var logger = Logger(label: "payments.provider-sandbox")
    logger.logLevel = .warning
    var configuration = ProviderSandbox.Configuration()
    configuration.host = host
    configuration.port = port
    configuration.rateLimit = rateLimit
    configuration.internalErrorRate = internalErrorRate
    configuration.unavailableRate = unavailableRate
    configuration.lostResponseRate = lostResponseRate
    configuration.lostResponseDelay = .milliseconds(Int64(lostResponseSeconds * 1000))
    configuration.slowRate = slowRate
    configuration.slowDelay = .milliseconds(Int64(slowSeconds * 1000))
    if !declineAmount.isEmpty { configuration.declinedAmounts = Set(declineAmount) }
    configuration.seed = seed
    let sandbox = ProviderSandbox(configuration: configuration, logger: logger)
    let host = self.host
    try await runUntilSignalled(
      name: "provider sandbox", host: host, logger: logger, handlesGracefulShutdown: false
    ) { onListening in
      try await sandbox.run(onListening: onListening)
    }
  }
}
