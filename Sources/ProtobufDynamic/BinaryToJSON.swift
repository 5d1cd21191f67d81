import ProtobufCodeGen
import ProtobufRuntime

/// One occurrence of a field in the binary input. Length-delimited values are strings, bytes,
/// messages, map entries and packed runs; a group's content is kept the same way.
private enum RawValue {
  case varint(UInt64)
  case fixed32(UInt32)
  case fixed64(UInt64)
  case bytes([UInt8])

  /// The same value read as a field without presence would hold it: is it the default?
  func isDefault(for type: FieldDescriptorProto.FieldType) -> Bool {
    switch self {
    case .varint(let value):
      switch type {
      case .int32, .uint32, .sint32, .enum: UInt32(truncatingIfNeeded: value) == 0
      default: value == 0
      }
    case .fixed32(let value): value == 0
    case .fixed64(let value): value == 0
    case .bytes(let bytes): bytes.isEmpty
    }
  }

  /// The default value of a field of `type`, as it would be read from the wire.
  static func defaultValue(for type: FieldDescriptorProto.FieldType) -> RawValue {
    switch type.wireType {
    case .varint: .varint(0)
    case .fixed32: .fixed32(0)
    case .fixed64: .fixed64(0)
    case .lengthDelimited, .group: .bytes([])
    }
  }
}

/// A message's known fields as read from the wire: every occurrence, in order, by field number.
/// Unknown fields, and known fields that arrive with a wire type their type cannot have, are
/// dropped; a oneof member clears the other members read before it.
private typealias RawFields = [Int: [RawValue]]

/// Converts the binary encoding of a message of a ``DescriptorPool`` into canonical proto3 JSON.
struct BinaryToJSON {
  let pool: DescriptorPool
  let emitDefaults: Bool
  private var path: FieldPath
  private var depth = 0

  init(pool: DescriptorPool, root: String, emitDefaults: Bool) {
    self.pool = pool
    self.emitDefaults = emitDefaults
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

  /// The JSON form of `bytes`, a `type` message.
  mutating func message(_ bytes: [UInt8], as type: MessageDescriptor) throws(ProtobufDynamicError)
    -> JSONValue
  {
    try enter()
    defer { depth -= 1 }
    let fields = try collect(bytes, of: type)
    if let wellKnown = WellKnownType(type) { return try self.wellKnown(wellKnown, fields, type) }
    var members: [(String, JSONValue)] = []
    try render(fields, of: type, into: &members)
    return .object(members)
  }

  private mutating func enter() throws(ProtobufDynamicError) {
    guard depth < DescriptorPool.maximumDepth else {
      throw failure(.nestingTooDeep, "messages nest deeper than \(DescriptorPool.maximumDepth)")
    }
    depth += 1
  }

  /// Reads the fields of one message.
  private func collect(_ bytes: [UInt8], of type: MessageDescriptor) throws(ProtobufDynamicError) -> RawFields
  {
    var decoder = ProtobufDecoder(bytes: bytes)
    var fields: RawFields = [:]
    do throws(ProtobufDecodingError) {
      while let (number, wireType) = try decoder.nextTag() {
        guard let field = type.field(number: number) else {
          try Self.skip(number, wireType, &decoder)
          continue
        }
        let raw: RawValue
        switch (field.type.wireType, wireType) {
        case (.varint, .varint):
          let value = try decoder.readVarint()
          // A closed (proto2) enum keeps numbers it does not list out of the field.
          if field.type == .enum, let enumType = pool.enumType(field.typeName ?? ""), enumType.isClosed,
            enumType.name(of: Int32(truncatingIfNeeded: value)) == nil
          {
            continue
          }
          raw = .varint(value)
        case (.fixed32, .fixed32): raw = .fixed32(try decoder.readFixed32())
        case (.fixed64, .fixed64): raw = .fixed64(try decoder.readFixed64())
        case (.lengthDelimited, .lengthDelimited): raw = .bytes(try decoder.readBytes())
        case (.varint, .lengthDelimited), (.fixed32, .lengthDelimited), (.fixed64, .lengthDelimited):
          guard field.isRepeated else {
            try decoder.skipValue(number, wireType)
            continue
          }
          raw = .bytes(try decoder.readBytes())  // a packed run
        case (.group, .startGroup):
          raw = .bytes(Array(bytes[try Self.groupContent(number, &decoder)]))
        default:
          try Self.skip(number, wireType, &decoder)
          continue
        }
        if let oneof = field.oneofIndex {
          for other in type.oneofs[oneof].fieldNumbers where other != number { fields[other] = nil }
        }
        fields[number, default: []].append(raw)
      }
    } catch {
      throw self.failure(
        .invalidBinary, "malformed protobuf: \(error.code) at byte \(error.offset) of the message")
    }
    return fields
  }

  /// Skips a field's value; groups without recursion, at most ``DescriptorPool/maximumDepth``
  /// deep.
  private static func skip(_ number: Int, _ wireType: WireType, _ decoder: inout ProtobufDecoder)
    throws(ProtobufDecodingError)
  {
    if wireType == .startGroup {
      _ = try groupContent(number, &decoder)
    } else {
      try decoder.skipValue(number, wireType)
    }
  }

  /// Reads up to the end tag of the group `number` whose start tag was just read; returns the
  /// range of its content.
  private static func groupContent(_ number: Int, _ decoder: inout ProtobufDecoder)
    throws(ProtobufDecodingError) -> Range<Int>
  {
    let start = decoder.position
    var open = [number]
    while let innermost = open.last {
      let tagStart = decoder.position
      guard let (field, wireType) = try decoder.nextTag() else {
        throw ProtobufDecodingError(code: .truncated, offset: decoder.position)
      }
      switch wireType {
      case .startGroup:
        guard open.count < DescriptorPool.maximumDepth else {
          throw ProtobufDecodingError(code: .recursionLimit, offset: tagStart)
        }
        open.append(field)
      case .endGroup:
        guard field == innermost else { throw ProtobufDecodingError(code: .unmatchedGroup, offset: tagStart) }
        open.removeLast()
        if open.isEmpty { return start..<tagStart }
      default:
        try decoder.skipValue(field, wireType)
      }
    }
    return start..<decoder.position
  }
}

// MARK: - Rendering

extension BinaryToJSON {
  /// Appends the JSON members of `fields` in declaration order.
  private mutating func render(
    _ fields: RawFields, of type: MessageDescriptor, into members: inout [(String, JSONValue)]
  ) throws(ProtobufDynamicError) {
    for field in type.fields {
      let raws = fields[field.number] ?? []
      path.push(field: field.name)
      defer { path.pop() }
      if field.isMap {
        if !raws.isEmpty || emitDefaults { members.append((field.jsonName, try map(raws, field))) }
      } else if field.isRepeated {
        let elements = try repeated(raws, field)
        if !elements.isEmpty || emitDefaults { members.append((field.jsonName, .array(elements))) }
      } else if field.type == .message || field.type == .group {
        guard !raws.isEmpty else { continue }
        members.append(
          (field.jsonName, try message(Self.concatenated(raws), as: messageType(field.typeName))))
      } else if let last = raws.last {
        if field.hasPresence || emitDefaults || !last.isDefault(for: field.type) {
          members.append((field.jsonName, try scalar(last, field)))
        }
      } else if emitDefaults, !field.hasPresence {
        members.append((field.jsonName, try scalar(RawValue.defaultValue(for: field.type), field)))
      }
    }
  }

