import CRDKafka

/// An error from the Kafka layer.
///
/// ``isRetriable`` says whether the same operation may succeed when tried again (a broker was
/// unreachable, a queue was full, a delivery timed out); ``isFatal`` says the client instance can
/// no longer be used and must be recreated.
public struct KafkaError: Error, Sendable, CustomStringConvertible {
  /// What failed. Extensible: switch with a `default` branch.
  public struct Code: Hashable, Sendable, CustomStringConvertible {
    private enum Wrapped: Hashable, Sendable {
      case configuration, produce, delivery, consume, commit, partitionRevoked, closed, timeout
      case cluster
    }
    private let wrapped: Wrapped
    private init(_ wrapped: Wrapped) { self.wrapped = wrapped }

    /// A configuration property was unknown or had an invalid value.
    public static let configuration = Code(.configuration)
    /// librdkafka refused to enqueue a record.
    public static let produce = Code(.produce)
    /// A record was enqueued but could not be delivered.
    public static let delivery = Code(.delivery)
    /// The consumer failed.
    public static let consume = Code(.consume)
    /// Committing offsets failed.
    public static let commit = Code(.commit)
    /// The record's partition was revoked (rebalance) after it was delivered: its offset is not
    /// stored, and the partition's new owner processes it again.
    public static let partitionRevoked = Code(.partitionRevoked)
    /// The client was closed.
    public static let closed = Code(.closed)
    /// An operation did not finish in time.
    public static let timeout = Code(.timeout)
    /// The mock cluster rejected a request.
    public static let cluster = Code(.cluster)

    public var description: String {
      switch wrapped {
      case .configuration: "configuration"
      case .produce: "produce"
      case .delivery: "delivery"
      case .consume: "consume"
      case .commit: "commit"
      case .partitionRevoked: "partition revoked"
      case .closed: "closed"
      case .timeout: "timeout"
      case .cluster: "mock cluster"
      }
    }
  }

  /// What failed.
  public var code: Code
  /// A human-readable explanation.
  public var message: String
  /// librdkafka's error code (`rd_kafka_resp_err_t`), when there is one.
  public var librdkafkaCode: Int32?
  /// True when retrying the same operation may succeed.
  public var isRetriable: Bool
  /// True when the client instance is unusable and must be recreated.
  public var isFatal: Bool

  public init(
    code: Code, message: String, librdkafkaCode: Int32? = nil, isRetriable: Bool = false,
    isFatal: Bool = false
  ) {
    self.code = code
    self.message = message
    self.librdkafkaCode = librdkafkaCode
    self.isRetriable = isRetriable
    self.isFatal = isFatal
  }

  init(code: Code, _ error: rd_kafka_resp_err_t, context: String? = nil, fatal: Bool = false) {
    let name = String(cString: rd_kafka_err2name(error))
    let text = String(cString: rd_kafka_err2str(error))
    self.init(
      code: code,
      message: (context.map { "\($0): " } ?? "") + "\(text) (\(name))",
      librdkafkaCode: error.rawValue,
      isRetriable: Self.retriable.contains(error.rawValue),
      isFatal: fatal)
  }

  /// True when the record itself can never be accepted (too large, invalid): retrying it is
  /// pointless, and holding it would block what comes after it.
  public var isRecordError: Bool { librdkafkaCode.map { Self.recordErrors.contains($0) } ?? false }

  private static let recordErrors: Set<Int32> = [
    RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE,
    RD_KAFKA_RESP_ERR_INVALID_MSG, RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE, RD_KAFKA_RESP_ERR_INVALID_RECORD,
    RD_KAFKA_RESP_ERR__BAD_MSG,
  ].reduce(into: Set<Int32>()) { $0.insert($1.rawValue) }

  /// Codes after which the same operation may succeed.
  private static let retriable: Set<Int32> = [
    RD_KAFKA_RESP_ERR__TRANSPORT, RD_KAFKA_RESP_ERR__MSG_TIMED_OUT, RD_KAFKA_RESP_ERR__QUEUE_FULL,
    RD_KAFKA_RESP_ERR__TIMED_OUT, RD_KAFKA_RESP_ERR__TIMED_OUT_QUEUE,
    RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN, RD_KAFKA_RESP_ERR__WAIT_COORD,
    RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
    RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND, RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
    RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION,
    RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE, RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
    RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS, RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS,
    RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
  ].reduce(into: Set<Int32>()) { $0.insert($1.rawValue) }

  public var description: String { "Kafka \(code) error: \(message)" }
}
