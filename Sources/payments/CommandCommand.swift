import ArgumentParser
import CommandService
import Kafka
import PaymentsConfiguration
import PaymentsCore
import RPCTransportHTTP2
import TLS

/// `payments command`: the command service.
struct CommandCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "command",
    abstract: "Run the command service (SubmitPayment) and its outbox relay.",
    discussion: "Every option is also a configuration key (docs/configuration.md).")

  @OptionGroup var service: ServiceOptions

  @Option(help: "The largest accepted amount_minor.")
  var maximumAmountMinor: Int64?

  @Option(name: .customLong("provider"), help: "A provider name requests may route to (repeatable).")
  var providers: [String] = []

  @Option(help: "Batches of payment orders written at the same time (group commit).")
  var batchWriters: Int?

  @Option(help: "The most payment orders in one batch.")
  var maximumBatchSize: Int?

  @Option(help: "PostgreSQL connections of this instance.")
  var databaseConnections: Int?

  @Flag(inversion: .prefixedNo, help: "Whether this instance runs an outbox relay.")
  var relay: Bool?

  @Option(help: "Days published outbox rows are kept.")
  var outboxRetentionDays: Double?

  @Option(
    help: "Days idempotency records are kept (at least 30); after that a key may be reused for a new payment."
  )
  var idempotencyRetentionDays: Double?

  @Option(help: "HOST:PORT of a dispatcher: its PaymentDispatcherService decides CancelPayment.")
  var dispatcherAddress: String?

  @Option(help: "PEM CA file to trust when calling the dispatcher over TLS (plaintext h2c without it).")
  var dispatcherTlsCa: String?

  @OptionGroup var authentication: AuthenticationOptions

  func run() async throws {
    let settings = try service.settings(ServiceConfigurationKeys.command)
    let server = ServerSettings(settings: settings, options: service)
    let logger = try server.logger("payments.command")
    var configuration = CommandServer.Configuration(
      databaseURL: try server.database(),
      kafka: KafkaClientConfiguration(bootstrapServers: try server.brokers(), clientID: "payments-command"))
    configuration.transport = try server.transport()
    (configuration.failedAuthenticationBurst, configuration.failedAuthenticationRefill) =
      try authentication.budget(settings)
    configuration.rules = PaymentOrderRules(
      maximumAmountMinor: Int64(
        try settings.integer(
          "maximum-amount-minor", flag: maximumAmountMinor.map { Int($0) }, in: 1...Int.max)!),
      knownProviders: Set(settings.list("providers", flag: providers)))
    configuration.runsRelay = try settings.boolean("relay", flag: relay)!
    let outboxDays = try settings.number(
      "retention.outbox-days", flag: outboxRetentionDays, in: 0.001...36500)!
    configuration.outboxRetention = .seconds(Int64(outboxDays * 86400))
    let idempotencyDays = try settings.number(
      "retention.idempotency-days", flag: idempotencyRetentionDays, in: 30...36500)!
    configuration.idempotencyRetention = .seconds(Int64(idempotencyDays * 86400))
    let batchWriters = try settings.integer("batch-writers", flag: batchWriters, in: 1...64)!
    configuration.store.concurrentBatches = batchWriters
    configuration.store.maximumBatchSize = try settings.integer(
      "maximum-batch-size", flag: maximumBatchSize, in: 1...10_000)!
    configuration.databaseConnections = try settings.integer(
      "database.connections", flag: databaseConnections, in: (batchWriters + 2)...1000)!
    configuration.dispatcher = try Self.dispatcher(
      address: settings.string("dispatcher.address", flag: dispatcherAddress)!,
      trusting: settings.string("dispatcher.tls-ca", flag: dispatcherTlsCa))
    let command = CommandServer(configuration: configuration, logger: logger)
    try await server.run("command service", logger: logger) { try await command.run(onListening: $0) }
  }
}

extension CommandCommand {
  /// Where the dispatcher is, and how to reach it.
  static func dispatcher(address: String, trusting caPath: String?) throws
    -> HTTP2ClientTransport.Configuration
  {
    guard let colon = address.lastIndex(of: ":"), colon != address.startIndex,
      let port = Int(address[address.index(after: colon)...]), (1...65535).contains(port)
    else {
      throw ConfigurationError("dispatcher.address must be HOST:PORT, not '\(address)'")
    }
    var host = String(address[..<colon])
    if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
    var configuration = HTTP2ClientTransport.Configuration(host: host, port: port)
    configuration.connectTimeout = .seconds(2)
    configuration.userAgent = "payments-command/1"
    if let caPath {
      do {
        configuration.tls = try TLSContext.client(trustedCertificatesPath: caPath)
      } catch {
        throw ConfigurationError("dispatcher.tls-ca: \(error)")
      }
    }
    return configuration
  }
}
