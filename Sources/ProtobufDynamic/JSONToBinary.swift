import ProtobufCodeGen
import ProtobufRuntime

/// One encoded value of a field, before its tag is written.
enum WireValue {
  case varint(UInt64)
  case fixed32(UInt32)
  case fixed64(UInt64)
  case lengthDelimited([UInt8])
  /// The content of a proto2 group (between its start and end tags).
  case group([UInt8])

  /// The value a field without presence is not written with (`0`, `false`, `""`, empty bytes;
  /// `-0.0` is not a default, as in protobuf's own implementations).
  var isDefault: Bool {
    switch self {
    case .varint(let value): value == 0
    case .fixed32(let value): value == 0
    case .fixed64(let value): value == 0
    case .lengthDelimited(let bytes): bytes.isEmpty
    case .group: false
    }
  }

  func write(field: Int, to encoder: inout ProtobufEncoder) {
    switch self {
    case .varint(let value):
      encoder.writeTag(field: field, .varint)
      encoder.writeVarint(value)
    case .fixed32(let value): encoder.writeFixed32(field: field, value)
    case .fixed64(let value): encoder.writeFixed64(field: field, value)
    case .lengthDelimited(let bytes): encoder.writeBytes(field: field, bytes)
    case .group(let bytes):
      encoder.writeTag(field: field, .startGroup)
      encoder.writeRaw(bytes)
      encoder.writeTag(field: field, .endGroup)
    }
  }

  /// Writes the value without a tag, as an element of a packed field.
  func writePacked(to encoder: inout ProtobufEncoder) {
    switch self {
    case .varint(let value): encoder.writeVarint(value)
    case .fixed32(let value): encoder.writeFixed32(value)
    case .fixed64(let value): encoder.writeFixed64(value)
    case .lengthDelimited, .group: break  // not packable; the schema check prevents this
    }
  }
}

/// Converts proto3 JSON into the binary encoding of a message of a ``DescriptorPool``.
struct JSONToBinary {
  let pool: DescriptorPool
  let ignoringUnknownFields: Bool
  private var path: FieldPath
  private var depth = 0

  init(pool: DescriptorPool, root: String, ignoringUnknownFields: Bool) {
    self.pool = pool
    self.ignoringUnknownFields = ignoringUnknownFields
    path = FieldPath(root: root)
  }

  private func failure(_ code: ProtobufDynamicError.Code, _ message: String) -> ProtobufDynamicError {
    ProtobufDynamicError(code, path: path.text, message)
  }

  private func failure(_ message: String) -> ProtobufDynamicError { failure(.invalidValue, message) }

  private func messageType(_ name: String?) throws(ProtobufDynamicError) -> MessageDescriptor {
    guard let name, let type = pool.message(name) else {
      throw failure(.unknownSymbol, "message type \(name ?? "?") is not in the descriptor pool")
    }
    return type
  }

  // MARK: - Messages

  /// The binary encoding of `value` as a `type` message.
  mutating func message(_ value: JSONValue, as type: MessageDescriptor) throws(ProtobufDynamicError)
    -> [UInt8]
  {
    guard depth < DescriptorPool.maximumDepth else {
      throw failure(.nestingTooDeep, "messages nest deeper than \(DescriptorPool.maximumDepth)")
    }
    depth += 1
    defer { depth -= 1 }
    if let wellKnown = WellKnownType(type) { return try self.wellKnown(wellKnown, value, type) }
    guard case .object(let members) = value else {
      throw failure("expected an object for \(type.fullName), got \(value.kindDescription)")
    }
    return try fields(members, of: type)
  }

  /// The fields of a message, in field-number order as protobuf's own encoders write them.
  private mutating func fields(_ members: [(String, JSONValue)], of type: MessageDescriptor)
    throws(ProtobufDynamicError) -> [UInt8]
  {
    var encoded: [(number: Int, bytes: [UInt8])] = []
    var memberNames: [Int: String] = [:]
    var oneofMembers: [Int: String] = [:]
    for (name, value) in members {
      guard let field = type.field(named: name) else {
        if ignoringUnknownFields { continue }
        throw failure(.unknownField, "\(type.fullName) has no field named \"\(name)\"")
      }
      if let earlier = memberNames[field.number] {
        throw failure("field \(field.name) is given twice (as \"\(earlier)\" and \"\(name)\")")
      }
      memberNames[field.number] = name
      if let oneof = field.oneofIndex, !value.isNull {
        if let other = oneofMembers[oneof] {
          throw failure(
            "oneof \(type.oneofs[oneof].name) can hold one field, but both \(other) and \(field.name) are set"
          )
        }
        oneofMembers[oneof] = field.name
      }
      path.push(field: field.name)
      defer { path.pop() }
      var encoder = ProtobufEncoder()
      try self.field(field, value, to: &encoder)
      if encoder.count > 0 { encoded.append((field.number, encoder.buffer)) }
    }
    encoded.sort { $0.number < $1.number }
    var bytes: [UInt8] = []
    bytes.reserveCapacity(encoded.reduce(0) { $0 + $1.bytes.count })
    for field in encoded { bytes += field.bytes }
    return bytes
  }

