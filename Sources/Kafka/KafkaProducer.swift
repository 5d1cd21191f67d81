import CRDKafka
import CRDKafkaShim
import Foundation
public import Logging
import Synchronization

/// An idempotent Kafka producer (`enable.idempotence=true`, `acks=all`).
///
/// ``send(_:)`` suspends until the broker acknowledged the record (or librdkafka gave up after
/// ``KafkaProducerConfiguration/messageTimeout``) and returns the delivery report. Records with
/// the same key go to the same partition in send order. A dedicated thread serves librdkafka's
/// delivery callbacks, so no cooperative thread ever blocks.
///
/// Call ``close()`` on shutdown: it waits until every outstanding record is delivered (or the
/// flush timeout passes) and then releases the client.
public final class KafkaProducer: Sendable {
  private let client: RDKafkaClient
  private let shared = Shared()
  private let logger: Logger

  private final class Shared: Sendable {
    let state = Mutex(State())
  }

  private struct State {
    var closed = false
    var flushWaiters:
      [(deadline: ContinuousClock.Instant, continuation: CheckedContinuation<Void, any Error>)] = []
    var pollThreadDone: CheckedContinuation<Void, Never>? = nil
    var pollThreadFinished = false
  }

  public init(configuration: KafkaProducerConfiguration, logger: Logger) throws {
    self.logger = logger
    self.client = try RDKafkaClient(
      kind: .producer, properties: try configuration.librdkafkaProperties(),
      context: RDKafkaClient.CallbackContext(logger: logger)
    ) { configuration in
      rd_kafka_conf_set_dr_msg_cb(configuration, deliveryReportCallback)
    }
    let thread = Thread { [client, shared] in Self.pollLoop(client: client, shared: shared) }
    thread.name = "kafka-producer-poll"
    thread.start()
  }

  deinit {
    shared.state.withLock { $0.closed = true }
  }

  /// Produces `record` and waits for its delivery report.
  ///
  /// - Throws: ``KafkaError`` — ``KafkaError/Code/produce`` when librdkafka refused the record
  ///   (unknown topic, record too large), ``KafkaError/Code/delivery`` when it could not be
  ///   delivered (check ``KafkaError/isRetriable``), ``KafkaError/Code/closed`` after ``close()``.
  ///   Cancelling the calling task does not withdraw a record that was already handed over.
  @discardableResult
  public func send(_ record: KafkaProducerRecord) async throws -> KafkaDeliveryReport {
    while true {
      if shared.state.withLock({ $0.closed }) {
        throw KafkaError(code: .closed, message: "producer is closed")
      }
      let outcome: SendOutcome = await withCheckedContinuation {
        (continuation: CheckedContinuation<SendOutcome, Never>) in
        let box = Unmanaged.passRetained(
          DeliveryBox(topic: record.topic) { continuation.resume(returning: $0) })
        let error = enqueue(record, opaque: box.toOpaque())
        if error != RD_KAFKA_RESP_ERR_NO_ERROR {
          box.release()
          continuation.resume(returning: .notEnqueued(error))
        }
      }
      switch outcome {
      case .delivered(let report):
        return report
      case .failed(let error):
        throw error
      case .notEnqueued(let error) where error == RD_KAFKA_RESP_ERR__QUEUE_FULL:
        // Backpressure: librdkafka's local queue is full; wait for deliveries to drain it.
        try await Task.sleep(for: .milliseconds(5))
      case .notEnqueued(let error):
        throw KafkaError(code: .produce, error, context: "could not enqueue record for \(record.topic)")
      }
    }
  }

  /// Produces `records` in the given order and waits for all their delivery reports.
  ///
  /// Records are handed to librdkafka one after the other, so records that share a partition
  /// keep their order; unlike calling ``send(_:)`` from several tasks, nothing reorders them.
  /// The result at index *i* is the outcome of `records[i]`: a record that fails does not stop
  /// the others.
  ///
  /// - Throws: ``KafkaError/Code/closed`` when the producer is closed before every record was
  ///   handed over (records already handed over still report in the result).
  public func sendInOrder(_ records: [KafkaProducerRecord]) async throws -> [Result<
    KafkaDeliveryReport, KafkaError
  >] {
    let batch = DeliveryBatch(count: records.count)
    for (index, record) in records.enumerated() {
      while true {
        if shared.state.withLock({ $0.closed }) {
          batch.abandon(from: index, KafkaError(code: .closed, message: "producer is closed"))
          break
        }
        let box = Unmanaged.passRetained(
          DeliveryBox(topic: record.topic) { batch.complete(index, $0) })
        let error = enqueue(record, opaque: box.toOpaque())
        if error == RD_KAFKA_RESP_ERR_NO_ERROR { break }
        box.release()
        if error == RD_KAFKA_RESP_ERR__QUEUE_FULL {
          // Backpressure: wait for deliveries to drain the local queue, then retry this record
          // (not a later one, which would overtake it).
          try? await Task.sleep(for: .milliseconds(5))
          continue
        }
        batch.complete(
          index,
          .notEnqueued(error))
        break
      }
    }
    return await batch.results()
  }

