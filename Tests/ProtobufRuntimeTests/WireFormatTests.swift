import ProtobufRuntime
import Testing

@Suite("protobuf wire format")
struct WireFormatTests {
  @Test("encodings match the examples of the protobuf encoding specification")
  func specificationVectors() throws {
    #expect(Sample(id: 150).serializedBytes() == [0x08, 0x96, 0x01])
    #expect(Sample(name: "testing").serializedBytes() == [0x12, 0x07] + Array("testing".utf8))
    // Negative int32 is sign-extended to ten bytes; sint32 uses ZigZag.
    #expect(Sample(id: -1).serializedBytes() == [0x08] + Array(repeating: 0xff, count: 9) + [0x01])
    #expect(Sample(signed: -1).serializedBytes() == [0x30, 0x01])
    #expect(Sample(signed: Int32.min).serializedBytes() == [0x30, 0xff, 0xff, 0xff, 0xff, 0x0f])
    // An embedded message: tag, length, content.
    #expect(Sample(children: [Sample(id: 150)]).serializedBytes() == [0x1a, 0x03, 0x08, 0x96, 0x01])
    // Packed repeated: one tag, total length, the varints.
    #expect(
      Sample(values: [3, 270, 86942]).serializedBytes() == [0x22, 0x06, 0x03, 0x8e, 0x02, 0x9e, 0xa7, 0x05])
    #expect(Sample(ratio: 1.0).serializedBytes() == [0x39, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f])
    #expect(Sample(fixed: 1).serializedBytes() == [0x4d, 1, 0, 0, 0])
  }

  @Test("every field kind round-trips, including long nested messages")
  func roundTrip() throws {
    let child = Sample(
      id: 7, name: String(repeating: "ü", count: 300), values: [Int64.min, -1, 0, Int64.max])
    let message = Sample(
      id: Int32.max, name: "héllo 🎉", children: [child, Sample()], values: Array(0..<1000), flag: true,
      signed: Int32.min, ratio: -0.0001, blob: [0, 255, 128], fixed: UInt32.max)
    let bytes = message.serializedBytes()
    #expect(try Sample(serializedBytes: bytes) == message)
    // The 600-byte child needs a two-byte length, written in one pass.
    #expect(bytes.count > 1000)
    // Both encoder modes (exact-size memory with back-patched lengths, and the growable buffer)
    // produce the same bytes.
    var growable = ProtobufEncoder()
    message.encode(to: &growable)
    #expect(growable.buffer == bytes)
  }

  @Test("unpacked encoding of a packed field is accepted, and packed runs concatenate")
  func packedAndUnpacked() throws {
    let unpacked: [UInt8] = [0x20, 0x01, 0x20, 0x02, 0x22, 0x02, 0x03, 0x04]
    #expect(try Sample(serializedBytes: unpacked).values == [1, 2, 3, 4])
  }

  @Test("unknown fields, including groups and mismatched wire types, survive a re-encode byte for byte")
  func unknownFieldsPreserved() throws {
    let unknown: [UInt8] =
      [0xa0, 0x06, 0x2a]  // field 100, varint 42
      + [0x0d, 0x01, 0x02, 0x03, 0x04]  // field 1 as fixed32: a known number with the wrong wire type
      + [0xab, 0x06, 0x08, 0x01, 0xac, 0x06]  // group 101 { field 1 = 1 }
    let bytes = [0x08, 0x05] + unknown
    let message = try Sample(serializedBytes: bytes)
    #expect(message.id == 5)
    #expect(message.unknownFields.data == unknown)
    #expect(message.serializedBytes() == bytes)
  }

  @Test("a singular embedded message that appears twice is merged")
  func mergeRepeatedOccurrence() throws {
    struct Wrapper: ProtobufMessage {
      static let protoMessageName = "test.Wrapper"
      var inner = Sample()
      var unknownFields = UnknownFields()
      mutating func decodeField(_ field: Int, _ wireType: WireType, from decoder: inout ProtobufDecoder)
        throws
      {
        if field == 1, wireType == .lengthDelimited {
          try decoder.readMessage(into: &inner)
        } else {
          try decoder.skipField(field, wireType, keepingIn: &unknownFields)
        }
      }
      func encode(to encoder: inout ProtobufEncoder) { encoder.writeMessage(field: 1, inner) }
    }
    let bytes: [UInt8] = [0x0a, 0x02, 0x08, 0x07, 0x0a, 0x03, 0x12, 0x01, 0x61]
    let wrapper = try Wrapper(serializedBytes: bytes)
    #expect(wrapper.inner.id == 7)
    #expect(wrapper.inner.name == "a")
  }
}

