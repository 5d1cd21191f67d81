/// Writes the protobuf binary wire format.
///
/// Generated code calls the `write...(field:)` methods for fields that are present (proto3 skips
/// default values of fields without presence; the generated code decides). Lengths are known
/// before their content is written (``ProtobufMessage/serializedSize()``), so
/// ``ProtobufMessage/serializedBytes()`` allocates the exact size once and writes straight into
/// it; every write is checked against that size, so a wrong size traps instead of corrupting
/// memory. Created with ``init(reservingCapacity:)``, the encoder appends to a growable
/// ``buffer`` instead (for hand-written messages and tests).
public struct ProtobufEncoder {
  /// The encoded bytes so far, when the encoder appends to a growable buffer. (Settable so that
  /// the hot paths can be `@inlinable`; code other than the encoder itself should only read it.)
  public var buffer: [UInt8]
  /// The fixed-size destination, when writing into pre-sized memory.
  @usableFromInline var base: UnsafeMutablePointer<UInt8>?
  @usableFromInline var capacity = 0
  /// The bytes written so far into ``base``.
  @usableFromInline var written = 0

  @inlinable
  public init(reservingCapacity capacity: Int = 256) {
    buffer = []
    buffer.reserveCapacity(capacity)
  }

  /// An encoder that writes exactly `capacity` bytes into `base`.
  @inlinable
  public init(writingInto base: UnsafeMutablePointer<UInt8>, capacity: Int) {
    buffer = []
    self.base = base
    self.capacity = capacity
  }

  /// The number of bytes written.
  @inlinable
  public var count: Int { base == nil ? buffer.count : written }

  @inlinable
  mutating func appendByte(_ byte: UInt8) {
    if let base {
      precondition(written < capacity, "protobuf encoding overran its computed size")
      base[written] = byte
      written += 1
    } else {
      buffer.append(byte)
    }
  }

  @inlinable
  mutating func appendBytes(_ bytes: UnsafeRawBufferPointer) {
    guard !bytes.isEmpty else { return }
    if let base {
      precondition(bytes.count <= capacity - written, "protobuf encoding overran its computed size")
      (base + written).update(
        from: bytes.baseAddress!.assumingMemoryBound(to: UInt8.self), count: bytes.count)
      written += bytes.count
    } else {
      buffer.append(contentsOf: bytes)
    }
  }

  // MARK: - Primitives

  @inlinable
  public mutating func writeVarint(_ value: UInt64) {
    if value < 0x80 {  // tags, lengths, small numbers: the common case
      appendByte(UInt8(truncatingIfNeeded: value))
      return
    }
    var value = value
    while value >= 0x80 {
      appendByte(UInt8(truncatingIfNeeded: value) | 0x80)
      value >>= 7
    }
    appendByte(UInt8(value))
  }

  @inlinable
  public mutating func writeTag(field: Int, _ wireType: WireType) {
    writeVarint(UInt64(field << 3) | UInt64(wireType.rawValue))
  }

  @inlinable
  public mutating func writeFixed32(_ value: UInt32) { writeLittleEndian(value) }

  @inlinable
  public mutating func writeFixed64(_ value: UInt64) { writeLittleEndian(value) }

  @inlinable
  mutating func writeLittleEndian(_ value: some FixedWidthInteger) {
    withUnsafeBytes(of: value.littleEndian) { appendBytes($0) }
  }

