/// Reads the protobuf binary wire format from untrusted bytes.
///
/// Every read is bounds-checked against the end of the enclosing message; a length prefix is
/// checked against the bytes that remain before anything is allocated for it; varints are at
/// most 10 bytes; messages and groups nest at most ``ProtobufLimits/maximumDepth`` deep;
/// `string` fields must be valid UTF-8. Failures throw ``ProtobufDecodingError``.
public struct ProtobufDecoder: Sendable {
  @usableFromInline let bytes: [UInt8]
  /// The read position (see ``position``).
  @usableFromInline var index: Int
  /// The read position.
  @inlinable public var position: Int { index }
  /// The end of the message being decoded.
  @usableFromInline var end: Int
  @usableFromInline var depth = 0
  /// Where the last tag started (so an unknown field can be kept byte for byte).
  @usableFromInline var tagStart = 0

  @inlinable
  public init(bytes: [UInt8]) {
    self.bytes = bytes
    self.index = 0
    self.end = bytes.count
  }

  /// True when the current message has no more bytes.
  @inlinable
  public var isAtEnd: Bool { index >= end }

  @usableFromInline
  func error(_ code: ProtobufDecodingError.Code) -> ProtobufDecodingError {
    ProtobufDecodingError(code: code, offset: index)
  }

  // MARK: - Primitives

  /// The next field's number and wire type, or `nil` at the end of the message.
  @inlinable
  public mutating func nextTag() throws(ProtobufDecodingError) -> (field: Int, wireType: WireType)? {
    guard index < end else { return nil }
    tagStart = index
    let key = try readVarint()
    guard let wireType = WireType(rawValue: UInt8(key & 7)) else { throw error(.invalidWireType) }
    let field = key >> 3
    guard field >= 1, field <= UInt64(ProtobufLimits.maximumFieldNumber) else { throw error(.invalidTag) }
    return (Int(field), wireType)
  }

  @inlinable
  public mutating func readVarint() throws(ProtobufDecodingError) -> UInt64 {
    var result: UInt64 = 0
    var shift: UInt64 = 0
    while true {
      guard index < end else { throw ProtobufDecodingError(code: .truncated, offset: index) }
      let byte = bytes[index]
      index += 1
      if shift == 63 && byte > 1 {
        throw ProtobufDecodingError(code: .malformedVarint, offset: index - 1)
      }
      result |= UInt64(byte & 0x7f) << shift
      if byte < 0x80 { return result }
      shift += 7
      if shift > 63 { throw ProtobufDecodingError(code: .malformedVarint, offset: index - 1) }
    }
  }

  @inlinable
  public mutating func readFixed32() throws(ProtobufDecodingError) -> UInt32 {
    guard end - index >= 4 else { throw error(.truncated) }
    var value: UInt32 = 0
    for byte in 0..<4 { value |= UInt32(bytes[index + byte]) << (8 * UInt32(byte)) }
    index += 4
    return value
  }

  @inlinable
  public mutating func readFixed64() throws(ProtobufDecodingError) -> UInt64 {
    guard end - index >= 8 else { throw error(.truncated) }
    var value: UInt64 = 0
    for byte in 0..<8 { value |= UInt64(bytes[index + byte]) << (8 * UInt64(byte)) }
    index += 8
    return value
  }

  /// Reads a length prefix and checks it against what remains of the enclosing message.
  @inlinable
  public mutating func readLength() throws(ProtobufDecodingError) -> Int {
    let length = try readVarint()
    guard length <= UInt64(end - index) else { throw error(.lengthOutOfBounds) }
    return Int(length)
  }

  // MARK: - Scalar fields

  /// `int32` (a varint whose low 32 bits are the value, as the specification says).
  @inlinable
  public mutating func readInt32() throws(ProtobufDecodingError) -> Int32 {
    Int32(truncatingIfNeeded: try readVarint())
  }
  @inlinable
  public mutating func readInt64() throws(ProtobufDecodingError) -> Int64 {
    Int64(bitPattern: try readVarint())
  }
  @inlinable
  public mutating func readUInt32() throws(ProtobufDecodingError) -> UInt32 {
    UInt32(truncatingIfNeeded: try readVarint())
  }
  @inlinable
  public mutating func readUInt64() throws(ProtobufDecodingError) -> UInt64 { try readVarint() }
  @inlinable
  public mutating func readSInt32() throws(ProtobufDecodingError) -> Int32 {
    ZigZag.decode(UInt32(truncatingIfNeeded: try readVarint()))
  }
  @inlinable
  public mutating func readSInt64() throws(ProtobufDecodingError) -> Int64 {
    ZigZag.decode(try readVarint())
  }
  @inlinable
  public mutating func readBool() throws(ProtobufDecodingError) -> Bool { try readVarint() != 0 }
  /// An enum's raw value; open enums keep values they don't know.
  @inlinable
  public mutating func readEnum() throws(ProtobufDecodingError) -> Int32 { try readInt32() }
  @inlinable
  public mutating func readSFixed32() throws(ProtobufDecodingError) -> Int32 {
    Int32(bitPattern: try readFixed32())
  }
  @inlinable
  public mutating func readSFixed64() throws(ProtobufDecodingError) -> Int64 {
    Int64(bitPattern: try readFixed64())
  }
  @inlinable
  public mutating func readFloat() throws(ProtobufDecodingError) -> Float {
    Float(bitPattern: try readFixed32())
  }
  @inlinable
  public mutating func readDouble() throws(ProtobufDecodingError) -> Double {
    Double(bitPattern: try readFixed64())
  }

