import ProtobufRuntime

/// A hand-written message in the shape the generator will emit, covering every wire type.
struct Sample: ProtobufMessage {
  static let protoMessageName = "test.Sample"

  var id: Int32 = 0  // 1: int32
  var name = ""  // 2: string
  var children: [Sample] = []  // 3: repeated Sample
  var values: [Int64] = []  // 4: repeated int64 (packed)
  var flag = false  // 5: bool
  var signed: Int32 = 0  // 6: sint32
  var ratio: Double = 0  // 7: double
  var blob: [UInt8] = []  // 8: bytes
  var fixed: UInt32 = 0  // 9: fixed32
  var unknownFields = UnknownFields()

  static func fieldName(_ number: Int) -> String? {
    switch number {
    case 1: "id"
    case 2: "name"
    case 3: "children"
    case 4: "values"
    case 5: "flag"
    case 6: "signed"
    case 7: "ratio"
    case 8: "blob"
    case 9: "fixed"
    default: nil
    }
  }

  mutating func decodeField(_ field: Int, _ wireType: WireType, from decoder: inout ProtobufDecoder) throws {
    switch (field, wireType) {
    case (1, .varint): id = try decoder.readInt32()
    case (2, .lengthDelimited): name = try decoder.readString()
    case (3, .lengthDelimited): children.append(try decoder.readMessage(Sample.self))
    case (4, .varint), (4, .lengthDelimited):
      try decoder.readRepeated(wireType, into: &values) { decoder throws(ProtobufDecodingError) in
        try decoder.readInt64()
      }
    case (5, .varint): flag = try decoder.readBool()
    case (6, .varint): signed = try decoder.readSInt32()
    case (7, .fixed64): ratio = try decoder.readDouble()
    case (8, .lengthDelimited): blob = try decoder.readBytes()
    case (9, .fixed32): fixed = try decoder.readFixed32()
    default: try decoder.skipField(field, wireType, keepingIn: &unknownFields)
    }
  }

  func encode(to encoder: inout ProtobufEncoder) {
    if id != 0 { encoder.writeInt32(field: 1, id) }
    if !name.isEmpty { encoder.writeString(field: 2, name) }
    for child in children { encoder.writeMessage(field: 3, child) }
    encoder.writePackedVarints(field: 4, values) { UInt64(bitPattern: $0) }
    if flag { encoder.writeBool(field: 5, flag) }
    if signed != 0 { encoder.writeSInt32(field: 6, signed) }
    if ratio.bitPattern != 0 { encoder.writeDouble(field: 7, ratio) }
    if !blob.isEmpty { encoder.writeBytes(field: 8, blob) }
    if fixed != 0 { encoder.writeFixed32(field: 9, fixed) }
    encoder.writeUnknownFields(unknownFields)
  }
}
