public import ProtobufRuntime

/// `google.protobuf.compiler.CodeGeneratorRequest`: what protoc sends a plugin on stdin.
public struct CodeGeneratorRequest: ProtobufMessage {
  public static let protoMessageName = "google.protobuf.compiler.CodeGeneratorRequest"
  /// The files named on protoc's command line: generate code for these.
  public var filesToGenerate: [String] = []
  /// The `--<plugin>_opt` string.
  public var parameter = ""
  /// Every file in the request, imports before their importers.
  public var protoFiles: [FileDescriptorProto] = []
  /// Each of ``protoFiles`` as protoc serialized it (what servers answer reflection with).
  public var protoFileBytes: [[UInt8]] = []
  public var unknownFields = UnknownFields()
  public init() {}

  public mutating func decodeField(_ field: Int, _ wireType: WireType, from decoder: inout ProtobufDecoder)
    throws
  {
    switch (field, wireType) {
    case (1, .lengthDelimited): filesToGenerate.append(try decoder.readString())
    case (2, .lengthDelimited): parameter = try decoder.readString()
    case (15, .lengthDelimited):
      let bytes = try decoder.readBytes()
      protoFileBytes.append(bytes)
      protoFiles.append(try FileDescriptorProto(serializedBytes: bytes))
    default: try decoder.skipField(field, wireType, keepingIn: &unknownFields)
    }
  }

  public func encode(to encoder: inout ProtobufEncoder) {
    for file in filesToGenerate { encoder.writeString(field: 1, file) }
    if !parameter.isEmpty { encoder.writeString(field: 2, parameter) }
    for bytes in protoFileBytes { encoder.writeBytes(field: 15, bytes) }
    encoder.writeUnknownFields(unknownFields)
  }
}

/// `google.protobuf.compiler.CodeGeneratorResponse`: what a plugin writes to stdout.
public struct CodeGeneratorResponse: ProtobufMessage {
  public static let protoMessageName = "google.protobuf.compiler.CodeGeneratorResponse"

  /// One generated file.
  public struct File: ProtobufMessage {
    public static let protoMessageName = "google.protobuf.compiler.CodeGeneratorResponse.File"
    public var name = ""
    public var content = ""
    public var unknownFields = UnknownFields()
    public init() {}
    public init(name: String, content: String) {
      self.name = name
      self.content = content
    }

    public mutating func decodeField(_ field: Int, _ wireType: WireType, from decoder: inout ProtobufDecoder)
      throws
    {
      switch (field, wireType) {
      case (1, .lengthDelimited): name = try decoder.readString()
      case (15, .lengthDelimited): content = try decoder.readString()
      default: try decoder.skipField(field, wireType, keepingIn: &unknownFields)
      }
    }

    public func encode(to encoder: inout ProtobufEncoder) {
      if !name.isEmpty { encoder.writeString(field: 1, name) }
      if !content.isEmpty { encoder.writeString(field: 15, content) }
      encoder.writeUnknownFields(unknownFields)
    }
  }

  /// `FEATURE_PROTO3_OPTIONAL`: the plugin handles proto3 `optional`.
  public static let featureProto3Optional: UInt64 = 1

  /// Set when generation failed (a problem in the `.proto` files); protoc prints it.
  public var error = ""
  public var supportedFeatures: UInt64 = 0
  public var files: [File] = []
  public var unknownFields = UnknownFields()
  public init() {}

  public mutating func decodeField(_ field: Int, _ wireType: WireType, from decoder: inout ProtobufDecoder)
    throws
  {
    switch (field, wireType) {
    case (1, .lengthDelimited): error = try decoder.readString()
    case (2, .varint): supportedFeatures = try decoder.readUInt64()
    case (15, .lengthDelimited): files.append(try decoder.readMessage())
    default: try decoder.skipField(field, wireType, keepingIn: &unknownFields)
    }
  }

  public func encode(to encoder: inout ProtobufEncoder) {
    if !error.isEmpty { encoder.writeString(field: 1, error) }
    if supportedFeatures != 0 { encoder.writeUInt64(field: 2, supportedFeatures) }
    for file in files { encoder.writeMessage(field: 15, file) }
    encoder.writeUnknownFields(unknownFields)
  }
}