  /// Appends raw bytes (no tag, no length).
  @inlinable
  public mutating func writeRaw(_ bytes: [UInt8]) {
    bytes.withUnsafeBytes { appendBytes($0) }
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
    appendByte(value ? 1 : 0)
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
      appendBytes(UnsafeRawBufferPointer(utf8))
    }
  }

  @inlinable
  public mutating func writeBytes(field: Int, _ value: [UInt8]) {
    writeTag(field: field, .lengthDelimited)
    writeVarint(UInt64(value.count))
    value.withUnsafeBytes { appendBytes($0) }
  }

  /// Writes an embedded message.
  ///
  /// Into pre-sized memory, the message's size is written first (generated messages compute it
  /// cheaply). Into a growable buffer, one length byte is reserved and the content moved up once
  /// if the length needs more: this path never asks for ``ProtobufMessage/serializedSize()``,
  /// whose default implementation encodes into a growable buffer — so hand-written messages stay
  /// linear instead of re-measuring every subtree at every level.
  @inlinable
  public mutating func writeMessage(field: Int, _ message: some ProtobufMessage) {
    writeTag(field: field, .lengthDelimited)
    if let base {
      // Reserve one length byte, encode, then fill it in; a length of 128 or more moves the
      // content up by the extra varint bytes. The buffer was sized exactly for the whole message,
      // so the content written so far is always behind the end and the move stays in bounds
      // (checked). This measures each nested message once per encode instead of twice.
      let lengthIndex = written
      precondition(written < capacity, "protobuf encoding overran its computed size")
      written += 1
      message.encode(to: &self)
      let length = written - lengthIndex - 1
      if length < 0x80 {
        base[lengthIndex] = UInt8(length)
        return
      }
      let extra = Self.varintSize(UInt64(length)) - 1
      precondition(extra <= capacity - written, "protobuf encoding overran its computed size")
      var from = lengthIndex + length  // the last content byte; copied back to front (overlap)
      while from > lengthIndex {
        base[from + extra] = base[from]
        from -= 1
      }
      var value = UInt64(length)
      var index = lengthIndex
      while value >= 0x80 {
        base[index] = UInt8(truncatingIfNeeded: value) | 0x80
        value >>= 7
        index += 1
      }
      base[index] = UInt8(value)
      written += extra
      return
    }
    let lengthIndex = buffer.count
    buffer.append(0)
    message.encode(to: &self)
    let length = buffer.count - lengthIndex - 1
    if length < 0x80 {
      buffer[lengthIndex] = UInt8(length)
      return
    }
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

  /// Writes packed repeated varints, e.g. `repeated int64` (`encode` maps each element).
  @inlinable
  public mutating func writePackedVarints<Element>(
    field: Int, _ values: [Element], _ encode: (Element) -> UInt64
  ) {
    guard !values.isEmpty else { return }
    var length = 0
    for value in values { length += Self.varintSize(encode(value)) }
    writeTag(field: field, .lengthDelimited)
    writeVarint(UInt64(length))
    for value in values { writeVarint(encode(value)) }
  }

  /// Writes packed repeated 32-bit fixed values (`fixed32`, `sfixed32`, `float`).
  @inlinable
  public mutating func writePackedFixed32<Element>(
    field: Int, _ values: [Element], _ encode: (Element) -> UInt32
  ) {
    writePackedFixed(field: field, values, encode)
  }

  /// Writes packed repeated 64-bit fixed values (`fixed64`, `sfixed64`, `double`).
  @inlinable
  public mutating func writePackedFixed64<Element>(
    field: Int, _ values: [Element], _ encode: (Element) -> UInt64
  ) {
    writePackedFixed(field: field, values, encode)
  }

  @inlinable
  mutating func writePackedFixed<Element, Bits: FixedWidthInteger>(
    field: Int, _ values: [Element], _ encode: (Element) -> Bits
  ) {
    guard !values.isEmpty else { return }
    writeTag(field: field, .lengthDelimited)
    writeVarint(UInt64(values.count * MemoryLayout<Bits>.size))
    for value in values { writeLittleEndian(encode(value)) }
  }

  /// Appends preserved unknown fields unchanged.
  @inlinable
  public mutating func writeUnknownFields(_ unknownFields: UnknownFields) {
    unknownFields.data.withUnsafeBytes { appendBytes($0) }
  }
}

/// Encoded sizes, for ``ProtobufMessage/serializedSize()``.
public enum ProtobufSize {
  @inlinable public static func varint(_ value: UInt64) -> Int { ProtobufEncoder.varintSize(value) }
  /// `int32` and enums: negative values take ten bytes.
  @inlinable public static func int32(_ value: Int32) -> Int { varint(UInt64(bitPattern: Int64(value))) }
  /// A length-prefixed string (prefix included).
  @inlinable public static func string(_ value: String) -> Int {
    let count = value.utf8.count
    return varint(UInt64(count)) + count
  }
  /// A length-prefixed byte string (prefix included).
  @inlinable public static func bytes(_ value: [UInt8]) -> Int { varint(UInt64(value.count)) + value.count }
  /// A length-prefixed embedded message (prefix included).
  @inlinable public static func message(_ value: some ProtobufMessage) -> Int {
    let size = value.serializedSize()
    return varint(UInt64(size)) + size
  }
}

/// The order of string map keys in deterministic output: by UTF-8 bytes, as protobuf's
/// deterministic serialization does. Compares the strings' contiguous UTF-8 storage directly,
/// which is several times cheaper than iterating two `String.UTF8View`s.
public enum ProtobufMapKeyOrder {
  /// Calls `body` for every entry of `map` in key order. Small maps (the usual case) are sorted
  /// as dictionary indices in stack memory, without allocating or copying keys and values.
  @inlinable
  public static func forEachSorted<Key, Value>(
    _ map: [Key: Value], by precedes: (Key, Key) -> Bool, _ body: (Key, Value) -> Void
  ) {
    let count = map.count
    if count == 0 { return }
    if count == 1, let (key, value) = map.first { return body(key, value) }
    if count > 16 {
      for (key, value) in map.sorted(by: { precedes($0.key, $1.key) }) { body(key, value) }
      return
    }
    withUnsafeTemporaryAllocation(of: Dictionary<Key, Value>.Index.self, capacity: count) { indices in
      var filled = 0
      var index = map.startIndex
      while index != map.endIndex {
        indices.initializeElement(at: filled, to: index)
        filled += 1
        index = map.index(after: index)
      }
      // Insertion sort: at most 16 elements.
      for position in 1..<filled {
        let current = indices[position]
        let key = map[current].key
        var before = position - 1
        while before >= 0 && precedes(key, map[indices[before]].key) {
          indices[before + 1] = indices[before]
          before -= 1
        }
        indices[before + 1] = current
      }
      for position in 0..<filled {
        let (key, value) = map[indices[position]]
        body(key, value)
      }
      _ = indices.deinitialize()
    }
  }

  @inlinable
  public static func precedes(_ left: String, _ right: String) -> Bool {
    var left = left
    var right = right
    return left.withUTF8 { a in
      right.withUTF8 { b in
        let common = Swift.min(a.count, b.count)
        var index = 0
        while index < common {
          if a[index] != b[index] { return a[index] < b[index] }
          index += 1
        }
        return a.count < b.count
      }
    }
  }
}
