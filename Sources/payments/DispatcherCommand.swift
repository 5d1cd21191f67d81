import ArgumentParser
import DispatcherService
import Kafka
import PaymentsConfiguration
import PaymentsCore

/// `payments dispatcher`: executes payments against providers (any number of instances).
struct DispatcherCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "dispatcher",
    abstract: "Run a dispatcher: order intake, rate-limited provider calls with retries, domain events.",
    discussion: "Every option is also a configuration key (docs/configuration.md).")

  @OptionGroup var service: ServiceOptions

  @Option(help: "PostgreSQL connections of this instance.")
  var databaseConnections: Int?

  @Option(help: "Concurrent payments in this instance.")
  var workers: Int?

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

  @Option(help: "The provider for payments that name none and whose currency has no route.")
  var defaultProvider: String?

  @Option(
    name: .customLong("route"),
    help:
      "Currency routing, as CURRENCY=PROVIDER (repeatable): payments in that currency that name no provider go there."
  )
  var routes: [String] = []

  @Option(help: "Provider calls per second, shared by all instances (per provider).")
  var rateLimit: Int?

  @Option(
    name: .customLong("rate-limit-group"),
    help: "Providers that share one limit (one upstream account), as PROVIDER=GROUP (repeatable).")
  var rateLimitGroups: [String] = []

  @Option(
    help:
      "Seconds a claimed payment stays with an instance, from the claim and from each call's start; at least every provider's timeout plus 1 s."
  )
  var lease: Double?

  @Option(help: "Timeout of one provider call, in seconds.")
  var providerTimeout: Double?

  @Option(help: "Attempts before a transiently failing payment fails.")
  var maximumAttempts: Int?

  @Option(help: "Backoff: the longest wait after the first failed attempt, in seconds.")
  var retryBase: Double?

  @Option(help: "Backoff: how much the longest wait grows with each further attempt.")
  var retryFactor: Double?

  @Option(help: "Backoff: the longest wait there can be, in seconds.")
  var retryCap: Double?

  @Option(help: "Seconds after acceptance when an uncharged payment fails as expired (default: never).")
  var paymentExpiry: Double?

  @Option(help: "The intake's Kafka consumer group.")
  var consumerGroup: String?

  @Option(help: "Days published outbox rows are kept.")
  var outboxRetentionDays: Double?

  func run() async throws {
    let settings = try service.settings(ServiceConfigurationKeys.dispatcher)
    let server = ServerSettings(settings: settings, options: service)
    let logger = try server.logger("payments.dispatcher")
    let brokers = try server.brokers()
    var configuration = DispatcherServer.Configuration(
      databaseURL: try server.database(),
      consumer: KafkaConsumerConfiguration(
        client: KafkaClientConfiguration(bootstrapServers: brokers, clientID: "payments-dispatcher"),
        groupID: settings.string("consumer-group", flag: consumerGroup)!),
      producer: KafkaClientConfiguration(bootstrapServers: brokers, clientID: "payments-dispatcher"))
    configuration.transport = try server.transport()
    configuration.databaseConnections = try settings.integer(
      "database.connections", flag: databaseConnections, in: 4...1000)!
    configuration.workers = try settings.integer("workers", flag: workers, in: 1...1000)!
    configuration.rateLimiter.defaultLimit = try settings.integer(
      "rate-limit", flag: rateLimit, in: 1...100_000)!
    for entry in settings.list("rate-limit-groups", flag: rateLimitGroups) {
      let parts = entry.split(separator: "=", maxSplits: 1)
      guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
        throw settings.invalid(
          "rate-limit-groups", flag: rateLimitGroups, reason: "has '\(entry)'; expected PROVIDER=GROUP")
      }
      configuration.rateLimiter.groups[String(parts[0])] = String(parts[1])
    }
    let outboxDays = try settings.number(
      "retention.outbox-days", flag: outboxRetentionDays, in: 0.001...36500)!
    configuration.outboxRetention = .seconds(Int64(outboxDays * 86400))
    let leaseSeconds = try settings.number("lease", flag: lease, in: 0.1...86400)!
    configuration.lease = .milliseconds(Int64(leaseSeconds * 1000))
    let timeout = try settings.number("provider-timeout", flag: providerTimeout, in: 0.001...3600)!
    configuration.providerTimeout = .milliseconds(Int64(timeout * 1000))
    let defaultRetry = RetrySettings(
      base: try settings.number("retry.base", flag: retryBase)!,
      factor: try settings.number("retry.factor", flag: retryFactor)!,
      cap: try settings.number("retry.cap", flag: retryCap)!,
      maximumAttempts: try settings.integer("maximum-attempts", flag: maximumAttempts)!)
    configuration.retry = try RetryPolicy.validated(defaultRetry)
    if let expiry = try settings.number("payment-expiry", flag: paymentExpiry, in: 0.001...(365 * 86400)) {
      configuration.paymentExpiry = .milliseconds(Int64(expiry * 1000))
    }
    var sandboxProviders: [String: String] = [:]
    for provider in settings.list("providers", flag: providers) {
      let (name, url) = try Self.nameAndURL(provider, key: "providers", flag: providers, settings)
      sandboxProviders[name] = url
    }
    configuration.sandboxProviders = sandboxProviders
    for provider in settings.list("hmac-providers", flag: hmacProviders) {
      let (name, url) = try Self.nameAndURL(provider, key: "hmac-providers", flag: hmacProviders, settings)
      guard let secret = settings.string("hmac.secret"), !secret.isEmpty else {
        throw ConfigurationError(
          "configuration key 'hmac-providers' needs the signing secret: set PAYMENTS_HMAC_SECRET or 'hmac.secret' in the configuration file"
        )
      }
      configuration.hmacProviders[name] = HMACProviderSettings(baseURL: url, secret: secret)
    }
    var retrySettings: [String: RetrySettings] = [:]
    for setting in settings.list("provider-settings", flag: providerSettings) {
      let nameAndRest = setting.split(separator: ":", maxSplits: 1)
      let keyAndValue = nameAndRest.count == 2 ? nameAndRest[1].split(separator: "=", maxSplits: 1) : []
      guard nameAndRest.count == 2, keyAndValue.count == 2, let number = Double(keyAndValue[1]), number > 0
      else {
        throw settings.invalid(
          "provider-settings", flag: providerSettings,
          reason: "has '\(setting)'; expected NAME:KEY=VALUE with a positive number")
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
        throw settings.invalid(
          "provider-settings", flag: providerSettings,
          reason:
            "has '\(setting)'; KEY is rate-limit, timeout, max-attempts, retry-base, retry-factor or retry-cap"
        )
      }
      if retry != defaultRetry { retrySettings[name] = retry }
    }
    for (name, retry) in retrySettings {
      do {
        configuration.providerRetry[name] = try RetryPolicy.validated(retry)
      } catch let error as ConfigurationError {
        throw ConfigurationError("configuration key 'provider-settings' for provider '\(name)': \(error)")
      }
    }
    let defaultProvider = settings.string("default-provider", flag: defaultProvider)!
    configuration.defaultProvider = defaultProvider
    guard
      configuration.sandboxProviders[defaultProvider] != nil
        || configuration.hmacProviders[defaultProvider] != nil
    else {
      throw settings.invalid(
        "default-provider", flag: self.defaultProvider.map { [$0] },
        reason: "is not among the configured providers")
    }
    for route in settings.list("routes", flag: routes) {
      let parts = route.split(separator: "=", maxSplits: 1).map(String.init)
      guard parts.count == 2, Currency.named(parts[0]) != nil else {
        throw settings.invalid(
          "routes", flag: routes,
          reason: "has '\(route)'; expected CURRENCY=PROVIDER with a known ISO 4217 code, e.g. JPY=sandbox-jp"
        )
      }
      guard configuration.sandboxProviders[parts[1]] != nil || configuration.hmacProviders[parts[1]] != nil
      else {
        throw settings.invalid(
          "routes", flag: routes,
          reason: "routes \(parts[0]) to '\(parts[1])', which is not among the configured providers")
      }
      guard configuration.routes.updateValue(parts[1], forKey: parts[0]) == nil else {
        throw settings.invalid("routes", flag: routes, reason: "routes \(parts[0]) twice")
      }
    }
    do {
      try configuration.validate()
    } catch let error as DispatcherServer.InvalidConfiguration {
      throw ConfigurationError("configuration key 'lease': \(error)")
    }
    let dispatcher = DispatcherServer(configuration: configuration, logger: logger)
    try await server.run("dispatcher health", logger: logger) { try await dispatcher.run(onListening: $0) }
  }

  private static func nameAndURL(_ entry: String, key: String, flag: [String], _ settings: Settings) throws
    -> (String, String)
  {
    let parts = entry.split(separator: "=", maxSplits: 1)
    guard parts.count == 2, !parts[0].isEmpty, parts[1].hasPrefix("http") else {
      throw settings.invalid(key, flag: flag, reason: "has '\(entry)'; expected NAME=http://HOST:PORT")
    }
    return (String(parts[0]), String(parts[1]))
  }
}

