/// A message with the canonical proto3 JSON mapping: lowerCamel field names on output (either
/// name accepted on input), 64-bit integers as strings, enums by name, bytes as base64, the
/// well-known types in their special forms (`Timestamp` as RFC 3339, ...).
public protocol ProtobufJSONMessage: ProtobufMessage {
  /// The message as a JSON value.
  func jsonValue(options: JSONEncodingOptions) -> JSONValue
  /// Reads the message from a JSON value.
  init(jsonValue: JSONValue, options: JSONDecodingOptions) throws(ProtobufJSONError)
}

extension ProtobufJSONMessage {
  /// The message as JSON text.
  public func jsonString(options: JSONEncodingOptions = JSONEncodingOptions()) -> String {
    jsonValue(options: options).serialized(prettyPrinted: options.prettyPrinted)
  }

  /// Reads the message from JSON text.
  public init(jsonString: String, options: JSONDecodingOptions = JSONDecodingOptions())
    throws(ProtobufJSONError)
  {
    try self.init(jsonValue: try JSONValue(parsing: jsonString), options: options)
  }

  /// The members of a JSON object, or an error naming the message type.
  public static func jsonMembers(_ value: JSONValue) throws(ProtobufJSONError) -> [(String, JSONValue)] {
    guard case .object(let members) = value else {
      throw ProtobufJSONError("expected a JSON object for \(protoMessageName)")
    }
    return members
  }
}

// MARK: - Values to JSON

extension JSONValue {
  public static func int32(_ value: Int32) -> JSONValue { .number(String(value)) }
  public static func uint32(_ value: UInt32) -> JSONValue { .number(String(value)) }
  /// 64-bit integers are strings in proto3 JSON (JavaScript numbers lose precision above 2^53).
  public static func int64(_ value: Int64) -> JSONValue { .string(String(value)) }
  public static func uint64(_ value: UInt64) -> JSONValue { .string(String(value)) }
  public static func double(_ value: Double) -> JSONValue {
    if value.isNaN { return .string("NaN") }
    if value.isInfinite { return .string(value < 0 ? "-Infinity" : "Infinity") }
    return .number(value.description)
  }
  public static func float(_ value: Float) -> JSONValue {
    if value.isNaN { return .string("NaN") }
    if value.isInfinite { return .string(value < 0 ? "-Infinity" : "Infinity") }
    return .number(value.description)
  }
  public static func bytes(_ value: [UInt8]) -> JSONValue { .string(Base64.encode(value)) }
  /// An enum by name; a value the schema does not know as its number.
  public static func enumeration<Enum: ProtobufEnum>(_ value: Enum) -> JSONValue {
    value.protoName.map(JSONValue.string) ?? .number(String(value.rawValue))
  }
}

// MARK: - JSON to values

extension JSONValue {
  var kind: String {
    switch self {
    case .null: "null"
    case .bool: "a boolean"
    case .number: "a number"
    case .string: "a string"
    case .array: "an array"
    case .object: "an object"
    }
  }

  /// An integer from a number or a string, which must be integral and in range.
  func integer<Value: FixedWidthInteger>(_ type: Value.Type) throws(ProtobufJSONError) -> Value {
    let text: String
    switch self {
    case .number(let number): text = number
    case .string(let string): text = string
    default: throw ProtobufJSONError("expected an integer, got \(kind)")
    }
    // A JSON number, bare or quoted: no "+5", "0x10", " 5" or "inf" that Swift's parsers take.
    guard Self.isNumberSyntax(text) else { throw ProtobufJSONError("\"\(text)\" is not an integer") }
    if let exact = Value(text) { return exact }
    // Exponent or fraction forms ("1e3", "5.0") are accepted when they are integral.
    guard let double = Double(text), double.rounded() == double else {
      throw ProtobufJSONError("\"\(text)\" is not an integer")
    }
    guard double >= Double(Value.min), double <= Double(Value.max), let value = Value(exactly: double) else {
      throw ProtobufJSONError("\(text) is out of range for \(Value.self)")
    }
    return value
  }

