/// Settings shared by producers and consumers.
public struct KafkaClientConfiguration: Sendable {
  /// `host:port` addresses of one or more brokers (`bootstrap.servers`).
  public var bootstrapServers: [String]
  /// `client.id`, visible in broker logs.
  public var clientID: String
  /// Any other librdkafka property (see librdkafka's CONFIGURATION.md), applied after the typed
  /// settings. Properties that this layer's guarantees depend on cannot be overridden.
  public var properties: [String: String]

  public init(bootstrapServers: [String], clientID: String = "payments", properties: [String: String] = [:]) {
    self.bootstrapServers = bootstrapServers
    self.clientID = clientID
    self.properties = properties
  }

  var baseProperties: [(String, String)] {
    [("bootstrap.servers", bootstrapServers.joined(separator: ",")), ("client.id", clientID)]
  }
}

/// Producer settings. Idempotence (`enable.idempotence=true`) and `acks=all` are always on: a
/// record is reported delivered only once every in-sync replica has it, and librdkafka's
/// retries never duplicate or reorder it.
public struct KafkaProducerConfiguration: Sendable {
  public var client: KafkaClientConfiguration
  /// How long to wait for more records before sending a batch (`linger.ms`). Default 5 ms.
  public var linger: Duration
  /// How long librdkafka keeps retrying a record before reporting it failed
  /// (`message.timeout.ms`). Default 5 minutes.
  public var messageTimeout: Duration
  /// Batch compression (`compression.type`): `none`, `gzip`, `snappy`, `lz4`, `zstd`.
  public var compression: String

  public init(
    client: KafkaClientConfiguration, linger: Duration = .milliseconds(5),
    messageTimeout: Duration = .seconds(300), compression: String = "none"
  ) {
    self.client = client
    self.linger = linger
    self.messageTimeout = messageTimeout
    self.compression = compression
  }

  static let enforced: [(String, String)] = [("enable.idempotence", "true"), ("acks", "all")]

  func librdkafkaProperties() throws -> [(String, String)] {
    try mergeProperties(
      client.baseProperties + [
        ("linger.ms", String(linger.milliseconds)),
        ("message.timeout.ms", String(messageTimeout.milliseconds)),
        ("compression.type", compression),
      ],
      overrides: client.properties, enforced: Self.enforced)
  }
}

/// Consumer settings. Offsets are committed only explicitly (`enable.auto.commit=false`) and
/// only for records the application marked processed (`enable.auto.offset.store=false`).
public struct KafkaConsumerConfiguration: Sendable {
  /// Where a group without a committed offset starts.
  public enum OffsetReset: String, Sendable {
    case earliest, latest
  }

  public var client: KafkaClientConfiguration
  /// The consumer group (`group.id`).
  public var groupID: String
  /// Default ``OffsetReset/earliest``: a new group reads everything rather than skip records.
  public var autoOffsetReset: OffsetReset
  /// A member that sends no heartbeat for this long is removed from the group
  /// (`session.timeout.ms`). Default 10 s. Rebalances can wait this long.
  public var sessionTimeout: Duration
  /// How often to send heartbeats (`heartbeat.interval.ms`). Default 1 s.
  public var heartbeatInterval: Duration
  /// A member that doesn't ask for a record for this long leaves the group
  /// (`max.poll.interval.ms`). Default 5 minutes.
  public var maxPollInterval: Duration
  /// How long the broker may hold a fetch while it has no new records (`fetch.wait.max.ms`).
  /// Default 50 ms: a record reaches the consumer within that, not librdkafka's 500 ms; the price
  /// is up to 20 empty fetches a second per broker while idle.
  public var fetchWait: Duration

  public init(
    client: KafkaClientConfiguration, groupID: String, autoOffsetReset: OffsetReset = .earliest,
    sessionTimeout: Duration = .seconds(10), heartbeatInterval: Duration = .seconds(1),
    maxPollInterval: Duration = .seconds(300), fetchWait: Duration = .milliseconds(50)
  ) {
    self.client = client
    self.groupID = groupID
    self.autoOffsetReset = autoOffsetReset
    self.sessionTimeout = sessionTimeout
    self.heartbeatInterval = heartbeatInterval
    self.maxPollInterval = maxPollInterval
    self.fetchWait = fetchWait
  }

  static let enforced: [(String, String)] = [
    ("enable.auto.commit", "false"), ("enable.auto.offset.store", "false"),
  ]

  func librdkafkaProperties() throws -> [(String, String)] {
    try mergeProperties(
      client.baseProperties + [
        ("group.id", groupID),
        ("auto.offset.reset", autoOffsetReset.rawValue),
        ("session.timeout.ms", String(sessionTimeout.milliseconds)),
        ("heartbeat.interval.ms", String(heartbeatInterval.milliseconds)),
        ("max.poll.interval.ms", String(maxPollInterval.milliseconds)),
        ("fetch.wait.max.ms", String(fetchWait.milliseconds)),
      ],
      overrides: client.properties, enforced: Self.enforced)
  }
}

private func mergeProperties(
  _ typed: [(String, String)], overrides: [String: String], enforced: [(String, String)]
) throws -> [(String, String)] {
  for (key, value) in enforced {
    if let override = overrides[key], override != value {
      throw KafkaError(
        code: .configuration,
        message: "property \(key)=\(override) is not allowed: this client requires \(key)=\(value)")
    }
  }
  let typedKeys = Set(typed.map(\.0))
  let extra = overrides.filter { !typedKeys.contains($0.key) }.sorted { $0.key < $1.key }
  let merged = typed.map { key, value in (key, overrides[key] ?? value) }
  return merged + extra.map { ($0.key, $0.value) } + enforced
}

extension Duration {
  var milliseconds: Int64 {
    components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
  }
}
