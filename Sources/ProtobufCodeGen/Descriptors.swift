public import ProtobufRuntime

// The parts of `google/protobuf/descriptor.proto` and `compiler/plugin.proto` that the
// generator reads, written by hand: they are the generator's own bootstrap (it cannot generate
// the types it needs to read its input). Field numbers follow those files; everything not
// modelled here (most options, extension ranges, ...) is kept as unknown fields.

/// `google.protobuf.FileDescriptorSet`: what `protoc --descriptor_set_out` writes.
public struct FileDescriptorSet: ProtobufMessage {
  public static let protoMessageName = "google.protobuf.FileDescriptorSet"
  public var files: [FileDescriptorProto] = []
  public var unknownFields = UnknownFields()
  public init() {}

  public mutating func decodeField(_ field: Int, _ wireType: WireType, from decoder: inout ProtobufDecoder)
    throws
  {
    switch (field, wireType) {
    case (1, .lengthDelimited): files.append(try decoder.readMessage())
    default: try decoder.skipField(field, wireType, keepingIn: &unknownFields)
    }
  }

  public func encode(to encoder: inout ProtobufEncoder) {
    for file in files { encoder.writeMessage(field: 1, file) }
    encoder.writeUnknownFields(unknownFields)
  }
}

/// `google.protobuf.FileDescriptorProto`: one `.proto` file.
public struct FileDescriptorProto: ProtobufMessage {
  public static let protoMessageName = "google.protobuf.FileDescriptorProto"
  /// The file's path relative to its import root, e.g. `payments/v1/payment.proto`.
  public var name = ""
  /// The protobuf package, e.g. `payments.v1`.
  public var package = ""
  /// Imported files.
  public var dependencies: [String] = []
  public var messageTypes: [DescriptorProto] = []
  public var enumTypes: [EnumDescriptorProto] = []
  public var services: [ServiceDescriptorProto] = []
  /// Comments and positions (present when protoc ran with source info).
  public var sourceCodeInfo: SourceCodeInfo? = nil
  /// `proto2`, `proto3` or empty (proto2).
  public var syntax = ""
  public var unknownFields = UnknownFields()
  public init() {}

  public static func fieldName(_ number: Int) -> String? {
    [
      1: "name", 2: "package", 3: "dependency", 4: "message_type", 5: "enum_type", 6: "service",
      9: "source_code_info", 12: "syntax",
    ][number]
  }

  public mutating func decodeField(_ field: Int, _ wireType: WireType, from decoder: inout ProtobufDecoder)
    throws
  {
    switch (field, wireType) {
    case (1, .lengthDelimited): name = try decoder.readString()
    case (2, .lengthDelimited): package = try decoder.readString()
    case (3, .lengthDelimited): dependencies.append(try decoder.readString())
    case (4, .lengthDelimited): messageTypes.append(try decoder.readMessage())
    case (5, .lengthDelimited): enumTypes.append(try decoder.readMessage())
    case (6, .lengthDelimited): services.append(try decoder.readMessage())
    case (9, .lengthDelimited):
      var info = sourceCodeInfo ?? SourceCodeInfo()
      try decoder.readMessage(into: &info)
      sourceCodeInfo = info
    case (12, .lengthDelimited): syntax = try decoder.readString()
    default: try decoder.skipField(field, wireType, keepingIn: &unknownFields)
    }
  }

  public func encode(to encoder: inout ProtobufEncoder) {
    if !name.isEmpty { encoder.writeString(field: 1, name) }
    if !package.isEmpty { encoder.writeString(field: 2, package) }
    for dependency in dependencies { encoder.writeString(field: 3, dependency) }
    for message in messageTypes { encoder.writeMessage(field: 4, message) }
    for enumType in enumTypes { encoder.writeMessage(field: 5, enumType) }
    for service in services { encoder.writeMessage(field: 6, service) }
    if let sourceCodeInfo { encoder.writeMessage(field: 9, sourceCodeInfo) }
    if !syntax.isEmpty { encoder.writeString(field: 12, syntax) }
    encoder.writeUnknownFields(unknownFields)
  }
}