  private mutating func field(_ field: FieldDescriptor, _ value: JSONValue, to encoder: inout ProtobufEncoder)
    throws(ProtobufDynamicError)
  {
    if value.isNull {
      // `null` means "not set", except for the two types whose JSON null is a value.
      guard !field.isRepeated else { return }
      if field.type == .message, field.typeName == WellKnownType.valueType {
        WireValue.lengthDelimited(Self.nullValue).write(field: field.number, to: &encoder)
      } else if field.type == .enum, field.typeName == WellKnownType.nullValueType, field.hasPresence {
        WireValue.varint(0).write(field: field.number, to: &encoder)
      }
      return
    }
    if field.isMap {
      try map(field, value, to: &encoder)
      return
    }
    if field.isRepeated {
      guard case .array(let elements) = value else {
        throw failure("expected an array, got \(value.kindDescription)")
      }
      var packed = ProtobufEncoder()
      for (index, element) in elements.enumerated() {
        path.push(index: index)
        defer { path.pop() }
        if element.isNull, field.typeName != WellKnownType.valueType {
          throw failure("null is not allowed as an element of a repeated field")
        }
        guard let wire = try single(field.type, field.typeName, element) else { continue }
        if field.isPacked {
          wire.writePacked(to: &packed)
        } else {
          wire.write(field: field.number, to: &encoder)
        }
      }
      if packed.count > 0 { encoder.writeBytes(field: field.number, packed.buffer) }
      return
    }
    guard let wire = try single(field.type, field.typeName, value) else { return }
    if field.hasPresence || !wire.isDefault { wire.write(field: field.number, to: &encoder) }
  }

  /// `google.protobuf.Value` with `null_value` set.
  private static let nullValue: [UInt8] = [0x08, 0x00]

  private mutating func map(_ field: FieldDescriptor, _ value: JSONValue, to encoder: inout ProtobufEncoder)
    throws(ProtobufDynamicError)
  {
    guard case .object(let members) = value else {
      throw failure("expected an object for a map, got \(value.kindDescription)")
    }
    let entryType = try messageType(field.typeName)
    guard let keyField = entryType.field(number: 1), let valueField = entryType.field(number: 2) else {
      throw failure(.invalidDescriptor, "\(entryType.fullName) is not a map entry")
    }
    for (key, element) in members {
      path.push(key: key)
      defer { path.pop() }
      var entry = ProtobufEncoder()
      try mapKey(key, keyField.type).write(field: 1, to: &entry)
      if element.isNull {
        if valueField.type == .message, valueField.typeName == WellKnownType.valueType {
          WireValue.lengthDelimited(Self.nullValue).write(field: 2, to: &entry)
        } else if valueField.type == .enum, valueField.typeName == WellKnownType.nullValueType {
          WireValue.varint(0).write(field: 2, to: &entry)
        } else {
          throw failure("null is not allowed as a map value")
        }
      } else {
        guard let wire = try single(valueField.type, valueField.typeName, element) else { continue }
        wire.write(field: 2, to: &entry)
      }
      encoder.writeBytes(field: field.number, entry.buffer)
    }
  }

  private func mapKey(_ key: String, _ type: FieldDescriptorProto.FieldType) throws(ProtobufDynamicError)
    -> WireValue
  {
    func integer<Value: FixedWidthInteger>(_: Value.Type) throws(ProtobufDynamicError) -> Value {
      guard let value = Value(key) else {
        throw failure("map key \"\(key)\" is not a \(type.keyword ?? "\(type)")")
      }
      return value
    }
    switch type {
    case .string: return .lengthDelimited(Array(key.utf8))
    case .bool:
      switch key {
      case "true": return .varint(1)
      case "false": return .varint(0)
      default: throw failure("map key \"\(key)\" is not true or false")
      }
    case .int32: return .varint(UInt64(bitPattern: Int64(try integer(Int32.self))))
    case .sint32: return .varint(UInt64(ZigZag.encode(try integer(Int32.self))))
    case .sfixed32: return .fixed32(UInt32(bitPattern: try integer(Int32.self)))
    case .int64: return .varint(UInt64(bitPattern: try integer(Int64.self)))
    case .sint64: return .varint(ZigZag.encode(try integer(Int64.self)))
    case .sfixed64: return .fixed64(UInt64(bitPattern: try integer(Int64.self)))
    case .uint32: return .varint(UInt64(try integer(UInt32.self)))
    case .fixed32: return .fixed32(try integer(UInt32.self))
    case .uint64: return .varint(try integer(UInt64.self))
    case .fixed64: return .fixed64(try integer(UInt64.self))
    case .double, .float, .bytes, .message, .group, .enum:
      throw failure(.invalidDescriptor, "\(type) cannot be a map key")
    }
  }