  private func enqueue(_ record: KafkaProducerRecord, opaque: UnsafeMutableRawPointer) -> rd_kafka_resp_err_t
  {
    var headers: OpaquePointer? = nil
    if !record.headers.isEmpty {
      headers = rd_kafka_headers_new(record.headers.count)
      for header in record.headers {
        if let value = header.value {
          value.withUnsafeBytes { bytes in
            _ = rd_kafka_header_add(headers, header.key, -1, bytes.baseAddress, bytes.count)
          }
        } else {
          _ = rd_kafka_header_add(headers, header.key, -1, nil, 0)
        }
      }
    }
    let partition = record.partition ?? RD_KAFKA_PARTITION_UA
    let error = record.value.withUnsafeBytes { value in
      if let key = record.key {
        return key.withUnsafeBytes { key in
          payments_rdkafka_produce(
            client.handle, record.topic, partition, key.baseAddress ?? UnsafeRawPointer(value.baseAddress),
            key.count, value.baseAddress, value.count, headers, opaque)
        }
      }
      return payments_rdkafka_produce(
        client.handle, record.topic, partition, nil, 0, value.baseAddress, value.count, headers, opaque)
    }
    if error != RD_KAFKA_RESP_ERR_NO_ERROR, let headers { rd_kafka_headers_destroy(headers) }
    return error
  }

  /// Waits until every record sent so far is delivered or failed.
  ///
  /// - Throws: ``KafkaError/Code/timeout`` when records are still outstanding after `timeout`.
  public func flush(timeout: Duration = .seconds(30)) async throws {
    let deadline = ContinuousClock.now + timeout
    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
      let finished = shared.state.withLock { state -> Bool in
        if state.pollThreadFinished { return true }
        state.flushWaiters.append((deadline, continuation))
        return false
      }
      if finished { continuation.resume() }
    }
  }

  /// Flushes outstanding records (for at most `flushTimeout`), then stops the producer. Records
  /// still undelivered then fail with ``KafkaError/Code/delivery``.
  public func close(flushTimeout: Duration = .seconds(30)) async {
    do {
      try await flush(timeout: flushTimeout)
    } catch {
      logger.warning("producer closed with undelivered records", metadata: ["error": "\(error)"])
    }
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
      let finished = shared.state.withLock { state -> Bool in
        state.closed = true
        if state.pollThreadFinished { return true }
        state.pollThreadDone = continuation
        return false
      }
      if finished { continuation.resume() }
    }
  }

  /// Whether a broker answers a metadata request within `timeout` (for readiness checks). The
  /// request runs on a thread of its own, so no cooperative thread blocks.
  public func brokersReachable(timeout: Duration = .seconds(2)) async -> Bool {
    let client = self.client
    let milliseconds = Int32(clamping: timeout.milliseconds)
    return await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
      let thread = Thread {
        var metadata: UnsafePointer<rd_kafka_metadata>? = nil
        let error = rd_kafka_metadata(client.handle, 0, nil, &metadata, milliseconds)
        if let metadata { rd_kafka_metadata_destroy(metadata) }
        continuation.resume(returning: error == RD_KAFKA_RESP_ERR_NO_ERROR)
      }
      thread.name = "kafka-metadata"
      thread.start()
    }
  }

  /// The records handed to librdkafka and not yet reported.
  public var outstandingRecords: Int { Int(rd_kafka_outq_len(client.handle)) }

  /// Serves delivery callbacks until closed, and answers flush requests.
  private static func pollLoop(client: RDKafkaClient, shared: Shared) {
    while true {
      let waitingFlush = shared.state.withLock { !$0.flushWaiters.isEmpty }
      rd_kafka_poll(client.handle, waitingFlush ? 10 : 100)
      let outstanding = rd_kafka_outq_len(client.handle)
      let now = ContinuousClock.now
      let (done, expired, closed) = shared.state.withLock { state in
        var done: [CheckedContinuation<Void, any Error>] = []
        var expired: [CheckedContinuation<Void, any Error>] = []
        state.flushWaiters.removeAll { waiter in
          if outstanding == 0 {
            done.append(waiter.continuation)
            return true
          }
          if waiter.deadline <= now {
            expired.append(waiter.continuation)
            return true
          }
          return false
        }
        return (done, expired, state.closed)
      }
      for waiter in done { waiter.resume() }
      for waiter in expired {
        waiter.resume(
          throwing: KafkaError(
            code: .timeout, message: "\(outstanding) records still undelivered at the flush deadline",
            isRetriable: true))
      }
      if closed { break }
    }
    // Fail what is left so that no `send` waits forever, then serve the resulting callbacks.
    rd_kafka_purge(client.handle, Int32(RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT))
    rd_kafka_poll(client.handle, 0)
    let (waiters, threadDone) = shared.state.withLock { state in
      state.pollThreadFinished = true
      defer {
        state.flushWaiters = []
        state.pollThreadDone = nil
      }
      return (state.flushWaiters.map { $0.continuation }, state.pollThreadDone)
    }
    for waiter in waiters { waiter.resume() }
    threadDone?.resume()
  }
}