/// `google.protobuf.DescriptorProto`: a message type.
public struct DescriptorProto: ProtobufMessage {
  public static let protoMessageName = "google.protobuf.DescriptorProto"
  public var name = ""
  public var fields: [FieldDescriptorProto] = []
  public var nestedTypes: [DescriptorProto] = []
  public var enumTypes: [EnumDescriptorProto] = []
  public var oneofs: [OneofDescriptorProto] = []
  /// `MessageOptions.map_entry`: this is the synthesized entry type of a `map<,>` field.
  public var isMapEntry = false
  /// The raw `MessageOptions` bytes (re-encoded unchanged).
  public var options: [UInt8]? = nil
  public var unknownFields = UnknownFields()
  public init() {}

  public mutating func decodeField(_ field: Int, _ wireType: WireType, from decoder: inout ProtobufDecoder)
    throws
  {
    switch (field, wireType) {
    case (1, .lengthDelimited): name = try decoder.readString()
    case (2, .lengthDelimited): fields.append(try decoder.readMessage())
    case (3, .lengthDelimited): nestedTypes.append(try decoder.readMessage())
    case (4, .lengthDelimited): enumTypes.append(try decoder.readMessage())
    case (8, .lengthDelimited): oneofs.append(try decoder.readMessage())
    case (7, .lengthDelimited):
      let bytes = try decoder.readBytes()
      options = (options ?? []) + bytes
      var optionsDecoder = ProtobufDecoder(bytes: bytes)
      var ignored = UnknownFields()
      while let (optionField, optionType) = try optionsDecoder.nextTag() {
        if optionField == 7, optionType == .varint {
          isMapEntry = try optionsDecoder.readBool()
        } else {
          try optionsDecoder.skipField(optionField, optionType, keepingIn: &ignored)
        }
      }
    default: try decoder.skipField(field, wireType, keepingIn: &unknownFields)
    }
  }

  public func encode(to encoder: inout ProtobufEncoder) {
    if !name.isEmpty { encoder.writeString(field: 1, name) }
    for field in fields { encoder.writeMessage(field: 2, field) }
    for nested in nestedTypes { encoder.writeMessage(field: 3, nested) }
    for enumType in enumTypes { encoder.writeMessage(field: 4, enumType) }
    if let options { encoder.writeBytes(field: 7, options) }
    for oneof in oneofs { encoder.writeMessage(field: 8, oneof) }
    encoder.writeUnknownFields(unknownFields)
  }
}

/// `google.protobuf.FieldDescriptorProto`: a field of a message.
public struct FieldDescriptorProto: ProtobufMessage {
  public static let protoMessageName = "google.protobuf.FieldDescriptorProto"

  /// `FieldDescriptorProto.Label`.
  public enum Label: Int32, Sendable {
    case optional = 1, required = 2, repeated = 3
  }

  /// `FieldDescriptorProto.Type`.
  public enum FieldType: Int32, Sendable {
    case double = 1, float, int64, uint64, int32, fixed64, fixed32, bool, string, group, message, bytes
    case uint32, `enum`, sfixed32, sfixed64, sint32, sint64
  }

  public var name = ""
  public var number: Int32 = 0
  public var label: Label = .optional
  public var type: FieldType = .double
  /// For message and enum fields: the fully qualified type name with a leading dot.
  public var typeName = ""
  /// The index into the containing message's `oneofs`, when the field is in a oneof.
  public var oneofIndex: Int32? = nil
  /// The lowerCamel name protoc computed for JSON.
  public var jsonName = ""
  /// `optional` in proto3: the field sits in a synthetic oneof and has presence.
  public var isProto3Optional = false
  public var unknownFields = UnknownFields()
  public init() {}

  public mutating func decodeField(_ field: Int, _ wireType: WireType, from decoder: inout ProtobufDecoder)
    throws
  {
    switch (field, wireType) {
    case (1, .lengthDelimited): name = try decoder.readString()
    case (3, .varint): number = try decoder.readInt32()
    case (4, .varint): label = Label(rawValue: try decoder.readEnum()) ?? .optional
    case (5, .varint): type = FieldType(rawValue: try decoder.readEnum()) ?? .double
    case (6, .lengthDelimited): typeName = try decoder.readString()
    case (9, .varint): oneofIndex = try decoder.readInt32()
    case (10, .lengthDelimited): jsonName = try decoder.readString()
    case (17, .varint): isProto3Optional = try decoder.readBool()
    default: try decoder.skipField(field, wireType, keepingIn: &unknownFields)
    }
  }

