/// Why a descriptor pool could not be built, a symbol was not found, or a message could not be
/// converted — and where: ``path`` names the message type and the field, e.g.
/// `payments.v1.Money.amount_minor: expected an integer, got a string`.
public struct ProtobufDynamicError: Error, Sendable, Hashable, CustomStringConvertible {
  /// What kind of problem it is. Extensible: switch with a `default` branch.
  public struct Code: Hashable, Sendable, CustomStringConvertible {
    private enum Wrapped: Hashable, Sendable {
      case invalidDescriptor, unknownSymbol, invalidJSON, unknownField, invalidValue, invalidBinary
      case nestingTooDeep
    }
    private let wrapped: Wrapped
    private init(_ wrapped: Wrapped) { self.wrapped = wrapped }

    /// The descriptors are inconsistent: a referenced type is missing, a symbol is defined twice,
    /// a field number is invalid.
    public static let invalidDescriptor = Code(.invalidDescriptor)
    /// No message, enum, service or method of that name is in the pool (or an `Any`'s `@type`
    /// names a type the pool does not have).
    public static let unknownSymbol = Code(.unknownSymbol)
    /// The text is not JSON (syntax error, nesting deeper than 100, ...).
    public static let invalidJSON = Code(.invalidJSON)
    /// A JSON object member names no field of the message.
    public static let unknownField = Code(.unknownField)
    /// A JSON value does not fit its field: wrong type, out of range, unknown enum name, bad
    /// base64, two members of one oneof, ...
    public static let invalidValue = Code(.invalidValue)
    /// The bytes are not a valid protobuf encoding of the message.
    public static let invalidBinary = Code(.invalidBinary)
    /// Messages nest deeper than ``DescriptorPool/maximumDepth``.
    public static let nestingTooDeep = Code(.nestingTooDeep)

    public var description: String {
      switch wrapped {
      case .invalidDescriptor: "invalid descriptor"
      case .unknownSymbol: "unknown symbol"
      case .invalidJSON: "invalid JSON"
      case .unknownField: "unknown field"
      case .invalidValue: "invalid value"
      case .invalidBinary: "invalid binary"
      case .nestingTooDeep: "nesting too deep"
      }
    }
  }

  /// What kind of problem it is.
  public var code: Code
  /// Where: a fully qualified type name followed by the field path (`.payer.account_id`,
  /// `.statuses[2]`, `.metadata["key"]`); empty when the problem is not in one place.
  public var path: String
  /// What is wrong, for people.
  public var message: String

  /// An error with `code` at `path`.
  public init(_ code: Code, path: String = "", _ message: String) {
    self.code = code
    self.path = path
    self.message = message
  }

  public var description: String { path.isEmpty ? message : "\(path): \(message)" }
}

/// The field path of a conversion in progress, for error messages.
struct FieldPath {
  private var components: [String]

  /// A path that starts at message type `root`.
  init(root: String) { components = [root] }

  mutating func push(field name: String) { components.append("." + name) }
  mutating func push(index: Int) { components.append("[\(index)]") }
  mutating func push(key: String) { components.append("[\"\(key)\"]") }
  mutating func pop() { components.removeLast() }

  var text: String { components.joined() }
}
