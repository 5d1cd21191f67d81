import ArgumentParser
import Glibc
import Kafka
import Logging
import PaymentsCore
import ServiceLifecycle
import UnixSignals

/// `payments broker`: the development Kafka broker (librdkafka's mock cluster, docs/design.md §9).
struct BrokerCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "broker",
    abstract: "Run a development Kafka cluster in memory (librdkafka's mock cluster).",
    discussion: """
      Prints bootstrap=HOST:PORT,... on standard output once the brokers listen, and keeps \
      running until SIGTERM or SIGINT. Data lives in memory only; for development and tests.
      """)

  @Option(help: "Number of brokers.")
  var brokers: Int = 3

  @Option(
    name: .customLong("topic"),
    help: "A topic to create, as NAME:PARTITIONS (repeatable). Default: the platform's topics.")
  var topics: [String] = []

  @Option(help: "Also write the bootstrap address to this file.")
  var bootstrapFile: String?

  func validate() throws {
    guard brokers >= 1 else { throw ValidationError("--brokers must be at least 1") }
    _ = try parsedTopics()
  }

  func parsedTopics() throws -> [String: Int] {
    guard !topics.isEmpty else {
      return [
        PaymentsTopic.orders: PaymentsTopic.defaultPartitions,
        PaymentsTopic.events: PaymentsTopic.defaultPartitions,
      ]
    }
    var result: [String: Int] = [:]
    for topic in topics {
      let parts = topic.split(separator: ":", omittingEmptySubsequences: false)
      guard parts.count == 2, !parts[0].isEmpty, let partitions = Int(parts[1]), partitions > 0 else {
        throw ValidationError("--topic '\(topic)': expected NAME:PARTITIONS, for example orders:6")
      }
      result[String(parts[0])] = partitions
    }
    return result
  }

  func run() async throws {
    LoggingSystem.bootstrap(StreamLogHandler.standardError)
    let logger = Logger(label: "payments.broker")
    let topics = try parsedTopics()
    let cluster = try MockKafkaCluster(brokers: brokers, topics: topics, logger: logger)
    let line = "bootstrap=\(cluster.bootstrapServers)"
    if let bootstrapFile {
      try writeFile(bootstrapFile, contents: cluster.bootstrapServers + "\n")
    }
    print(line)
    fflush(nil)
    logger.info(
      "development Kafka broker running",
      metadata: ["bootstrap": "\(cluster.bootstrapServers)", "topics": "\(topics)"])
    let group = ServiceGroup(
      configuration: .init(
        services: [.init(service: DevBroker(cluster: cluster))],
        gracefulShutdownSignals: [.sigterm, .sigint],
        logger: logger))
    try await group.run()
    logger.info("development Kafka broker stopped")
  }

  private func writeFile(_ path: String, contents: String) throws {
    // Write to a temporary name and rename, so a reader never sees a partial address.
    let temporary = path + ".tmp"
    guard let file = fopen(temporary, "w") else {
      throw ValidationError("cannot write --bootstrap-file \(path): \(String(cString: strerror(errno)))")
    }
    fputs(contents, file)
    fclose(file)
    guard rename(temporary, path) == 0 else {
      throw ValidationError("cannot write --bootstrap-file \(path): \(String(cString: strerror(errno)))")
    }
  }
}

/// Keeps the mock cluster alive until graceful shutdown.
struct DevBroker: Service {
  let cluster: MockKafkaCluster

  func run() async throws {
    try await gracefulShutdown()
    withExtendedLifetime(cluster) {}
  }
}
