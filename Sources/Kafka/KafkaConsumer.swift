import CRDKafka
import Dispatch
import Foundation
public import Logging
import Synchronization

/// A Kafka consumer in a consumer group, with at-least-once processing.
///
/// Read records from ``records`` (one iterator at a time). After processing a record, mark it
/// with ``storeOffset(_:)`` and commit with ``commit()`` (or do both with ``commit(_:)``): only
/// offsets of processed records are ever committed.
///
/// Rebalances: before a partition is taken away, the consumer tries to commit the offsets stored
/// for it, and from then on refuses to store an offset for a record it delivered from that
/// partition (``KafkaError/Code/partitionRevoked``). So no record can have its offset committed by
/// two members. If the coordinator refuses that last commit (some brokers answer
/// `REBALANCE_IN_PROGRESS`), the new owner resumes from the previous commit and processes those
/// records again: delivery is at least once, and consumers must deduplicate.
///
/// All librdkafka consumer calls run on the consumer's own thread; records are polled only while
/// someone waits for one, so a slow processor applies backpressure instead of buffering.
public final class KafkaConsumer: Sendable {
  private let client: RDKafkaClient
  private let shared: Shared
  private let logger: Logger

  /// State shared by the consumer thread, the rebalance callback and callers.
  final class Shared: Sendable {
    struct State {
      var jobs: [@Sendable (OpaquePointer) -> Void] = []
      var demand: CheckedContinuation<[KafkaConsumerRecord]?, any Error>? = nil
      /// The most records the waiting task takes at once.
      var demandLimit = 1
      /// Records polled for a task that was cancelled meanwhile, for the next one.
      var buffered: [KafkaConsumerRecord] = []
      var terminalError: KafkaError? = nil
      var closing = false
      var finished = false
      var closeWaiters: [CheckedContinuation<Void, Never>] = []
      /// The generation under which each currently assigned partition was assigned.
      var generations: [KafkaTopicPartition: UInt64] = [:]
      var generationCounter: UInt64 = 0
    }
    let state = Mutex(State())
    let wake = DispatchSemaphore(value: 0)
    let queue: QueueHandle
    let logger: Logger

    init(queue: QueueHandle, logger: Logger) {
      self.queue = queue
      self.logger = logger
    }

    /// Wakes the consumer thread, whether it sleeps idle or blocks in `consumer_poll`.
    func signal() {
      wake.signal()
      // The queue is destroyed when the thread finishes (under the same lock).
      state.withLock { state in
        if !state.finished { rd_kafka_queue_yield(queue.pointer) }
      }
    }
  }

  /// The consumer queue (`rd_kafka_queue_t *`); `rd_kafka_queue_yield` is thread-safe.
  struct QueueHandle: @unchecked Sendable {
    let pointer: OpaquePointer
  }

  final class ConsumerContext: RDKafkaClient.CallbackContext {
    var shared: Shared?
  }

  /// Joins `configuration.groupID` and subscribes to `topics`.
  public init(configuration: KafkaConsumerConfiguration, topics: [String], logger: Logger) throws {
    self.logger = logger
    let context = ConsumerContext(logger: logger)
    let client = try RDKafkaClient(
      kind: .consumer, properties: try configuration.librdkafkaProperties(), context: context
    ) { configuration in
      rd_kafka_conf_set_rebalance_cb(configuration, rebalanceCallback)
    }
    self.client = client
    rd_kafka_poll_set_consumer(client.handle)
    let shared = Shared(
      queue: QueueHandle(pointer: rd_kafka_queue_get_consumer(client.handle)), logger: logger)
    context.shared = shared
    self.shared = shared

    let list = rd_kafka_topic_partition_list_new(Int32(topics.count))
    defer { rd_kafka_topic_partition_list_destroy(list) }
    for topic in topics { rd_kafka_topic_partition_list_add(list, topic, RD_KAFKA_PARTITION_UA) }
    let error = rd_kafka_subscribe(client.handle, list)
    guard error == RD_KAFKA_RESP_ERR_NO_ERROR else {
      rd_kafka_queue_destroy(shared.queue.pointer)
      throw KafkaError(code: .consume, error, context: "subscribe to \(topics)")
    }
    let thread = Thread { Self.run(client: client, shared: shared) }
    thread.name = "kafka-consumer"
    thread.start()
  }

