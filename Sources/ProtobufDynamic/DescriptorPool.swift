public import ProtobufCodeGen
import ProtobufRuntime

/// The message types, enums and services of a set of `.proto` files, learnt at run time (from
/// `protoc --descriptor_set_out` output or from gRPC server reflection), and conversions between
/// the protobuf binary format and canonical proto3 JSON for any of its message types.
///
/// ```swift
/// let pool = try DescriptorPool(descriptorSet: bytesOfProtocOutput)
/// let request = try pool.decodeJSON(#"{"amount": {"currency": "EUR", "amountMinor": "1250"}}"#,
///                                   as: "payments.v1.SubmitPaymentRequest")
/// print(try pool.encodeJSON(responseBytes, as: "payments.v1.SubmitPaymentResponse"))
/// print(try pool.describe("payments.v1.PaymentCommandService"))
/// ```
///
/// Building the pool checks that every type a field or method refers to is defined, so the
/// conversions never meet an unresolved name.
public struct DescriptorPool: Sendable {
  /// How deeply messages may nest in the conversions (and JSON arrays and objects in the input).
  public static let maximumDepth = 100

  /// The files, in the order given (a file given twice is kept once, the first time).
  public let files: [FileDescriptorProto]

  let messageTypes: [String: MessageDescriptor]
  let enumTypes: [String: EnumDescriptor]
  let serviceTypes: [String: ServiceDescriptor]
  /// Symbol (message, enum, service, method) → index into ``files``.
  let symbolFiles: [String: Int]

  /// A pool of `files`, which must include every file their types refer to (protoc's
  /// `--include_imports`); they may come in any order.
  ///
  /// - Throws: ``ProtobufDynamicError`` (``ProtobufDynamicError/Code/invalidDescriptor``) naming
  ///   the field or method whose type is not defined, a symbol defined twice, or a malformed
  ///   field.
  public init(files: [FileDescriptorProto]) throws(ProtobufDynamicError) {
    var builder = PoolBuilder()
    try builder.build(files)
    self.files = builder.files
    messageTypes = builder.messages
    enumTypes = builder.enums
    serviceTypes = builder.services
    symbolFiles = builder.symbolFiles
  }

  /// A pool of the files of a serialized `google.protobuf.FileDescriptorSet` (what
  /// `protoc --include_imports --descriptor_set_out=FILE` writes).
  public init(descriptorSet bytes: [UInt8]) throws(ProtobufDynamicError) {
    let set: FileDescriptorSet
    do {
      set = try FileDescriptorSet(serializedBytes: bytes)
    } catch {
      throw ProtobufDynamicError(.invalidDescriptor, "not a FileDescriptorSet: \(error)")
    }
    try self.init(files: set.files)
  }

  // MARK: - Lookups

  /// The message type named `fullName` (`payments.v1.Money`; a leading dot is ignored).
  public func message(_ fullName: String) -> MessageDescriptor? {
    messageTypes[Self.withoutLeadingDot(fullName)]
  }

  /// The enum type named `fullName` (`payments.v1.PaymentStatus`).
  public func enumType(_ fullName: String) -> EnumDescriptor? {
    enumTypes[Self.withoutLeadingDot(fullName)]
  }

  /// The service named `fullName` (`payments.v1.PaymentCommandService`).
  public func service(_ fullName: String) -> ServiceDescriptor? {
    serviceTypes[Self.withoutLeadingDot(fullName)]
  }

  /// Every service, sorted by full name.
  public var services: [ServiceDescriptor] {
    serviceTypes.values.sorted { $0.fullName < $1.fullName }
  }

  /// The method named `name`: `payments.v1.PaymentCommandService/SubmitPayment`,
  /// `payments.v1.PaymentCommandService.SubmitPayment`, or the gRPC path
  /// `/payments.v1.PaymentCommandService/SubmitPayment`.
  public func method(_ name: String) -> MethodDescriptor? {
    var name = Substring(name)
    if name.first == "/" || name.first == "." { name = name.dropFirst() }
    let separator = name.lastIndex(of: "/") ?? name.lastIndex(of: ".")
    guard let separator else { return nil }
    let methodName = name[name.index(after: separator)...]
    return service(String(name[..<separator]))?.methods.first { $0.name == methodName }
  }