private enum SendOutcome: Sendable {
  case delivered(KafkaDeliveryReport)
  case failed(KafkaError)
  case notEnqueued(rd_kafka_resp_err_t)
}

/// The per-record context handed to librdkafka as the message opaque.
private final class DeliveryBox {
  let topic: String
  let complete: @Sendable (SendOutcome) -> Void
  init(topic: String, complete: @escaping @Sendable (SendOutcome) -> Void) {
    self.topic = topic
    self.complete = complete
  }
}

/// Collects the delivery outcomes of one ``KafkaProducer/sendInOrder(_:)`` call.
private final class DeliveryBatch: Sendable {
  private struct State {
    var outcomes: [SendOutcome?]
    var remaining: Int
    var waiter: CheckedContinuation<Void, Never>?
  }
  private let state: Mutex<State>

  init(count: Int) {
    state = Mutex(State(outcomes: Array(repeating: nil, count: count), remaining: count, waiter: nil))
  }

  func complete(_ index: Int, _ outcome: SendOutcome) {
    let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
      guard state.outcomes[index] == nil else { return nil }
      state.outcomes[index] = outcome
      state.remaining -= 1
      guard state.remaining == 0 else { return nil }
      defer { state.waiter = nil }
      return state.waiter
    }
    waiter?.resume()
  }

  func abandon(from index: Int, _ error: KafkaError) {
    let count = state.withLock { $0.outcomes.count }
    for index in index..<count { complete(index, .failed(error)) }
  }

  func results() async -> [Result<KafkaDeliveryReport, KafkaError>] {
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
      let done = state.withLock { state -> Bool in
        if state.remaining == 0 { return true }
        state.waiter = continuation
        return false
      }
      if done { continuation.resume() }
    }
    return state.withLock { state in
      state.outcomes.map { outcome -> Result<KafkaDeliveryReport, KafkaError> in
        switch outcome {
        case .delivered(let report)?: .success(report)
        case .failed(let error)?: .failure(error)
        case .notEnqueued(let code)?:
          .failure(KafkaError(code: .produce, code, context: "could not enqueue record"))
        case nil: .failure(KafkaError(code: .closed, message: "producer is closed"))
        }
      }
    }
  }
}

/// librdkafka's delivery report callback: resumes the record's `send`.
private func deliveryReportCallback(
  _ handle: OpaquePointer?, _ message: UnsafePointer<rd_kafka_message_t>?,
  _ opaque: UnsafeMutableRawPointer?
) {
  guard let message, let boxPointer = message.pointee._private else { return }
  let box = Unmanaged<DeliveryBox>.fromOpaque(boxPointer).takeRetainedValue()
  let error = message.pointee.err
  if error == RD_KAFKA_RESP_ERR_NO_ERROR {
    box.complete(
      .delivered(
        KafkaDeliveryReport(
          topic: box.topic, partition: message.pointee.partition, offset: message.pointee.offset)))
  } else {
    box.complete(
      .failed(KafkaError(code: .delivery, error, context: "record for \(box.topic) not delivered")))
  }
}
