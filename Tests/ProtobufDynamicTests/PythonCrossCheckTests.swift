import Foundation
import PaymentsTestSupport
import ProtobufDynamic
import ProtobufRuntime
import Testing

/// The dynamic conversions against the independent peer: Google's Python protobuf
/// (`json_format` over a `descriptor_pool` built from the same descriptor set).
@Suite("against Google's protobuf (Python)")
struct PythonCrossCheckTests {
  struct Case: Sendable {
    let name: String
    let type: String
    let json: String
    /// Map entries may be written in any order, so bytes are compared only without maps.
    var hasMaps = false
    /// Invalid input, which both implementations must reject.
    var isInvalid = false
  }

  static let cases: [Case] = [
    Case(
      name: "payment request", type: "payments.v1.SubmitPaymentRequest",
      json: """
        {"idempotencyKey": "order-42", "amount": {"currency": "EUR", "amountMinor": "1250"},
         "payer": {"accountId": "acc-1", "name": "Ann"}, "payee": {"accountId": "acc-2"},
         "description": "Invoice 42 – naïve café ✓", "metadata": {"order": "42", "channel": "web"},
         "provider": "sandbox"}
        """, hasMaps: true),
    Case(
      name: "payment", type: "payments.v1.Payment",
      json: """
        {"paymentId": "pay_1", "amount": {"currency": "JPY", "amountMinor": 9007199254740993},
         "status": "PAYMENT_STATUS_FAILED", "attempts": 3, "failure": {"code": "card_declined"},
         "createdAt": "2026-11-29T10:44:35.120Z", "updatedAt": "2026-11-29T10:44:36.000000001Z",
         "version": "15"}
        """),
    Case(
      name: "payment event", type: "payments.v1.PaymentEvent",
      json: """
        {"eventId": "e", "type": "PAYMENT_EVENT_TYPE_SUCCEEDED", "version": "2",
         "occurredAt": "1999-12-31T23:59:59Z", "payment": {"paymentId": "p", "status": 4}}
        """),
    Case(
      name: "get payment by key", type: "payments.v1.GetPaymentRequest",
      json: #"{"idempotencyKey": "k", "minVersion": "7"}"#),
    Case(
      name: "list payments", type: "payments.v1.ListPaymentsRequest",
      json: """
        {"statuses": ["PAYMENT_STATUS_ACCEPTED", "PAYMENT_STATUS_FAILED"],
         "createdAfter": "2026-01-01T00:00:00+02:00", "pageSize": 50, "pageToken": "t"}
        """),
    Case(name: "health", type: "grpc.health.v1.HealthCheckResponse", json: #"{"status": "SERVING"}"#),
    Case(
      name: "scalar extremes", type: "dynamictest.v1.Scalars",
      json: """
        {"fInt32": -2147483648, "fInt64": "-9223372036854775808", "fUint32": 4294967295,
         "fUint64": "18446744073709551615", "fSint32": -2147483648, "fSint64": "9223372036854775807",
         "fFixed32": 4294967295, "fFixed64": "18446744073709551615", "fSfixed32": -1,
         "fSfixed64": "-9223372036854775808", "fFloat": -1.25e-3, "fDouble": 1e-300, "fBool": true,
         "fString": "h\\u00e9 \\"q\\" \\u0001 \\ud83d\\ude00", "fBytes": "AAEC/w==", "fColor": "COLOR_GREEN",
         "customName": "x"}
        """),
    Case(
      name: "scalar input forms", type: "dynamictest.v1.Scalars",
      json: """
        {"f_int32": "12", "f_int64": 1e3, "fUint64": 5, "fFloat": "NaN", "fDouble": "-Infinity",
         "fBytes": "-_8", "fColor": 7, "renamed": "r", "fSint64": "-1"}
        """),
    Case(
      name: "scalar floats", type: "dynamictest.v1.Scalars",
      json: #"{"fFloat": 16777217, "fDouble": 0.1, "fInt32": -1}"#),
    Case(
      name: "scalar defaults", type: "dynamictest.v1.Scalars",
      json: #"{"fInt32": 0, "fString": "", "fColor": "COLOR_UNSPECIFIED", "fBool": false, "fDouble": 0}"#),
    Case(
      name: "repeated", type: "dynamictest.v1.Repeateds",
      json: """
        {"rInt32": [1, -1, 2147483647], "rInt64": ["1", -2], "rUint32": [0, 4294967295], "rUint64": ["1"],
         "rSint32": [-3, 3], "rSint64": ["-3"], "rFixed32": [7], "rFixed64": ["8"], "rSfixed32": [-9],
         "rSfixed64": ["-10"], "rFloat": [0.1, "Infinity", -0.0], "rDouble": [0.5, "NaN"],
         "rBool": [true, false], "rString": ["a", ""], "rBytes": ["AQ==", ""], "rColor": ["COLOR_RED", 9, 0],
         "rNested": [{"name": "n", "child": {"values": [1, 2]}}, {}], "unpacked": [3, 4]}
        """),
    Case(name: "empty repeated", type: "dynamictest.v1.Repeateds", json: #"{"rInt32": [], "rString": null}"#),
    Case(
      name: "maps", type: "dynamictest.v1.Maps",
      json: """
        {"stringToInt32": {"a": 1, "b": 0}, "int64ToString": {"-5": "x", "9223372036854775807": ""},
         "boolToNested": {"true": {"name": "t"}, "false": {}}, "uint32ToColor": {"7": "COLOR_GREEN"},
         "sint64ToBytes": {"-1": "AQ=="}, "fixed32ToDouble": {"3": 2.5},
         "stringToValue": {"n": null, "l": [1, "x", {"deep": [true]}]},
         "sfixed64ToTimestamp": {"-2": "2026-01-02T03:04:05Z"}, "int32ToUint64": {"-1": "18446744073709551615"}}
        """, hasMaps: true),
    Case(name: "oneof text", type: "dynamictest.v1.Choice", json: #"{"text": "hi", "plain": 3}"#),
    Case(
      name: "oneof and optionals at defaults", type: "dynamictest.v1.Choice",
      json: #"{"number": "0", "maybeInt": 0, "maybeText": "", "maybeColor": "COLOR_UNSPECIFIED", "plain": 0}"#
    ),
    Case(name: "oneof message", type: "dynamictest.v1.Choice", json: #"{"nested": {"leaf": {"on": false}}}"#),
    Case(name: "oneof Empty", type: "dynamictest.v1.Choice", json: #"{"nothing": {}}"#),
    Case(name: "oneof enum at zero", type: "dynamictest.v1.Choice", json: #"{"color": "COLOR_UNSPECIFIED"}"#),
    Case(
      name: "oneof null member", type: "dynamictest.v1.Choice", json: #"{"text": null, "color": "COLOR_RED"}"#
    ),
    Case(
      name: "well-known types", type: "dynamictest.v1.WellKnown",
      json: """
        {"timestamp": "2026-11-29T10:44:35.120Z", "duration": "-1.5s", "doubleValue": 2.5, "floatValue": "NaN",
         "int64Value": "-7", "uint64Value": "7", "int32Value": 3, "uint32Value": 3, "boolValue": true,
         "stringValue": "s", "bytesValue": "AQI=", "structValue": {"a": {"b": [true, null, 1.5, "x"]}},
         "value": "text", "listValue": [{}, [], 2], "fieldMask": "amountMinor,payer.accountId", "empty": {},
         "timestamps": ["1970-01-01T00:00:00Z", "2026-01-01T01:00:00.000001+01:00", "0001-01-01T00:00:00Z"],
         "values": [null, 1, {"k": "v"}], "nullValue": null, "int32Values": [1, 0]}
        """, hasMaps: true),
    Case(
      name: "wrappers at zero", type: "dynamictest.v1.WellKnown",
      json: """
        {"int32Value": 0, "boolValue": false, "stringValue": "", "doubleValue": 0, "bytesValue": "",
         "duration": "0s", "timestamp": "1970-01-01T00:00:00Z", "value": 0, "listValue": [], "fieldMask": ""}
        """),
    Case(
      name: "Any of a message", type: "dynamictest.v1.WellKnown",
      json:
        #"{"any": {"@type": "type.googleapis.com/payments.v1.Money", "currency": "EUR", "amountMinor": "5"}}"#
    ),
    Case(
      name: "Any of well-known types", type: "dynamictest.v1.WellKnown",
      json: """
        {"anys": [{"@type": "type.googleapis.com/google.protobuf.Duration", "value": "2s"},
                  {"@type": "type.googleapis.com/google.protobuf.Any",
                   "value": {"@type": "type.googleapis.com/google.protobuf.Empty"}},
                  {"@type": "type.googleapis.com/google.protobuf.Int32Value", "value": 5},
                  {"@type": "type.googleapis.com/google.protobuf.Timestamp", "value": "2026-01-01T00:00:00Z"},
                  {"@type": "type.googleapis.com/google.protobuf.FieldMask", "value": "a,bC"},
                  {"@type": "type.googleapis.com/google.protobuf.Value", "value": [1, "two"]},
                  {"@type": "type.googleapis.com/dynamictest.v1.Choice", "text": "t", "maybeInt": 0}, {}]}
        """, hasMaps: true),
    Case(
      name: "top-level Timestamp", type: "google.protobuf.Timestamp",
      json: #""9999-12-31T23:59:59.999999999Z""#),
    Case(name: "leap day", type: "google.protobuf.Timestamp", json: #""2000-02-29T00:00:00.5-23:59""#),
    Case(name: "top-level Duration", type: "google.protobuf.Duration", json: #""-315576000000.000000001s""#),
    Case(
      name: "top-level Struct", type: "google.protobuf.Struct", json: #"{"a": 1, "b": {"c": [null]}}"#,
      hasMaps: true),
    Case(name: "top-level Value", type: "google.protobuf.Value", json: "null"),
    Case(name: "top-level ListValue", type: "google.protobuf.ListValue", json: #"[1, "a", false]"#),
    Case(name: "top-level FieldMask", type: "google.protobuf.FieldMask", json: #""fooBar.baz,qux""#),
    Case(name: "top-level Int64Value", type: "google.protobuf.Int64Value", json: #""-7""#),
    Case(name: "top-level Empty", type: "google.protobuf.Empty", json: "{}"),
    Case(
      name: "top-level Any", type: "google.protobuf.Any",
      json: #"{"@type": "type.googleapis.com/grpc.health.v1.HealthCheckRequest", "service": "s"}"#),
    Case(
      name: "proto2 presence, closed enum and group", type: "dynamictest.v1.Legacy",
      json:
        #"{"count": 0, "id": "", "numbers": [1, 2], "packedNumbers": [3], "kind": "KIND_B", "item": {"label": "l"}}"#
    ),
    Case(
      name: "everything nested", type: "dynamictest.v1.Everything",
      json: """
        {"scalars": {"fInt32": 1}, "repeateds": {"rNested": [{"name": "a"}]}, "choice": {"nested": {"name": "b"}},
         "wellKnown": {"timestamp": "2026-01-01T00:00:00Z"},
         "children": [{"scalars": {"fString": "c"}, "children": [{"choice": {"number": 5}}]}, {}]}
        """),
  ]

  static let invalidCases: [Case] = [
    Case(name: "unknown field", type: "payments.v1.Money", json: #"{"cents": 1}"#, isInvalid: true),
    Case(name: "wrong type", type: "payments.v1.Money", json: #"{"amountMinor": true}"#, isInvalid: true),
    Case(name: "bad enum name", type: "payments.v1.Payment", json: #"{"status": "MAYBE"}"#, isInvalid: true),
    Case(
      name: "int32 out of range", type: "dynamictest.v1.Scalars", json: #"{"fInt32": 2147483648}"#,
      isInvalid: true),
    Case(
      name: "fraction for an integer", type: "dynamictest.v1.Scalars", json: #"{"fInt64": 1.5}"#,
      isInvalid: true),
    Case(
      name: "two oneof members", type: "payments.v1.GetPaymentRequest",
      json: #"{"paymentId": "p", "idempotencyKey": "k"}"#, isInvalid: true),
    Case(
      name: "unknown @type", type: "dynamictest.v1.WellKnown",
      json: #"{"any": {"@type": "type.googleapis.com/nope.Nope"}}"#, isInvalid: true),
    Case(name: "Any without @type", type: "google.protobuf.Any", json: #"{"x": 1}"#, isInvalid: true),
    Case(
      name: "null element", type: "dynamictest.v1.Repeateds", json: #"{"rInt32": [null]}"#, isInvalid: true),
    Case(
      name: "bad timestamp", type: "google.protobuf.Timestamp", json: #""2026-02-30T10:00:00Z""#,
      isInvalid: true),
    Case(
      name: "not a leap year", type: "google.protobuf.Timestamp", json: #""2100-02-29T10:00:00Z""#,
      isInvalid: true),
    Case(name: "bad field mask", type: "google.protobuf.FieldMask", json: #""a_b""#, isInvalid: true),
    Case(name: "closed enum number", type: "dynamictest.v1.Legacy", json: #"{"kind": 9}"#, isInvalid: true),
    Case(name: "unterminated", type: "payments.v1.Money", json: #"{"currency": "EUR""#, isInvalid: true),
  ]

  static func hex(_ bytes: [UInt8]) -> String {
    bytes.map { $0 < 16 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
  }

  static func bytes(hex: String) -> [UInt8] {
    var result: [UInt8] = []
    var index = hex.startIndex
    while let next = hex.index(index, offsetBy: 2, limitedBy: hex.endIndex), index < hex.endIndex {
      result.append(UInt8(hex[index..<next], radix: 16) ?? 0)
      index = next
    }
    return result
  }

  /// For each case: Google's binary for the JSON, Google's JSON for that binary (without and
  /// with fields at their defaults), and Google's JSON for our binary.
  static let script = """
    import json, sys
    from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory

    descriptor_set = descriptor_pb2.FileDescriptorSet()
    with open(sys.argv[1], 'rb') as f:
        descriptor_set.ParseFromString(f.read())
    pool = descriptor_pool.DescriptorPool()
    for file in descriptor_set.file:
        pool.AddSerializedFile(file.SerializeToString())
    with open(sys.argv[2]) as f:
        cases = json.load(f)
    results = []
    for case in cases:
        result = {'name': case['name']}
        if case['invalid']:
            try:
                message_class = message_factory.GetMessageClass(pool.FindMessageTypeByName(case['type']))
                json_format.Parse(case['json'], message_class(), descriptor_pool=pool)
                result['rejected'] = False
            except json_format.ParseError:
                result['rejected'] = True
            results.append(result)
            continue
        try:
            message_class = message_factory.GetMessageClass(pool.FindMessageTypeByName(case['type']))
            theirs = message_class()
            json_format.Parse(case['json'], theirs, descriptor_pool=pool)
            result['binary'] = theirs.SerializeToString().hex()
            result['json'] = json_format.MessageToJson(theirs, descriptor_pool=pool)
            result['jsonWithDefaults'] = json_format.MessageToJson(
                theirs, descriptor_pool=pool, always_print_fields_with_no_presence=True)
            ours = message_class()
            ours.ParseFromString(bytes.fromhex(case['ours']))
            result['jsonOfOurs'] = json_format.MessageToJson(ours, descriptor_pool=pool)
            result['sameMessage'] = ours == theirs
        except Exception as e:
            result['error'] = '%s: %s' % (type(e).__name__, e)
        results.append(result)
    json.dump(results, sys.stdout)
    """

  @Test(
    "the same JSON gives the same binary, and the same binary the same JSON, as Google's implementation; both reject the same bad input"
  )
  func crossCheck() async throws {
    let pool = try Descriptors.pool()
    var requests: [JSONValue] = []
    var ours: [[UInt8]] = []
    let cases = Self.cases + Self.invalidCases
    for testCase in cases {
      var bytes: [UInt8] = []
      if testCase.isInvalid {
        #expect(throws: ProtobufDynamicError.self, "\(testCase.name)") {
          try pool.decodeJSON(testCase.json, as: testCase.type)
        }
      } else {
        bytes = try pool.decodeJSON(testCase.json, as: testCase.type)
      }
      ours.append(bytes)
      requests.append(
        .object([
          ("name", .string(testCase.name)), ("type", .string(testCase.type)),
          ("json", .string(testCase.json)),
          ("ours", .string(Self.hex(bytes))), ("invalid", .bool(testCase.isInvalid)),
        ]))
    }
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dynamic-python-\(UUID())")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let setPath = directory.appendingPathComponent("set.pb")
    let casesPath = directory.appendingPathComponent("cases.json")
    let scriptPath = directory.appendingPathComponent("cross_check.py")
    try Data(try Descriptors.descriptorSet()).write(to: setPath)
    try JSONValue.array(requests).serialized().write(to: casesPath, atomically: true, encoding: .utf8)
    try Self.script.write(to: scriptPath, atomically: true, encoding: .utf8)
    let run = try await ChildProcess.run(
      "/usr/bin/timeout", ["120", try PythonPeer.python(), scriptPath.path, setPath.path, casesPath.path])
    try #require(run.status == 0, "\(run.output)")
    guard case .array(let results) = try json(run.output), results.count == cases.count else {
      Issue.record("unexpected output: \(run.output)")
      return
    }
    for ((testCase, result), ourBytes) in zip(zip(cases, results), ours) {
      let name = testCase.name
      if testCase.isInvalid {
        #expect(result.member("rejected") == .bool(true), "\(name): Google accepts it")
        continue
      }
      if let error = result.member("error") {
        Issue.record("\(name): Python failed: \(error)")
        continue
      }
      guard case .string(let theirHex) = result.member("binary"),
        case .string(let theirJSON) = result.member("json"),
        case .string(let theirDefaults) = result.member("jsonWithDefaults"),
        case .string(let jsonOfOurs) = result.member("jsonOfOurs")
      else {
        Issue.record("\(name): incomplete result \(result)")
        continue
      }
      if !testCase.hasMaps { #expect(Self.hex(ourBytes) == theirHex, "\(name): binary") }
      #expect(
        result.member("sameMessage") == .bool(true), "\(name): Google reads our binary as another message")
      #expect(
        try json(jsonOfOurs).canonical == json(theirJSON).canonical, "\(name): Google's JSON of our binary")
      let theirBytes = Self.bytes(hex: theirHex)
      let ourJSON = try pool.encodeJSON(theirBytes, as: testCase.type)
      #expect(
        try json(ourJSON).canonical == json(theirJSON).canonical, "\(name): JSON\n\(ourJSON)\n\(theirJSON)")
      let ourDefaults = try pool.encodeJSON(theirBytes, as: testCase.type, emitDefaults: true)
      #expect(
        try json(ourDefaults).canonical == json(theirDefaults).canonical,
        "\(name): JSON with defaults\n\(ourDefaults)\n\(theirDefaults)")
    }
  }
}
