public import Foundation
public import ProtobufRuntime

extension Google_Protobuf_Timestamp {
  /// The timestamp of `date`, rounded to the microsecond (the precision the platform stores).
  public init(date: Date) {
    self.init()
    let micros = PaymentClock.microseconds(date)
    let (quotient, remainder) = micros.quotientAndRemainder(dividingBy: 1_000_000)
    // Floor division: the nanos of a time before 1970 count forward from the second before it.
    self.seconds = remainder < 0 ? quotient - 1 : quotient
    self.nanos = Int32(remainder < 0 ? remainder + 1_000_000 : remainder) * 1000
  }

  /// The timestamp as a `Date`.
  public var date: Date { Date(timeIntervalSince1970: Double(seconds) + Double(nanos) / 1e9) }

  /// The earliest valid timestamp, 0001-01-01T00:00:00Z (the range of google.protobuf.Timestamp).
  public static let minimumSeconds: Int64 = -62_135_596_800
  /// The latest valid timestamp's seconds, 9999-12-31T23:59:59Z.
  public static let maximumSeconds: Int64 = 253_402_300_799

  /// What is wrong with this timestamp as a value from the network, or `nil` when it lies in
  /// 0001-01-01…9999-12-31 with nanos in 0…999,999,999 (then every conversion of it is exact
  /// enough and cannot overflow).
  public var rangeProblem: String? {
    if seconds < Self.minimumSeconds || seconds > Self.maximumSeconds {
      return
        "seconds must be between \(Self.minimumSeconds) (0001-01-01) and \(Self.maximumSeconds) (9999-12-31), got \(seconds)"
    }
    if nanos < 0 || nanos > 999_999_999 { return "nanos must be between 0 and 999999999, got \(nanos)" }
    return nil
  }
}

/// The platform's clock for stored times: PostgreSQL keeps microseconds, so times are cut to
/// whole microseconds when they are taken, and what a response says equals what is stored.
public enum PaymentClock {
  /// Now, truncated to the microsecond.
  public static func now() -> Date { truncated(Date()) }

  /// `date` truncated to the microsecond.
  public static func truncated(_ date: Date) -> Date {
    let micros = (date.timeIntervalSince1970 * 1_000_000).rounded(.down)
    return Date(timeIntervalSince1970: micros / 1_000_000)
  }

  /// Microseconds since 1970 of a truncated date (clamped to Int64 for dates no valid input
  /// produces: this never traps).
  public static func microseconds(_ date: Date) -> Int64 {
    let micros = (date.timeIntervalSince1970 * 1_000_000).rounded()
    if let exact = Int64(exactly: micros) { return exact }
    return micros.isNaN ? 0 : (micros > 0 ? .max : .min)
  }
}
