import Foundation
import PaymentsTestSupport
import ProtobufRuntime
import Testing

/// Our generated code against Google's implementation (Python protobuf, from tools/python-env).
@Suite("conformance with Google's protobuf")
struct ConformanceTests {
  static let root = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

  static func python(_ arguments: [String]) throws -> String {
    let python = root.appendingPathComponent(".venv/bin/python").path
    guard FileManager.default.isExecutableFile(atPath: python) else {
      throw HarnessError("\(python) is missing: run tools/python-env (tools/test does)")
    }
    let result = try ChildProcess.run(
      python, [root.appendingPathComponent("tools/conformance/vectors.py").path] + arguments)
    guard result.status == 0 else { throw HarnessError("vectors.py \(arguments): \(result.output)") }
    return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
  }

  static func hex(_ bytes: [UInt8]) -> String {
    bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }
      .joined()
  }

  static func bytes(hex: String) -> [UInt8] {
    var result: [UInt8] = []
    var index = hex.startIndex
    while index < hex.endIndex {
      let next = hex.index(index, offsetBy: 2)
      result.append(UInt8(hex[index..<next], radix: 16)!)
      index = next
    }
    return result
  }

  /// The reference message without maps (whose order the specification leaves open).
  static var referenceWithoutMaps: Conformance_V1_Everything {
    var message = GeneratedCodeTests.full()
    message.mString = [:]
    message.mNested = [:]
    message.mBool = [:]
    message.mBytes = [:]
    return message
  }

  @Test("our binary encoding is byte-identical to Google's for a message without maps")
  func byteIdentical() throws {
    let theirs = Self.bytes(hex: try Self.python(["encode"]))
    #expect(Self.hex(Self.referenceWithoutMaps.serializedBytes()) == Self.hex(theirs))
  }

  @Test("we decode Google's bytes to the expected values")
  func decodeTheirs() throws {
    let theirs = Self.bytes(hex: try Self.python(["encode"]))
    #expect(try Conformance_V1_Everything(serializedBytes: theirs) == Self.referenceWithoutMaps)
  }

  @Test("Google's implementation decodes our bytes, maps included, to the expected values")
  func theyDecodeOurs() throws {
    let ours = GeneratedCodeTests.full().serializedBytes()
    #expect(try Self.python(["decode", Self.hex(ours)]) == "ok")
  }
}

@Suite("proto3 JSON")
struct JSONTests {
  @Test("a message using every feature round-trips through JSON")
  func roundTrip() throws {
    let message = GeneratedCodeTests.full()
    let json = message.jsonString()
    #expect(try Conformance_V1_Everything(jsonString: json) == message.droppingUnknownFields())
    let pretty = message.jsonString(options: JSONEncodingOptions(prettyPrinted: true))
    #expect(try Conformance_V1_Everything(jsonString: pretty) == message)
  }

