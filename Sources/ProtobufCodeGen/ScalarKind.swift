/// How one value type (a scalar or an enum) is declared, read and written in generated Swift.
struct ValueCodec {
  /// The Swift type.
  let swiftType: String
  /// A literal of the default value.
  let defaultValue: String
  /// The wire type of one unpacked value.
  let wireType: String
  /// An expression that reads one value from `decoder`.
  let read: String
  /// `(field, value) -> statement` that writes one value with its tag.
  let write: (Int32, String) -> String
  /// `value -> condition` that is true when the value is not the default.
  let isNotDefault: (String) -> String
  /// For packable types: the packed writer and the closure that maps an element to its raw bits.
  let packed: (writer: String, transform: String)?
  /// Whether values are ordered with `<` (map keys are sorted for deterministic output).
  let isComparable: Bool
  /// `value -> expression` of the value's encoded size without its tag.
  var size: (String) -> String = { _ in "0" }
  /// `value -> expression` of the value as a `JSONValue`.
  var toJSON: (String) -> String = { $0 }
  /// `json -> expression` that reads the value from a `JSONValue`.
  var fromJSON: (String) -> String = { $0 }
  /// As a map key: `key -> String` and `string -> key`.
  var keyToString: (String) -> String = { "String(\($0))" }
  var keyFromString: (String) -> String = { $0 }

  static func scalar(_ type: FieldDescriptorProto.FieldType) -> ValueCodec? {
    func make(
      _ swiftType: String, _ defaultValue: String, _ wireType: String, _ reader: String, _ writer: String,
      notDefault: @escaping (String) -> String = { "\($0) != 0" }, packed: (String, String)?,
      comparable: Bool = true
    ) -> ValueCodec {
      let json = jsonKind(type)
      var codec = ValueCodec(
        swiftType: swiftType, defaultValue: defaultValue, wireType: wireType, read: "try decoder.\(reader)()",
        write: { field, value in "encoder.\(writer)(field: \(field), \(value))" }, isNotDefault: notDefault,
        packed: packed.map { (writer: $0.0, transform: $0.1) }, isComparable: comparable)
      codec.toJSON = { ".\(json)(\($0))" }
      codec.fromJSON = { "try \($0).\(json)()" }
      codec.size = sizeExpression(type)
      switch type {
      case .string:
        codec.keyToString = { $0 }
        codec.keyFromString = { $0 }
      case .bool:
        codec.keyFromString = { "try JSONMapKey.bool(\($0))" }
      default:
        codec.keyFromString = { "try JSONMapKey.integer(\($0), \(swiftType).self)" }
      }
      return codec
    }
    switch type {
    case .double:
      return make(
        "Double", "0", ".fixed64", "readDouble", "writeDouble", notDefault: { "\($0).bitPattern != 0" },
        packed: ("writePackedFixed64", "{ $0.bitPattern }"))
    case .float:
      return make(
        "Float", "0", ".fixed32", "readFloat", "writeFloat", notDefault: { "\($0).bitPattern != 0" },
        packed: ("writePackedFixed32", "{ $0.bitPattern }"))
    case .int64:
      return make(
        "Int64", "0", ".varint", "readInt64", "writeInt64",
        packed: ("writePackedVarints", "{ UInt64(bitPattern: $0) }"))
    case .uint64:
      return make(
        "UInt64", "0", ".varint", "readUInt64", "writeUInt64", packed: ("writePackedVarints", "{ $0 }"))
    case .int32:
      return make(
        "Int32", "0", ".varint", "readInt32", "writeInt32",
        packed: ("writePackedVarints", "{ UInt64(bitPattern: Int64($0)) }"))
    case .fixed64:
      return make(
        "UInt64", "0", ".fixed64", "readFixed64", "writeFixed64", packed: ("writePackedFixed64", "{ $0 }"))
    case .fixed32:
      return make(
        "UInt32", "0", ".fixed32", "readFixed32", "writeFixed32", packed: ("writePackedFixed32", "{ $0 }"))
    case .bool:
      return make(
        "Bool", "false", ".varint", "readBool", "writeBool", notDefault: { $0 },
        packed: ("writePackedVarints", "{ $0 ? 1 : 0 }"), comparable: false)
    case .string:
      return make(
        "String", "\"\"", ".lengthDelimited", "readString", "writeString", notDefault: { "!\($0).isEmpty" },
        packed: nil)
    case .bytes:
      return make(
        "[UInt8]", "[]", ".lengthDelimited", "readBytes", "writeBytes", notDefault: { "!\($0).isEmpty" },
        packed: nil,
        comparable: false)
    case .uint32:
      return make(
        "UInt32", "0", ".varint", "readUInt32", "writeUInt32",
        packed: ("writePackedVarints", "{ UInt64($0) }"))
    case .sfixed32:
      return make(
        "Int32", "0", ".fixed32", "readSFixed32", "writeSFixed32",
        packed: ("writePackedFixed32", "{ UInt32(bitPattern: $0) }"))
    case .sfixed64:
      return make(
        "Int64", "0", ".fixed64", "readSFixed64", "writeSFixed64",
        packed: ("writePackedFixed64", "{ UInt64(bitPattern: $0) }"))
    case .sint32:
      return make(
        "Int32", "0", ".varint", "readSInt32", "writeSInt32",
        packed: ("writePackedVarints", "{ UInt64(ZigZag.encode($0)) }"))
    case .sint64:
      return make(
        "Int64", "0", ".varint", "readSInt64", "writeSInt64",
        packed: ("writePackedVarints", "{ ZigZag.encode($0) }"))
    case .message, .group, .enum:
      return nil
    }
  }

