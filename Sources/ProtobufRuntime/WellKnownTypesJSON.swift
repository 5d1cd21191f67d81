// The special JSON forms of the well-known types (proto3 JSON mapping). Their messages are
// generated (WellKnownTypes/); the JSON conformances are written here.

extension Google_Protobuf_Timestamp: ProtobufJSONMessage {
  /// RFC 3339 in UTC with 0, 3, 6 or 9 fractional digits, e.g. `2026-11-29T10:44:35.120Z`.
  public func jsonValue(options: JSONEncodingOptions) -> JSONValue {
    let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
    let secondOfDay = seconds - days * 86_400
    let (year, month, day) = CivilDate.fromDays(days)
    let time =
      "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(secondOfDay / 3600, 2)):"
      + "\(pad(secondOfDay % 3600 / 60, 2)):\(pad(secondOfDay % 60, 2))"
    return .string(time + fractionalSeconds(nanos) + "Z")
  }

  public init(jsonValue: JSONValue, options: JSONDecodingOptions) throws(ProtobufJSONError) {
    self.init()
    guard !jsonValue.isNull else { return }
    let text = try jsonValue.string()
    let bytes = Array(text.utf8)
    var index = 0
    func number(_ digits: Int) throws(ProtobufJSONError) -> Int64 {
      guard index + digits <= bytes.count else {
        throw ProtobufJSONError("\"\(text)\" is not an RFC 3339 timestamp")
      }
      var value: Int64 = 0
      for _ in 0..<digits {
        let byte = bytes[index]
        guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else {
          throw ProtobufJSONError("\"\(text)\" is not an RFC 3339 timestamp")
        }
        value = value * 10 + Int64(byte - UInt8(ascii: "0"))
        index += 1
      }
      return value
    }
    func separator(_ expected: Character) throws(ProtobufJSONError) {
      guard index < bytes.count, Character(Unicode.Scalar(bytes[index])) == expected else {
        throw ProtobufJSONError("\"\(text)\" is not an RFC 3339 timestamp")
      }
      index += 1
    }
    let year = try number(4)
    try separator("-")
    let month = try number(2)
    try separator("-")
    let day = try number(2)
    guard index < bytes.count, bytes[index] == UInt8(ascii: "T") || bytes[index] == UInt8(ascii: "t") else {
      throw ProtobufJSONError("\"\(text)\" is not an RFC 3339 timestamp")
    }
    index += 1
    let hour = try number(2)
    try separator(":")
    let minute = try number(2)
    try separator(":")
    let second = try number(2)
    var nanos: Int64 = 0
    if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
      index += 1
      var digits = 0
      while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) {
        guard digits < 9 else { throw ProtobufJSONError("\"\(text)\": more than 9 fractional digits") }
        nanos = nanos * 10 + Int64(bytes[index] - UInt8(ascii: "0"))
        digits += 1
        index += 1
      }
      guard digits > 0 else { throw ProtobufJSONError("\"\(text)\" is not an RFC 3339 timestamp") }
      for _ in digits..<9 { nanos *= 10 }
    }
    var offset: Int64 = 0
    guard index < bytes.count else { throw ProtobufJSONError("\"\(text)\" has no time zone") }
    switch bytes[index] {
    case UInt8(ascii: "Z"), UInt8(ascii: "z"):
      index += 1
    case UInt8(ascii: "+"), UInt8(ascii: "-"):
      let sign: Int64 = bytes[index] == UInt8(ascii: "-") ? -1 : 1
      index += 1
      let offsetHours = try number(2)
      try separator(":")
      offset = sign * (offsetHours * 3600 + (try number(2)) * 60)
    default:
      throw ProtobufJSONError("\"\(text)\" has no time zone")
    }
    guard index == bytes.count, (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60,
      second < 60, (1...9999).contains(year)
    else { throw ProtobufJSONError("\"\(text)\" is not a valid timestamp") }
    seconds = CivilDate.toDays(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset
    self.nanos = Int32(nanos)
  }
}

extension Google_Protobuf_Duration: ProtobufJSONMessage {
  /// Seconds with 0, 3, 6 or 9 fractional digits and an `s`, e.g. `1.5s`, `-0.001s`.
  public func jsonValue(options: JSONEncodingOptions) -> JSONValue {
    let negative = seconds < 0 || nanos < 0
    let text = "\(negative ? "-" : "")\(seconds.magnitude)\(fractionalSeconds(Int32(nanos.magnitude)))s"
    return .string(text)
  }

  public init(jsonValue: JSONValue, options: JSONDecodingOptions) throws(ProtobufJSONError) {
    self.init()
    guard !jsonValue.isNull else { return }
    var text = Substring(try jsonValue.string())
    guard text.hasSuffix("s") else {
      throw ProtobufJSONError("\"\(text)\" is not a duration (expected e.g. \"1.5s\")")
    }
    text.removeLast()
    let negative = text.hasPrefix("-")
    if negative { text.removeFirst() }
    let parts = text.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
    guard let whole = Int64(parts[0]), whole >= 0, !parts[0].hasPrefix("+") else {
      throw ProtobufJSONError("\"\(text)s\" is not a duration")
    }
    var fraction: Int64 = 0
    if parts.count == 2 {
      guard (1...9).contains(parts[1].count), let digits = Int64(parts[1]), digits >= 0 else {
        throw ProtobufJSONError("\"\(text)s\" is not a duration")
      }
      fraction = digits
      for _ in parts[1].count..<9 { fraction *= 10 }
    }
    guard whole <= 315_576_000_000 else { throw ProtobufJSONError("\"\(text)s\" is out of range") }
    seconds = negative ? -whole : whole
    nanos = Int32(negative ? -fraction : fraction)
  }
}

