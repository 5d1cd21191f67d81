/// An immutable box that gives a message field indirection, so that message types that contain
/// themselves (directly or through others) have a finite size. Generated code stores such fields
/// through it; replacing the value replaces the box, so value semantics are kept.
public final class ProtobufIndirect<Value: Sendable & Hashable>: Sendable, Hashable {
  public let value: Value
  public init(_ value: Value) { self.value = value }

  public static func == (lhs: ProtobufIndirect, rhs: ProtobufIndirect) -> Bool { lhs.value == rhs.value }
  public func hash(into hasher: inout Hasher) { hasher.combine(value) }
}

/// An open protobuf enum: known cases plus any other value, kept as is.
public protocol ProtobufEnum: RawRepresentable, Sendable, Hashable where RawValue == Int32 {
  init(rawValue: Int32)
  /// The `.proto` name of the value, when it is a known one.
  var protoName: String? { get }
}
