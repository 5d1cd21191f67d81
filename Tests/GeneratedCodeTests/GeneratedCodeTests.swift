import ProtobufRuntime
import Testing

/// Code generated at build time (by the ProtobufGenerator plugin) from `proto/`, exercised.
@Suite("generated code")
struct GeneratedCodeTests {
  static func full() -> Conformance_V1_Everything {
    var message = Conformance_V1_Everything()
    message.fDouble = -2.5
    message.fFloat = 1.25
    message.fInt64 = Int64.min
    message.fUint64 = UInt64.max
    message.fInt32 = -7
    message.fFixed64 = 0x0102_0304_0506_0708
    message.fFixed32 = 0xdead_beef
    message.fBool = true
    message.fString = "héllo ✓"
    message.fBytes = [0, 1, 255]
    message.fUint32 = UInt32.max
    message.fSfixed32 = Int32.min
    message.fSfixed64 = -1
    message.fSint32 = -123_456
    message.fSint64 = Int64.min
    message.color = .green
    message.mood = .angry
    var nested = Conformance_V1_Everything.Nested()
    nested.value = 42
    message.nested = nested
    var other = Other_V1_Other()
    other.name = "from another package"
    message.other = other
    var child = Conformance_V1_Everything()
    child.fString = "child"
    message.child = child
    message.optInt32 = 0  // present although it is the default
    message.optString = ""
    message.optColor = .unspecified
    message.rInt32 = [1, -1, Int32.max]
    message.rSint64 = [-1, 0, 1]
    message.rDouble = [0.5, -0.0]
    message.rFixed32 = [1, 2]
    message.rBool = [true, false, true]
    message.rColor = [.red, .negative, .unrecognized(99)]
    message.rString = ["a", "", "c"]
    message.rBytes = [[1], []]
    message.rNested = [nested, Conformance_V1_Everything.Nested()]
    message.mString = ["b": "2", "a": "1", "": ""]
    message.mNested = [3: nested, -1: Conformance_V1_Everything.Nested()]
    message.mBool = [true: .red, false: .green]
    message.mBytes = [Int64.min: [9], 0: []]
    message.choice = .choiceNested(nested)
    var timestamp = Google_Protobuf_Timestamp()
    timestamp.seconds = 1_700_000_000
    timestamp.nanos = 5
    message.timestamp = timestamp
    message.duration = Google_Protobuf_Duration()
    message.empty = Google_Protobuf_Empty()
    var wrapped = Google_Protobuf_Int64Value()
    wrapped.value = 0
    message.wrappedInt64 = wrapped
    message.`default` = "keyword"
    message.`protocol` = 7
    message.paymentID = "pay_1"
    message.bigFieldNumber = 1
    return message
  }

  @Test("a message using every feature round-trips through the binary format")
  func roundTrip() throws {
    let message = Self.full()
    let decoded = try Conformance_V1_Everything(serializedBytes: message.serializedBytes())
    #expect(decoded == message)
    #expect(decoded.choice == .choiceNested(message.nested!))
    #expect(decoded.child?.fString == "child")
    #expect(decoded.optInt32 == 0, "explicit presence keeps a default value")
    #expect(decoded.rColor.last == .unrecognized(99), "open enums keep unknown values")
  }

  @Test("the encoding is deterministic: maps are written in key order")
  func deterministic() {
    var first = Self.full()
    var second = Self.full()
    first.mString = ["x": "1", "y": "2", "z": "3"]
    second.mString = ["z": "3", "x": "1", "y": "2"]
    #expect(first.serializedBytes() == second.serializedBytes())
  }

  @Test(
    "map entries are written in ascending key order (UTF-8 bytes, numbers numerically)",
    arguments: [3, 16, 17, 40])
  func mapKeyOrder(count: Int) {
    var message = Conformance_V1_Everything()
    let keys = ((0..<count).map { "k" + String(1000 + $0) } + ["Z", "a", "ab", "é", ""]).shuffled()
    for key in keys { message.mString[key] = "<" + key + ">" }
    let numbers: [Int64] = [3, -5, 0, Int64.min, -1, Int64.max, 42].shuffled()
    for number in numbers { message.mBytes[number] = Array("#\(number)#".utf8) }
    let bytes = message.serializedBytes()
    func position(_ marker: String) -> Int? { bytes.firstRange(of: Array(marker.utf8))?.lowerBound }
    let stringOrder = keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }.compactMap {
      position("<" + $0 + ">")
    }
    #expect(stringOrder.count == keys.count)
    #expect(stringOrder == stringOrder.sorted())
    let numberOrder = numbers.sorted().compactMap { position("#\($0)#") }
    #expect(numberOrder.count == numbers.count)
    #expect(numberOrder == numberOrder.sorted())
  }

  @Test("defaults are not written; explicit presence is")
  func defaults() {
    #expect(Conformance_V1_Everything().serializedBytes().isEmpty)
    var present = Conformance_V1_Everything()
    present.optInt32 = 0
    #expect(present.serializedBytes() == [0xa8, 0x01, 0x00])
  }

  @Test("a recursive oneof member and recursive fields work at depth")
  func recursion() throws {
    var message = Conformance_V1_Everything()
    for depth in 0..<50 {
      var outer = Conformance_V1_Everything()
      outer.fInt32 = Int32(depth)
      outer.choice = .choiceEverything(message)
      message = outer
    }
    let decoded = try Conformance_V1_Everything(serializedBytes: message.serializedBytes())
    #expect(decoded == message)
  }

  @Test("fields this schema does not know survive a decode and re-encode")
  func unknownFields() throws {
    // `Other` only knows field 1; send it fields 2 (varint) and 3 (string) too.
    let bytes: [UInt8] = [0x0a, 0x01, 0x61, 0x10, 0x05, 0x1a, 0x02, 0x68, 0x69]
    let other = try Other_V1_Other(serializedBytes: bytes)
    #expect(other.name == "a")
    #expect(other.serializedBytes() == bytes)
  }

  @Test("enum cases follow Swift conventions and keep their proto names")
  func enumNames() {
    #expect(Conformance_V1_Color.green.rawValue == 5)
    #expect(Conformance_V1_Color(rawValue: -1) == .negative)
    #expect(Conformance_V1_Color.green.protoName == "COLOR_GREEN")
    #expect(Conformance_V1_Everything.Mood.angry.protoName == "ANGRY")
    #expect(Conformance_V1_Color.allCases == [.unspecified, .red, .green, .negative])
  }

  @Test("each file embeds its descriptor for reflection")
  func embeddedDescriptor() {
    #expect(Conformance_V1_Everything_ProtoFile.name == "conformance/v1/everything.proto")
    #expect(Conformance_V1_Everything_ProtoFile.dependencies.contains("other/v1/other.proto"))
    #expect(!Conformance_V1_Everything_ProtoFile.serializedDescriptor.isEmpty)
  }
}
