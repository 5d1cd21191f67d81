/// Writes the protobuf binary wire format into a byte buffer.
///
/// Generated code calls the `write...(field:)` methods for fields that are present (proto3 skips
/// default values of fields without presence; the generated code decides). Embedded messages are
/// written in one pass: ``writeMessage(field:_:)`` reserves one length byte, writes the message
/// after it and, if the length needs more bytes, moves the message up once.
public struct ProtobufEncoder: Sendable {
  /// The encoded bytes so far. (Settable so that the hot paths can be `@inlinable`; code other
  /// than the encoder itself should only read it.)
  public var buffer: [UInt8]

  @inlinable
  public init(reservingCapacity capacity: Int = 256) {
    buffer = []
    buffer.reserveCapacity(capacity)
  }

  // MARK: - Primitives

  @inlinable
  public mutating func writeVarint(_ value: UInt64) {
    if value < 0x80 {  // tags, lengths, small numbers: the common case
      buffer.append(UInt8(truncatingIfNeeded: value))
      return
    }
    var value = value
    while value >= 0x80 {
      buffer.append(UInt8(truncatingIfNeeded: value) | 0x80)
      value >>= 7
    }
    buffer.append(UInt8(value))
  }

  @inlinable
  public mutating func writeTag(field: Int, _ wireType: WireType) {
    writeVarint(UInt64(field << 3) | UInt64(wireType.rawValue))
  }

  @inlinable
  public mutating func writeFixed32(_ value: UInt32) {
    withUnsafeBytes(of: value.littleEndian) { buffer.append(contentsOf: $0) }
  }

  @inlinable
  public mutating func writeFixed64(_ value: UInt64) {
    withUnsafeBytes(of: value.littleEndian) { buffer.append(contentsOf: $0) }
  }

  /// Appends raw bytes (no tag, no length).
  @inlinable
  public mutating func writeRaw(_ bytes: some Sequence<UInt8>) {
    buffer.append(contentsOf: bytes)
  }

  /// The number of bytes `value` takes as a varint.

  @inlinable
  public static func varintSize(_ value: UInt64) -> Int {
    value == 0 ? 1 : (64 - value.leadingZeroBitCount + 6) / 7
  }

  // MARK: - Fields

  @inlinable
  public mutating func writeInt32(field: Int, _ value: Int32) {
    writeTag(field: field, .varint)
    writeVarint(UInt64(bitPattern: Int64(value)))  // negative values take 10 bytes, per spec
  }

  @inlinable
  public mutating func writeInt64(field: Int, _ value: Int64) {
    writeTag(field: field, .varint)
    writeVarint(UInt64(bitPattern: value))
  }

  @inlinable
  public mutating func writeUInt32(field: Int, _ value: UInt32) {
    writeTag(field: field, .varint)
    writeVarint(UInt64(value))
  }

  @inlinable
  public mutating func writeUInt64(field: Int, _ value: UInt64) {
    writeTag(field: field, .varint)
    writeVarint(value)
  }

  @inlinable
  public mutating func writeSInt32(field: Int, _ value: Int32) {
    writeTag(field: field, .varint)
    writeVarint(UInt64(ZigZag.encode(value)))
  }

  @inlinable
  public mutating func writeSInt64(field: Int, _ value: Int64) {
    writeTag(field: field, .varint)
    writeVarint(ZigZag.encode(value))
  }

  @inlinable
  public mutating func writeBool(field: Int, _ value: Bool) {
    writeTag(field: field, .varint)
    buffer.append(value ? 1 : 0)
  }

  /// An enum value (open enums: any `Int32`, known or not).
  @inlinable
  public mutating func writeEnum(field: Int, _ rawValue: Int32) {
    writeInt32(field: field, rawValue)
  }

  @inlinable
  public mutating func writeFixed32(field: Int, _ value: UInt32) {
    writeTag(field: field, .fixed32)
    writeFixed32(value)
  }

