/// How `.proto` names become Swift names.
enum SwiftNaming {
  /// `payments.v1` → `Payments_V1_`; the empty package → ``""``.
  static func typePrefix(package: String) -> String {
    guard !package.isEmpty else { return "" }
    return package.split(separator: ".").map { upperCamel(String($0)) }.joined(separator: "_") + "_"
  }

  /// `amount_minor` → `amountMinor`; `payment_id` → `paymentID`; keywords are escaped.
  static func propertyName(_ protoName: String) -> String {
    escape(lowerCamel(protoName))
  }

  /// `PAYMENT_STATUS_SUCCEEDED` in enum `PaymentStatus` → `succeeded`.
  static func enumCaseName(_ valueName: String, enumName: String, allValues: [String]) -> String {
    let prefix = upperSnake(enumName) + "_"
    var name = valueName
    if allValues.allSatisfy({ $0.hasPrefix(prefix) && $0.count > prefix.count }) {
      name = String(valueName.dropFirst(prefix.count))
    }
    var result = lowerCamel(name.lowercased())
    if let first = result.first, first.isNumber { result = "_" + result }
    return escape(result)
  }

  /// `my_type` → `MyType`; `v1` → `V1`.
  static func upperCamel(_ name: String) -> String {
    let camel = lowerCamel(name)
    guard let first = camel.first else { return camel }
    return first.uppercased() + camel.dropFirst()
  }

  /// Splits on underscores and case changes from lower to upper; words after the first start
  /// upper case, and the initialisms Swift writes in capitals (`ID`, `URL`, ...) are capitalised.
  static func lowerCamel(_ name: String) -> String {
    let words = name.split(separator: "_", omittingEmptySubsequences: true).map(String.init)
    var result = ""
    for (index, word) in words.enumerated() {
      if index == 0 {
        result += word.prefix(1).lowercased() + word.dropFirst()
      } else if initialisms.contains(word.lowercased()) {
        result += word.uppercased()
      } else {
        result += word.prefix(1).uppercased() + word.dropFirst()
      }
    }
    return result.isEmpty ? "_" : result
  }

  /// `PaymentStatus` → `PAYMENT_STATUS`.
  static func upperSnake(_ name: String) -> String {
    var result = ""
    for (index, character) in name.enumerated() {
      if character.isUppercase, index > 0 { result += "_" }
      result += character.uppercased()
    }
    return result
  }

  static let initialisms: Set<String> = ["id", "url", "uri", "http", "https", "json", "uuid", "api"]

  static func escape(_ name: String) -> String {
    if name == "self" || name == "Type" || name == "Protocol" { return name + "_" }
    return keywords.contains(name) ? "`\(name)`" : name
  }

  static let keywords: Set<String> = [
    "associatedtype", "class", "deinit", "enum", "extension", "fileprivate", "func", "import", "init",
    "inout", "internal", "let", "open", "operator", "private", "precedencegroup", "protocol", "public",
    "rethrows", "static", "struct", "subscript", "typealias", "var", "break", "case", "catch", "continue",
    "default", "defer", "do", "else", "fallthrough", "for", "guard", "if", "in", "repeat", "return",
    "throw", "switch", "where", "while", "Any", "as", "await", "false", "is", "nil", "super", "throws",
    "true", "try", "some", "any",
  ]

  /// The number of bytes `value` takes as a varint.
  static func varintSize(_ value: UInt64) -> Int {
    value == 0 ? 1 : (64 - value.leadingZeroBitCount + 6) / 7
  }

  /// A `.proto` comment as `///` lines with the given indentation.
  static func docComment(_ comment: String?, indent: String) -> String {
    guard let comment, !comment.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { return "" }
    var lines = comment.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    while lines.last?.trimmingCharacters(in: .whitespaces).isEmpty == true { lines.removeLast() }
    return lines.map { line in
      let text = line.hasPrefix(" ") ? String(line.dropFirst()) : line
      return text.isEmpty ? "\(indent)///\n" : "\(indent)/// \(text)\n"
    }.joined()
  }

  /// A Swift string literal for `text`.
  static func stringLiteral(_ text: String) -> String {
    var result = "\""
    for scalar in text.unicodeScalars {
      switch scalar {
      case "\"": result += "\\\""
      case "\\": result += "\\\\"
      case "\n": result += "\\n"
      case "\r": result += "\\r"
      case "\t": result += "\\t"
      default:
        if scalar.value < 0x20 {
          result += "\\u{\(String(scalar.value, radix: 16))}"
        } else {
          result.unicodeScalars.append(scalar)
        }
      }
    }
    return result + "\""
  }
}

extension String {
  func trimmingCharacters(in set: CharacterClass) -> String {
    var slice = Substring(self)
    while let first = slice.first, set.contains(first) { slice.removeFirst() }
    while let last = slice.last, set.contains(last) { slice.removeLast() }
    return String(slice)
  }
}

/// The two character classes the generator trims (no Foundation dependency).
enum CharacterClass {
  case whitespaces, whitespacesAndNewlines
  func contains(_ character: Character) -> Bool {
    switch self {
    case .whitespaces: character == " " || character == "\t"
    case .whitespacesAndNewlines: character.isWhitespace
    }
  }
}
