import PaymentsTestSupport
import ProtobufDynamic
import Testing

/// Bad input is an error that names the field and the problem — never a crash.
@Suite("conversion errors")
struct ConversionErrorTests {
  struct JSONCase: Sendable, CustomTestStringConvertible {
    let name: String
    let type: String
    let json: String
    let code: ProtobufDynamicError.Code
    /// Text the error's description must contain.
    let expected: String
    var testDescription: String { name }
  }

  static let jsonCases: [JSONCase] = [
    JSONCase(
      name: "unknown field", type: "payments.v1.SubmitPaymentRequest",
      json: #"{"amount": {"currency": "EUR", "cents": 1}}"#, code: .unknownField,
      expected: #"payments.v1.SubmitPaymentRequest.amount: payments.v1.Money has no field named "cents""#),
    JSONCase(
      name: "wrong type", type: "payments.v1.Money", json: #"{"amountMinor": true}"#, code: .invalidValue,
      expected: "payments.v1.Money.amount_minor: expected an integer, got a boolean"),
    JSONCase(
      name: "string for a message", type: "payments.v1.SubmitPaymentRequest", json: #"{"amount": "5"}"#,
      code: .invalidValue,
      expected:
        "payments.v1.SubmitPaymentRequest.amount: expected an object for payments.v1.Money, got a string"),
    JSONCase(
      name: "string for a bool", type: "dynamictest.v1.Scalars", json: #"{"fBool": "true"}"#,
      code: .invalidValue,
      expected: "dynamictest.v1.Scalars.f_bool: expected true or false"),
    JSONCase(
      name: "bad enum name", type: "payments.v1.Payment", json: #"{"status": "PAYMENT_STATUS_MAYBE"}"#,
      code: .invalidValue,
      expected:
        #"payments.v1.Payment.status: "PAYMENT_STATUS_MAYBE" is not a value of enum payments.v1.PaymentStatus"#
    ),
    JSONCase(
      name: "bad base64", type: "dynamictest.v1.Scalars", json: #"{"fBytes": "!!not base64"}"#,
      code: .invalidValue, expected: "dynamictest.v1.Scalars.f_bytes: \"!!not base64\" is not base64"),
    JSONCase(
      name: "int32 out of range", type: "dynamictest.v1.Scalars", json: #"{"fInt32": 2147483648}"#,
      code: .invalidValue, expected: "dynamictest.v1.Scalars.f_int32: 2147483648 is out of range"),
    JSONCase(
      name: "negative uint64", type: "dynamictest.v1.Scalars", json: #"{"fUint64": "-1"}"#,
      code: .invalidValue,
      expected: "dynamictest.v1.Scalars.f_uint64: -1 is out of range"),
    JSONCase(
      name: "int64 out of range", type: "payments.v1.Money", json: #"{"amountMinor": "9223372036854775808"}"#,
      code: .invalidValue, expected: "payments.v1.Money.amount_minor: 9223372036854775808 is out of range"),
    JSONCase(
      name: "fraction for an integer", type: "dynamictest.v1.Scalars", json: #"{"fInt32": 1.5}"#,
      code: .invalidValue, expected: "dynamictest.v1.Scalars.f_int32: \"1.5\" is not an integer"),
    JSONCase(
      name: "float out of range", type: "dynamictest.v1.Scalars", json: #"{"fFloat": 1e39}"#,
      code: .invalidValue,
      expected: "dynamictest.v1.Scalars.f_float: 1e+39 is out of range for a float"),
    JSONCase(
      name: "double out of range", type: "dynamictest.v1.Scalars", json: #"{"fDouble": 1e400}"#,
      code: .invalidValue, expected: "dynamictest.v1.Scalars.f_double: 1e400 is out of range"),
    JSONCase(
      name: "two oneof members", type: "payments.v1.GetPaymentRequest",
      json: #"{"paymentId": "p", "idempotencyKey": "k"}"#, code: .invalidValue,
      expected:
        "payments.v1.GetPaymentRequest: oneof lookup can hold one field, but both payment_id and idempotency_key"
    ),
    JSONCase(
      name: "a field given twice", type: "dynamictest.v1.Scalars", json: #"{"fInt32": 1, "f_int32": 2}"#,
      code: .invalidValue, expected: #"field f_int32 is given twice (as "fInt32" and "f_int32")"#),
    JSONCase(
      name: "unknown @type", type: "dynamictest.v1.WellKnown",
      json: #"{"any": {"@type": "type.googleapis.com/nope.Nope", "x": 1}}"#, code: .unknownSymbol,
      expected: "dynamictest.v1.WellKnown.any: \"@type\": type.googleapis.com/nope.Nope names a message type"),
    JSONCase(
      name: "Any without @type", type: "dynamictest.v1.WellKnown", json: #"{"any": {"currency": "EUR"}}"#,
      code: .invalidValue, expected: "dynamictest.v1.WellKnown.any: google.protobuf.Any needs an \"@type\""),
    JSONCase(
      name: "unknown field inside an Any", type: "dynamictest.v1.WellKnown",
      json: #"{"any": {"@type": "type.googleapis.com/payments.v1.Money", "cents": 1}}"#, code: .unknownField,
      expected: "payments.v1.Money has no field named \"cents\""),
    JSONCase(
      name: "bad timestamp", type: "dynamictest.v1.WellKnown",
      json: #"{"timestamp": "2026-13-01T00:00:00Z"}"#,
      code: .invalidValue,
      expected: "dynamictest.v1.WellKnown.timestamp: \"2026-13-01T00:00:00Z\" is not a valid"),
    JSONCase(
      name: "bad duration", type: "dynamictest.v1.WellKnown", json: #"{"duration": "1.5"}"#,
      code: .invalidValue,
      expected: "dynamictest.v1.WellKnown.duration: \"1.5\" is not a duration"),
    JSONCase(
      name: "bad field mask", type: "dynamictest.v1.WellKnown", json: #"{"fieldMask": "amount_minor"}"#,
      code: .invalidValue, expected: "dynamictest.v1.WellKnown.field_mask: field mask path \"amount_minor\""),
    JSONCase(
      name: "null in a repeated field", type: "dynamictest.v1.Repeateds", json: #"{"rInt32": [1, null]}"#,
      code: .invalidValue, expected: "dynamictest.v1.Repeateds.r_int32[1]: null is not allowed"),
    JSONCase(
      name: "bad map key", type: "dynamictest.v1.Maps", json: #"{"int64ToString": {"x": "y"}}"#,
      code: .invalidValue, expected: #"dynamictest.v1.Maps.int64_to_string["x"]: map key "x" is not a int64"#),
    JSONCase(
      name: "bad map value", type: "payments.v1.Payment", json: #"{"metadata": {"k": 1}}"#,
      code: .invalidValue,
      expected: #"payments.v1.Payment.metadata["k"]: expected a string, got a number"#),
    JSONCase(
      name: "array for a message", type: "payments.v1.Money", json: "[1]", code: .invalidValue,
      expected: "payments.v1.Money: expected an object for payments.v1.Money, got an array"),
    JSONCase(
      name: "unterminated JSON", type: "payments.v1.SubmitPaymentRequest",
      json: #"{"amount": {"currency": "EUR""#, code: .invalidJSON,
      expected: "payments.v1.SubmitPaymentRequest: unterminated object"),
    JSONCase(
      name: "array depth bomb", type: "payments.v1.Money", json: String(repeating: "[", count: 10_000),
      code: .invalidJSON, expected: "nesting deeper than 100"),
    JSONCase(
      name: "object depth bomb", type: "dynamictest.v1.Nested",
      json: String(repeating: #"{"child":"#, count: 10_000), code: .invalidJSON,
      expected: "nesting deeper than 100"),
    JSONCase(
      name: "101 nested messages", type: "dynamictest.v1.Nested",
      json: String(repeating: #"{"child":"#, count: 100) + "{}" + String(repeating: "}", count: 100),
      code: .nestingTooDeep, expected: "messages nest deeper than 100"),
    JSONCase(
      name: "Value depth bomb", type: "google.protobuf.Value",
      json: String(repeating: "[", count: 5_000) + String(repeating: "]", count: 5_000), code: .invalidJSON,
      expected: "nesting deeper than 100"),
  ]

  @Test("bad JSON is an error naming the field and the problem", arguments: jsonCases)
  func badJSON(_ testCase: JSONCase) throws {
    let pool = try Descriptors.pool()
    let error = #expect(throws: ProtobufDynamicError.self) {
      try pool.decodeJSON(testCase.json, as: testCase.type)
    }
    #expect(error?.code == testCase.code, "\(error.map(String.init(describing:)) ?? "no error")")
    #expect(
      error?.description.contains(testCase.expected) == true,
      "\(error.map(String.init(describing:)) ?? "no error") does not contain \(testCase.expected)")
  }

  @Test("an unknown message type is an error naming it")
  func unknownType() throws {
    let pool = try Descriptors.pool()
    let error = #expect(throws: ProtobufDynamicError.self) { try pool.decodeJSON("{}", as: "nope.Nope") }
    #expect(error?.code == .unknownSymbol)
    #expect(error?.description.contains("nope.Nope") == true)
    #expect(throws: ProtobufDynamicError.self) { try pool.encodeJSON([], as: "nope.Nope") }
  }

  struct BinaryCase: Sendable, CustomTestStringConvertible {
    let name: String
    let type: String
    let bytes: [UInt8]
    let code: ProtobufDynamicError.Code
    let expected: String
    var testDescription: String { name }
  }

  /// `Nested` with `child` set `depth` levels deep.
  static func nested(depth: Int) -> [UInt8] {
    var bytes: [UInt8] = []
    for _ in 0..<depth {
      var length = bytes.count
      var prefix: [UInt8] = [0x12]
      while length >= 0x80 {
        prefix.append(UInt8(length & 0x7f) | 0x80)
        length >>= 7
      }
      prefix.append(UInt8(length))
      bytes = prefix + bytes
    }
    return bytes
  }

  static let binaryCases: [BinaryCase] = [
    BinaryCase(
      name: "truncated", type: "payments.v1.Money", bytes: [0x0a, 0x05, 0x45], code: .invalidBinary,
      expected: "payments.v1.Money: malformed protobuf: length out of bounds"),
    BinaryCase(
      name: "truncated nested", type: "payments.v1.SubmitPaymentRequest", bytes: [0x12, 0x02, 0x10, 0xff],
      code: .invalidBinary,
      expected: "payments.v1.SubmitPaymentRequest.amount: malformed protobuf: truncated input"
    ),
    BinaryCase(
      name: "invalid UTF-8", type: "payments.v1.Money", bytes: [0x0a, 0x01, 0xff], code: .invalidValue,
      expected: "payments.v1.Money.currency: invalid UTF-8"),
    BinaryCase(
      name: "field number zero", type: "payments.v1.Money", bytes: [0x00, 0x01], code: .invalidBinary,
      expected: "invalid tag"),
    BinaryCase(
      name: "message depth bomb", type: "dynamictest.v1.Nested", bytes: nested(depth: 5_000),
      code: .nestingTooDeep, expected: "messages nest deeper than 100"),
    BinaryCase(
      name: "group depth bomb", type: "payments.v1.Money",
      bytes: Array(repeating: [0xa3, 0x06], count: 10_000).flatMap { $0 }, code: .invalidBinary,
      expected: "nesting too deep"),
    BinaryCase(
      name: "unmatched end group", type: "payments.v1.Money", bytes: [0xa4, 0x06], code: .invalidBinary,
      expected: "unmatched group"),
    BinaryCase(
      name: "timestamp out of range", type: "google.protobuf.Timestamp",
      bytes: [0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f], code: .invalidValue,
      expected: "google.protobuf.Timestamp: timestamp 9223372036854775807s 0ns is outside"),
    BinaryCase(
      name: "duration with mixed signs", type: "google.protobuf.Duration",
      bytes: [0x08, 0x01, 0x10] + Array(repeating: 0xff, count: 9) + [0x01],
      code: .invalidValue, expected: "mixed signs"),
    BinaryCase(
      name: "unknown Any type", type: "google.protobuf.Any",
      bytes: [0x0a, 0x0c] + Array("a.com/x.Nope".utf8), code: .unknownSymbol,
      expected: "google.protobuf.Any: type_url \"a.com/x.Nope\" names a message type that is not in"),
    BinaryCase(
      name: "NaN as a Value number", type: "google.protobuf.Value",
      bytes: [0x11, 0, 0, 0, 0, 0, 0, 0xf8, 0x7f], code: .invalidValue,
      expected: "google.protobuf.Value.number_value: nan has no JSON form"),
  ]

  @Test("bad binary is an error naming the field and the problem", arguments: binaryCases)
  func badBinary(_ testCase: BinaryCase) throws {
    let pool = try Descriptors.pool()
    let error = #expect(throws: ProtobufDynamicError.self) {
      try pool.encodeJSON(testCase.bytes, as: testCase.type)
    }
    #expect(error?.code == testCase.code, "\(error.map(String.init(describing:)) ?? "no error")")
    #expect(
      error?.description.contains(testCase.expected) == true,
      "\(error.map(String.init(describing:)) ?? "no error") does not contain \(testCase.expected)")
  }

  @Test("mutated and truncated input never crashes either conversion")
  func fuzz() throws {
    let pool = try Descriptors.pool()
    let input = """
      {"scalars": {"fInt32": -1, "fString": "s", "fBytes": "AQ==", "fDouble": 1.5, "fColor": "COLOR_RED"},
       "repeateds": {"rInt64": ["1", "2"], "rNested": [{"name": "n", "child": {"values": [1, 2]}}], "unpacked": [5]},
       "maps": {"stringToInt32": {"a": 1}, "boolToNested": {"true": {"leaf": {"on": true}}}},
       "choice": {"nested": {"name": "x"}, "maybeInt": 0},
       "wellKnown": {"timestamp": "2026-01-01T00:00:00Z", "structValue": {"a": [1, {"b": null}]},
                     "any": {"@type": "type.googleapis.com/payments.v1.Money", "currency": "EUR"}},
       "children": [{"scalars": {"fBool": true}}]}
      """
    let bytes = try pool.decodeJSON(input, as: "dynamictest.v1.Everything")
    var random = SplitMix(state: 42)
    for length in 0..<bytes.count {
      _ = try? pool.encodeJSON(Array(bytes[..<length]), as: "dynamictest.v1.Everything")
    }
    for _ in 0..<3_000 {
      var mutated = bytes
      for _ in 0..<Int.random(in: 1...4, using: &random) {
        mutated[Int.random(in: 0..<mutated.count, using: &random)] = UInt8.random(in: 0...255, using: &random)
      }
      _ = try? pool.encodeJSON(mutated, as: "dynamictest.v1.Everything", emitDefaults: true)
    }
    let text = Array(input.utf8)
    let alphabet = Array(#"{}[]",:0-9eE.nulltrf\"#.utf8)
    for _ in 0..<3_000 {
      var mutated = text
      for _ in 0..<Int.random(in: 1...4, using: &random) {
        mutated[Int.random(in: 0..<mutated.count, using: &random)] = alphabet.randomElement(using: &random)!
      }
      _ = try? pool.decodeJSON(String(decoding: mutated, as: UTF8.self), as: "dynamictest.v1.Everything")
    }
  }
}
