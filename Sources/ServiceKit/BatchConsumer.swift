public import Kafka
public import Logging
import Metrics
import Synchronization

/// Consumes topics in batches and stores each batch's offsets only after `apply` returned, then
/// commits stored offsets every `commitInterval`. A crash replays what was not yet applied and
/// never skips anything: `apply` must be idempotent.
///
/// `apply` is retried with backoff (100 ms doubling to 5 s) until it succeeds, because skipping a
/// batch would lose it; the partitions wait meanwhile.
public struct BatchConsumer: Sendable {
  public var configuration: KafkaConsumerConfiguration
  public var topics: [String]
  public var batchSize = 500
  public var commitInterval: Duration = .milliseconds(500)
  private let logger: Logger

  public init(configuration: KafkaConsumerConfiguration, topics: [String], logger: Logger) {
    self.configuration = configuration
    self.topics = topics
    self.logger = logger
  }

  /// Runs until the task is cancelled; then commits what was applied and leaves the group.
  public func run(_ apply: @escaping @Sendable ([KafkaConsumerRecord]) async throws -> Void) async throws {
    let consumer = try KafkaConsumer(configuration: configuration, topics: topics, logger: logger)
    let stored = StoredFlag()
    let (batchSize, commitInterval, logger) = (self.batchSize, self.commitInterval, self.logger)
    let groupID = configuration.groupID
    do {
      try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask {
          // The lag of every assigned partition, as the gauge kafka_consumer_lag, every 5 s.
          while !Task.isCancelled {
            for (partition, lag) in await consumer.lag() {
              Gauge(
                label: "kafka_consumer_lag",
                dimensions: [
                  ("group", groupID), ("topic", partition.topic), ("partition", String(partition.partition)),
                ]
              ).record(lag)
            }
            try await Task.sleep(for: .seconds(5))
          }
        }
        group.addTask {
          while !Task.isCancelled {
            try await Task.sleep(for: commitInterval)
            if stored.value.exchange(false, ordering: .relaxed) {
              do { try await consumer.commit() } catch {
                logger.warning("offset commit failed", metadata: ["error": "\(error)"])
              }
            }
          }
        }
        group.addTask {
          while let batch = try await consumer.nextBatch(maximum: batchSize) {
            var delay = Duration.milliseconds(100)
            while true {
              do {
                try await apply(batch)
                break
              } catch {
                if Task.isCancelled { throw CancellationError() }
                logger.warning(
                  "applying consumed records failed; retrying",
                  metadata: ["records": "\(batch.count)", "error": "\(error)", "retry_in": "\(delay)"])
                try await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(5))
              }
            }
            // The last record of each partition carries the offset to store.
            var last: [KafkaTopicPartition: KafkaConsumerRecord] = [:]
            for record in batch {
              last[KafkaTopicPartition(topic: record.topic, partition: record.partition)] = record
            }
            for record in last.values {
              do {
                try consumer.storeOffset(record)
                stored.value.store(true, ordering: .relaxed)
              } catch let error as KafkaError where error.code == .partitionRevoked {
                continue  // the partition's new owner reads it again
              }
            }
          }
        }
        try await group.next()
        group.cancelAll()
      }
    } catch {
      await consumer.close()
      if error is CancellationError || Task.isCancelled { return }
      throw error
    }
    await consumer.close()
  }
}

/// Whether offsets were stored since the last commit.
private final class StoredFlag: Sendable {
  let value = Atomic<Bool>(false)
}