  /// A `string`; invalid UTF-8 is rejected.
  @inlinable
  public mutating func readString() throws(ProtobufDecodingError) -> String {
    let length = try readLength()
    let start = index
    // Validate with our own (specialised) check, then build the string without repair: the
    // standard library's `String(validating:)` is generic and costs metadata lookups per call.
    let string = bytes.withUnsafeBufferPointer { buffer -> String? in
      let utf8 = UnsafeBufferPointer(rebasing: buffer[start..<start + length])
      guard UTF8Validation.isValid(utf8) else { return nil }
      return String(decoding: utf8, as: UTF8.self)
    }
    guard let string else { throw error(.invalidUTF8) }
    index += length
    return string
  }

  /// A `bytes` value.
  @inlinable
  public mutating func readBytes() throws(ProtobufDecodingError) -> [UInt8] {
    let length = try readLength()
    defer { index += length }
    return Array(bytes[index..<index + length])
  }

  // MARK: - Messages

  /// Decodes an embedded message (merging into `message`, as repeated occurrences of a singular
  /// message field must).
  @inlinable
  public mutating func readMessage<Message: ProtobufMessage>(into message: inout Message) throws {
    let length = try readLength()
    guard depth < ProtobufLimits.maximumDepth else { throw error(.recursionLimit) }
    let outerEnd = end
    end = index + length
    depth += 1
    defer {
      depth -= 1
      end = outerEnd
    }
    try message.merge(from: &self)
    guard index == end else { throw error(.lengthOutOfBounds) }
  }

  /// Decodes an embedded message into a new value.
  @inlinable
  public mutating func readMessage<Message: ProtobufMessage>(_ type: Message.Type = Message.self) throws
    -> Message
  {
    var message = Message()
    try readMessage(into: &message)
    return message
  }

  /// Runs `body` over the content of a length-delimited value (a map entry, a packed field).
  @inlinable
  public mutating func readLengthDelimited(_ body: (inout ProtobufDecoder) throws -> Void) throws {
    let length = try readLength()
    let outerEnd = end
    end = index + length
    defer { end = outerEnd }
    try body(&self)
    guard index == end else { throw error(.lengthOutOfBounds) }
  }

  /// Reads one element or a packed run of elements of a repeated scalar field. Both encodings
  /// are accepted whatever the schema says, as the specification requires.
  @inlinable
  public mutating func readRepeated<Element>(
    _ wireType: WireType, into values: inout [Element],
    _ readElement: (inout ProtobufDecoder) throws(ProtobufDecodingError) -> Element
  ) throws(ProtobufDecodingError) {
    guard wireType == .lengthDelimited else {
      values.append(try readElement(&self))
      return
    }
    let length = try readLength()
    let outerEnd = end
    end = index + length
    defer { end = outerEnd }
    while index < end { values.append(try readElement(&self)) }
  }

  // MARK: - Unknown fields

  /// Skips the value of the field whose tag was just read and keeps its bytes (tag included) in
  /// `unknownFields`.
  @inlinable
  public mutating func skipField(
    _ field: Int, _ wireType: WireType, keepingIn unknownFields: inout UnknownFields
  ) throws(ProtobufDecodingError) {
    let start = tagStart
    try skipValue(field, wireType)
    unknownFields.data.append(contentsOf: bytes[start..<index])
  }

  /// Skips the value of the field whose tag was just read.
  @inlinable
  public mutating func skipValue(_ field: Int, _ wireType: WireType) throws(ProtobufDecodingError) {
    switch wireType {
    case .varint: _ = try readVarint()
    case .fixed64: _ = try readFixed64()
    case .fixed32: _ = try readFixed32()
    case .lengthDelimited: index += try readLength()
    case .endGroup: throw error(.unmatchedGroup)
    case .startGroup:
      guard depth < ProtobufLimits.maximumDepth else { throw error(.recursionLimit) }
      depth += 1
      defer { depth -= 1 }
      while true {
        guard let (innerField, innerType) = try nextTag() else { throw error(.truncated) }
        if innerType == .endGroup {
          guard innerField == field else { throw error(.unmatchedGroup) }
          return
        }
        try skipValue(innerField, innerType)
      }
    }
  }
}