  deinit {
    shared.state.withLock { $0.closing = true }
    shared.signal()
  }

  /// The records, in partition order. Ends after ``close()``; throws on a fatal client error.
  public var records: Records { Records(consumer: self) }

  /// The partitions currently assigned to this member.
  public var assignment: Set<KafkaTopicPartition> {
    shared.state.withLock { Set($0.generations.keys) }
  }

  /// Marks `record` processed: its offset + 1 will be committed by the next ``commit()``, by a
  /// rebalance that takes the partition away, or by ``close()``.
  ///
  /// - Throws: ``KafkaError/Code/partitionRevoked`` when the partition was reassigned since the
  ///   record was delivered (someone else will process it again).
  public func storeOffset(_ record: KafkaConsumerRecord) throws {
    let partition = KafkaTopicPartition(topic: record.topic, partition: record.partition)
    try shared.state.withLock { state in
      guard state.generations[partition] == record.generation else {
        throw KafkaError(
          code: .partitionRevoked,
          message: "\(partition) was revoked after offset \(record.offset) was delivered; not storing it")
      }
      let list = rd_kafka_topic_partition_list_new(1)
      defer { rd_kafka_topic_partition_list_destroy(list) }
      rd_kafka_topic_partition_list_add(list, record.topic, record.partition).pointee.offset =
        record.offset + 1
      let error = rd_kafka_offsets_store(client.handle, list)
      guard error == RD_KAFKA_RESP_ERR_NO_ERROR else {
        throw KafkaError(code: .commit, error, context: "store offset for \(partition)")
      }
    }
  }

  /// The lag of each assigned partition: records between the consumer's position (the next
  /// record it will read, or the committed offset before it has read any) and the partition's
  /// high watermark. Asks the group coordinator for committed offsets (up to `timeout`);
  /// partitions whose offsets are not known yet are left out.
  public func lag(timeout: Duration = .seconds(2)) async -> [KafkaTopicPartition: Int64] {
    await withCheckedContinuation {
      (continuation: CheckedContinuation<[KafkaTopicPartition: Int64], Never>) in
      let milliseconds = Int32(clamping: timeout.components.seconds * 1000)
      let accepted = shared.state.withLock { state -> Bool in
        guard !state.finished else { return false }
        state.jobs.append { handle in continuation.resume(returning: Self.lag(handle, timeout: milliseconds))
        }
        return true
      }
      if accepted { shared.signal() } else { continuation.resume(returning: [:]) }
    }
  }

  private static func lag(_ handle: OpaquePointer, timeout: Int32) -> [KafkaTopicPartition: Int64] {
    var assignment: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
    guard rd_kafka_assignment(handle, &assignment) == RD_KAFKA_RESP_ERR_NO_ERROR, let list = assignment else {
      return [:]
    }
    defer { rd_kafka_topic_partition_list_destroy(list) }
    guard list.pointee.cnt > 0 else { return [:] }
    let committed = rd_kafka_topic_partition_list_copy(list)!
    defer { rd_kafka_topic_partition_list_destroy(committed) }
    _ = rd_kafka_position(handle, list)
    let knowsCommitted = rd_kafka_committed(handle, committed, timeout) == RD_KAFKA_RESP_ERR_NO_ERROR
    var result: [KafkaTopicPartition: Int64] = [:]
    for index in 0..<Int(list.pointee.cnt) {
      let entry = list.pointee.elems[index]
      let topic = String(cString: entry.topic)
      var position = entry.offset
      if position < 0, knowsCommitted { position = committed.pointee.elems[index].offset }
      var low: Int64 = 0
      var high: Int64 = 0
      guard position >= 0,
        rd_kafka_get_watermark_offsets(handle, topic, entry.partition, &low, &high)
          == RD_KAFKA_RESP_ERR_NO_ERROR,
        high >= 0
      else { continue }
      result[KafkaTopicPartition(topic: topic, partition: entry.partition)] = max(0, high - position)
    }
    return result
  }