  public func int32() throws(ProtobufJSONError) -> Int32 { try integer(Int32.self) }
  public func uint32() throws(ProtobufJSONError) -> UInt32 { try integer(UInt32.self) }
  public func int64() throws(ProtobufJSONError) -> Int64 { try integer(Int64.self) }
  public func uint64() throws(ProtobufJSONError) -> UInt64 { try integer(UInt64.self) }

  public func double() throws(ProtobufJSONError) -> Double {
    switch self {
    case .string("NaN"): return .nan
    case .string("Infinity"): return .infinity
    case .string("-Infinity"): return -.infinity
    case .number(let text), .string(let text):
      // Only JSON number syntax, bare or quoted (Swift's parser also takes "nan", "-inf",
      // "0x1p3"); a finite number too large for a double is out of range, not infinity.
      guard Self.isNumberSyntax(text), let value = Double(text) else {
        throw ProtobufJSONError("\"\(text)\" is not a number")
      }
      guard value.isFinite else { throw ProtobufJSONError("\(text) is out of range for a double") }
      return value
    default: throw ProtobufJSONError("expected a number, got \(kind)")
    }
  }

  /// Whether `text` is a number as JSON writes them (RFC 8259 §6):
  /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
  static func isNumberSyntax(_ text: String) -> Bool {
    var bytes = text.utf8[...]
    func digits() -> Int {
      let count = bytes.prefix { (0x30...0x39).contains($0) }.count
      bytes = bytes.dropFirst(count)
      return count
    }
    if bytes.first == UInt8(ascii: "-") { bytes = bytes.dropFirst() }
    if bytes.first == UInt8(ascii: "0") {
      bytes = bytes.dropFirst()
    } else if digits() == 0 {
      return false
    }
    if bytes.first == UInt8(ascii: ".") {
      bytes = bytes.dropFirst()
      guard digits() > 0 else { return false }
    }
    if bytes.first == UInt8(ascii: "e") || bytes.first == UInt8(ascii: "E") {
      bytes = bytes.dropFirst()
      if bytes.first == UInt8(ascii: "+") || bytes.first == UInt8(ascii: "-") { bytes = bytes.dropFirst() }
      guard digits() > 0 else { return false }
    }
    return bytes.isEmpty
  }

  public func float() throws(ProtobufJSONError) -> Float {
    let value = try double()
    guard value.isNaN || value.isInfinite || abs(value) <= Double(Float.greatestFiniteMagnitude) else {
      throw ProtobufJSONError("\(value) is out of range for a float")
    }
    return Float(value)
  }

  public func bool() throws(ProtobufJSONError) -> Bool {
    guard case .bool(let value) = self else { throw ProtobufJSONError("expected true or false, got \(kind)") }
    return value
  }

  public func string() throws(ProtobufJSONError) -> String {
    guard case .string(let value) = self else { throw ProtobufJSONError("expected a string, got \(kind)") }
    return value
  }

  /// Base64, standard or URL-safe alphabet, padding optional.
  public func bytes() throws(ProtobufJSONError) -> [UInt8] {
    let text = try string()
    guard let bytes = Base64.decode(text) else {
      throw ProtobufJSONError("\"\(text.prefix(32))\" is not base64")
    }
    return bytes
  }

  /// An enum from its name or its number.
  public func enumeration<Enum: ProtobufEnum & CaseIterable>(_ type: Enum.Type) throws(ProtobufJSONError)
    -> Enum
  {
    switch self {
    case .string(let name):
      guard let value = Enum.allCases.first(where: { $0.protoName == name }) else {
        throw ProtobufJSONError("\"\(name)\" is not a value of the enum")
      }
      return value
    case .number:
      return Enum(rawValue: try int32())
    default:
      throw ProtobufJSONError("expected an enum name or number, got \(kind)")
    }
  }

  /// The elements of a JSON array (`null` is an empty list).
  public func elements() throws(ProtobufJSONError) -> [JSONValue] {
    switch self {
    case .array(let values): return values
    case .null: return []
    default: throw ProtobufJSONError("expected an array, got \(kind)")
    }
  }

