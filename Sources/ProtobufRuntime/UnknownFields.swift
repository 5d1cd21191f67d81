/// Fields a message's schema does not know, kept as their original bytes (tag and value) so
/// that re-encoding the message passes them on unchanged.
public struct UnknownFields: Sendable, Hashable {
  /// The raw bytes, in arrival order.
  public var data: [UInt8]

  public init() { data = [] }

  /// True when nothing unknown was received.
  public var isEmpty: Bool { data.isEmpty }
}
