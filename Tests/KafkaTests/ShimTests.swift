import CRDKafka
import CRDKafkaShim
import Testing

/// The C shim's argument list, checked at the C level (under AddressSanitizer in tools/test a
/// write past the buffer fails the run): a record with a key and headers needs all seven entries.
@Suite("librdkafka shim")
struct ShimTests {
  @Test(
    "a record with key and headers fills exactly seven entries; a buffer too small is refused, not overrun")
  func argumentList() {
    let capacity = Int(PAYMENTS_RDKAFKA_PRODUCE_MAX_ARGUMENTS)
    #expect(capacity == 7)
    let headers = rd_kafka_headers_new(1)
    defer { rd_kafka_headers_destroy(headers) }
    let key: [UInt8] = [1, 2, 3]
    let value: [UInt8] = [4, 5]
    for (withKey, withHeaders, expected) in [
      (true, true, 7), (true, false, 6), (false, true, 6), (false, false, 5),
    ] {
      // Exactly as many entries as needed: one more written would be a heap-buffer-overflow.
      let buffer = UnsafeMutablePointer<rd_kafka_vu_t>.allocate(capacity: expected)
      defer { buffer.deallocate() }
      let count = key.withUnsafeBytes { keyBytes in
        value.withUnsafeBytes { valueBytes in
          payments_rdkafka_produce_arguments(
            buffer, expected, "topic", 0, withKey ? keyBytes.baseAddress : nil, key.count,
            valueBytes.baseAddress, value.count, withHeaders ? headers : nil, nil)
        }
      }
      #expect(count == expected, "key \(withKey), headers \(withHeaders)")
      #expect(buffer[0].vtype == RD_KAFKA_VTYPE_TOPIC)
      #expect(buffer[expected - 1].vtype == RD_KAFKA_VTYPE_OPAQUE)
      let small = UnsafeMutablePointer<rd_kafka_vu_t>.allocate(capacity: expected - 1)
      defer { small.deallocate() }
      let refused = key.withUnsafeBytes { keyBytes in
        value.withUnsafeBytes { valueBytes in
          payments_rdkafka_produce_arguments(
            small, expected - 1, "topic", 0, withKey ? keyBytes.baseAddress : nil, key.count,
            valueBytes.baseAddress, value.count, withHeaders ? headers : nil, nil)
        }
      }
      #expect(refused == 0)
    }
  }
}