  public func encode(to encoder: inout ProtobufEncoder) {
    if !name.isEmpty { encoder.writeString(field: 1, name) }
    if number != 0 { encoder.writeInt32(field: 3, number) }
    encoder.writeEnum(field: 4, label.rawValue)
    encoder.writeEnum(field: 5, type.rawValue)
    if !typeName.isEmpty { encoder.writeString(field: 6, typeName) }
    if let oneofIndex { encoder.writeInt32(field: 9, oneofIndex) }
    if !jsonName.isEmpty { encoder.writeString(field: 10, jsonName) }
    if isProto3Optional { encoder.writeBool(field: 17, true) }
    encoder.writeUnknownFields(unknownFields)
  }
}

/// `google.protobuf.OneofDescriptorProto`.
public struct OneofDescriptorProto: ProtobufMessage {
  public static let protoMessageName = "google.protobuf.OneofDescriptorProto"
  public var name = ""
  public var unknownFields = UnknownFields()
  public init() {}

  public mutating func decodeField(_ field: Int, _ wireType: WireType, from decoder: inout ProtobufDecoder)
    throws
  {
    if field == 1, wireType == .lengthDelimited {
      name = try decoder.readString()
    } else {
      try decoder.skipField(field, wireType, keepingIn: &unknownFields)
    }
  }

  public func encode(to encoder: inout ProtobufEncoder) {
    if !name.isEmpty { encoder.writeString(field: 1, name) }
    encoder.writeUnknownFields(unknownFields)
  }
}

/// `google.protobuf.EnumDescriptorProto`.
public struct EnumDescriptorProto: ProtobufMessage {
  public static let protoMessageName = "google.protobuf.EnumDescriptorProto"
  public var name = ""
  public var values: [EnumValueDescriptorProto] = []
  public var unknownFields = UnknownFields()
  public init() {}

  public mutating func decodeField(_ field: Int, _ wireType: WireType, from decoder: inout ProtobufDecoder)
    throws
  {
    switch (field, wireType) {
    case (1, .lengthDelimited): name = try decoder.readString()
    case (2, .lengthDelimited): values.append(try decoder.readMessage())
    default: try decoder.skipField(field, wireType, keepingIn: &unknownFields)
    }
  }

  public func encode(to encoder: inout ProtobufEncoder) {
    if !name.isEmpty { encoder.writeString(field: 1, name) }
    for value in values { encoder.writeMessage(field: 2, value) }
    encoder.writeUnknownFields(unknownFields)
  }
}

/// `google.protobuf.EnumValueDescriptorProto`.
public struct EnumValueDescriptorProto: ProtobufMessage {
  public static let protoMessageName = "google.protobuf.EnumValueDescriptorProto"
  public var name = ""
  public var number: Int32 = 0
  public var unknownFields = UnknownFields()
  public init() {}

  public mutating func decodeField(_ field: Int, _ wireType: WireType, from decoder: inout ProtobufDecoder)
    throws
  {
    switch (field, wireType) {
    case (1, .lengthDelimited): name = try decoder.readString()
    case (2, .varint): number = try decoder.readInt32()
    default: try decoder.skipField(field, wireType, keepingIn: &unknownFields)
    }
  }

  public func encode(to encoder: inout ProtobufEncoder) {
    if !name.isEmpty { encoder.writeString(field: 1, name) }
    encoder.writeInt32(field: 2, number)
    encoder.writeUnknownFields(unknownFields)
  }
}

/// `google.protobuf.ServiceDescriptorProto`.
public struct ServiceDescriptorProto: ProtobufMessage {
  public static let protoMessageName = "google.protobuf.ServiceDescriptorProto"
  public var name = ""
  public var methods: [MethodDescriptorProto] = []
  public var unknownFields = UnknownFields()
  public init() {}

  public mutating func decodeField(_ field: Int, _ wireType: WireType, from decoder: inout ProtobufDecoder)
    throws
  {
    switch (field, wireType) {
    case (1, .lengthDelimited): name = try decoder.readString()
    case (2, .lengthDelimited): methods.append(try decoder.readMessage())
    default: try decoder.skipField(field, wireType, keepingIn: &unknownFields)
    }
  }

