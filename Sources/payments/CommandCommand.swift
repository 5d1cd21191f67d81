import ArgumentParser
import CommandService
import Kafka
import PaymentsCore

/// `payments command`: the command service.
struct CommandCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "command",
    abstract: "Run the command service (SubmitPayment) and its outbox relay.")

  @OptionGroup var service: ServiceOptions

  @Option(help: "The largest accepted amount_minor.")
  var maximumAmountMinor: Int64 = PaymentOrderRules().maximumAmountMinor

  @Option(
    name: .customLong("provider"),
    help: "A provider name requests may route to (repeatable). Default: sandbox.")
  var providers: [String] = []

  @Option(help: "Batches of payment orders written at the same time (group commit).")
  var batchWriters: Int = PaymentOrderStore.Configuration().concurrentBatches

  @Option(help: "The most payment orders in one batch.")
  var maximumBatchSize: Int = PaymentOrderStore.Configuration().maximumBatchSize

  @Option(help: "PostgreSQL connections of this instance.")
  var databaseConnections: Int = 16

  @Flag(help: "Do not run an outbox relay in this instance.")
  var noRelay = false

  func run() async throws {
    let logger = try service.logger("payments.command")
    var configuration = CommandServer.Configuration(
      databaseURL: try service.database(),
      kafka: KafkaClientConfiguration(bootstrapServers: try service.brokers(), clientID: "payments-command"))
    configuration.transport = try service.transport(defaultPort: 50051)
    configuration.rules = PaymentOrderRules(
      maximumAmountMinor: maximumAmountMinor, knownProviders: Set(providers.isEmpty ? ["sandbox"] : providers)
    )
    configuration.runsRelay = !noRelay
    guard batchWriters >= 1, maximumBatchSize >= 1, databaseConnections >= batchWriters + 2 else {
      throw ValidationError(
        "--batch-writers and --maximum-batch-size must be at least 1, and --database-connections at least --batch-writers + 2"
      )
    }
    configuration.store.concurrentBatches = batchWriters
    configuration.store.maximumBatchSize = maximumBatchSize
    configuration.databaseConnections = databaseConnections
    let server = CommandServer(configuration: configuration, logger: logger)
    try await runUntilSignalled(
      name: "command service", host: service.host, logger: logger, gracePeriod: try service.gracePeriod()
    ) { onListening in
      try await server.run(onListening: onListening)
    }
  }
}