  @inlinable
  public mutating func writeFixed64(field: Int, _ value: UInt64) {
    writeTag(field: field, .fixed64)
    writeFixed64(value)
  }

  @inlinable
  public mutating func writeSFixed32(field: Int, _ value: Int32) {
    writeFixed32(field: field, UInt32(bitPattern: value))
  }

  @inlinable
  public mutating func writeSFixed64(field: Int, _ value: Int64) {
    writeFixed64(field: field, UInt64(bitPattern: value))
  }

  @inlinable
  public mutating func writeFloat(field: Int, _ value: Float) {
    writeFixed32(field: field, value.bitPattern)
  }

  @inlinable
  public mutating func writeDouble(field: Int, _ value: Double) {
    writeFixed64(field: field, value.bitPattern)
  }

  @inlinable
  public mutating func writeString(field: Int, _ value: String) {
    writeTag(field: field, .lengthDelimited)
    var value = value
    value.withUTF8 { utf8 in
      writeVarint(UInt64(utf8.count))
      buffer.append(contentsOf: utf8)
    }
  }

  @inlinable
  public mutating func writeBytes(field: Int, _ value: [UInt8]) {
    writeTag(field: field, .lengthDelimited)
    writeVarint(UInt64(value.count))
    buffer.append(contentsOf: value)
  }

  /// Writes a length-delimited value whose content `body` writes (an embedded message, a packed
  /// repeated field, a map entry).
  @inlinable
  public mutating func writeLengthDelimited(field: Int, _ body: (inout ProtobufEncoder) -> Void) {
    writeTag(field: field, .lengthDelimited)
    let lengthIndex = buffer.count
    buffer.append(0)
    body(&self)
    let length = buffer.count - lengthIndex - 1
    if length < 0x80 {
      buffer[lengthIndex] = UInt8(length)
      return
    }
    // The length needs more than one byte: make room once, then write it.
    let size = Self.varintSize(UInt64(length))
    buffer.insert(contentsOf: repeatElement(0, count: size - 1), at: lengthIndex + 1)
    var value = UInt64(length)
    var index = lengthIndex
    while value >= 0x80 {
      buffer[index] = UInt8(truncatingIfNeeded: value) | 0x80
      value >>= 7
      index += 1
    }
    buffer[index] = UInt8(value)
  }

  /// Writes an embedded message.
  @inlinable
  public mutating func writeMessage(field: Int, _ message: some ProtobufMessage) {
    writeLengthDelimited(field: field) { message.encode(to: &$0) }
  }

  /// Writes packed repeated varints, e.g. `repeated int64` (`encode` maps each element).
  @inlinable
  public mutating func writePackedVarints<Element>(
    field: Int, _ values: [Element], _ encode: (Element) -> UInt64
  ) {
    guard !values.isEmpty else { return }
    writeLengthDelimited(field: field) { encoder in
      for value in values { encoder.writeVarint(encode(value)) }
    }
  }

  /// Writes packed repeated 32-bit fixed values (`fixed32`, `sfixed32`, `float`).
  @inlinable
  public mutating func writePackedFixed32<Element>(
    field: Int, _ values: [Element], _ encode: (Element) -> UInt32
  ) {
    guard !values.isEmpty else { return }
    writeTag(field: field, .lengthDelimited)
    writeVarint(UInt64(values.count * 4))
    for value in values { writeFixed32(encode(value)) }
  }

  /// Writes packed repeated 64-bit fixed values (`fixed64`, `sfixed64`, `double`).
  @inlinable
  public mutating func writePackedFixed64<Element>(
    field: Int, _ values: [Element], _ encode: (Element) -> UInt64
  ) {
    guard !values.isEmpty else { return }
    writeTag(field: field, .lengthDelimited)
    writeVarint(UInt64(values.count * 8))
    for value in values { writeFixed64(encode(value)) }
  }

  /// Appends preserved unknown fields unchanged.
  @inlinable
  public mutating func writeUnknownFields(_ unknownFields: UnknownFields) {
    buffer.append(contentsOf: unknownFields.data)
  }
}
