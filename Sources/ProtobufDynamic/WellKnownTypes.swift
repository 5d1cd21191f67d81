import ProtobufRuntime

/// The well-known types whose proto3 JSON form is not a plain object of their fields.
/// (`google.protobuf.Empty` is a plain object: `{}`.)
enum WellKnownType {
  case any, timestamp, duration, fieldMask, structure, value, listValue
  /// `DoubleValue`, `Int32Value`, ...: written as their bare `value`.
  case wrapper

  init?(_ type: MessageDescriptor) {
    switch type.fullName {
    case "google.protobuf.Any": self = .any
    case "google.protobuf.Timestamp": self = .timestamp
    case "google.protobuf.Duration": self = .duration
    case "google.protobuf.FieldMask": self = .fieldMask
    case "google.protobuf.Struct": self = .structure
    case "google.protobuf.Value": self = .value
    case "google.protobuf.ListValue": self = .listValue
    case "google.protobuf.DoubleValue", "google.protobuf.FloatValue", "google.protobuf.Int64Value",
      "google.protobuf.UInt64Value", "google.protobuf.Int32Value", "google.protobuf.UInt32Value",
      "google.protobuf.BoolValue", "google.protobuf.StringValue", "google.protobuf.BytesValue":
      self = .wrapper
    default: return nil
    }
  }

  static let valueType = "google.protobuf.Value"
  static let nullValueType = "google.protobuf.NullValue"

  /// The range RFC 3339 can express: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z.
  static let timestampSeconds: ClosedRange<Int64> = -62_135_596_800...253_402_300_799
  /// ±10 000 years, as the `Duration` documentation specifies.
  static let durationSeconds: ClosedRange<Int64> = -315_576_000_000...315_576_000_000

  /// The type name of an `Any`'s type URL: what follows the last `/`.
  static func typeName(ofURL url: String) -> String {
    url.lastIndex(of: "/").map { String(url[url.index(after: $0)...]) } ?? url
  }

  /// Whether `date` (`YYYY-MM-DD`, already checked for shape and ranges) names a day that
  /// exists: not February 30, nor February 29 outside leap years.
  static func isCalendarDate(_ date: Substring) -> Bool {
    let parts = date.split(separator: "-")
    guard parts.count == 3, let year = Int(parts[0]), let month = Int(parts[1]), let day = Int(parts[2])
    else {
      return false
    }
    let isLeap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
    let lengths = [31, isLeap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    return (1...12).contains(month) && (1...lengths[month - 1]).contains(day)
  }

  /// A `FieldMask` path in JSON (`fooBar.baz`) as a `.proto` path (`foo_bar.baz`).
  static func protoPath(_ jsonPath: Substring) -> String? {
    var result = ""
    for character in jsonPath {
      if character == "_" { return nil }
      if character.isASCII, character.isUppercase {
        result += "_" + character.lowercased()
      } else {
        result.append(character)
      }
    }
    return result
  }

  /// A `FieldMask` path (`foo_bar.baz`) in JSON (`fooBar.baz`); `nil` when it would not read
  /// back as the same path (upper-case letters, `_` not followed by a lower-case letter).
  static func jsonPath(_ protoPath: String) -> String? {
    var result = ""
    var afterUnderscore = false
    for character in protoPath {
      if character.isASCII, character.isUppercase { return nil }
      if afterUnderscore {
        guard character.isASCII, character.isLowercase else { return nil }
        result += character.uppercased()
        afterUnderscore = false
      } else if character == "_" {
        afterUnderscore = true
      } else {
        result.append(character)
      }
    }
    return afterUnderscore ? nil : result
  }
}

extension JSONValue {
  /// "a string", "an object", ... for error messages.
  var kindDescription: String {
    switch self {
    case .null: "null"
    case .bool: "a boolean"
    case .number: "a number"
    case .string: "a string"
    case .array: "an array"
    case .object: "an object"
    }
  }

  /// The value of member `name` of an object.
  func member(_ name: String) -> JSONValue? {
    guard case .object(let members) = self else { return nil }
    return members.first { $0.0 == name }?.1
  }
}