@Suite("protobuf decoding of malformed input")
struct MalformedInputTests {
  static let cases: [(String, [UInt8], ProtobufDecodingError.Code, [String])] = [
    ("truncated varint", [0x08, 0x96], .truncated, ["id"]),
    ("truncated tag", [0x80], .truncated, []),
    ("length past the end", [0x12, 0x05, 0x61], .lengthOutOfBounds, ["name"]),
    (
      "giant length prefix", [0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f], .lengthOutOfBounds,
      ["name"]
    ),
    ("11-byte varint", [0x08] + Array(repeating: 0x80, count: 10) + [0x01], .malformedVarint, ["id"]),
    (
      "varint overflowing 64 bits", [0x08] + Array(repeating: 0xff, count: 9) + [0x02], .malformedVarint,
      ["id"]
    ),
    ("field number 0", [0x00, 0x01], .invalidTag, []),
    ("wire type 7", [0x0f, 0x01], .invalidWireType, []),
    // Field 1 ("id") arriving as a group is unknown data, and its framing is checked.
    ("end group without start", [0x0c], .unmatchedGroup, ["id"]),
    ("group closed with another number", [0x0b, 0x14], .unmatchedGroup, ["id"]),
    ("unterminated group", [0x0b, 0x08, 0x01], .truncated, ["id"]),
    ("invalid UTF-8 in a string", [0x12, 0x02, 0xc3, 0x28], .invalidUTF8, ["name"]),
    ("truncated fixed64", [0x39, 0x00, 0x00], .truncated, ["ratio"]),
    (
      "nested length past its parent", [0x1a, 0x02, 0x12, 0x05, 0x61, 0x61, 0x61, 0x61, 0x61],
      .lengthOutOfBounds, ["children", "name"]
    ),
    (
      "invalid UTF-8 two levels down", [0x1a, 0x06, 0x1a, 0x04, 0x12, 0x02, 0xff, 0xfe], .invalidUTF8,
      ["children", "children", "name"]
    ),
  ]

  @Test("each malformed input returns its typed error with the field path", arguments: cases)
  func malformed(name: String, bytes: [UInt8], code: ProtobufDecodingError.Code, path: [String]) {
    let error = #expect(throws: ProtobufDecodingError.self, "\(name)") { try Sample(serializedBytes: bytes) }
    #expect(error?.code == code, "\(name): \(String(describing: error))")
    #expect(error?.path == path, "\(name): \(String(describing: error))")
  }

  @Test("nesting deeper than the limit is refused, not a stack overflow")
  func deepNesting() {
    // 10,000 levels of `children { children { ... } }`, built inside out.
    var bytes: [UInt8] = []
    for _ in 0..<10_000 {
      var encoder = ProtobufEncoder()
      encoder.writeTag(field: 3, .lengthDelimited)
      encoder.writeVarint(UInt64(bytes.count))
      bytes = encoder.buffer + bytes
    }
    let error = #expect(throws: ProtobufDecodingError.self) { try Sample(serializedBytes: bytes) }
    #expect(error?.code == .recursionLimit)
    // Deep unknown groups are limited too.
    let groups = Array(repeating: [UInt8]([0xab, 0x06]), count: 5_000).flatMap { $0 }
    let groupError = #expect(throws: ProtobufDecodingError.self) { try Sample(serializedBytes: groups) }
    #expect(groupError?.code == .recursionLimit)
  }

  @Test("nesting up to the limit is accepted")
  func nestingAtTheLimit() throws {
    var message = Sample(id: 1)
    for _ in 0..<(ProtobufLimits.maximumDepth - 1) { message = Sample(children: [message]) }
    #expect(try Sample(serializedBytes: message.serializedBytes()) == message)
  }
}

@Suite("UTF-8 validation of string fields")
struct UTF8ValidationTests {
  static let invalid: [[UInt8]] = [
    [0xC0, 0xAF],  // overlong "/"
    [0xE0, 0x80, 0xAF],  // overlong
    [0xED, 0xA0, 0x80],  // surrogate U+D800
    [0xF4, 0x90, 0x80, 0x80],  // above U+10FFFF
    [0xF0, 0x9F, 0x98],  // truncated 4-byte sequence
    [0x80],  // lone continuation byte
    [0xFF],  // never valid
    [0x61, 0xE2, 0x82],  // truncated at the end
  ]

  @Test("malformed sequences are rejected", arguments: invalid)
  func rejects(bytes: [UInt8]) {
    var encoder = ProtobufEncoder()
    encoder.writeTag(field: 2, .lengthDelimited)
    encoder.writeVarint(UInt64(bytes.count))
    encoder.writeRaw(bytes)
    let error = #expect(throws: ProtobufDecodingError.self) { try Sample(serializedBytes: encoder.buffer) }
    #expect(error?.code == .invalidUTF8)
  }

  @Test("every valid form is accepted, byte for byte")
  func accepts() throws {
    for text in [
      "", "ascii", "é", "€", "𝄞", "\u{10FFFF}", "\u{FFFD}",
      "日本語 🎉 \u{7F}\u{80}\u{7FF}\u{800}\u{FFFF}\u{10000}",
    ] {
      #expect(try Sample(serializedBytes: Sample(name: text).serializedBytes()).name == text)
    }
  }
}
