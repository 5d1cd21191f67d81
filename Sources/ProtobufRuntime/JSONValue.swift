/// A parsed JSON document, as proto3 JSON mapping reads and writes it. Object members keep their
/// order; numbers keep their text so that 64-bit integers are not rounded through `Double`.
public indirect enum JSONValue: Sendable, Hashable {
  case null
  case bool(Bool)
  /// A number, as written (e.g. `-12`, `1.5e3`).
  case number(String)
  case string(String)
  case array([JSONValue])
  case object([(String, JSONValue)])

  public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
    switch (lhs, rhs) {
    case (.null, .null): true
    case (.bool(let a), .bool(let b)): a == b
    case (.number(let a), .number(let b)): a == b
    case (.string(let a), .string(let b)): a == b
    case (.array(let a), .array(let b)): a == b
    case (.object(let a), .object(let b)):
      a.count == b.count && zip(a, b).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
    default: false
    }
  }

  public func hash(into hasher: inout Hasher) {
    switch self {
    case .null: hasher.combine(0)
    case .bool(let value): hasher.combine(value)
    case .number(let value): hasher.combine(value)
    case .string(let value): hasher.combine(value)
    case .array(let values): hasher.combine(values)
    case .object(let members):
      for (key, value) in members {
        hasher.combine(key)
        hasher.combine(value)
      }
    }
  }
}

/// Why JSON could not be read as a message, and where (``path``, outermost first).
public struct ProtobufJSONError: Error, Sendable, Hashable, CustomStringConvertible {
  public var message: String
  public var path: [String]
  /// For an object member that names no field: the member's name.
  public var unknownField: String?
  public init(_ message: String, path: [String] = []) {
    self.message = message
    self.path = path
  }
  /// An object member that names no field of the message.
  public init(unknownField name: String) {
    self.init("unknown field \"\(name)\"")
    unknownField = name
  }
  public var description: String {
    path.isEmpty
      ? "invalid JSON: \(message)" : "invalid JSON in field \(path.joined(separator: ".")): \(message)"
  }
}

/// Options for writing JSON.
public struct JSONEncodingOptions: Sendable {
  /// Also write fields that hold their default value.
  public var emitDefaults = false
  /// Use the `.proto` field names (`amount_minor`) instead of lowerCamel JSON names.
  public var useProtoNames = false
  /// Indent with two spaces per level (`nil`: one line).
  public var prettyPrinted = false
  public init(emitDefaults: Bool = false, useProtoNames: Bool = false, prettyPrinted: Bool = false) {
    self.emitDefaults = emitDefaults
    self.useProtoNames = useProtoNames
    self.prettyPrinted = prettyPrinted
  }
}

/// Options for reading JSON.
public struct JSONDecodingOptions: Sendable {
  /// Skip object members that name no field instead of failing.
  public var ignoreUnknownFields = false
  public init(ignoreUnknownFields: Bool = false) { self.ignoreUnknownFields = ignoreUnknownFields }
}

// MARK: - Parsing

extension JSONValue {
  /// The deepest nesting of arrays and objects accepted.
  public static let maximumDepth = 100

  /// Parses JSON text (RFC 8259); rejects trailing content, invalid escapes and too much nesting.
  public init(parsing text: String) throws(ProtobufJSONError) {
    var parser = JSONParser(bytes: Array(text.utf8))
    parser.skipWhitespace()
    self = try parser.parseValue(depth: 0)
    parser.skipWhitespace()
    guard parser.index == parser.bytes.count else {
      throw parser.error("unexpected content after the JSON value")
    }
  }
}

struct JSONParser {
  let bytes: [UInt8]
  var index = 0

  func error(_ message: String) -> ProtobufJSONError {
    ProtobufJSONError("\(message) at byte \(index)")
  }

  mutating func skipWhitespace() {
    while index < bytes.count, [0x20, 0x09, 0x0a, 0x0d].contains(bytes[index]) { index += 1 }
  }

  mutating func expect(_ literal: String) throws(ProtobufJSONError) {
    for byte in literal.utf8 {
      guard index < bytes.count, bytes[index] == byte else { throw error("expected \(literal)") }
      index += 1
    }
  }

