public import struct Foundation.Date

/// A Kafka record header.
public struct KafkaHeader: Sendable, Hashable {
  public var key: String
  /// The header's value; `nil` is a null header value.
  public var value: [UInt8]?

  public init(key: String, value: [UInt8]?) {
    self.key = key
    self.value = value
  }

  public init(key: String, string: String) {
    self.init(key: key, value: Array(string.utf8))
  }
}

/// A record to produce.
public struct KafkaProducerRecord: Sendable, Hashable {
  public var topic: String
  /// An explicit partition; `nil` lets the partitioner choose from the key (records with equal
  /// keys land on the same partition, in order).
  public var partition: Int32?
  public var key: [UInt8]?
  public var value: [UInt8]
  public var headers: [KafkaHeader]

  public init(
    topic: String, partition: Int32? = nil, key: [UInt8]?, value: [UInt8], headers: [KafkaHeader] = []
  ) {
    self.topic = topic
    self.partition = partition
    self.key = key
    self.value = value
    self.headers = headers
  }

  public init(topic: String, key: String, value: [UInt8], headers: [KafkaHeader] = []) {
    self.init(topic: topic, key: Array(key.utf8), value: value, headers: headers)
  }
}

/// Where a produced record was stored.
public struct KafkaDeliveryReport: Sendable, Hashable {
  public var topic: String
  public var partition: Int32
  public var offset: Int64
}

/// A consumed record.
public struct KafkaConsumerRecord: Sendable, Hashable {
  public var topic: String
  public var partition: Int32
  public var offset: Int64
  public var key: [UInt8]?
  public var value: [UInt8]
  public var headers: [KafkaHeader]
  /// The record's timestamp (create or log-append time), when the broker gave one.
  public var timestamp: Date?
  /// The assignment generation the record was delivered under; its offset can only be stored
  /// while that generation is current.
  let generation: UInt64

  /// The header value for `key`, if present.
  public func header(_ key: String) -> [UInt8]? {
    headers.first { $0.key == key }?.value ?? nil
  }
}

/// A topic and partition.
public struct KafkaTopicPartition: Sendable, Hashable, CustomStringConvertible {
  public var topic: String
  public var partition: Int32
  public init(topic: String, partition: Int32) {
    self.topic = topic
    self.partition = partition
  }
  public var description: String { "\(topic)[\(partition)]" }
}
