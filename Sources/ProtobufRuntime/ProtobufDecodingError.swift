/// Why bytes could not be decoded as a message, and where: ``path`` names the field, from the
/// outermost message inwards (for example `["payer", "account_id"]`).
public struct ProtobufDecodingError: Error, Sendable, Hashable, CustomStringConvertible {
  /// What was wrong. Extensible: switch with a `default` branch.
  public struct Code: Hashable, Sendable, CustomStringConvertible {
    private enum Wrapped: Hashable, Sendable {
      case truncated, malformedVarint, invalidTag, invalidWireType, lengthOutOfBounds
      case recursionLimit, invalidUTF8, wrongWireType, unmatchedGroup
    }
    private let wrapped: Wrapped
    private init(_ wrapped: Wrapped) { self.wrapped = wrapped }

    /// The input ended in the middle of a value.
    public static let truncated = Code(.truncated)
    /// A varint was longer than 10 bytes or overflowed 64 bits.
    public static let malformedVarint = Code(.malformedVarint)
    /// A tag had field number 0 or one above 2^29 - 1.
    public static let invalidTag = Code(.invalidTag)
    /// A tag named wire type 6 or 7.
    public static let invalidWireType = Code(.invalidWireType)
    /// A length prefix pointed past the end of its enclosing message.
    public static let lengthOutOfBounds = Code(.lengthOutOfBounds)
    /// Messages or groups nested deeper than ``ProtobufLimits/maximumDepth``.
    public static let recursionLimit = Code(.recursionLimit)
    /// A `string` field held bytes that are not valid UTF-8.
    public static let invalidUTF8 = Code(.invalidUTF8)
    /// A known field arrived with a wire type its type cannot have.
    public static let wrongWireType = Code(.wrongWireType)
    /// An end-group tag without its start, or with another field number.
    public static let unmatchedGroup = Code(.unmatchedGroup)

    public var description: String {
      switch wrapped {
      case .truncated: "truncated input"
      case .malformedVarint: "malformed varint"
      case .invalidTag: "invalid tag"
      case .invalidWireType: "invalid wire type"
      case .lengthOutOfBounds: "length out of bounds"
      case .recursionLimit: "nesting too deep"
      case .invalidUTF8: "invalid UTF-8"
      case .wrongWireType: "wrong wire type"
      case .unmatchedGroup: "unmatched group"
      }
    }
  }

  /// What was wrong.
  public var code: Code
  /// The field path, outermost first; empty when the problem is in the message's own framing.
  public var path: [String]
  /// The byte offset in the input where the problem was found.
  public var offset: Int

  public init(code: Code, path: [String] = [], offset: Int) {
    self.code = code
    self.path = path
    self.offset = offset
  }

  public var description: String {
    path.isEmpty
      ? "protobuf decoding failed: \(code) at byte \(offset)"
      : "protobuf decoding failed: \(code) in field \(path.joined(separator: ".")) at byte \(offset)"
  }
}