  /// The members of a JSON object used as a map (`null` is an empty map).
  public func mapMembers() throws(ProtobufJSONError) -> [(String, JSONValue)] {
    switch self {
    case .object(let members): return members
    case .null: return []
    default: throw ProtobufJSONError("expected an object, got \(kind)")
    }
  }

  /// True for JSON `null`, which means "the default" for every field type but `Value`.
  public var isNull: Bool {
    if case .null = self { return true }
    return false
  }
}

/// Map keys are strings in JSON.
public enum JSONMapKey {
  public static func bool(_ text: String) throws(ProtobufJSONError) -> Bool {
    switch text {
    case "true": return true
    case "false": return false
    default: throw ProtobufJSONError("map key \"\(text)\" is not true or false")
    }
  }
  public static func integer<Value: FixedWidthInteger>(_ text: String, _ type: Value.Type)
    throws(ProtobufJSONError)
    -> Value
  {
    guard let value = Value(text) else {
      throw ProtobufJSONError("map key \"\(text)\" is not a \(Value.self)")
    }
    return value
  }
}

/// Base64 (RFC 4648) without Foundation.
public enum Base64 {
  static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

  public static func encode(_ bytes: [UInt8]) -> String {
    var output = [UInt8]()
    output.reserveCapacity((bytes.count + 2) / 3 * 4)
    var index = 0
    while index + 3 <= bytes.count {
      let chunk = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2])
      for shift in stride(from: 18, through: 0, by: -6) {
        output.append(alphabet[Int(chunk >> UInt32(shift) & 63)])
      }
      index += 3
    }
    let rest = bytes.count - index
    if rest > 0 {
      var chunk = UInt32(bytes[index]) << 16
      if rest == 2 { chunk |= UInt32(bytes[index + 1]) << 8 }
      output.append(alphabet[Int(chunk >> 18 & 63)])
      output.append(alphabet[Int(chunk >> 12 & 63)])
      output.append(rest == 2 ? alphabet[Int(chunk >> 6 & 63)] : UInt8(ascii: "="))
      output.append(UInt8(ascii: "="))
    }
    return String(decoding: output, as: UTF8.self)
  }

  /// Accepts the standard and the URL-safe alphabet, with or without padding.
  public static func decode(_ text: String) -> [UInt8]? {
    var values: [UInt8] = []
    var padding = 0
    for byte in text.utf8 {
      let value: UInt8
      switch byte {
      case UInt8(ascii: "A")...UInt8(ascii: "Z"): value = byte - UInt8(ascii: "A")
      case UInt8(ascii: "a")...UInt8(ascii: "z"): value = byte - UInt8(ascii: "a") + 26
      case UInt8(ascii: "0")...UInt8(ascii: "9"): value = byte - UInt8(ascii: "0") + 52
      case UInt8(ascii: "+"), UInt8(ascii: "-"): value = 62
      case UInt8(ascii: "/"), UInt8(ascii: "_"): value = 63
      case UInt8(ascii: "="):
        padding += 1
        continue
      default: return nil
      }
      guard padding == 0 else { return nil }  // data after padding
      values.append(value)
    }
    guard values.count % 4 != 1, padding <= 2 else { return nil }
    var output: [UInt8] = []
    output.reserveCapacity(values.count * 3 / 4)
    var index = 0
    while index + 4 <= values.count {
      let chunk =
        UInt32(values[index]) << 18 | UInt32(values[index + 1]) << 12 | UInt32(values[index + 2]) << 6
        | UInt32(values[index + 3])
      output += [UInt8(chunk >> 16 & 0xff), UInt8(chunk >> 8 & 0xff), UInt8(chunk & 0xff)]
      index += 4
    }
    let rest = values.count - index
    if rest >= 2 {
      var chunk = UInt32(values[index]) << 18 | UInt32(values[index + 1]) << 12
      if rest == 3 { chunk |= UInt32(values[index + 2]) << 6 }
      output.append(UInt8(chunk >> 16 & 0xff))
      if rest == 3 { output.append(UInt8(chunk >> 8 & 0xff)) }
    }
    return output
  }
}