  /// The file that defines `symbol`: a message, enum, service or method (methods as
  /// `package.Service.Method`), fully qualified.
  public func fileContaining(symbol: String) -> FileDescriptorProto? {
    var symbol = Self.withoutLeadingDot(symbol)
    if let slash = symbol.lastIndex(of: "/") { symbol.replaceSubrange(slash...slash, with: ".") }
    return symbolFiles[symbol].map { files[$0] }
  }

  /// The file named `name` (`payments/v1/payment.proto`).
  public func file(named name: String) -> FileDescriptorProto? {
    files.first { $0.name == name }
  }

  static func withoutLeadingDot(_ name: String) -> String {
    name.hasPrefix(".") ? String(name.dropFirst()) : name
  }

  /// The message type `fullName`, or an error naming it.
  func requireMessage(_ fullName: String) throws(ProtobufDynamicError) -> MessageDescriptor {
    guard let type = message(fullName) else {
      throw ProtobufDynamicError(
        .unknownSymbol, "no message type named \"\(fullName)\" in the descriptor pool")
    }
    return type
  }

  // MARK: - Conversions

  /// Converts the proto3 JSON form of a `messageType` message into its protobuf binary encoding.
  ///
  /// Accepts lowerCamel JSON names and `.proto` names, 64-bit integers as numbers or strings,
  /// enums by name or number, `null` for "not set", and the special forms of the well-known
  /// types (`Timestamp`, `Duration`, wrappers, `Struct`, `Value`, `ListValue`, `FieldMask`,
  /// `Any` with an `@type` the pool knows). Fields are written in field-number order; numeric
  /// repeated fields are packed where the schema says so.
  ///
  /// - Parameters:
  ///   - json: The JSON text.
  ///   - messageType: A fully qualified message type name, e.g. `payments.v1.SubmitPaymentRequest`.
  ///   - ignoringUnknownFields: Skip object members (and enum names) the schema does not know
  ///     instead of failing.
  /// - Throws: ``ProtobufDynamicError`` whose ``ProtobufDynamicError/path`` names the field.
  public func decodeJSON(_ json: String, as messageType: String, ignoringUnknownFields: Bool = false)
    throws(ProtobufDynamicError) -> [UInt8]
  {
    let type = try requireMessage(messageType)
    let value: JSONValue
    do {
      value = try JSONValue(parsing: json)
    } catch {
      throw ProtobufDynamicError(.invalidJSON, path: type.fullName, error.message)
    }
    var converter = JSONToBinary(
      pool: self, root: type.fullName, ignoringUnknownFields: ignoringUnknownFields)
    return try converter.message(value, as: type)
  }

  /// Converts the protobuf binary encoding of a `messageType` message into canonical proto3
  /// JSON (lowerCamel names, 64-bit integers as strings, enums by name, bytes as base64, the
  /// well-known types in their special forms). Fields the schema does not know are dropped.
  ///
  /// - Parameters:
  ///   - bytes: The binary encoding.
  ///   - messageType: A fully qualified message type name.
  ///   - emitDefaults: Also write fields without presence that hold their default (`0`, `""`,
  ///     `[]`, `{}`, the enum's zero value).
  ///   - prettyPrinted: Indent with two spaces instead of writing one line.
  /// - Throws: ``ProtobufDynamicError`` whose ``ProtobufDynamicError/path`` names the field.
  public func encodeJSON(
    _ bytes: [UInt8], as messageType: String, emitDefaults: Bool = false, prettyPrinted: Bool = false
  ) throws(ProtobufDynamicError) -> String {
    let type = try requireMessage(messageType)
    var converter = BinaryToJSON(pool: self, root: type.fullName, emitDefaults: emitDefaults)
    return try converter.message(bytes, as: type).serialized(prettyPrinted: prettyPrinted)
  }
}