  /// Occurrences of a singular message field merge: their encodings concatenated.
  private static func concatenated(_ raws: [RawValue]) -> [UInt8] {
    var bytes: [UInt8] = []
    for case .bytes(let part) in raws { bytes += part }
    return bytes
  }

  private mutating func repeated(_ raws: [RawValue], _ field: FieldDescriptor) throws(ProtobufDynamicError)
    -> [JSONValue]
  {
    var elements: [JSONValue] = []
    let closedEnum =
      field.type == .enum ? pool.enumType(field.typeName ?? "").flatMap { $0.isClosed ? $0 : nil } : nil
    for raw in raws {
      guard field.type.isPackable, case .bytes(let packed) = raw else {
        path.push(index: elements.count)
        defer { path.pop() }
        elements.append(try value(raw, field))
        continue
      }
      var decoder = ProtobufDecoder(bytes: packed)
      while !decoder.isAtEnd {
        let element: RawValue
        do throws(ProtobufDecodingError) {
          switch field.type.wireType {
          case .fixed32: element = .fixed32(try decoder.readFixed32())
          case .fixed64: element = .fixed64(try decoder.readFixed64())
          default: element = .varint(try decoder.readVarint())
          }
        } catch {
          throw self.failure(.invalidBinary, "malformed packed field: \(error.code)")
        }
        if let closedEnum, case .varint(let number) = element,
          closedEnum.name(of: Int32(truncatingIfNeeded: number)) == nil
        {
          continue
        }
        elements.append(try scalar(element, field))
      }
    }
    return elements
  }

