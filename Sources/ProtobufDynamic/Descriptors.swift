public import ProtobufCodeGen

/// A message type of a ``DescriptorPool``, with every type reference resolved.
public struct MessageDescriptor: Sendable {
  /// The fully qualified name, e.g. `payments.v1.Money`.
  public let fullName: String
  /// The `.proto` file that defines it, e.g. `payments/v1/payment.proto`.
  public let fileName: String
  /// The fields, in declaration order.
  public let fields: [FieldDescriptor]
  /// The oneofs, in declaration order; proto3 `optional` fields each have a synthetic one.
  public let oneofs: [OneofDescriptor]
  /// The descriptor as it was given to the pool.
  public let proto: DescriptorProto

  let syntax: Syntax
  /// `[4, 0, 3, 1]`: where the message is in its file (for comments in source code info).
  let sourcePath: [Int32]
  private let indexByNumber: [Int: Int]
  private let indexByJSONName: [String: Int]

  init(
    fullName: String, fileName: String, fields: [FieldDescriptor], oneofs: [OneofDescriptor],
    proto: DescriptorProto, syntax: Syntax, sourcePath: [Int32]
  ) {
    self.fullName = fullName
    self.fileName = fileName
    self.fields = fields
    self.oneofs = oneofs
    self.proto = proto
    self.syntax = syntax
    self.sourcePath = sourcePath
    var byNumber: [Int: Int] = [:]
    var byName: [String: Int] = [:]
    for (index, field) in fields.enumerated() {
      byNumber[field.number] = index
      byName[field.name] = index
    }
    // JSON names win over proto names when one field's JSON name is another's proto name.
    for (index, field) in fields.enumerated() { byName[field.jsonName] = index }
    indexByNumber = byNumber
    indexByJSONName = byName
  }

  /// The simple name, e.g. `Money`.
  public var name: String { proto.name }
  /// True for the synthesized entry type of a `map<K, V>` field.
  public var isMapEntry: Bool { proto.isMapEntry }

  /// The field numbered `number`.
  public func field(number: Int) -> FieldDescriptor? {
    indexByNumber[number].map { fields[$0] }
  }

  /// The field with JSON name or `.proto` name `name` (`amountMinor` or `amount_minor`).
  public func field(named name: String) -> FieldDescriptor? {
    indexByJSONName[name].map { fields[$0] }
  }
}

/// A field of a ``MessageDescriptor``.
public struct FieldDescriptor: Sendable {
  /// The `.proto` name, e.g. `amount_minor`.
  public let name: String
  /// The lowerCamel JSON name, e.g. `amountMinor` (or the `json_name` option).
  public let jsonName: String
  /// The field number.
  public let number: Int
  /// The field's type as the descriptor declares it.
  public let type: FieldDescriptorProto.FieldType
  /// For message, group and enum fields: the fully qualified type name, without a leading dot.
  public let typeName: String?
  /// `repeated` (map fields included).
  public let isRepeated: Bool
  /// `required` (proto2).
  public let isRequired: Bool
  /// A `map<K, V>` field; ``typeName`` is its entry message (fields `key` = 1 and `value` = 2).
  public let isMap: Bool
  /// The index into the containing message's ``MessageDescriptor/oneofs``, synthetic oneofs of
  /// proto3 `optional` fields included.
  public let oneofIndex: Int?
  /// `optional` in a proto3 file.
  public let isProto3Optional: Bool
  /// Whether "set to the default" differs from "not set": message fields, oneof members, proto3
  /// `optional` fields and every singular proto2 field. Fields without presence are written
  /// only when they differ from their default.
  public let hasPresence: Bool
  /// A repeated numeric field written packed (the default in proto3, `[packed = true]` in proto2).
  public let isPacked: Bool
  /// The descriptor as it was given to the pool.
  public let proto: FieldDescriptorProto
  /// The `packed` option, when the descriptor states it.
  let explicitPacked: Bool?
}

/// A oneof of a ``MessageDescriptor``.
public struct OneofDescriptor: Sendable {
  /// The `.proto` name.
  public let name: String
  /// The members' field numbers, in declaration order.
  public let fieldNumbers: [Int]
  /// The oneof protoc synthesizes for a proto3 `optional` field (not part of the source).
  public let isSynthetic: Bool
}

/// An enum type of a ``DescriptorPool``.
public struct EnumDescriptor: Sendable {
  /// The fully qualified name, e.g. `payments.v1.PaymentStatus`.
  public let fullName: String
  /// The `.proto` file that defines it.
  public let fileName: String
  /// The values, in declaration order.
  public let values: [(name: String, number: Int32)]
  /// A proto2 enum: numbers it does not list are not valid values.
  public let isClosed: Bool
  /// The descriptor as it was given to the pool.
  public let proto: EnumDescriptorProto

  let sourcePath: [Int32]
  private let numbersByName: [String: Int32]
  private let namesByNumber: [Int32: String]