  /// Commits every stored offset and waits for the group coordinator to acknowledge.
  public func commit() async throws {
    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
      let accepted = shared.state.withLock { state -> Bool in
        guard !state.finished else { return false }
        state.jobs.append { handle in
          let error = rd_kafka_commit(handle, nil, 0)
          if error == RD_KAFKA_RESP_ERR_NO_ERROR || error == RD_KAFKA_RESP_ERR__NO_OFFSET {
            continuation.resume()
          } else {
            continuation.resume(throwing: KafkaError(code: .commit, error, context: "commit offsets"))
          }
        }
        return true
      }
      if accepted {
        shared.signal()
      } else {
        continuation.resume(throwing: KafkaError(code: .closed, message: "consumer is closed"))
      }
    }
  }

  /// Stores `record`'s offset and commits.
  public func commit(_ record: KafkaConsumerRecord) async throws {
    try storeOffset(record)
    try await commit()
  }

  /// Leaves the group cleanly: commits stored offsets (through the final revoke), then stops.
  public func close() async {
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
      let finished = shared.state.withLock { state -> Bool in
        if state.finished { return true }
        state.closing = true
        state.closeWaiters.append(continuation)
        return false
      }
      if finished {
        continuation.resume()
      } else {
        shared.signal()
      }
    }
  }

  func nextRecord() async throws -> KafkaConsumerRecord? {
    try await nextBatch(maximum: 1)?.first
  }

  /// The next records in partition order: at least one (waiting for it), then whatever else is
  /// already fetched, at most `maximum`. `nil` after ``close()``. Processing a batch and then
  /// storing its offsets saves a thread hand-off per record.
  public func nextBatch(maximum: Int) async throws -> [KafkaConsumerRecord]? {
    precondition(maximum > 0, "maximum must be positive")
    let shared = self.shared
    return try await withTaskCancellationHandler {
      try await withCheckedThrowingContinuation {
        (continuation: CheckedContinuation<[KafkaConsumerRecord]?, any Error>) in
        enum Immediate { case records([KafkaConsumerRecord]?), error(any Error), wait }
        let immediate = shared.state.withLock { state -> Immediate in
          if !state.buffered.isEmpty {
            let count = min(maximum, state.buffered.count)
            defer { state.buffered.removeFirst(count) }
            return .records(Array(state.buffered.prefix(count)))
          }
          if let error = state.terminalError { return .error(error) }
          if state.finished || state.closing { return .records(nil) }
          if Task.isCancelled { return .error(CancellationError()) }
          guard state.demand == nil else {
            return .error(
              KafkaError(code: .consume, message: "records can only be read by one task at a time"))
          }
          state.demand = continuation
          state.demandLimit = maximum
          return .wait
        }
        switch immediate {
        case .records(let records): continuation.resume(returning: records)
        case .error(let error): continuation.resume(throwing: error)
        case .wait: shared.signal()
        }
      }
    } onCancel: {
      let demand = shared.state.withLock { state in
        defer { state.demand = nil }
        return state.demand
      }
      demand?.resume(throwing: CancellationError())
    }
  }

  // MARK: - The consumer thread

  private static func run(client: RDKafkaClient, shared: Shared) {
    while true {
      let (jobs, polling, closing) = shared.state.withLock { state in
        defer { state.jobs = [] }
        return (
          state.jobs, state.demand != nil && state.buffered.isEmpty ? state.demandLimit : 0, state.closing
        )
      }
      for job in jobs { job(client.handle) }
      if closing { break }
      guard polling > 0 else {
        _ = shared.wake.wait(timeout: .now() + .milliseconds(100))
        continue
      }
      // Wait up to 100 ms for the first record, then take what is already fetched.
      var records: [KafkaConsumerRecord] = []
      var fatal = false
      while records.count < polling,
        let message = rd_kafka_consumer_poll(client.handle, records.isEmpty ? 100 : 0)
      {
        defer { rd_kafka_message_destroy(message) }
        let error = message.pointee.err
        if error == RD_KAFKA_RESP_ERR_NO_ERROR {
          records.append(record(from: message, shared: shared))
        } else if error != RD_KAFKA_RESP_ERR__PARTITION_EOF {
          if let error = client.fatalError() {
            fail(error, shared: shared)
            fatal = true
            break
          }
          shared.logger.warning(
            "Kafka consumer error (librdkafka recovers by itself)",
            metadata: ["error": "\(KafkaError(code: .consume, error))"])
        }
      }
      if fatal { break }
      if !records.isEmpty { deliver(records, shared: shared) }
    }
    // Commit what was processed while still a full member, then leave the group.
    let finalCommit = rd_kafka_commit(client.handle, nil, 0)
    if finalCommit != RD_KAFKA_RESP_ERR_NO_ERROR && finalCommit != RD_KAFKA_RESP_ERR__NO_OFFSET {
      shared.logger.warning(
        "final commit before close failed", metadata: ["error": "\(KafkaError(code: .commit, finalCommit))"])
    }
    leaveAssignment(client: client, shared: shared)
    let closeError = rd_kafka_consumer_close(client.handle)
    if closeError != RD_KAFKA_RESP_ERR_NO_ERROR {
      shared.logger.warning(
        "Kafka consumer close", metadata: ["error": "\(KafkaError(code: .consume, closeError))"])
    }
    let (demand, jobs, waiters) = shared.state.withLock { state in
      state.finished = true
      rd_kafka_queue_destroy(shared.queue.pointer)
      defer {
        state.demand = nil
        state.jobs = []
        state.closeWaiters = []
      }
      return (state.demand, state.jobs, state.closeWaiters)
    }
    demand?.resume(returning: nil)
    for job in jobs { job(client.handle) }  // pending commits find nothing left to commit
    for waiter in waiters { waiter.resume() }
  }

  /// Unsubscribes and serves the resulting revoke until the assignment is gone (at most 10 s).
  ///
  /// librdkafka 2.0 aborts the process (`rd_kafka_cgrp_terminated: assert:
  /// !rd_kafka_assignment_in_progress`) when a group terminates while assignment operations,
  /// such as the offset fetch of a fresh assignment, are still in flight. Leaving the assignment
  /// first, while still polling, lets them finish. Records fetched meanwhile are dropped unread:
  /// their offsets were not stored, so the group delivers them again.
  private static func leaveAssignment(client: RDKafkaClient, shared: Shared) {
    rd_kafka_unsubscribe(client.handle)
    let deadline = ContinuousClock.now + .seconds(10)
    var quietPolls = 0
    while ContinuousClock.now < deadline, quietPolls < 3 {
      if let message = rd_kafka_consumer_poll(client.handle, 50) { rd_kafka_message_destroy(message) }
      var assignment: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>? = nil
      let error = rd_kafka_assignment(client.handle, &assignment)
      let remaining = error == RD_KAFKA_RESP_ERR_NO_ERROR ? Int(assignment?.pointee.cnt ?? 0) : 0
      if let assignment { rd_kafka_topic_partition_list_destroy(assignment) }
      quietPolls = remaining == 0 ? quietPolls + 1 : 0
    }
  }

  private static func fail(_ error: KafkaError, shared: Shared) {
    let demand = shared.state.withLock { state in
      state.terminalError = error
      defer { state.demand = nil }
      return state.demand
    }
    demand?.resume(throwing: error)
  }

  private static func record(
    from message: UnsafeMutablePointer<rd_kafka_message_t>, shared: Shared
  ) -> KafkaConsumerRecord {
    let topic = String(cString: rd_kafka_topic_name(message.pointee.rkt))
    let partition = message.pointee.partition
    let payload =
      message.pointee.payload.map {
        Array(UnsafeRawBufferPointer(start: $0, count: message.pointee.len))
      } ?? []
    let key = message.pointee.key.map {
      Array(UnsafeRawBufferPointer(start: $0, count: message.pointee.key_len))
    }
    var headers: [KafkaHeader] = []
    var headerList: OpaquePointer? = nil
    if rd_kafka_message_headers(message, &headerList) == RD_KAFKA_RESP_ERR_NO_ERROR, let headerList {
      var index = 0
      var name: UnsafePointer<CChar>? = nil
      var value: UnsafeRawPointer? = nil
      var size = 0
      while rd_kafka_header_get_all(headerList, index, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
        headers.append(
          KafkaHeader(
            key: name.map { String(cString: $0) } ?? "",
            value: value.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) }))
        index += 1
      }
    }
    var timestampType = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
    let milliseconds = rd_kafka_message_timestamp(message, &timestampType)
    let timestamp =
      milliseconds >= 0 ? Date(timeIntervalSince1970: Double(milliseconds) / 1000) : nil

    let generation = shared.state.withLock {
      $0.generations[KafkaTopicPartition(topic: topic, partition: partition)] ?? 0
    }
    return KafkaConsumerRecord(
      topic: topic, partition: partition, offset: message.pointee.offset, key: key, value: payload,
      headers: headers, timestamp: timestamp, generation: generation)
  }

  private static func deliver(_ records: [KafkaConsumerRecord], shared: Shared) {
    let demand = shared.state.withLock { state -> CheckedContinuation<[KafkaConsumerRecord]?, any Error>? in
      guard let demand = state.demand else {
        state.buffered += records  // the waiting task was cancelled: keep them for the next one
        return nil
      }
      state.demand = nil
      return demand
    }
    demand?.resume(returning: records)
  }

  /// Iterates over the consumer's records.
  public struct Records: AsyncSequence, Sendable {
    public typealias Element = KafkaConsumerRecord
    let consumer: KafkaConsumer

    public struct AsyncIterator: AsyncIteratorProtocol {
      let consumer: KafkaConsumer
      public mutating func next() async throws -> KafkaConsumerRecord? {
        try await consumer.nextRecord()
      }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(consumer: consumer) }
  }
}