  private mutating func map(_ raws: [RawValue], _ field: FieldDescriptor) throws(ProtobufDynamicError)
    -> JSONValue
  {
    let entryType = try messageType(field.typeName)
    guard let keyField = entryType.field(number: 1), let valueField = entryType.field(number: 2) else {
      throw failure(.invalidDescriptor, "\(entryType.fullName) is not a map entry")
    }
    var members: [(String, JSONValue)] = []
    var positions: [String: Int] = [:]
    for case .bytes(let entryBytes) in raws {
      let entry = try collect(entryBytes, of: entryType)
      let key = try mapKey(entry[1]?.last ?? RawValue.defaultValue(for: keyField.type), keyField.type)
      path.push(key: key)
      defer { path.pop() }
      let valueRaws = entry[2] ?? []
      let mapValue: JSONValue
      if valueField.type == .message {
        mapValue = try message(Self.concatenated(valueRaws), as: messageType(valueField.typeName))
      } else {
        mapValue = try scalar(valueRaws.last ?? RawValue.defaultValue(for: valueField.type), valueField)
      }
      if let position = positions[key] {
        members[position].1 = mapValue
      } else {
        positions[key] = members.count
        members.append((key, mapValue))
      }
    }
    return .object(members)
  }

  private func mapKey(_ raw: RawValue, _ type: FieldDescriptorProto.FieldType) throws(ProtobufDynamicError)
    -> String
  {
    switch (type, raw) {
    case (.string, .bytes(let bytes)):
      guard let text = String(validating: bytes, as: UTF8.self) else {
        throw failure("invalid UTF-8 in a map key")
      }
      return text
    case (.bool, .varint(let value)): return value != 0 ? "true" : "false"
    case (.int32, .varint(let value)): return String(Int32(truncatingIfNeeded: value))
    case (.int64, .varint(let value)): return String(Int64(bitPattern: value))
    case (.uint32, .varint(let value)): return String(UInt32(truncatingIfNeeded: value))
    case (.uint64, .varint(let value)): return String(value)
    case (.sint32, .varint(let value)): return String(ZigZag.decode(UInt32(truncatingIfNeeded: value)))
    case (.sint64, .varint(let value)): return String(ZigZag.decode(value))
    case (.fixed32, .fixed32(let value)): return String(value)
    case (.sfixed32, .fixed32(let value)): return String(Int32(bitPattern: value))
    case (.fixed64, .fixed64(let value)): return String(value)
    case (.sfixed64, .fixed64(let value)): return String(Int64(bitPattern: value))
    default: throw failure(.invalidDescriptor, "\(type) cannot be a map key")
    }
  }

  /// One value of a field: a message or a scalar.
  private mutating func value(_ raw: RawValue, _ field: FieldDescriptor) throws(ProtobufDynamicError)
    -> JSONValue
  {
    guard field.type == .message || field.type == .group else { return try scalar(raw, field) }
    guard case .bytes(let bytes) = raw else {
      throw failure(.invalidBinary, "a message field is not length-delimited")
    }
    return try message(bytes, as: messageType(field.typeName))
  }

  private func scalar(_ raw: RawValue, _ field: FieldDescriptor) throws(ProtobufDynamicError) -> JSONValue {
    switch (field.type, raw) {
    case (.int32, .varint(let value)): return .int32(Int32(truncatingIfNeeded: value))
    case (.int64, .varint(let value)): return .int64(Int64(bitPattern: value))
    case (.uint32, .varint(let value)): return .uint32(UInt32(truncatingIfNeeded: value))
    case (.uint64, .varint(let value)): return .uint64(value)
    case (.sint32, .varint(let value)): return .int32(ZigZag.decode(UInt32(truncatingIfNeeded: value)))
    case (.sint64, .varint(let value)): return .int64(ZigZag.decode(value))
    case (.bool, .varint(let value)): return .bool(value != 0)
    case (.enum, .varint(let value)):
      let number = Int32(truncatingIfNeeded: value)
      if field.typeName == WellKnownType.nullValueType { return .null }
      return pool.enumType(field.typeName ?? "")?.name(of: number).map(JSONValue.string) ?? .int32(number)
    case (.fixed32, .fixed32(let value)): return .uint32(value)
    case (.sfixed32, .fixed32(let value)): return .int32(Int32(bitPattern: value))
    case (.float, .fixed32(let value)): return .float(Float(bitPattern: value))
    case (.fixed64, .fixed64(let value)): return .uint64(value)
    case (.sfixed64, .fixed64(let value)): return .int64(Int64(bitPattern: value))
    case (.double, .fixed64(let value)): return .double(Double(bitPattern: value))
    case (.string, .bytes(let bytes)):
      guard let text = String(validating: bytes, as: UTF8.self) else {
        throw failure("invalid UTF-8 in a string")
      }
      return .string(text)
    case (.bytes, .bytes(let bytes)): return .bytes(bytes)
    default: throw failure(.invalidBinary, "a \(field.type) value has the wrong wire type")
    }
  }

  // MARK: - Well-known types