/// Backoff settings as given on the command line, before validation.
struct RetrySettings: Equatable {
  var base: Double
  var factor: Double
  var cap: Double
  var maximumAttempts: Int
}

extension RetryPolicy {
  /// The policy, or an error naming the setting that is out of range.
  static func validated(_ settings: RetrySettings) throws -> RetryPolicy {
    let (base, factor, cap, maximumAttempts) = (
      settings.base, settings.factor, settings.cap, settings.maximumAttempts
    )
    guard base > 0 else {
      throw ConfigurationError("configuration key 'retry.base' must be positive (got \(base))")
    }
    guard factor >= 1 else {
      throw ConfigurationError("configuration key 'retry.factor' must be at least 1 (got \(factor))")
    }
    guard cap >= base else {
      throw ConfigurationError(
        "configuration key 'retry.cap' (\(cap) s) must be at least 'retry.base' (\(base) s)")
    }
    guard maximumAttempts >= 1 else {
      throw ConfigurationError(
        "configuration key 'maximum-attempts' must be at least 1 (got \(maximumAttempts))")
    }
    return RetryPolicy(
      base: .milliseconds(Int64(base * 1000)), factor: factor, cap: .milliseconds(Int64(cap * 1000)),
      maximumAttempts: maximumAttempts)
  }
}
