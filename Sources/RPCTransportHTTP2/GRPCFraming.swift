/// Why a received message could not be unframed.
enum GRPCFramingError: Error, Equatable {
  /// The length prefix announces more than the receiver accepts.
  case messageTooLarge(length: Int, limit: Int)
  /// The compressed flag is set but no compression was negotiated.
  case unexpectedCompression
  /// The flag byte is neither 0 nor 1.
  case invalidFlag(UInt8)
}

/// Length-prefixed messages (gRPC `Length-Prefixed-Message`): a flag byte, a 4-byte big-endian
/// length, the message.
enum GRPCFraming {
  /// `message` with its 5-byte prefix.
  static func frame(_ message: [UInt8]) -> [UInt8] {
    var framed = [UInt8]()
    framed.reserveCapacity(message.count + 5)
    let length = UInt32(message.count)
    framed.append(0)
    framed.append(UInt8(truncatingIfNeeded: length >> 24))
    framed.append(UInt8(truncatingIfNeeded: length >> 16))
    framed.append(UInt8(truncatingIfNeeded: length >> 8))
    framed.append(UInt8(truncatingIfNeeded: length))
    framed += message
    return framed
  }
}

/// Reassembles messages from DATA frame payloads, however they are split: a message may span
/// many frames and a frame may hold many messages. Never allocates more than the announced
/// length of a message that passed the size check.
struct GRPCMessageDeframer {
  /// The largest message accepted.
  let maximumMessageBytes: Int
  private var header: [UInt8] = []
  private var message: [UInt8] = []
  private var expected: Int? = nil

  init(maximumMessageBytes: Int) { self.maximumMessageBytes = maximumMessageBytes }

  /// True when no message is partly received (a stream may only end here).
  var isAtMessageBoundary: Bool { header.isEmpty && expected == nil }

  /// Bytes held for a message not yet complete (they count against the receive buffers).
  var partialBytes: Int { header.count + message.count }

  /// Adds received bytes; returns the messages they completed.
  mutating func append(_ bytes: [UInt8]) throws(GRPCFramingError) -> [[UInt8]] {
    var messages: [[UInt8]] = []
    var index = 0
    while index < bytes.count {
      if let length = expected {
        let take = min(length - message.count, bytes.count - index)
        message += bytes[index..<index + take]
        index += take
        if message.count == length {
          messages.append(message)
          message = []
          expected = nil
        }
        continue
      }
      let take = min(5 - header.count, bytes.count - index)
      header += bytes[index..<index + take]
      index += take
      guard header.count == 5 else { continue }
      switch header[0] {
      case 0: break
      case 1: throw .unexpectedCompression
      default: throw .invalidFlag(header[0])
      }
      let length = Int(header[1]) << 24 | Int(header[2]) << 16 | Int(header[3]) << 8 | Int(header[4])
      header = []
      guard length <= maximumMessageBytes else {
        throw .messageTooLarge(length: length, limit: maximumMessageBytes)
      }
      if length == 0 {
        messages.append([])
      } else {
        expected = length
        message.reserveCapacity(length)
      }
    }
    return messages
  }
}
