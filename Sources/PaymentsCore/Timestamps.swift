public import Foundation
public import ProtobufRuntime

extension Google_Protobuf_Timestamp {
  /// The timestamp of `date`, rounded to the microsecond (the precision the platform stores).
  public init(date: Date) {
    self.init()
    let micros = Int64((date.timeIntervalSince1970 * 1_000_000).rounded())
    let seconds = micros >= 0 ? micros / 1_000_000 : (micros - 999_999) / 1_000_000
    self.seconds = seconds
    self.nanos = Int32((micros - seconds * 1_000_000) * 1000)
  }

  /// The timestamp as a `Date`.
  public var date: Date { Date(timeIntervalSince1970: Double(seconds) + Double(nanos) / 1e9) }
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

  /// Microseconds since 1970 of a truncated date.
  public static func microseconds(_ date: Date) -> Int64 {
    Int64((date.timeIntervalSince1970 * 1_000_000).rounded())
  }
}
