public import Kafka
public import Logging

/// Dev-broker helpers for tests: each test starts its own in-process mock cluster, so tests
/// are isolated and can inject faults freely.
public enum TestKafka {
  /// A mock cluster with the given topics (name → partitions).
  public static func makeCluster(brokers: Int = 1, topics: [String: Int]) throws -> MockKafkaCluster {
    try MockKafkaCluster(brokers: brokers, topics: topics, logger: quietLogger("test-kafka-broker"))
  }

  /// Client settings for `cluster`.
  public static func client(_ cluster: MockKafkaCluster, id: String = "test") -> KafkaClientConfiguration {
    KafkaClientConfiguration(bootstrapServers: [cluster.bootstrapServers], clientID: id)
  }

  /// Consumer settings with short group timeouts, so that rebalances take seconds, not ~45 s.
  public static func consumer(_ cluster: MockKafkaCluster, group: String, id: String = "test")
    -> KafkaConsumerConfiguration
  {
    KafkaConsumerConfiguration(
      client: client(cluster, id: id), groupID: group, sessionTimeout: .seconds(6),
      heartbeatInterval: .milliseconds(300))
  }
}

/// A logger that only prints warnings and errors.
public func quietLogger(_ label: String) -> Logger {
  // Standard error is unbuffered, so nothing is lost when a test process is killed.
  var logger = Logger(label: label) { StreamLogHandler.standardError(label: $0) }
  logger.logLevel = .warning
  return logger
}
