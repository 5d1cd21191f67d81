/// How a field's value is laid out on the wire (the low three bits of a tag).
public enum WireType: UInt8, Sendable, Hashable {
  /// int32, int64, uint32, uint64, sint32, sint64, bool, enum.
  case varint = 0
  /// fixed64, sfixed64, double.
  case fixed64 = 1
  /// string, bytes, embedded messages, packed repeated fields.
  case lengthDelimited = 2
  /// Start of a group (proto2; skipped when unknown).
  case startGroup = 3
  /// End of a group.
  case endGroup = 4
  /// fixed32, sfixed32, float.
  case fixed32 = 5
}

/// Limits that protect a decoder from hostile input.
public enum ProtobufLimits {
  /// The largest field number the format allows (2^29 - 1).
  public static let maximumFieldNumber = 536_870_911
  /// How deeply messages (and groups) may nest.
  public static let maximumDepth = 100
}

/// ZigZag encoding of signed integers (`sint32`, `sint64`).
public enum ZigZag {
  public static func encode(_ value: Int32) -> UInt32 {
    UInt32(bitPattern: (value << 1) ^ (value >> 31))
  }
  public static func encode(_ value: Int64) -> UInt64 {
    UInt64(bitPattern: (value << 1) ^ (value >> 63))
  }
  public static func decode(_ value: UInt32) -> Int32 {
    Int32(bitPattern: (value >> 1) ^ (0 &- (value & 1)))
  }
  public static func decode(_ value: UInt64) -> Int64 {
    Int64(bitPattern: (value >> 1) ^ (0 &- (value & 1)))
  }
}
