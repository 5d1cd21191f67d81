public import Kafka
public import Logging
import PaymentsCore
import PaymentsProto
import ProtobufRuntime
import ServiceKit

/// Projects `payments.orders.v1` and `payments.events.v1` into the read model, in its own
/// consumer group. A record's offset is stored only after its state is written, and committed
/// every ``commitInterval``, so a crash replays what was not yet written (the version-guarded
/// upsert makes replays harmless) and never skips anything.
public struct PaymentProjection: Sendable {
  private let readModel: PaymentReadModel
  private let consumer: KafkaConsumerConfiguration
  private let logger: Logger
  /// How often stored offsets are committed.
  public var commitInterval: Duration = .milliseconds(500)
  /// The most records written to the read model in one statement.
  public var batchSize = 500

  public init(readModel: PaymentReadModel, consumer: KafkaConsumerConfiguration, logger: Logger) {
    self.readModel = readModel
    self.consumer = consumer
    self.logger = logger
  }

  /// Consumes until the task is cancelled; then commits what was written and leaves the group.
  public func run() async throws {
    var consumer = BatchConsumer(
      configuration: self.consumer, topics: [PaymentsTopic.orders, PaymentsTopic.events], logger: logger)
    consumer.batchSize = batchSize
    consumer.commitInterval = commitInterval
    try await consumer.run { records in try await write(records) }
  }

  /// Writes the payment states of `records` in one statement. Records that are not payment
  /// states are skipped (and logged).
  func write(_ records: [KafkaConsumerRecord]) async throws {
    let states = records.compactMap { record in
      decode(record).map { PaymentReadModel.State(payment: $0.0, clientID: $0.1) }
    }
    guard !states.isEmpty else { return }
    try await readModel.apply(states)
  }

  /// The payment state a record carries, or `nil` (logged) for a record that is not one.
  func decode(_ record: KafkaConsumerRecord) -> (Payments_V1_Payment, String)? {
    do {
      switch record.topic {
      case PaymentsTopic.orders:
        let order = try Payments_V1_PaymentOrderRecord(serializedBytes: record.value)
        guard !order.paymentID.isEmpty, !order.clientID.isEmpty else { break }
        return (Payments_V1_Payment(acceptedOrder: order), order.clientID)
      case PaymentsTopic.events:
        let event = try Payments_V1_PaymentEvent(serializedBytes: record.value)
        guard var payment = event.payment, !event.clientID.isEmpty else { break }
        if payment.paymentID.isEmpty { payment.paymentID = event.paymentID }
        if payment.version == 0 { payment.version = event.version }
        guard !payment.paymentID.isEmpty, payment.version > 0 else { break }
        return (payment, event.clientID)
      default:
        break
      }
    } catch {
      logger.error(
        "skipping a record that does not decode",
        metadata: [
          "topic": "\(record.topic)", "partition": "\(record.partition)", "offset": "\(record.offset)",
          "error": "\(error)",
        ])
      return nil
    }
    logger.error(
      "skipping a record without payment ID, client or version",
      metadata: [
        "topic": "\(record.topic)", "partition": "\(record.partition)", "offset": "\(record.offset)",
      ])
    return nil
  }
}