  init(fullName: String, fileName: String, proto: EnumDescriptorProto, isClosed: Bool, sourcePath: [Int32]) {
    self.fullName = fullName
    self.fileName = fileName
    self.proto = proto
    self.isClosed = isClosed
    self.sourcePath = sourcePath
    values = proto.values.map { ($0.name, $0.number) }
    var numbers: [String: Int32] = [:]
    var names: [Int32: String] = [:]
    for value in proto.values {
      numbers[value.name] = value.number
      if names[value.number] == nil { names[value.number] = value.name }  // first alias wins
    }
    numbersByName = numbers
    namesByNumber = names
  }

  /// The simple name, e.g. `PaymentStatus`.
  public var name: String { proto.name }

  /// The number of the value named `name`.
  public func number(named name: String) -> Int32? { numbersByName[name] }

  /// The (first) name of value `number`.
  public func name(of number: Int32) -> String? { namesByNumber[number] }
}

/// A service of a ``DescriptorPool``.
public struct ServiceDescriptor: Sendable {
  /// The fully qualified name, e.g. `payments.v1.PaymentCommandService`.
  public let fullName: String
  /// The `.proto` file that defines it.
  public let fileName: String
  /// The methods, in declaration order.
  public let methods: [MethodDescriptor]
  /// The descriptor as it was given to the pool.
  public let proto: ServiceDescriptorProto

  let sourcePath: [Int32]

  /// The simple name, e.g. `PaymentCommandService`.
  public var name: String { proto.name }
}

/// A method of a ``ServiceDescriptor``.
public struct MethodDescriptor: Sendable {
  /// The simple name, e.g. `SubmitPayment`.
  public let name: String
  /// The service's fully qualified name, e.g. `payments.v1.PaymentCommandService`.
  public let serviceName: String
  /// The request message type, fully qualified without a leading dot.
  public let inputType: String
  /// The response message type, fully qualified without a leading dot.
  public let outputType: String
  /// The client sends a stream of requests.
  public let isClientStreaming: Bool
  /// The server answers with a stream of responses.
  public let isServerStreaming: Bool
  /// The descriptor as it was given to the pool.
  public let proto: MethodDescriptorProto

  let sourcePath: [Int32]

  /// `payments.v1.PaymentCommandService.SubmitPayment`.
  public var fullName: String { serviceName + "." + name }
  /// The gRPC request path, `/payments.v1.PaymentCommandService/SubmitPayment`.
  public var path: String { "/" + serviceName + "/" + name }
}

/// The syntax of a `.proto` file, which decides presence and packing defaults.
enum Syntax: Sendable {
  case proto2, proto3
  /// Editions: treated with the 2023 defaults (explicit presence, packed, open enums); per-field
  /// features are not read.
  case editions

  init(_ text: String) {
    switch text {
    case "proto3": self = .proto3
    case "editions": self = .editions
    default: self = .proto2
    }
  }
}

extension FieldDescriptorProto.FieldType {
  /// The wire type of one value (elements of packed fields aside).
  var wireType: WireTypeKind {
    switch self {
    case .int32, .int64, .uint32, .uint64, .sint32, .sint64, .bool, .enum: .varint
    case .fixed32, .sfixed32, .float: .fixed32
    case .fixed64, .sfixed64, .double: .fixed64
    case .string, .bytes, .message: .lengthDelimited
    case .group: .group
    }
  }

  /// Numeric types, which repeated fields can pack.
  var isPackable: Bool {
    switch wireType {
    case .varint, .fixed32, .fixed64: true
    case .lengthDelimited, .group: false
    }
  }

  /// The `.proto` keyword (`int32`, ...); messages, groups and enums have none.
  var keyword: String? {
    switch self {
    case .double: "double"
    case .float: "float"
    case .int64: "int64"
    case .uint64: "uint64"
    case .int32: "int32"
    case .fixed64: "fixed64"
    case .fixed32: "fixed32"
    case .bool: "bool"
    case .string: "string"
    case .bytes: "bytes"
    case .uint32: "uint32"
    case .sfixed32: "sfixed32"
    case .sfixed64: "sfixed64"
    case .sint32: "sint32"
    case .sint64: "sint64"
    case .group, .message, .enum: nil
    }
  }
}

/// How a field's values are laid out on the wire.
enum WireTypeKind {
  case varint, fixed32, fixed64, lengthDelimited, group
}

/// protoc's default JSON name: underscores removed, the letter after each one upper-cased.
func defaultJSONName(_ name: String) -> String {
  var result = ""
  var upperNext = false
  for character in name {
    if character == "_" {
      upperNext = true
    } else if upperNext {
      result += character.uppercased()
      upperNext = false
    } else {
      result.append(character)
    }
  }
  return result
}

extension FieldDescriptorProto.FieldType {
  /// Integral types, `bool` and `string`: the types a map key can have.
  var isValidMapKey: Bool {
    switch self {
    case .int32, .int64, .uint32, .uint64, .sint32, .sint64, .fixed32, .fixed64, .sfixed32, .sfixed64, .bool,
      .string:
      true
    case .double, .float, .bytes, .message, .group, .enum: false
    }
  }
}
