import ArgumentParser
import Kafka
import PaymentsConfiguration
import QueryService

/// `payments query`: the query service.
struct QueryCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "query",
    abstract: "Run the query service (GetPayment, ListPayments, WatchPayment) and its projection.",
    discussion: "Every option is also a configuration key (docs/configuration.md).")

  @OptionGroup var service: ServiceOptions

  @Option(help: "PostgreSQL connections of this instance.")
  var databaseConnections: Int?

  @Option(help: "The projection's Kafka consumer group.")
  var consumerGroup: String?

  @Option(help: "WatchPayment and WatchEvents streams one client may have open at once on this instance.")
  var maximumWatchesPerClient: Int?

  @Option(help: "Days the event feed keeps an event (at least 1).")
  var eventRetentionDays: Double?

  @OptionGroup var authentication: AuthenticationOptions

  func run() async throws {
    let settings = try service.settings(ServiceConfigurationKeys.query)
    let server = ServerSettings(settings: settings, options: service)
    let logger = try server.logger("payments.query")
    var configuration = QueryServer.Configuration(
      databaseURL: try server.database(),
      consumer: KafkaConsumerConfiguration(
        client: KafkaClientConfiguration(bootstrapServers: try server.brokers(), clientID: "payments-query"),
        groupID: settings.string("consumer-group", flag: consumerGroup)!))
    configuration.transport = try server.transport()
    (configuration.failedAuthenticationBurst, configuration.failedAuthenticationRefill) =
      try authentication.budget(settings)
    configuration.databaseConnections = try settings.integer(
      "database.connections", flag: databaseConnections, in: 2...1000)!
    configuration.handler.maximumWatchesPerClient = try settings.integer(
      "maximum-watches-per-client", flag: maximumWatchesPerClient, in: 1...1_000_000)!
    let eventDays = try settings.number("retention.events-days", flag: eventRetentionDays, in: 1...36500)!
    configuration.eventRetention = .seconds(Int64(eventDays * 86400))
    let query = QueryServer(configuration: configuration, logger: logger)
    try await server.run("query service", logger: logger) { try await query.run(onListening: $0) }
  }
}