  /// One value of a field (a singular field's value, an element, a map value); `nil` for an
  /// unknown enum name that is being ignored.
  private mutating func single(
    _ type: FieldDescriptorProto.FieldType, _ typeName: String?, _ value: JSONValue
  )
    throws(ProtobufDynamicError) -> WireValue?
  {
    switch type {
    case .message: return .lengthDelimited(try message(value, as: try messageType(typeName)))
    case .group: return .group(try message(value, as: try messageType(typeName)))
    case .enum:
      guard let typeName, let enumType = pool.enumType(typeName) else {
        throw failure(.unknownSymbol, "enum type \(typeName ?? "?") is not in the descriptor pool")
      }
      return try enumNumber(value, enumType).map { .varint(UInt64(bitPattern: Int64($0))) }
    default: return try scalar(type, value)
    }
  }

  private func enumNumber(_ value: JSONValue, _ type: EnumDescriptor) throws(ProtobufDynamicError) -> Int32? {
    let number: Int32
    switch value {
    case .string(let name):
      if let known = type.number(named: name) { return known }
      guard let parsed = Int32(name) else {
        if ignoringUnknownFields { return nil }
        throw failure("\"\(name)\" is not a value of enum \(type.fullName)")
      }
      number = parsed
    case .number:
      do {
        number = try value.int32()
      } catch {
        throw self.failure(error.message)
      }
    default:
      throw failure("expected a name of enum \(type.fullName), got \(value.kindDescription)")
    }
    if type.isClosed, type.name(of: number) == nil {
      throw failure("\(number) is not a value of enum \(type.fullName)")
    }
    return number
  }

  private func scalar(_ type: FieldDescriptorProto.FieldType, _ value: JSONValue) throws(ProtobufDynamicError)
    -> WireValue
  {
    let result = Result { () throws(ProtobufJSONError) -> WireValue in
      switch type {
      case .int32: return .varint(UInt64(bitPattern: Int64(try value.int32())))
      case .sint32: return .varint(UInt64(ZigZag.encode(try value.int32())))
      case .sfixed32: return .fixed32(UInt32(bitPattern: try value.int32()))
      case .int64: return .varint(UInt64(bitPattern: try value.int64()))
      case .sint64: return .varint(ZigZag.encode(try value.int64()))
      case .sfixed64: return .fixed64(UInt64(bitPattern: try value.int64()))
      case .uint32: return .varint(UInt64(try value.uint32()))
      case .fixed32: return .fixed32(try value.uint32())
      case .uint64: return .varint(try value.uint64())
      case .fixed64: return .fixed64(try value.uint64())
      case .float:
        let float = try value.float()
        try Self.checkFinite(value, Double(float))
        return .fixed32(float.bitPattern)
      case .double:
        let double = try value.double()
        try Self.checkFinite(value, double)
        return .fixed64(double.bitPattern)
      case .bool: return .varint(try value.bool() ? 1 : 0)
      case .string: return .lengthDelimited(Array(try value.string().utf8))
      case .bytes: return .lengthDelimited(try value.bytes())
      case .message, .group, .enum: throw ProtobufJSONError("\(type) is not a scalar type")
      }
    }
    switch result {
    case .success(let wire): return wire
    case .failure(let problem): throw failure(problem.message)
    }
  }

  /// A JSON number too large for a double (`1e400`) is an error; infinity must be written as
  /// the string `"Infinity"`.
  private static func checkFinite(_ value: JSONValue, _ number: Double) throws(ProtobufJSONError) {
    if case .number(let text) = value, !number.isFinite {
      throw ProtobufJSONError("\(text) is out of range")
    }
  }

  // MARK: - Well-known types