  /// The encoded size of one value of a scalar type, without its tag.
  static func sizeExpression(_ type: FieldDescriptorProto.FieldType) -> (String) -> String {
    switch type {
    case .double, .fixed64, .sfixed64: { _ in "8" }
    case .float, .fixed32, .sfixed32: { _ in "4" }
    case .bool: { _ in "1" }
    case .int64: { "ProtobufSize.varint(UInt64(bitPattern: \($0)))" }
    case .uint64: { "ProtobufSize.varint(\($0))" }
    case .int32: { "ProtobufSize.int32(\($0))" }
    case .uint32: { "ProtobufSize.varint(UInt64(\($0)))" }
    case .sint32: { "ProtobufSize.varint(UInt64(ZigZag.encode(\($0))))" }
    case .sint64: { "ProtobufSize.varint(ZigZag.encode(\($0)))" }
    case .string: { "ProtobufSize.string(\($0))" }
    case .bytes: { "ProtobufSize.bytes(\($0))" }
    case .enum, .message, .group: { _ in "0" }
    }
  }

  /// The `JSONValue` helper for a scalar type (`int64`, `double`, ...).
  static func jsonKind(_ type: FieldDescriptorProto.FieldType) -> String {
    switch type {
    case .double: "double"
    case .float: "float"
    case .int64, .sint64, .sfixed64: "int64"
    case .uint64, .fixed64: "uint64"
    case .int32, .sint32, .sfixed32: "int32"
    case .uint32, .fixed32: "uint32"
    case .bool: "bool"
    case .string: "string"
    case .bytes: "bytes"
    case .enum, .message, .group: "unsupported"
    }
  }

  static func enumeration(swiftType: String) -> ValueCodec {
    var codec = ValueCodec(
      swiftType: swiftType, defaultValue: "\(swiftType)(rawValue: 0)", wireType: ".varint",
      read: "\(swiftType)(rawValue: try decoder.readEnum())",
      write: { field, value in "encoder.writeEnum(field: \(field), \(value).rawValue)" },
      isNotDefault: { "\($0).rawValue != 0" },
      packed: (writer: "writePackedVarints", transform: "{ UInt64(bitPattern: Int64($0.rawValue)) }"),
      isComparable: false)
    codec.size = { "ProtobufSize.int32(\($0).rawValue)" }
    codec.toJSON = { ".enumeration(\($0))" }
    codec.fromJSON = { "try \($0).enumeration(\(swiftType).self)" }
    return codec
  }
}