extension Google_Protobuf_Empty: ProtobufJSONMessage {
  public func jsonValue(options: JSONEncodingOptions) -> JSONValue { .object([]) }
  public init(jsonValue: JSONValue, options: JSONDecodingOptions) throws(ProtobufJSONError) {
    self.init()
    guard !jsonValue.isNull else { return }
    let members = try Self.jsonMembers(jsonValue)
    if !members.isEmpty, !options.ignoreUnknownFields {
      throw ProtobufJSONError("google.protobuf.Empty has no fields")
    }
  }
}

// Wrappers are written as their bare value.
extension Google_Protobuf_DoubleValue: ProtobufJSONMessage {
  public func jsonValue(options: JSONEncodingOptions) -> JSONValue { .double(value) }
  public init(jsonValue: JSONValue, options: JSONDecodingOptions) throws(ProtobufJSONError) {
    self.init()
    value = try jsonValue.double()
  }
}
extension Google_Protobuf_FloatValue: ProtobufJSONMessage {
  public func jsonValue(options: JSONEncodingOptions) -> JSONValue { .float(value) }
  public init(jsonValue: JSONValue, options: JSONDecodingOptions) throws(ProtobufJSONError) {
    self.init()
    value = try jsonValue.float()
  }
}
extension Google_Protobuf_Int64Value: ProtobufJSONMessage {
  public func jsonValue(options: JSONEncodingOptions) -> JSONValue { .int64(value) }
  public init(jsonValue: JSONValue, options: JSONDecodingOptions) throws(ProtobufJSONError) {
    self.init()
    value = try jsonValue.int64()
  }
}
extension Google_Protobuf_UInt64Value: ProtobufJSONMessage {
  public func jsonValue(options: JSONEncodingOptions) -> JSONValue { .uint64(value) }
  public init(jsonValue: JSONValue, options: JSONDecodingOptions) throws(ProtobufJSONError) {
    self.init()
    value = try jsonValue.uint64()
  }
}
extension Google_Protobuf_Int32Value: ProtobufJSONMessage {
  public func jsonValue(options: JSONEncodingOptions) -> JSONValue { .int32(value) }
  public init(jsonValue: JSONValue, options: JSONDecodingOptions) throws(ProtobufJSONError) {
    self.init()
    value = try jsonValue.int32()
  }
}
extension Google_Protobuf_UInt32Value: ProtobufJSONMessage {
  public func jsonValue(options: JSONEncodingOptions) -> JSONValue { .uint32(value) }
  public init(jsonValue: JSONValue, options: JSONDecodingOptions) throws(ProtobufJSONError) {
    self.init()
    value = try jsonValue.uint32()
  }
}
extension Google_Protobuf_BoolValue: ProtobufJSONMessage {
  public func jsonValue(options: JSONEncodingOptions) -> JSONValue { .bool(value) }
  public init(jsonValue: JSONValue, options: JSONDecodingOptions) throws(ProtobufJSONError) {
    self.init()
    value = try jsonValue.bool()
  }
}
extension Google_Protobuf_StringValue: ProtobufJSONMessage {
  public func jsonValue(options: JSONEncodingOptions) -> JSONValue { .string(value) }
  public init(jsonValue: JSONValue, options: JSONDecodingOptions) throws(ProtobufJSONError) {
    self.init()
    value = try jsonValue.string()
  }
}
extension Google_Protobuf_BytesValue: ProtobufJSONMessage {
  public func jsonValue(options: JSONEncodingOptions) -> JSONValue { .bytes(value) }
  public init(jsonValue: JSONValue, options: JSONDecodingOptions) throws(ProtobufJSONError) {
    self.init()
    value = try jsonValue.bytes()
  }
}

/// `.000`, `.000001`, `.000000001` or nothing, as the JSON mapping prescribes.
private func fractionalSeconds(_ nanos: Int32) -> String {
  guard nanos != 0 else { return "" }
  if nanos % 1_000_000 == 0 { return "." + pad(Int64(nanos / 1_000_000), 3) }
  if nanos % 1000 == 0 { return "." + pad(Int64(nanos / 1000), 6) }
  return "." + pad(Int64(nanos), 9)
}

private func pad(_ value: Int64, _ width: Int) -> String {
  let digits = String(value)
  return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
}

/// Proleptic Gregorian calendar arithmetic (Howard Hinnant's algorithms).
enum CivilDate {
  static func toDays(_ y: Int64, _ m: Int64, _ d: Int64) -> Int64 {
    let year = m <= 2 ? y - 1 : y
    let era = (year >= 0 ? year : year - 399) / 400
    let yearOfEra = year - era * 400
    let dayOfYear = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1
    let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
    return era * 146_097 + dayOfEra - 719_468
  }

  static func fromDays(_ days: Int64) -> (Int64, Int64, Int64) {
    let z = days + 719_468
    let era = (z >= 0 ? z : z - 146_096) / 146_097
    let dayOfEra = z - era * 146_097
    let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
    let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
    let mp = (5 * dayOfYear + 2) / 153
    let day = dayOfYear - (153 * mp + 2) / 5 + 1
    let month = mp < 10 ? mp + 3 : mp - 9
    return (month <= 2 ? yearOfEra + era * 400 + 1 : yearOfEra + era * 400, month, day)
  }
}