  @Test("the canonical forms: lowerCamel names, int64 as strings, enums by name, base64, RFC 3339")
  func canonicalForms() throws {
    var message = Conformance_V1_Everything()
    message.fInt64 = -5
    message.fUint64 = 7
    message.color = .green
    message.rColor = [.red, .unrecognized(99)]
    message.fBytes = [0xfb, 0xff]
    message.paymentID = "pay_1"
    var timestamp = Google_Protobuf_Timestamp()
    timestamp.seconds = 1_700_000_000
    timestamp.nanos = 120_000_000
    message.timestamp = timestamp
    var duration = Google_Protobuf_Duration()
    duration.seconds = -1
    duration.nanos = -500_000_000
    message.duration = duration
    var wrapped = Google_Protobuf_StringValue()
    wrapped.value = "w"
    message.wrappedString = wrapped
    let json = message.jsonString()
    #expect(
      json
        == #"{"fInt64":"-5","fUint64":"7","fBytes":"+/8=","color":"COLOR_GREEN","rColor":["COLOR_RED",99],"#
        + #""timestamp":"2023-11-14T22:13:20.120Z","duration":"-1.500s","wrappedString":"w","paymentId":"pay_1"}"#
    )
    let protoNames = message.jsonString(options: JSONEncodingOptions(useProtoNames: true))
    #expect(protoNames.contains(#""f_int64":"-5""#))
    #expect(protoNames.contains(#""payment_id":"pay_1""#))
    // Input accepts both names, numbers for int64, enum numbers, URL-safe base64 without padding.
    let parsed = try Conformance_V1_Everything(
      jsonString: #"{"f_int64": -5, "fUint64": "7", "color": 5, "fBytes": "-_8", "payment_id": "pay_1"}"#)
    #expect(
      parsed.fInt64 == -5 && parsed.fUint64 == 7 && parsed.color == .green && parsed.fBytes == [0xfb, 0xff])
    #expect(parsed.paymentID == "pay_1")
  }

  @Test("bad JSON gets an error that names the field")
  func errors() throws {
    let unknown = #expect(throws: ProtobufJSONError.self) {
      try Conformance_V1_Everything(jsonString: #"{"nested": {"valu": 1}}"#)
    }
    #expect(unknown?.path == ["nested"])
    #expect(unknown?.message.contains("valu") == true)
    #expect(
      try Conformance_V1_Everything(
        jsonString: #"{"nested": {"valu": 1}}"#, options: JSONDecodingOptions(ignoreUnknownFields: true)
      ).nested != nil)
    let range = #expect(throws: ProtobufJSONError.self) {
      try Conformance_V1_Everything(jsonString: #"{"fInt32": 3000000000}"#)
    }
    #expect(range?.path == ["fInt32"])
    let enumName = #expect(throws: ProtobufJSONError.self) {
      try Conformance_V1_Everything(jsonString: #"{"color": "PURPLE"}"#)
    }
    #expect(enumName?.path == ["color"])
    let time = #expect(throws: ProtobufJSONError.self) {
      try Conformance_V1_Everything(jsonString: #"{"timestamp": "2023-13-01T00:00:00Z"}"#)
    }
    #expect(time?.path == ["timestamp"])
    let twoMembers = #expect(throws: ProtobufJSONError.self) {
      try Conformance_V1_Everything(jsonString: #"{"choiceUint32": 1, "choiceString": "x"}"#)
    }
    #expect(twoMembers?.message.contains("oneof") == true)
    for malformed in [
      #"{"#, #"{"a":1,}"#, #"[1 2]"#, #""\x""#, #"{} {}"#, #"01"#, String(repeating: "[", count: 200),
    ] {
      #expect(throws: ProtobufJSONError.self, "\(malformed)") { try JSONValue(parsing: malformed) }
    }
  }

  @Test("numbers in JSON strings follow JSON number syntax (found by ProtobufJSONFuzzer: \"-NaN\")")
  func quotedNumbers() throws {
    for (field, bad) in [
      ("fDouble", "-NaN"), ("fDouble", "nan"), ("fDouble", "inf"), ("fDouble", "-infinity"),
      ("fDouble", "0x1p3"), ("fDouble", "+1"), ("fDouble", "1."), ("fDouble", ".5"), ("fDouble", "1e400"),
      ("fFloat", "NAN"), ("fInt32", "+5"), ("fInt32", "0x10"), ("fInt64", " 5"), ("fInt64", "5 "),
      ("fInt64", "0x1p3"), ("fInt64", "1e"), ("fUint64", "-"), ("fInt32", ""),
    ] {
      let error = #expect(throws: ProtobufJSONError.self, "\(field): \(bad)") {
        try Conformance_V1_Everything(jsonString: #"{"\#(field)": "\#(bad)"}"#)
      }
      #expect(error?.path == [field], "\(field): \(bad)")
    }
    #expect(throws: ProtobufJSONError.self) {
      try Conformance_V1_Everything(jsonString: #"{"fDouble": 1e400}"#)
    }
    let good = try Conformance_V1_Everything(
      jsonString:
        #"{"fDouble": "-0.5e-3", "fFloat": "NaN", "fInt32": "1e3", "fInt64": "-0", "fUint64": "18446744073709551615"}"#
    )
    #expect(good.fDouble == -0.0005)
    #expect(good.fFloat.isNaN)
    #expect(good.fInt32 == 1000)
    #expect(good.fInt64 == 0)
    #expect(good.fUint64 == .max)
  }

  @Test("Google's JSON for the reference message decodes to the expected values")
  func decodeTheirs() throws {
    let theirs = try ConformanceTests.python(["encode-json"])
    #expect(
      try Conformance_V1_Everything(jsonString: theirs) == GeneratedCodeTests.full().droppingUnknownFields())
  }

  @Test("Google's implementation reads our JSON to the expected values")
  func theyDecodeOurs() throws {
    #expect(try ConformanceTests.python(["decode-json", GeneratedCodeTests.full().jsonString()]) == "ok")
  }
}

extension Conformance_V1_Everything {
  /// JSON carries no unknown fields; the reference message has none anyway.
  func droppingUnknownFields() -> Self { self }
}
