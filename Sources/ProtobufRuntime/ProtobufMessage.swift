/// A protobuf message type: what generated code conforms to and the RPC layer serializes
/// through.
public protocol ProtobufMessage: Sendable, Hashable {
  /// The fully qualified protobuf name, e.g. `payments.v1.Payment`.
  static var protoMessageName: String { get }

  /// The message with every field at its default.
  init()

  /// Fields this message's schema does not know, kept for re-encoding.
  var unknownFields: UnknownFields { get set }

  /// Decodes one field whose tag `decoder` just read. Fields the schema does not know — or known
  /// fields with a wire type their type cannot have — go to ``unknownFields`` through
  /// ``ProtobufDecoder/skipField(_:_:keepingIn:)``.
  mutating func decodeField(_ field: Int, _ wireType: WireType, from decoder: inout ProtobufDecoder) throws

  /// Writes every present field, in field-number order, then the unknown fields.
  func encode(to encoder: inout ProtobufEncoder)

  /// The `.proto` name of field `number` (for error paths), if the schema has one.
  static func fieldName(_ number: Int) -> String?

  /// The exact number of bytes ``encode(to:)`` writes. Generated messages compute it without
  /// encoding; the default implementation encodes into a scratch buffer.
  func serializedSize() -> Int
}

extension ProtobufMessage {
  public static func fieldName(_ number: Int) -> String? { nil }

  /// Decodes a message from its binary encoding.
  ///
  /// - Throws: ``ProtobufDecodingError`` naming the problem and the field path.
  @inlinable
  public init(serializedBytes bytes: [UInt8]) throws(ProtobufDecodingError) {
    self.init()
    var decoder = ProtobufDecoder(bytes: bytes)
    do {
      try merge(from: &decoder)
    } catch let error as ProtobufDecodingError {
      throw error
    } catch {
      throw ProtobufDecodingError(code: .truncated, offset: decoder.position)
    }
  }

  /// The message's binary encoding.
  @inlinable
  public func serializedSize() -> Int {
    var encoder = ProtobufEncoder()
    encode(to: &encoder)
    return encoder.count
  }

  /// The message's binary encoding: one allocation of the exact size, written in place.
  @inlinable
  public func serializedBytes() -> [UInt8] {
    let size = serializedSize()
    guard size > 0 else { return [] }
    return [UInt8](unsafeUninitializedCapacity: size) { storage, initialized in
      var encoder = ProtobufEncoder(writingInto: storage.baseAddress!, capacity: size)
      encode(to: &encoder)
      precondition(
        encoder.count == size,
        "\(Self.protoMessageName): serializedSize() is \(size), encode(to:) wrote \(encoder.count)")
      initialized = size
    }
  }

  /// Decodes fields until the end of the current message, merging them into `self`; errors get
  /// the failing field's name prepended to their path.
  @inlinable
  public mutating func merge(from decoder: inout ProtobufDecoder) throws {
    while let (field, wireType) = try decoder.nextTag() {
      do {
        try decodeField(field, wireType, from: &decoder)
      } catch var error as ProtobufDecodingError {
        error.path.insert(Self.fieldName(field) ?? String(field), at: 0)
        throw error
      }
    }
  }
}

extension ProtobufMessage {
  /// A message built by setting fields on a default one:
  /// `Payments_V1_Money.with { $0.currency = "EUR"; $0.amountMinor = 1250 }`.
  @inlinable
  public static func with(_ populate: (inout Self) throws -> Void) rethrows -> Self {
    var message = Self()
    try populate(&message)
    return message
  }
}
