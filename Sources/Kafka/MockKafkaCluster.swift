import CRDKafka
import CRDKafkaShim
public import Logging

/// A Kafka cluster for development and tests: librdkafka's built-in mock cluster
/// (`rdkafka_mock.h`), which speaks the real Kafka protocol over TCP on loopback.
///
/// It keeps data in memory only and does not enforce transactions. Production points the same
/// producer and consumer code at a real cluster. Faults can be injected to test recovery: brokers
/// going down and up, request errors, latency.
public final class MockKafkaCluster: Sendable {
  private let host: RDKafkaClient
  private let cluster: ClusterHandle
  /// The comma-separated `host:port` list that clients use as `bootstrap.servers`.
  public let bootstrapServers: String
  /// The number of brokers; their ids are `1...brokerCount`.
  public let brokerCount: Int

  /// `rd_kafka_mock_cluster_t *`; the mock API serializes calls through the cluster's own thread.
  private struct ClusterHandle: @unchecked Sendable {
    let pointer: OpaquePointer
  }

  /// Starts a cluster of `brokers` brokers with the given topics (name → partition count).
  public init(brokers: Int = 1, topics: [String: Int] = [:], logger: Logger) throws {
    precondition(brokers > 0, "a cluster needs at least one broker")
    // The mock cluster runs on the threads of a librdkafka handle; a bare producer hosts it.
    host = try RDKafkaClient(
      kind: .producer, properties: [("log_level", "3")],
      context: RDKafkaClient.CallbackContext(logger: logger))
    guard let cluster = rd_kafka_mock_cluster_new(host.handle, Int32(brokers)) else {
      throw KafkaError(code: .cluster, message: "could not start the mock cluster")
    }
    self.cluster = ClusterHandle(pointer: cluster)
    self.brokerCount = brokers
    self.bootstrapServers = String(cString: rd_kafka_mock_cluster_bootstraps(cluster))
    for (name, partitions) in topics.sorted(by: { $0.key < $1.key }) {
      try createTopic(name, partitions: partitions)
    }
  }

  deinit {
    rd_kafka_mock_cluster_destroy(cluster.pointer)
  }

  /// Creates a topic.
  public func createTopic(_ name: String, partitions: Int, replicationFactor: Int = 1) throws {
    try check(
      rd_kafka_mock_topic_create(cluster.pointer, name, Int32(partitions), Int32(replicationFactor)),
      "create topic \(name)")
  }

  /// Disconnects a broker (or all, with `nil`) and refuses new connections until ``setBrokerUp(_:)``.
  public func setBrokerDown(_ broker: Int32? = nil) throws {
    try check(rd_kafka_mock_broker_set_down(cluster.pointer, broker ?? -1), "set broker down")
  }

  /// Lets a broker (or all, with `nil`) accept connections again.
  public func setBrokerUp(_ broker: Int32? = nil) throws {
    try check(rd_kafka_mock_broker_set_up(cluster.pointer, broker ?? -1), "set broker up")
  }

  /// Delays every response of a broker (or all, with `nil`).
  public func setRoundTripTime(_ delay: Duration, broker: Int32? = nil) throws {
    try check(
      rd_kafka_mock_broker_set_rtt(cluster.pointer, broker ?? -1, Int32(delay.milliseconds)),
      "set round-trip time")
  }

  /// Makes the next `count` requests of type `api` fail with `error`.
  public func failRequests(_ api: KafkaAPI, count: Int, with error: KafkaMockError) {
    payments_rdkafka_mock_push_request_errors(
      cluster.pointer, api.rawValue, count, rd_kafka_resp_err_t(rawValue: error.rawValue))
  }

  /// Drops the request errors still queued for API `api`.
  public func clearRequestErrors(_ api: KafkaAPI) {
    rd_kafka_mock_clear_request_errors(cluster.pointer, api.rawValue)
  }

  private func check(_ error: rd_kafka_resp_err_t, _ action: String) throws {
    guard error == RD_KAFKA_RESP_ERR_NO_ERROR else {
      throw KafkaError(code: .cluster, error, context: action)
    }
  }
}

/// Kafka protocol request types, for fault injection.
public struct KafkaAPI: RawRepresentable, Sendable, Hashable {
  public let rawValue: Int16
  public init(rawValue: Int16) { self.rawValue = rawValue }
  public static let produce = KafkaAPI(rawValue: 0)
  public static let fetch = KafkaAPI(rawValue: 1)
  public static let metadata = KafkaAPI(rawValue: 3)
  public static let offsetCommit = KafkaAPI(rawValue: 8)
  public static let offsetFetch = KafkaAPI(rawValue: 9)
  public static let findCoordinator = KafkaAPI(rawValue: 10)
  public static let joinGroup = KafkaAPI(rawValue: 11)
  public static let heartbeat = KafkaAPI(rawValue: 12)
  public static let syncGroup = KafkaAPI(rawValue: 14)
  public static let initProducerID = KafkaAPI(rawValue: 22)
}

/// Errors a mock broker can answer with.
public struct KafkaMockError: RawRepresentable, Sendable, Hashable {
  public let rawValue: Int32
  public init(rawValue: Int32) { self.rawValue = rawValue }
  /// The broker drops the connection instead of answering.
  public static let disconnect = KafkaMockError(rawValue: RD_KAFKA_RESP_ERR__TRANSPORT.rawValue)
  public static let requestTimedOut = KafkaMockError(rawValue: RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT.rawValue)
  public static let notLeaderForPartition = KafkaMockError(
    rawValue: RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION.rawValue)
  public static let notEnoughReplicas = KafkaMockError(
    rawValue: RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS.rawValue)
  public static let coordinatorNotAvailable = KafkaMockError(
    rawValue: RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE.rawValue)
}