/// librdkafka's rebalance callback; runs on the consumer thread inside `consumer_poll` or
/// `consumer_close`.
private func rebalanceCallback(
  _ handle: OpaquePointer?, _ error: rd_kafka_resp_err_t,
  _ partitions: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?, _ opaque: UnsafeMutableRawPointer?
) {
  guard let handle, let opaque else { return }
  let context = Unmanaged<RDKafkaClient.CallbackContext>.fromOpaque(opaque).takeUnretainedValue()
  guard let shared = (context as? KafkaConsumer.ConsumerContext)?.shared else { return }
  let cooperative = String(cString: rd_kafka_rebalance_protocol(handle)) == "COOPERATIVE"
  var changed: [KafkaTopicPartition] = []
  if let partitions {
    for index in 0..<Int(partitions.pointee.cnt) {
      let element = partitions.pointee.elems[index]
      changed.append(KafkaTopicPartition(topic: String(cString: element.topic), partition: element.partition))
    }
  }
  switch error {
  case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
    shared.state.withLock { state in
      state.generationCounter += 1
      for partition in changed { state.generations[partition] = state.generationCounter }
    }
    let result =
      cooperative
      ? rd_kafka_error_code_and_destroy(rd_kafka_incremental_assign(handle, partitions))
      : rd_kafka_assign(handle, partitions)
    shared.logger.info(
      "partitions assigned",
      metadata: ["partitions": "\(changed.map(\.description))", "result": "\(result.rawValue)"])
  case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
    // First refuse further offset stores for these partitions, then commit what was stored.
    shared.state.withLock { state in
      for partition in changed { state.generations[partition] = nil }
      state.buffered.removeAll {
        changed.contains(KafkaTopicPartition(topic: $0.topic, partition: $0.partition))
      }
    }
    // `nil` commits the offsets stored for the current assignment, which still includes the
    // partitions being revoked (the revoke list itself carries no offsets).
    // While closing (including the unsubscribe before it), the stored offsets were committed just
    // before (KafkaConsumer.run); a commit from inside the closing group would only time out.
    let closing = rd_kafka_consumer_closed(handle) == 1 || shared.state.withLock { $0.closing }
    let commitError = closing ? RD_KAFKA_RESP_ERR_NO_ERROR : rd_kafka_commit(handle, nil, 0)
    if commitError != RD_KAFKA_RESP_ERR_NO_ERROR && commitError != RD_KAFKA_RESP_ERR__NO_OFFSET {
      shared.logger.warning(
        "commit before revoke failed", metadata: ["error": "\(KafkaError(code: .commit, commitError))"])
    }
    if cooperative {
      _ = rd_kafka_error_code_and_destroy(rd_kafka_incremental_unassign(handle, partitions))
    } else {
      _ = rd_kafka_assign(handle, nil)
    }
    shared.logger.info("partitions revoked", metadata: ["partitions": "\(changed.map(\.description))"])
  default:
    shared.logger.warning("rebalance error", metadata: ["error": "\(KafkaError(code: .consume, error))"])
    shared.state.withLock { $0.generations = [:] }
    _ = rd_kafka_assign(handle, nil)
  }
}

private func rd_kafka_error_code_and_destroy(_ error: OpaquePointer?) -> rd_kafka_resp_err_t {
  guard let error else { return RD_KAFKA_RESP_ERR_NO_ERROR }
  defer { rd_kafka_error_destroy(error) }
  return rd_kafka_error_code(error)
}