  private mutating func wellKnown(_ kind: WellKnownType, _ value: JSONValue, _ type: MessageDescriptor)
    throws(ProtobufDynamicError) -> [UInt8]
  {
    var encoder = ProtobufEncoder()
    switch kind {
    case .timestamp:
      let timestamp: Google_Protobuf_Timestamp
      do {
        timestamp = try Google_Protobuf_Timestamp(jsonValue: value, options: JSONDecodingOptions())
      } catch {
        throw self.failure(error.message)
      }
      if case .string(let text) = value, !WellKnownType.isCalendarDate(text.prefix(10)) {
        throw failure("\"\(text)\" is not a valid timestamp (no such day)")
      }
      return timestamp.serializedBytes()
    case .duration:
      do {
        let duration = try Google_Protobuf_Duration(jsonValue: value, options: JSONDecodingOptions())
        return duration.serializedBytes()
      } catch {
        throw self.failure(error.message)
      }
    case .wrapper:
      guard let valueField = type.field(number: 1) else {
        throw failure(.invalidDescriptor, "\(type.fullName) has no field 1")
      }
      path.push(field: valueField.name)
      defer { path.pop() }
      if let wire = try single(valueField.type, valueField.typeName, value), !wire.isDefault {
        wire.write(field: 1, to: &encoder)
      }
    case .fieldMask:
      guard case .string(let text) = value else {
        throw failure("expected a string of comma-separated paths, got \(value.kindDescription)")
      }
      if !text.isEmpty {
        for jsonPath in text.split(separator: ",", omittingEmptySubsequences: false) {
          guard let protoPath = WellKnownType.protoPath(jsonPath) else {
            throw failure("field mask path \"\(jsonPath)\" must be lowerCamel, without \"_\"")
          }
          encoder.writeString(field: 1, protoPath)
        }
      }
    case .structure:
      guard case .object(let members) = value else {
        throw failure("expected an object for google.protobuf.Struct, got \(value.kindDescription)")
      }
      let valueType = try messageType(WellKnownType.valueType)
      for (key, member) in members {
        path.push(key: key)
        defer { path.pop() }
        var entry = ProtobufEncoder()
        entry.writeString(field: 1, key)
        entry.writeBytes(field: 2, try message(member, as: valueType))
        encoder.writeBytes(field: 1, entry.buffer)
      }
    case .value:
      switch value {
      case .null: return Self.nullValue
      case .number:
        let double: Double
        do {
          double = try value.double()
          try Self.checkFinite(value, double)
        } catch {
          throw self.failure(error.message)
        }
        encoder.writeFixed64(field: 2, double.bitPattern)
      case .string(let text): encoder.writeString(field: 3, text)
      case .bool(let flag): encoder.writeBool(field: 4, flag)
      case .object:
        encoder.writeBytes(field: 5, try message(value, as: try messageType("google.protobuf.Struct")))
      case .array:
        encoder.writeBytes(field: 6, try message(value, as: try messageType("google.protobuf.ListValue")))
      }
    case .listValue:
      guard case .array(let elements) = value else {
        throw failure("expected an array for google.protobuf.ListValue, got \(value.kindDescription)")
      }
      let valueType = try messageType(WellKnownType.valueType)
      for (index, element) in elements.enumerated() {
        path.push(index: index)
        defer { path.pop() }
        encoder.writeBytes(field: 1, try message(element, as: valueType))
      }
    case .any:
      return try any(value)
    }
    return encoder.buffer
  }

  /// `{"@type": "type.googleapis.com/pkg.Message", ...fields}`, or `{"@type": ..., "value": ...}`
  /// for a well-known type with a special JSON form.
  private mutating func any(_ value: JSONValue) throws(ProtobufDynamicError) -> [UInt8] {
    guard case .object(let members) = value else {
      throw failure("expected an object for google.protobuf.Any, got \(value.kindDescription)")
    }
    if members.isEmpty { return [] }
    guard let typeMember = value.member("@type") else {
      throw failure("google.protobuf.Any needs an \"@type\" member")
    }
    guard case .string(let url) = typeMember else {
      throw failure("\"@type\" must be a string, got \(typeMember.kindDescription)")
    }
    let typeName = WellKnownType.typeName(ofURL: url)
    guard let type = pool.message(typeName) else {
      throw failure(
        .unknownSymbol, "\"@type\": \(url) names a message type that is not in the descriptor pool")
    }
    let payload: [UInt8]
    if WellKnownType(type) != nil {
      guard let inner = value.member("value") else {
        throw failure("google.protobuf.Any holding \(type.fullName) needs a \"value\" member")
      }
      if !ignoringUnknownFields, let extra = members.first(where: { $0.0 != "@type" && $0.0 != "value" }) {
        throw failure(
          .unknownField, "google.protobuf.Any holding \(type.fullName) has no field \"\(extra.0)\"")
      }
      path.push(field: "value")
      defer { path.pop() }
      payload = try message(inner, as: type)
    } else {
      payload = try message(.object(members.filter { $0.0 != "@type" }), as: type)
    }
    var encoder = ProtobufEncoder()
    encoder.writeString(field: 1, url)
    if !payload.isEmpty { encoder.writeBytes(field: 2, payload) }
    return encoder.buffer
  }
}
