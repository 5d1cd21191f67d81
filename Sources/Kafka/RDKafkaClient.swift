import CRDKafka
import Glibc
import Logging

/// Owns one `rd_kafka_t` and the context its C callbacks reach through `rd_kafka_opaque`.
///
/// `@unchecked Sendable`: librdkafka documents `rd_kafka_t` as thread-safe for the calls made
/// here (produce, poll, offsets_store, commit, metadata); the consumer-specific calls that are
/// not (consumer_poll, assign, consumer_close) are only made from the consumer's own thread.
final class RDKafkaClient: @unchecked Sendable {
  let handle: OpaquePointer
  let context: Unmanaged<CallbackContext>
  let kind: Kind

  /// What C callbacks need; kept alive (retained) until the handle is destroyed.
  class CallbackContext {
    let logger: Logger
    init(logger: Logger) { self.logger = logger }
  }

  enum Kind {
    case producer, consumer
    var raw: rd_kafka_type_t { self == .producer ? RD_KAFKA_PRODUCER : RD_KAFKA_CONSUMER }
  }

  /// Creates the handle. `configure` may install more callbacks on the configuration.
  init(
    kind: Kind, properties: [(String, String)], context: CallbackContext,
    configure: (OpaquePointer) -> Void = { _ in }
  ) throws {
    let configuration = try Self.makeConfiguration(properties)
    let retained = Unmanaged.passRetained(context)
    rd_kafka_conf_set_opaque(configuration, retained.toOpaque())
    rd_kafka_conf_set_log_cb(configuration, kafkaLogCallback)
    configure(configuration)
    var errorText = [CChar](repeating: 0, count: 512)
    guard let handle = rd_kafka_new(kind.raw, configuration, &errorText, errorText.count) else {
      rd_kafka_conf_destroy(configuration)
      retained.release()
      throw KafkaError(code: .configuration, message: String(cStringBuffer: errorText))
    }
    self.handle = handle
    self.context = retained
    self.kind = kind
  }

  deinit {
    // A consumer has already left its group on its own thread (KafkaConsumer.run); closing it a
    // second time here could block on a coordinator that is gone.
    let flags = kind == .consumer ? RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE : 0
    rd_kafka_destroy_flags(handle, Int32(flags))
    context.release()
  }

  static func makeConfiguration(_ properties: [(String, String)]) throws -> OpaquePointer {
    let configuration = rd_kafka_conf_new()!
    var errorText = [CChar](repeating: 0, count: 512)
    for (key, value) in properties {
      let result = rd_kafka_conf_set(configuration, key, value, &errorText, errorText.count)
      guard result == RD_KAFKA_CONF_OK else {
        rd_kafka_conf_destroy(configuration)
        let shown = key.contains("password") || key.contains("secret") ? "<redacted>" : value
        throw KafkaError(
          code: .configuration,
          message: "\(key)=\(shown): \(String(cStringBuffer: errorText))")
      }
    }
    return configuration
  }

  /// The fatal error that made this instance unusable, if any.
  func fatalError() -> KafkaError? {
    var text = [CChar](repeating: 0, count: 512)
    let code = rd_kafka_fatal_error(handle, &text, text.count)
    guard code != RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
    return KafkaError(code: .consume, code, context: String(cStringBuffer: text), fatal: true)
  }
}

/// Routes librdkafka's log lines (syslog levels) into swift-log. Runs on librdkafka's threads.
private func kafkaLogCallback(
  _ handle: OpaquePointer?, _ level: Int32, _ facility: UnsafePointer<CChar>?,
  _ message: UnsafePointer<CChar>?
) {
  guard let handle, let opaque = rd_kafka_opaque(handle) else { return }
  let context = Unmanaged<RDKafkaClient.CallbackContext>.fromOpaque(opaque).takeUnretainedValue()
  let logLevel: Logger.Level =
    switch level {
    case ...3: .error
    case 4: .warning
    case 5, 6: .info
    default: .debug
    }
  context.logger.log(
    level: logLevel, "\(message.map { String(cString: $0) } ?? "")",
    metadata: ["kafka_facility": "\(facility.map { String(cString: $0) } ?? "")"])
}

extension String {
  /// The NUL-terminated text in a C error buffer.
  init(cStringBuffer buffer: [CChar]) {
    let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
    self = String(decoding: bytes, as: UTF8.self)
  }
}
