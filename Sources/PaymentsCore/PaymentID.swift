public import Foundation

/// Server-assigned payment identifiers: `pay_` followed by a UUIDv7 (RFC 9562) in lower-case hex
/// without dashes. The first 48 bits are the Unix time in milliseconds, so identifiers sort by
/// creation time; the remaining 74 bits are random.
public enum PaymentID {
  /// The prefix of every payment identifier.
  public static let prefix = "pay_"

  /// A new identifier for a payment created at `date`.
  public static func generate(at date: Date = Date()) -> String { generate(prefix: prefix, at: date) }

  /// `prefix` and a new UUIDv7 of `date` in lower-case hex.
  static func generate(prefix: String, at date: Date) -> String {
    var generator = SystemRandomNumberGenerator()
    var bytes = [UInt8](repeating: 0, count: 16)
    let milliseconds = UInt64(max(0, date.timeIntervalSince1970 * 1000))
    for index in 0..<6 { bytes[index] = UInt8(truncatingIfNeeded: milliseconds >> (40 - 8 * UInt64(index))) }
    for index in 6..<16 { bytes[index] = generator.next() }
    bytes[6] = 0x70 | (bytes[6] & 0x0F)  // version 7
    bytes[8] = 0x80 | (bytes[8] & 0x3F)  // variant 10
    let digits = Array("0123456789abcdef".utf8)
    var text = prefix
    text.reserveCapacity(prefix.utf8.count + 32)
    for byte in bytes {
      text.unicodeScalars.append(Unicode.Scalar(digits[Int(byte >> 4)]))
      text.unicodeScalars.append(Unicode.Scalar(digits[Int(byte & 0x0F)]))
    }
    return text
  }

  /// Whether `text` has the shape of a payment identifier.
  public static func isWellFormed(_ text: String) -> Bool { isWellFormed(text, prefix: prefix) }

  static func isWellFormed(_ text: String, prefix: String) -> Bool {
    let utf8 = text.utf8
    guard utf8.count == prefix.utf8.count + 32, text.hasPrefix(prefix) else { return false }
    return utf8.dropFirst(prefix.utf8.count).allSatisfy {
      (0x30...0x39).contains($0) || (0x61...0x66).contains($0)
    }
  }
}

/// Server-assigned refund identifiers: `ref_` followed by a UUIDv7, like ``PaymentID``.
public enum RefundID {
  /// The prefix of every refund identifier.
  public static let prefix = "ref_"

  /// A new identifier for a refund created at `date`.
  public static func generate(at date: Date = Date()) -> String {
    PaymentID.generate(prefix: prefix, at: date)
  }

  /// Whether `text` has the shape of a refund identifier.
  public static func isWellFormed(_ text: String) -> Bool { PaymentID.isWellFormed(text, prefix: prefix) }
}