  private mutating func wellKnown(_ kind: WellKnownType, _ fields: RawFields, _ type: MessageDescriptor)
    throws(ProtobufDynamicError) -> JSONValue
  {
    func lastVarint(_ number: Int) -> UInt64 {
      if case .varint(let value) = fields[number]?.last { return value }
      return 0
    }
    func strings(_ number: Int) throws(ProtobufDynamicError) -> [String] {
      var result: [String] = []
      for case .bytes(let bytes) in fields[number] ?? [] {
        guard let text = String(validating: bytes, as: UTF8.self) else {
          throw failure("invalid UTF-8 in a string")
        }
        result.append(text)
      }
      return result
    }
    switch kind {
    case .timestamp:
      let seconds = Int64(bitPattern: lastVarint(1))
      let nanos = Int32(truncatingIfNeeded: lastVarint(2))
      guard WellKnownType.timestampSeconds.contains(seconds), (0..<1_000_000_000).contains(nanos) else {
        throw failure("timestamp \(seconds)s \(nanos)ns is outside 0001-01-01 to 9999-12-31")
      }
      return Google_Protobuf_Timestamp.with {
        $0.seconds = seconds
        $0.nanos = nanos
      }.jsonValue(options: JSONEncodingOptions())
    case .duration:
      let seconds = Int64(bitPattern: lastVarint(1))
      let nanos = Int32(truncatingIfNeeded: lastVarint(2))
      guard WellKnownType.durationSeconds.contains(seconds), (-999_999_999...999_999_999).contains(nanos),
        seconds == 0 || nanos == 0 || (seconds < 0) == (nanos < 0)
      else {
        throw failure("duration \(seconds)s \(nanos)ns is out of range or has mixed signs")
      }
      return Google_Protobuf_Duration.with {
        $0.seconds = seconds
        $0.nanos = nanos
      }.jsonValue(options: JSONEncodingOptions())
    case .wrapper:
      guard let valueField = type.field(number: 1) else {
        throw failure(.invalidDescriptor, "\(type.fullName) has no field 1")
      }
      return try scalar(fields[1]?.last ?? RawValue.defaultValue(for: valueField.type), valueField)
    case .fieldMask:
      var paths: [String] = []
      for protoPath in try strings(1) {
        guard let jsonPath = WellKnownType.jsonPath(protoPath) else {
          throw failure("field mask path \"\(protoPath)\" has no JSON form (it must be lower_snake_case)")
        }
        paths.append(jsonPath)
      }
      return .string(paths.joined(separator: ","))
    case .structure:
      guard let field = type.field(number: 1), field.isMap else {
        throw failure(.invalidDescriptor, "\(type.fullName) has no map field 1")
      }
      path.push(field: field.name)
      defer { path.pop() }
      return try map(fields[1] ?? [], field)
    case .value:
      guard
        let (number, raw) = (1...6).lazy.compactMap({ number in fields[number]?.last.map { (number, $0) } })
          .first,
        let field = type.field(number: number)
      else { return .null }
      path.push(field: field.name)
      defer { path.pop() }
      if case .fixed64(let bits) = raw, number == 2, !Double(bitPattern: bits).isFinite {
        throw failure("\(Double(bitPattern: bits)) has no JSON form as a google.protobuf.Value number")
      }
      if field.type == .message {
        return try message(Self.concatenated(fields[number] ?? []), as: messageType(field.typeName))
      }
      return try scalar(raw, field)
    case .listValue:
      guard let field = type.field(number: 1) else {
        throw failure(.invalidDescriptor, "\(type.fullName) has no field 1")
      }
      path.push(field: field.name)
      defer { path.pop() }
      return .array(try repeated(fields[1] ?? [], field))
    case .any:
      return try any(fields)
    }
  }

  private mutating func any(_ fields: RawFields) throws(ProtobufDynamicError) -> JSONValue {
    var url = ""
    if case .bytes(let bytes) = fields[1]?.last {
      guard let text = String(validating: bytes, as: UTF8.self) else {
        throw failure("invalid UTF-8 in type_url")
      }
      url = text
    }
    var payload: [UInt8] = []
    if case .bytes(let bytes) = fields[2]?.last { payload = bytes }
    if url.isEmpty && payload.isEmpty { return .object([]) }
    guard let type = pool.message(WellKnownType.typeName(ofURL: url)) else {
      throw failure(
        .unknownSymbol, "type_url \"\(url)\" names a message type that is not in the descriptor pool")
    }
    if WellKnownType(type) != nil {
      path.push(field: "value")
      defer { path.pop() }
      return .object([("@type", .string(url)), ("value", try message(payload, as: type))])
    }
    try enter()
    defer { depth -= 1 }
    var members: [(String, JSONValue)] = [("@type", .string(url))]
    try render(try collect(payload, of: type), of: type, into: &members)
    return .object(members)
  }
}
