import Foundation
import PaymentsCore
import ProtobufRuntime
import Testing

@Suite("Timestamps from the network")
struct TimestampTests {
  @Test(
    "the valid range is 0001-01-01 … 9999-12-31 with nanos 0 … 999,999,999; everything else names the problem"
  )
  func range() {
    let valid: [(Int64, Int32)] = [
      (-62_135_596_800, 0), (253_402_300_799, 999_999_999), (0, 0), (1_800_000_000, 123),
    ]
    for (seconds, nanos) in valid {
      let time = Google_Protobuf_Timestamp.with {
        $0.seconds = seconds
        $0.nanos = nanos
      }
      #expect(time.rangeProblem == nil)
      // Conversions of valid values are total and round-trip to the microsecond.
      let micros = PaymentClock.microseconds(time.date)
      #expect(abs(micros - (seconds * 1_000_000 + Int64(nanos / 1000))) <= 1_000, "\(seconds).\(nanos)")
    }
    let invalid: [(Int64, Int32)] = [
      (-62_135_596_801, 0), (253_402_300_800, 0), (.max, 0), (.min, 0), (1 << 62, 0), (0, -1),
      (0, 1_000_000_000), (0, .max), (0, .min),
    ]
    for (seconds, nanos) in invalid {
      let time = Google_Protobuf_Timestamp.with {
        $0.seconds = seconds
        $0.nanos = nanos
      }
      #expect(time.rangeProblem != nil, "\(seconds).\(nanos)")
    }
  }

  @Test("no date makes the microsecond conversions trap")
  func total() {
    for date in [
      Date.distantFuture, .distantPast, Date(timeIntervalSince1970: 1e300),
      Date(timeIntervalSince1970: -1e300),
    ] {
      _ = PaymentClock.microseconds(date)
      _ = Google_Protobuf_Timestamp(date: date)
    }
    #expect(PaymentClock.microseconds(Date(timeIntervalSince1970: 1e300)) == .max)
    #expect(Google_Protobuf_Timestamp(date: Date(timeIntervalSince1970: -0.5)).seconds == -1)
    #expect(Google_Protobuf_Timestamp(date: Date(timeIntervalSince1970: -0.5)).nanos == 500_000_000)
  }
}
