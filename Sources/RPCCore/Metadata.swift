/// Call metadata: the custom headers and trailers of a gRPC call, in order, with repeated keys
/// allowed. Keys are lower-case; keys ending in `-bin` carry binary values (base64 on the wire),
/// all others printable ASCII.
public struct Metadata: Sendable, Hashable, Sequence, ExpressibleByArrayLiteral, CustomStringConvertible {
  /// A metadata value.
  public enum Value: Sendable, Hashable, CustomStringConvertible {
    /// A printable-ASCII value (for keys without the `-bin` suffix).
    case string(String)
    /// A binary value (for keys with the `-bin` suffix).
    case binary([UInt8])

    public var description: String {
      switch self {
      case .string(let string): string
      case .binary(let bytes): "<\(bytes.count) bytes>"
      }
    }
  }

  /// One key and value.
  public struct Entry: Sendable, Hashable {
    public var key: String
    public var value: Value
  }

  private var entries: [Entry] = []

  public init() {}

  /// Metadata with string values: `[("x-request-id", "42")]`.
  public init(arrayLiteral elements: (String, String)...) {
    for (key, value) in elements { addString(value, forKey: key) }
  }

  /// Appends a string value; the key is lower-cased.
  public mutating func addString(_ value: String, forKey key: String) {
    entries.append(Entry(key: key.lowercased(), value: .string(value)))
  }

  /// Appends a binary value; `key` must end in `-bin`.
  public mutating func addBinary(_ value: [UInt8], forKey key: String) {
    precondition(key.lowercased().hasSuffix("-bin"), "binary metadata keys end in -bin")
    entries.append(Entry(key: key.lowercased(), value: .binary(value)))
  }

  /// Removes every value of `key`.
  public mutating func removeAll(forKey key: String) {
    let key = key.lowercased()
    entries.removeAll { $0.key == key }
  }

  /// Every value of `key`, in order.
  public func values(forKey key: String) -> [Value] {
    let key = key.lowercased()
    return entries.filter { $0.key == key }.map(\.value)
  }

  /// The first string value of `key`.
  public subscript(key: String) -> String? {
    for case .string(let string) in values(forKey: key) { return string }
    return nil
  }

  /// The first binary value of `key`.
  public func binaryValue(forKey key: String) -> [UInt8]? {
    for case .binary(let bytes) in values(forKey: key) { return bytes }
    return nil
  }

  public var count: Int { entries.count }
  public var isEmpty: Bool { entries.isEmpty }
  public func makeIterator() -> IndexingIterator<[Entry]> { entries.makeIterator() }

  /// Appends every entry of `other`.
  public mutating func add(contentsOf other: Metadata) { entries += other.entries }

  public var description: String {
    "["
      + entries.map { "\($0.key): \($0.key == "authorization" ? "<redacted>" : "\($0.value)")" }.joined(
        separator: ", ") + "]"
  }

  /// Whether `key` may be sent as custom metadata: lower-case `0-9 a-z _ . -`, not reserved by
  /// gRPC or HTTP/2 (`grpc-*`, pseudo-headers, connection headers).
  public static func isValidCustomKey(_ key: String) -> Bool {
    guard !key.isEmpty, !key.hasPrefix("grpc-") else { return false }
    guard !["content-type", "te", "user-agent", "connection", "host", "transfer-encoding"].contains(key)
    else {
      return false
    }
    return key.utf8.allSatisfy { byte in
      (byte >= 0x30 && byte <= 0x39) || (byte >= 0x61 && byte <= 0x7A) || byte == 0x5F || byte == 0x2E
        || byte == 0x2D
    }
  }
}
