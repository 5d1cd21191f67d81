import ArgumentParser
import Kafka
import QueryService

/// `payments query`: the query service.
struct QueryCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "query",
    abstract: "Run the query service (GetPayment, ListPayments, WatchPayment) and its projection.")

  @OptionGroup var service: ServiceOptions

  @Option(help: "The projection's Kafka consumer group.")
  var consumerGroup: String = "payments-query"

  func run() async throws {
    let logger = try service.logger("payments.query")
    var configuration = QueryServer.Configuration(
      databaseURL: try service.database(),
      consumer: KafkaConsumerConfiguration(
        client: KafkaClientConfiguration(bootstrapServers: try service.brokers(), clientID: "payments-query"),
        groupID: consumerGroup))
    configuration.transport = try service.transport(defaultPort: 50052)
    let server = QueryServer(configuration: configuration, logger: logger)
    try await runUntilSignalled(
      name: "query service", host: service.host, logger: logger, gracePeriod: try service.gracePeriod()
    ) { onListening in
      try await server.run(onListening: onListening)
    }
  }
}