  public func encode(to encoder: inout ProtobufEncoder) {
    if !name.isEmpty { encoder.writeString(field: 1, name) }
    for method in methods { encoder.writeMessage(field: 2, method) }
    encoder.writeUnknownFields(unknownFields)
  }
}

/// `google.protobuf.MethodDescriptorProto`.
public struct MethodDescriptorProto: ProtobufMessage {
  public static let protoMessageName = "google.protobuf.MethodDescriptorProto"
  public var name = ""
  /// Fully qualified, with a leading dot.
  public var inputType = ""
  /// Fully qualified, with a leading dot.
  public var outputType = ""
  public var clientStreaming = false
  public var serverStreaming = false
  public var unknownFields = UnknownFields()
  public init() {}

  public mutating func decodeField(_ field: Int, _ wireType: WireType, from decoder: inout ProtobufDecoder)
    throws
  {
    switch (field, wireType) {
    case (1, .lengthDelimited): name = try decoder.readString()
    case (2, .lengthDelimited): inputType = try decoder.readString()
    case (3, .lengthDelimited): outputType = try decoder.readString()
    case (5, .varint): clientStreaming = try decoder.readBool()
    case (6, .varint): serverStreaming = try decoder.readBool()
    default: try decoder.skipField(field, wireType, keepingIn: &unknownFields)
    }
  }

  public func encode(to encoder: inout ProtobufEncoder) {
    if !name.isEmpty { encoder.writeString(field: 1, name) }
    if !inputType.isEmpty { encoder.writeString(field: 2, inputType) }
    if !outputType.isEmpty { encoder.writeString(field: 3, outputType) }
    if clientStreaming { encoder.writeBool(field: 5, true) }
    if serverStreaming { encoder.writeBool(field: 6, true) }
    encoder.writeUnknownFields(unknownFields)
  }
}

/// `google.protobuf.SourceCodeInfo`: where each element of a file is and its comments.
public struct SourceCodeInfo: ProtobufMessage {
  public static let protoMessageName = "google.protobuf.SourceCodeInfo"

  /// `SourceCodeInfo.Location`.
  public struct Location: ProtobufMessage {
    public static let protoMessageName = "google.protobuf.SourceCodeInfo.Location"
    /// The element's path: field numbers and indices from the file down, e.g. `[4, 0, 2, 1]` is
    /// the second field of the first message.
    public var path: [Int32] = []
    public var leadingComments = ""
    public var trailingComments = ""
    public var unknownFields = UnknownFields()
    public init() {}

    public mutating func decodeField(_ field: Int, _ wireType: WireType, from decoder: inout ProtobufDecoder)
      throws
    {
      switch (field, wireType) {
      case (1, .varint), (1, .lengthDelimited):
        try decoder.readRepeated(wireType, into: &path) { decoder throws(ProtobufDecodingError) in
          try decoder.readInt32()
        }
      case (3, .lengthDelimited): leadingComments = try decoder.readString()
      case (4, .lengthDelimited): trailingComments = try decoder.readString()
      default: try decoder.skipField(field, wireType, keepingIn: &unknownFields)
      }
    }

    public func encode(to encoder: inout ProtobufEncoder) {
      encoder.writePackedVarints(field: 1, path) { UInt64(bitPattern: Int64($0)) }
      if !leadingComments.isEmpty { encoder.writeString(field: 3, leadingComments) }
      if !trailingComments.isEmpty { encoder.writeString(field: 4, trailingComments) }
      encoder.writeUnknownFields(unknownFields)
    }
  }

  public var locations: [Location] = []
  public var unknownFields = UnknownFields()
  public init() {}

  public mutating func decodeField(_ field: Int, _ wireType: WireType, from decoder: inout ProtobufDecoder)
    throws
  {
    switch (field, wireType) {
    case (1, .lengthDelimited): locations.append(try decoder.readMessage())
    default: try decoder.skipField(field, wireType, keepingIn: &unknownFields)
    }
  }

  public func encode(to encoder: inout ProtobufEncoder) {
    for location in locations { encoder.writeMessage(field: 1, location) }
    encoder.writeUnknownFields(unknownFields)
  }

  /// The leading comment of the element at `path`, without the comment markers' indentation.
  public func comment(at path: [Int32]) -> String? {
    guard let location = locations.first(where: { $0.path == path }), !location.leadingComments.isEmpty else {
      return nil
    }
    return location.leadingComments
  }
}
