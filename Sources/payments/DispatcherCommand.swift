import ArgumentParser
import DispatcherService
import Kafka
import PaymentsCore

/// `payments dispatcher`: executes payments against providers (any number of instances).
struct DispatcherCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "dispatcher",
    abstract: "Run a dispatcher: order intake, rate-limited provider calls with retries, domain events.")

  @OptionGroup var service: ServiceOptions

  @Option(help: "Concurrent payments in this instance.")
  var workers: Int = 4

  @Option(
    name: .customLong("provider"),
    help:
      "A provider with the sandbox API, as NAME=BASE_URL (repeatable). Default: sandbox=http://127.0.0.1:8090."
  )
  var providers: [String] = []

  @Option(
    name: .customLong("hmac-provider"),
    help:
      "A provider with the hmacpay API, as NAME=BASE_URL (repeatable); its secret from $PAYMENTS_HMAC_SECRET."
  )
  var hmacProviders: [String] = []

  @Option(
    name: .customLong("provider-setting"),
    help:
      "A per-provider setting, as NAME:KEY=VALUE (repeatable); KEY is rate-limit, timeout (seconds), max-attempts, retry-base (seconds), retry-factor or retry-cap (seconds)."
  )
  var providerSettings: [String] = []

  @Option(help: "The provider for payments that name none.")
  var defaultProvider: String = "sandbox"

  @Option(help: "Provider calls per second, shared by all instances (per provider).")
  var rateLimit: Int = 2

  @Option(
    help:
      "Rate limiter: milliseconds between a call's slot and its arrival at the provider that the schedule allows for."
  )
  var rateLimitMargin: Int = 100

  @Option(
    help: "Rate limiter: how many milliseconds after its slot a call may still start (less than the margin).")
  var rateLimitLateness: Int = 15

  @Option(help: "Timeout of one provider call, in seconds.")
  var providerTimeout: Double = 5

  @Option(help: "Attempts before a transiently failing payment fails.")
  var maximumAttempts: Int = RetryPolicy().maximumAttempts

  @Option(help: "Backoff: the longest wait after the first failed attempt, in seconds.")
  var retryBase: Double = RetryPolicy().base.seconds

  @Option(help: "Backoff: how much the longest wait grows with each further attempt.")
  var retryFactor: Double = RetryPolicy().factor

  @Option(help: "Backoff: the longest wait there can be, in seconds.")
  var retryCap: Double = RetryPolicy().cap.seconds

  @Option(help: "Seconds after acceptance when an uncharged payment fails as expired (default: never).")
  var paymentExpiry: Double?

  @Option(help: "The intake's Kafka consumer group.")
  var consumerGroup: String = "payments-dispatcher"

  func run() async throws {
    let logger = try service.logger("payments.dispatcher")
    let brokers = try service.brokers()
    var configuration = DispatcherServer.Configuration(
      databaseURL: try service.database(),
      consumer: KafkaConsumerConfiguration(
        client: KafkaClientConfiguration(bootstrapServers: brokers, clientID: "payments-dispatcher"),
        groupID: consumerGroup),
      producer: KafkaClientConfiguration(bootstrapServers: brokers, clientID: "payments-dispatcher"))
    configuration.transport = try service.transport(defaultPort: 50053)
    guard workers >= 1, rateLimit >= 1, maximumAttempts >= 1, providerTimeout > 0 else {
      throw ValidationError(
        "--workers, --rate-limit, --maximum-attempts and --provider-timeout must be positive")
    }
    configuration.workers = workers
    configuration.rateLimiter.defaultLimit = rateLimit
    guard rateLimitMargin > 0, rateLimitLateness > 0, rateLimitLateness < rateLimitMargin else {
      throw ValidationError("--rate-limit-lateness must be positive and less than --rate-limit-margin")
    }
    configuration.rateLimiter.margin = .milliseconds(rateLimitMargin)
    configuration.rateLimiter.lateness = .milliseconds(rateLimitLateness)
    configuration.providerTimeout = .milliseconds(Int64(providerTimeout * 1000))
    configuration.retry = try RetryPolicy.validated(
      base: retryBase, factor: retryFactor, cap: retryCap, maximumAttempts: maximumAttempts)
    if let paymentExpiry {
      guard paymentExpiry > 0 else { throw ValidationError("--payment-expiry must be positive") }
      configuration.paymentExpiry = .milliseconds(Int64(paymentExpiry * 1000))
    }
    if !providers.isEmpty {
      var parsed: [String: String] = [:]
      for provider in providers {
        let parts = provider.split(separator: "=", maxSplits: 1)
        guard parts.count == 2, !parts[0].isEmpty, parts[1].hasPrefix("http") else {
          throw ValidationError("--provider '\(provider)': expected NAME=http://HOST:PORT")
        }
        parsed[String(parts[0])] = String(parts[1])
      }
      configuration.sandboxProviders = parsed
    }
    for provider in hmacProviders {
      let parts = provider.split(separator: "=", maxSplits: 1)
      guard parts.count == 2, !parts[0].isEmpty, parts[1].hasPrefix("http") else {
        throw ValidationError("--hmac-provider '\(provider)': expected NAME=http://HOST:PORT")
      }
      guard let secret = ProcessInfoEnvironment.value("PAYMENTS_HMAC_SECRET"), !secret.isEmpty else {
        throw ValidationError("--hmac-provider needs the signing secret in PAYMENTS_HMAC_SECRET")
      }
      configuration.hmacProviders[String(parts[0])] = HMACProviderSettings(
        baseURL: String(parts[1]), secret: secret)
    }
    let defaultRetry = RetrySettings(
      base: retryBase, factor: retryFactor, cap: retryCap, maximumAttempts: maximumAttempts)
    var retrySettings: [String: RetrySettings] = [:]
    for setting in providerSettings {
      let nameAndRest = setting.split(separator: ":", maxSplits: 1)
      let keyAndValue = nameAndRest.count == 2 ? nameAndRest[1].split(separator: "=", maxSplits: 1) : []
      guard nameAndRest.count == 2, keyAndValue.count == 2, let number = Double(keyAndValue[1]), number > 0
      else {
        throw ValidationError(
          "--provider-setting '\(setting)': expected NAME:KEY=VALUE with a positive number")
      }
      let name = String(nameAndRest[0])
      var retry = retrySettings[name] ?? defaultRetry
      switch keyAndValue[0] {
      case "rate-limit": configuration.rateLimiter.limits[name] = Int(number)
      case "timeout": configuration.providerTimeouts[name] = .milliseconds(Int64(number * 1000))
      case "max-attempts": retry.maximumAttempts = Int(number)
      case "retry-base": retry.base = number
      case "retry-factor": retry.factor = number
      case "retry-cap": retry.cap = number
      default:
        throw ValidationError(
          "--provider-setting '\(setting)': KEY is rate-limit, timeout, max-attempts, retry-base, retry-factor or retry-cap"
        )
      }
      if retry != defaultRetry { retrySettings[name] = retry }
    }
    for (name, retry) in retrySettings {
      do {
        configuration.providerRetry[name] = try RetryPolicy.validated(
          base: retry.base, factor: retry.factor, cap: retry.cap, maximumAttempts: retry.maximumAttempts)
      } catch let error as ValidationError {
        throw ValidationError("--provider-setting for '\(name)': \(error.message)")
      }
    }
    configuration.defaultProvider = defaultProvider
    guard
      configuration.sandboxProviders[defaultProvider] != nil
        || configuration.hmacProviders[defaultProvider] != nil
    else {
      throw ValidationError("--default-provider '\(defaultProvider)' is not among the --provider entries")
    }
    let server = DispatcherServer(configuration: configuration, logger: logger)
    try await runUntilSignalled(
      name: "dispatcher health", host: service.host, logger: logger, gracePeriod: try service.gracePeriod()
    ) {
      onListening in
      try await server.run(onListening: onListening)
    }
  }
}

/// Backoff settings as given on the command line, before validation.
private struct RetrySettings: Equatable {
  var base: Double
  var factor: Double
  var cap: Double
  var maximumAttempts: Int
}

extension RetryPolicy {
  /// The policy, or an error naming the setting that is out of range.
  static func validated(base: Double, factor: Double, cap: Double, maximumAttempts: Int) throws -> RetryPolicy
  {
    guard base > 0 else { throw ValidationError("the retry base must be positive (got \(base))") }
    guard factor >= 1 else { throw ValidationError("the retry factor must be at least 1 (got \(factor))") }
    guard cap >= base else {
      throw ValidationError("the retry cap (\(cap) s) must be at least the retry base (\(base) s)")
    }
    guard maximumAttempts >= 1 else {
      throw ValidationError("the maximum attempts must be at least 1 (got \(maximumAttempts))")
    }
    return RetryPolicy(
      base: .milliseconds(Int64(base * 1000)), factor: factor, cap: .milliseconds(Int64(cap * 1000)),
      maximumAttempts: maximumAttempts)
  }
}

extension Duration {
  fileprivate var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
