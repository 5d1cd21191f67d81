import ProtobufDynamic
import ProtobufRuntime
import Testing

/// JSON → binary → JSON through the pool, against the canonical proto3 JSON expected by hand.
@Suite("JSON and binary conversion")
struct JSONConversionTests {
  /// Converts `input` to binary and back; returns the canonical JSON text.
  static func roundTrip(_ input: String, as type: String, emitDefaults: Bool = false) throws -> String {
    let pool = try Descriptors.pool()
    let bytes = try pool.decodeJSON(input, as: type)
    return try pool.encodeJSON(bytes, as: type, emitDefaults: emitDefaults)
  }

  @Test(
    "a payment request: lowerCamel names, int64 as a string, a map, bytes as the generated code writes them")
  func submitPaymentRequest() throws {
    let pool = try Descriptors.pool()
    let bytes = try pool.decodeJSON(
      """
      {"idempotency_key": "k-1", "amount": {"currency": "EUR", "amountMinor": 1250},
       "payer": {"accountId": "acc-1"}, "metadata": {"order": "42"}}
      """, as: "payments.v1.SubmitPaymentRequest")
    // Field 1 "k-1", field 2 {1: "EUR", 2: 1250}, field 3 {1: "acc-1"}, field 6 {1: "order", 2: "42"}.
    #expect(
      bytes == [
        0x0a, 0x03, 0x6b, 0x2d, 0x31, 0x12, 0x08, 0x0a, 0x03, 0x45, 0x55, 0x52, 0x10, 0xe2, 0x09, 0x1a, 0x07,
        0x0a, 0x05, 0x61, 0x63, 0x63, 0x2d, 0x31, 0x32, 0x0b, 0x0a, 0x05, 0x6f, 0x72, 0x64, 0x65, 0x72, 0x12,
        0x02, 0x34, 0x32,
      ])
    #expect(
      try pool.encodeJSON(bytes, as: "payments.v1.SubmitPaymentRequest")
        == #"{"idempotencyKey":"k-1","amount":{"currency":"EUR","amountMinor":"1250"},"#
        + #""payer":{"accountId":"acc-1"},"metadata":{"order":"42"}}"#)
    let pretty = try pool.encodeJSON(bytes, as: "payments.v1.Money", prettyPrinted: true)
    #expect(pretty.contains("\n"))
  }

  @Test("every scalar type in its canonical form")
  func scalars() throws {
    let output = try Self.roundTrip(
      """
      {"fInt32": -2147483648, "fInt64": "-9223372036854775808", "fUint32": 4294967295,
       "fUint64": "18446744073709551615", "fSint32": -5, "fSint64": -5, "fFixed32": 7, "fFixed64": "8",
       "fSfixed32": -9, "fSfixed64": "-10", "fFloat": 1.5, "fDouble": 0.1, "fBool": true,
       "fString": "h\\u00e9 \\"q\\" \\ud83d\\ude00", "fBytes": "AAEC/w==", "fColor": "COLOR_RED",
       "customName": "x"}
      """, as: "dynamictest.v1.Scalars")
    #expect(
      try json(output)
        == json(
          """
          {"fInt32":-2147483648,"fInt64":"-9223372036854775808","fUint32":4294967295,
           "fUint64":"18446744073709551615","fSint32":-5,"fSint64":"-5","fFixed32":7,"fFixed64":"8",
           "fSfixed32":-9,"fSfixed64":"-10","fFloat":1.5,"fDouble":0.1,"fBool":true,
           "fString":"hé \\"q\\" 😀","fBytes":"AAEC/w==","fColor":"COLOR_RED","customName":"x"}
          """))
  }

  @Test("alternative input forms: proto names, numbers as strings, exponents, URL-safe base64, enum numbers")
  func alternativeInputs() throws {
    let output = try Self.roundTrip(
      """
      {"f_int32": "12", "f_int64": 1e3, "f_float": "NaN", "f_double": "-Infinity", "f_bytes": "-_8",
       "f_color": 2, "renamed": "r"}
      """, as: "dynamictest.v1.Scalars")
    #expect(
      try json(output)
        == json(
          #"{"fInt32":12,"fInt64":"1000","fFloat":"NaN","fDouble":"-Infinity","fBytes":"+/8=","fColor":"COLOR_GREEN","customName":"r"}"#
        ))
    // An enum number the schema does not list stays a number (proto3 enums are open).
    #expect(try Self.roundTrip(#"{"fColor": 7}"#, as: "dynamictest.v1.Scalars") == #"{"fColor":7}"#)
  }

  @Test("defaults are not written; emitDefaults writes fields without presence")
  func defaults() throws {
    let pool = try Descriptors.pool()
    let zeros = #"{"fInt32": 0, "fString": "", "fColor": "COLOR_UNSPECIFIED", "fBool": false, "fBytes": ""}"#
    #expect(try pool.decodeJSON(zeros, as: "dynamictest.v1.Scalars").isEmpty)
    let all = try json(try pool.encodeJSON([], as: "dynamictest.v1.Scalars", emitDefaults: true))
    #expect(all.member("fInt32") == .number("0"))
    #expect(all.member("fInt64") == .string("0"))
    #expect(all.member("fColor") == .string("COLOR_UNSPECIFIED"))
    #expect(all.member("fBytes") == .string(""))
    let repeated = try json(try pool.encodeJSON([], as: "dynamictest.v1.Everything", emitDefaults: true))
    #expect(repeated == .object([("children", .array([]))]))  // message fields have presence
    let choice = try json(try pool.encodeJSON([], as: "dynamictest.v1.Choice", emitDefaults: true))
    #expect(choice == .object([("plain", .number("0"))]))  // oneof and optional fields have presence
  }

  @Test("repeated fields: packed in proto3, unpacked where the schema says, both accepted on input")
  func repeated() throws {
    let pool = try Descriptors.pool()
    let bytes = try pool.decodeJSON(
      #"{"rInt32": [1, 2], "unpacked": [3, 4]}"#, as: "dynamictest.v1.Repeateds")
    #expect(bytes == [0x0a, 0x02, 0x01, 0x02, 0x90, 0x01, 0x03, 0x90, 0x01, 0x04])
    // The other encoding of each: unpacked rInt32, packed `unpacked`.
    let swapped: [UInt8] = [0x08, 0x01, 0x08, 0x02, 0x92, 0x01, 0x02, 0x03, 0x04]
    #expect(
      try pool.encodeJSON(swapped, as: "dynamictest.v1.Repeateds") == #"{"rInt32":[1,2],"unpacked":[3,4]}"#)
    let output = try Self.roundTrip(
      """
      {"rInt64": ["1", -2], "rSint64": [-3], "rFixed64": ["4"], "rFloat": [0.1, "Infinity"],
       "rBool": [true, false], "rString": ["a", ""], "rBytes": ["AQ=="], "rColor": ["COLOR_RED", 9],
       "rNested": [{"name": "n"}, {}]}
      """, as: "dynamictest.v1.Repeateds")
    #expect(
      try json(output)
        == json(
          """
          {"rInt64":["1","-2"],"rSint64":["-3"],"rFixed64":["4"],"rFloat":[0.1,"Infinity"],"rBool":[true,false],
           "rString":["a",""],"rBytes":["AQ=="],"rColor":["COLOR_RED",9],"rNested":[{"name":"n"},{}]}
          """))
  }

  @Test("maps with every kind of key")
  func maps() throws {
    let output = try Self.roundTrip(
      """
      {"stringToInt32": {"a": 1, "b": 0}, "int64ToString": {"-5": "x"}, "boolToNested": {"true": {"name": "t"}},
       "uint32ToColor": {"7": "COLOR_GREEN"}, "sint64ToBytes": {"-1": "AQ=="}, "fixed32ToDouble": {"3": 2.5},
       "stringToValue": {"n": null, "l": [1, "x"]}, "sfixed64ToTimestamp": {"-2": "2026-01-02T03:04:05Z"},
       "int32ToUint64": {"1": "18446744073709551615"}}
      """, as: "dynamictest.v1.Maps")
    #expect(
      try json(output)
        == json(
          """
          {"stringToInt32":{"a":1,"b":0},"int64ToString":{"-5":"x"},"boolToNested":{"true":{"name":"t"}},
           "uint32ToColor":{"7":"COLOR_GREEN"},"sint64ToBytes":{"-1":"AQ=="},"fixed32ToDouble":{"3":2.5},
           "stringToValue":{"n":null,"l":[1.0,"x"]},"sfixed64ToTimestamp":{"-2":"2026-01-02T03:04:05Z"},
           "int32ToUint64":{"1":"18446744073709551615"}}
          """))
  }

  @Test("oneofs and proto3 optional fields keep presence, even at their defaults")
  func presence() throws {
    let pool = try Descriptors.pool()
    let bytes = try pool.decodeJSON(
      #"{"number": "0", "maybeInt": 0, "maybeText": "", "maybeColor": "COLOR_UNSPECIFIED", "plain": 0}"#,
      as: "dynamictest.v1.Choice")
    #expect(bytes == [0x10, 0x00, 0x30, 0x00, 0x3a, 0x00, 0x40, 0x00])
    #expect(
      try pool.encodeJSON(bytes, as: "dynamictest.v1.Choice")
        == #"{"number":"0","maybeInt":0,"maybeText":"","maybeColor":"COLOR_UNSPECIFIED"}"#)
    #expect(try Self.roundTrip(#"{"nothing": {}}"#, as: "dynamictest.v1.Choice") == #"{"nothing":{}}"#)
    // null leaves a oneof member unset, so it does not conflict with another member.
    #expect(
      try Self.roundTrip(#"{"text": null, "color": "COLOR_RED"}"#, as: "dynamictest.v1.Choice")
        == #"{"color":"COLOR_RED"}"#)
    // In binary, the last member read wins.
    #expect(
      try pool.encodeJSON([0x0a, 0x01, 0x61, 0x10, 0x05], as: "dynamictest.v1.Choice") == #"{"number":"5"}"#)
  }

  @Test("proto2: every singular field has presence; groups; closed enums")
  func proto2() throws {
    let pool = try Descriptors.pool()
    let bytes = try pool.decodeJSON(
      #"{"count": 0, "id": "", "numbers": [1, 2], "packedNumbers": [3], "kind": "KIND_B", "item": {"label": "l"}}"#,
      as: "dynamictest.v1.Legacy")
    #expect(
      bytes == [
        0x08, 0x00, 0x12, 0x00, 0x18, 0x01, 0x18, 0x02, 0x22, 0x01, 0x03, 0x28, 0x02, 0x33, 0x3a, 0x01, 0x6c,
        0x34,
      ])
    #expect(
      try pool.encodeJSON(bytes, as: "dynamictest.v1.Legacy")
        == #"{"count":0,"id":"","numbers":[1,2],"packedNumbers":[3],"kind":"KIND_B","item":{"label":"l"}}"#)
    // A closed enum does not take numbers it does not list.
    #expect(throws: ProtobufDynamicError.self) {
      try pool.decodeJSON(#"{"kind": 7}"#, as: "dynamictest.v1.Legacy")
    }
    #expect(try pool.encodeJSON([0x28, 0x07], as: "dynamictest.v1.Legacy") == "{}")
  }

  @Test("well-known types in their special JSON forms")
  func wellKnownTypes() throws {
    let input = """
      {"timestamp": "2026-11-29T10:44:35.120Z", "duration": "-1.5s", "doubleValue": 2.5, "floatValue": "NaN",
       "int64Value": "-7", "uint64Value": "7", "int32Value": 0, "uint32Value": 3, "boolValue": false,
       "stringValue": "s", "bytesValue": "AQI=", "structValue": {"a": {"b": [true, null, 1.5, "x"]}},
       "value": "text", "listValue": [{}, []], "fieldMask": "amountMinor,payer.accountId", "empty": {},
       "any": {"@type": "type.googleapis.com/payments.v1.Money", "currency": "EUR", "amountMinor": "5"},
       "anys": [{"@type": "type.googleapis.com/google.protobuf.Duration", "value": "2s"},
                {"@type": "type.googleapis.com/google.protobuf.Any",
                 "value": {"@type": "type.googleapis.com/google.protobuf.Empty"}}, {}],
       "timestamps": ["1970-01-01T00:00:00Z", "2026-01-01T01:00:00.000001+01:00"],
       "values": [null, 1, {"k": "v"}], "nullValue": null, "int32Values": [1, 0]}
      """
    let output = try Self.roundTrip(input, as: "dynamictest.v1.WellKnown")
    #expect(
      try json(output).canonical
        == json(
          """
          {"timestamp": "2026-11-29T10:44:35.120Z", "duration": "-1.500s", "doubleValue": 2.5, "floatValue": "NaN",
           "int64Value": "-7", "uint64Value": "7", "int32Value": 0, "uint32Value": 3, "boolValue": false,
           "stringValue": "s", "bytesValue": "AQI=", "structValue": {"a": {"b": [true, null, 1.5, "x"]}},
           "value": "text", "listValue": [{}, []], "fieldMask": "amountMinor,payer.accountId", "empty": {},
           "any": {"@type": "type.googleapis.com/payments.v1.Money", "currency": "EUR", "amountMinor": "5"},
           "anys": [{"@type": "type.googleapis.com/google.protobuf.Duration", "value": "2s"},
                    {"@type": "type.googleapis.com/google.protobuf.Any",
                     "value": {"@type": "type.googleapis.com/google.protobuf.Empty"}}, {}],
           "timestamps": ["1970-01-01T00:00:00Z", "2026-01-01T00:00:00.000001Z"],
           "values": [null, 1, {"k": "v"}], "int32Values": [1, 0]}
          """
        ).canonical)  // nullValue: NullValue is an enum without presence, at its default
    // Wrappers, Struct, Value and FieldMask as the whole message.
    #expect(try Self.roundTrip("12", as: "google.protobuf.Int32Value") == "12")
    #expect(
      try Self.roundTrip(#"{"a":[1,{"b":null}]}"#, as: "google.protobuf.Struct") == #"{"a":[1.0,{"b":null}]}"#
    )
    #expect(try Self.roundTrip("null", as: "google.protobuf.Value") == "null")
    #expect(try Self.roundTrip(#""a.bC,d""#, as: "google.protobuf.FieldMask") == #""a.bC,d""#)
    #expect(try Self.roundTrip(#""0.000000001s""#, as: "google.protobuf.Duration") == #""0.000000001s""#)
  }

  @Test("unknown fields in binary are dropped; known fields with the wrong wire type too")
  func unknownBinaryFields() throws {
    let pool = try Descriptors.pool()
    // Field 99 (varint), field 1 as a fixed32 (wrong type), an unknown group, then currency "EUR".
    let bytes: [UInt8] = [
      0x98, 0x06, 0x01, 0x0d, 1, 2, 3, 4, 0xa3, 0x06, 0x08, 0x01, 0xa4, 0x06, 0x0a, 0x03, 0x45, 0x55, 0x52,
    ]
    #expect(try pool.encodeJSON(bytes, as: "payments.v1.Money") == #"{"currency":"EUR"}"#)
  }

  @Test("ignoringUnknownFields skips unknown members and unknown enum names")
  func ignoringUnknownFields() throws {
    let pool = try Descriptors.pool()
    let bytes = try pool.decodeJSON(
      #"{"nope": {"deep": [1]}, "fColor": "COLOR_PURPLE", "fInt32": 3}"#, as: "dynamictest.v1.Scalars",
      ignoringUnknownFields: true)
    #expect(try pool.encodeJSON(bytes, as: "dynamictest.v1.Scalars") == #"{"fInt32":3}"#)
  }

  @Test("a singular message field given twice in binary is merged")
  func merge() throws {
    let pool = try Descriptors.pool()
    // amount {currency "EUR"} then amount {amount_minor 5}
    let bytes: [UInt8] = [0x12, 0x05, 0x0a, 0x03, 0x45, 0x55, 0x52, 0x12, 0x02, 0x10, 0x05]
    #expect(
      try pool.encodeJSON(bytes, as: "payments.v1.SubmitPaymentRequest")
        == #"{"amount":{"currency":"EUR","amountMinor":"5"}}"#)
  }

  @Test("100 nested messages convert both ways")
  func deepButAllowed() throws {
    let pool = try Descriptors.pool()
    let input = String(repeating: #"{"child":"#, count: 99) + "{}" + String(repeating: "}", count: 99)
    let bytes = try pool.decodeJSON(input, as: "dynamictest.v1.Nested")
    #expect(try pool.encodeJSON(bytes, as: "dynamictest.v1.Nested") == input)
  }
}

extension JSONValue {
  func member(_ name: String) -> JSONValue? {
    guard case .object(let members) = self else { return nil }
    return members.first { $0.0 == name }?.1
  }
}