  mutating func parseValue(depth: Int) throws(ProtobufJSONError) -> JSONValue {
    guard depth <= JSONValue.maximumDepth else {
      throw error("nesting deeper than \(JSONValue.maximumDepth)")
    }
    guard index < bytes.count else { throw error("unexpected end of input") }
    switch bytes[index] {
    case UInt8(ascii: "n"):
      try expect("null")
      return .null
    case UInt8(ascii: "t"):
      try expect("true")
      return .bool(true)
    case UInt8(ascii: "f"):
      try expect("false")
      return .bool(false)
    case UInt8(ascii: "\""):
      return .string(try parseString())
    case UInt8(ascii: "["):
      index += 1
      var values: [JSONValue] = []
      skipWhitespace()
      if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
        index += 1
        return .array(values)
      }
      while true {
        skipWhitespace()
        values.append(try parseValue(depth: depth + 1))
        skipWhitespace()
        guard index < bytes.count else { throw error("unterminated array") }
        if bytes[index] == UInt8(ascii: ",") {
          index += 1
          continue
        }
        guard bytes[index] == UInt8(ascii: "]") else { throw error("expected , or ]") }
        index += 1
        return .array(values)
      }
    case UInt8(ascii: "{"):
      index += 1
      var members: [(String, JSONValue)] = []
      skipWhitespace()
      if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
        index += 1
        return .object(members)
      }
      while true {
        skipWhitespace()
        guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else {
          throw error("expected a member name")
        }
        let key = try parseString()
        skipWhitespace()
        try expect(":")
        skipWhitespace()
        members.append((key, try parseValue(depth: depth + 1)))
        skipWhitespace()
        guard index < bytes.count else { throw error("unterminated object") }
        if bytes[index] == UInt8(ascii: ",") {
          index += 1
          continue
        }
        guard bytes[index] == UInt8(ascii: "}") else { throw error("expected , or }") }
        index += 1
        return .object(members)
      }
    default:
      return .number(try parseNumber())
    }
  }

  mutating func parseNumber() throws(ProtobufJSONError) -> String {
    let start = index
    if index < bytes.count, bytes[index] == UInt8(ascii: "-") { index += 1 }
    func digits(_ parser: inout JSONParser) -> Int {
      let begin = parser.index
      while parser.index < parser.bytes.count,
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(parser.bytes[parser.index])
      {
        parser.index += 1
      }
      return parser.index - begin
    }
    let integerStart = index
    guard digits(&self) > 0 else { throw error("invalid value") }
    if bytes[integerStart] == UInt8(ascii: "0"), index - integerStart > 1 {
      throw error("leading zero in a number")
    }
    if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
      index += 1
      guard digits(&self) > 0 else { throw error("digits expected after the decimal point") }
    }
    if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
      index += 1
      if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
        index += 1
      }
      guard digits(&self) > 0 else { throw error("digits expected in the exponent") }
    }
    return String(decoding: bytes[start..<index], as: UTF8.self)
  }

  mutating func parseString() throws(ProtobufJSONError) -> String {
    index += 1  // opening quote
    var scalars = String.UnicodeScalarView()
    var segmentStart = index
    func flush(_ parser: JSONParser, _ scalars: inout String.UnicodeScalarView, upTo end: Int)
      throws(ProtobufJSONError)
    {
      guard segmentStart < end else { return }
      guard let text = String(validating: parser.bytes[segmentStart..<end], as: UTF8.self) else {
        throw parser.error("invalid UTF-8 in a string")
      }
      scalars.append(contentsOf: text.unicodeScalars)
    }
    while true {
      guard index < bytes.count else { throw error("unterminated string") }
      let byte = bytes[index]
      if byte == UInt8(ascii: "\"") {
        try flush(self, &scalars, upTo: index)
        index += 1
        return String(scalars)
      }
      if byte < 0x20 { throw error("control character in a string") }
      if byte != UInt8(ascii: "\\") {
        index += 1
        continue
      }
      try flush(self, &scalars, upTo: index)
      index += 1
      guard index < bytes.count else { throw error("unterminated escape") }
      let escape = bytes[index]
      index += 1
      switch escape {
      case UInt8(ascii: "\""): scalars.append("\"")
      case UInt8(ascii: "\\"): scalars.append("\\")
      case UInt8(ascii: "/"): scalars.append("/")
      case UInt8(ascii: "b"): scalars.append("\u{08}")
      case UInt8(ascii: "f"): scalars.append("\u{0C}")
      case UInt8(ascii: "n"): scalars.append("\n")
      case UInt8(ascii: "r"): scalars.append("\r")
      case UInt8(ascii: "t"): scalars.append("\t")
      case UInt8(ascii: "u"):
        var code = try hex4()
        if (0xD800...0xDBFF).contains(code) {
          guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"),
            bytes[index + 1] == UInt8(ascii: "u")
          else {
            throw error("unpaired surrogate")
          }
          index += 2
          let low = try hex4()
          guard (0xDC00...0xDFFF).contains(low) else { throw error("unpaired surrogate") }
          code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
        } else if (0xDC00...0xDFFF).contains(code) {
          throw error("unpaired surrogate")
        }
        guard let scalar = Unicode.Scalar(code) else { throw error("invalid \\u escape") }
        scalars.append(scalar)
      default:
        throw error("invalid escape")
      }
      segmentStart = index
    }
  }

  mutating func hex4() throws(ProtobufJSONError) -> UInt32 {
    guard index + 4 <= bytes.count else { throw error("truncated \\u escape") }
    var value: UInt32 = 0
    for _ in 0..<4 {
      let byte = bytes[index]
      let digit: UInt32
      switch byte {
      case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - UInt8(ascii: "0"))
      case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - UInt8(ascii: "a") + 10)
      case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - UInt8(ascii: "A") + 10)
      default: throw error("invalid \\u escape")
      }
      value = value << 4 | digit
      index += 1
    }
    return value
  }
}

// MARK: - Writing

extension JSONValue {
  /// The JSON text.
  public func serialized(prettyPrinted: Bool = false) -> String {
    var output = ""
    write(to: &output, indent: prettyPrinted ? 0 : nil)
    return output
  }

  func write(to output: inout String, indent: Int?) {
    switch self {
    case .null: output += "null"
    case .bool(let value): output += value ? "true" : "false"
    case .number(let text): output += text
    case .string(let text): JSONValue.writeString(text, to: &output)
    case .array(let values):
      guard !values.isEmpty else {
        output += "[]"
        return
      }
      output += "["
      for (position, value) in values.enumerated() {
        if position > 0 { output += "," }
        if let indent { output += "\n" + String(repeating: "  ", count: indent + 1) }
        value.write(to: &output, indent: indent.map { $0 + 1 })
      }
      if let indent { output += "\n" + String(repeating: "  ", count: indent) }
      output += "]"
    case .object(let members):
      guard !members.isEmpty else {
        output += "{}"
        return
      }
      output += "{"
      for (position, (key, value)) in members.enumerated() {
        if position > 0 { output += "," }
        if let indent { output += "\n" + String(repeating: "  ", count: indent + 1) }
        JSONValue.writeString(key, to: &output)
        output += indent == nil ? ":" : ": "
        value.write(to: &output, indent: indent.map { $0 + 1 })
      }
      if let indent { output += "\n" + String(repeating: "  ", count: indent) }
      output += "}"
    }
  }

  static func writeString(_ text: String, to output: inout String) {
    output += "\""
    for scalar in text.unicodeScalars {
      switch scalar {
      case "\"": output += "\\\""
      case "\\": output += "\\\\"
      case "\n": output += "\\n"
      case "\r": output += "\\r"
      case "\t": output += "\\t"
      case "\u{08}": output += "\\b"
      case "\u{0C}": output += "\\f"
      default:
        if scalar.value < 0x20 {
          let hex = String(scalar.value, radix: 16)
          output += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        } else {
          output.unicodeScalars.append(scalar)
        }
      }
    }
    output += "\""
  }
}
