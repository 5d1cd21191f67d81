public import struct Foundation.Date
public import struct Foundation.UUID

/// A Swift value that can be sent as a statement parameter.
public protocol PostgresEncodable: Sendable {
  /// The server-side type the value is sent as.
  static var postgresType: PostgresDataType { get }
  /// The value in PostgreSQL's wire representation.
  var postgresBind: PostgresBind { get }
}

/// A Swift value that can be decoded from a column.
public protocol PostgresDecodable {
  /// Decodes a non-`NULL` column value (PostgreSQL's text representation).
  ///
  /// - Throws: ``PostgresError`` with code ``PostgresError/Code/decoding`` for a type mismatch or
  ///   a malformed value.
  init(postgresCell cell: PostgresCell) throws
}

/// One non-`NULL` column value of a row, in PostgreSQL's text representation.
public struct PostgresCell: Sendable {
  /// The column's type.
  public var type: PostgresDataType
  /// The column's name, for error messages.
  public var columnName: String
  /// The raw text bytes.
  public var bytes: ArraySlice<UInt8>

  public init(type: PostgresDataType, columnName: String, bytes: ArraySlice<UInt8>) {
    self.type = type
    self.columnName = columnName
    self.bytes = bytes
  }

  /// The value as UTF-8 text.
  public var text: String { String(decoding: bytes, as: UTF8.self) }

  /// Throws a decoding error unless the column is one of `types`.
  public func expect(_ types: PostgresDataType..., as swiftType: Any.Type) throws {
    guard types.contains(type) else {
      throw PostgresError(
        code: .decoding,
        message: "column \"\(columnName)\" has type \(type), which cannot be decoded as \(swiftType)")
    }
  }

  /// A decoding error for a value that does not parse.
  public func malformed(as swiftType: Any.Type) -> PostgresError {
    PostgresError(
      code: .decoding,
      message: "column \"\(columnName)\" holds \"\(text.prefix(64))\", which is not a valid \(swiftType)")
  }
}

// MARK: - Text

extension String: PostgresEncodable, PostgresDecodable {
  public static var postgresType: PostgresDataType { .text }
  public var postgresBind: PostgresBind { .text(self, .text) }
  public init(postgresCell cell: PostgresCell) throws {
    guard let string = String(validating: cell.bytes, as: UTF8.self) else {
      throw cell.malformed(as: String.self)
    }
    self = string
  }
}

// MARK: - Integers

extension Int64: PostgresEncodable, PostgresDecodable {
  public static var postgresType: PostgresDataType { .int8 }
  public var postgresBind: PostgresBind { .text(String(self), .int8) }
  public init(postgresCell cell: PostgresCell) throws {
    try cell.expect(.int2, .int4, .int8, .oid, as: Int64.self)
    guard let value = Int64(cell.text) else { throw cell.malformed(as: Int64.self) }
    self = value
  }
}

extension Int: PostgresEncodable, PostgresDecodable {
  public static var postgresType: PostgresDataType { .int8 }
  public var postgresBind: PostgresBind { .text(String(self), .int8) }
  public init(postgresCell cell: PostgresCell) throws {
    self = Int(try Int64(postgresCell: cell))
  }
}

extension Int32: PostgresEncodable, PostgresDecodable {
  public static var postgresType: PostgresDataType { .int4 }
  public var postgresBind: PostgresBind { .text(String(self), .int4) }
  public init(postgresCell cell: PostgresCell) throws {
    try cell.expect(.int2, .int4, as: Int32.self)
    guard let value = Int32(cell.text) else { throw cell.malformed(as: Int32.self) }
    self = value
  }
}

extension Int16: PostgresEncodable, PostgresDecodable {
  public static var postgresType: PostgresDataType { .int2 }
  public var postgresBind: PostgresBind { .text(String(self), .int2) }
  public init(postgresCell cell: PostgresCell) throws {
    try cell.expect(.int2, as: Int16.self)
    guard let value = Int16(cell.text) else { throw cell.malformed(as: Int16.self) }
    self = value
  }
}

// MARK: - Bool

extension Bool: PostgresEncodable, PostgresDecodable {
  public static var postgresType: PostgresDataType { .bool }
  public var postgresBind: PostgresBind { .text(self ? "t" : "f", .bool) }
  public init(postgresCell cell: PostgresCell) throws {
    try cell.expect(.bool, as: Bool.self)
    switch cell.bytes.first {
    case UInt8(ascii: "t"): self = true
    case UInt8(ascii: "f"): self = false
    default: throw cell.malformed(as: Bool.self)
    }
  }
}

// MARK: - Double (measurements only: money is never a floating-point number)

extension Double: PostgresEncodable, PostgresDecodable {
  public static var postgresType: PostgresDataType { .float8 }
  public var postgresBind: PostgresBind { .text(String(self), .float8) }
  public init(postgresCell cell: PostgresCell) throws {
    try cell.expect(.float4, .float8, .numeric, .int2, .int4, .int8, as: Double.self)
    guard let value = Double(cell.text) else { throw cell.malformed(as: Double.self) }
    self = value
  }
}

// MARK: - bytea

/// Raw bytes, stored as `bytea`.
extension [UInt8]: PostgresEncodable, PostgresDecodable {
  public static var postgresType: PostgresDataType { .bytea }
  public var postgresBind: PostgresBind {
    PostgresBind(type: .bytea, bytes: self, format: .binary)
  }
  public init(postgresCell cell: PostgresCell) throws {
    try cell.expect(.bytea, as: [UInt8].self)
    // The server sends bytea in hex format (`\x0a1b...`), the default since PostgreSQL 9.0.
    let bytes = cell.bytes
    guard bytes.count >= 2, bytes[bytes.startIndex] == UInt8(ascii: "\\"),
      bytes[bytes.startIndex + 1] == UInt8(ascii: "x"), bytes.count % 2 == 0
    else { throw cell.malformed(as: [UInt8].self) }
    var result = [UInt8]()
    result.reserveCapacity((bytes.count - 2) / 2)
    var index = bytes.startIndex + 2
    while index < bytes.endIndex {
      guard let high = hexValue(bytes[index]), let low = hexValue(bytes[index + 1]) else {
        throw cell.malformed(as: [UInt8].self)
      }
      result.append(high << 4 | low)
      index += 2
    }
    self = result
  }
}

private func hexValue(_ byte: UInt8) -> UInt8? {
  switch byte {
  case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
  case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
  case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
  default: nil
  }
}

// MARK: - uuid

extension UUID: PostgresEncodable, PostgresDecodable {
  public static var postgresType: PostgresDataType { .uuid }
  public var postgresBind: PostgresBind { .text(uuidString, .uuid) }
  public init(postgresCell cell: PostgresCell) throws {
    try cell.expect(.uuid, .text, .varchar, as: UUID.self)
    guard let value = UUID(uuidString: cell.text) else { throw cell.malformed(as: UUID.self) }
    self = value
  }
}

// MARK: - timestamptz

extension Date: PostgresEncodable, PostgresDecodable {
  public static var postgresType: PostgresDataType { .timestamptz }

  /// Sent as ISO 8601 in UTC with microseconds, PostgreSQL's own precision.
  public var postgresBind: PostgresBind {
    .text(PostgresTimestamp.format(self), .timestamptz)
  }

  /// Decodes `timestamptz`. Connections set `TimeZone=UTC` and `DateStyle=ISO`, so the server's
  /// text form is `YYYY-MM-DD HH:MM:SS[.ffffff]+00`.
  public init(postgresCell cell: PostgresCell) throws {
    try cell.expect(.timestamptz, as: Date.self)
    guard let date = PostgresTimestamp.parse(cell.bytes) else { throw cell.malformed(as: Date.self) }
    self = date
  }
}

/// Conversion between `Date` and PostgreSQL's ISO timestamp text, without `DateFormatter`
/// (which is slow and locale-dependent).
enum PostgresTimestamp {
  static func format(_ date: Date) -> String {
    let totalMicros = (date.timeIntervalSince1970 * 1_000_000).rounded()
    var micros = Int64(totalMicros)
    var seconds = micros >= 0 ? micros / 1_000_000 : (micros - 999_999) / 1_000_000
    micros -= seconds * 1_000_000
    let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
    seconds -= days * 86_400
    let (year, month, day) = civilFromDays(days)
    let hour = seconds / 3600
    let minute = (seconds % 3600) / 60
    let second = seconds % 60
    return
      "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(hour, 2)):\(pad(minute, 2)):\(pad(second, 2)).\(pad(micros, 6))Z"
  }

  static func parse(_ bytes: ArraySlice<UInt8>) -> Date? {
    var scanner = DigitScanner(bytes: bytes)
    guard let year = scanner.number(4), scanner.skip("-"),
      let month = scanner.number(2), scanner.skip("-"),
      let day = scanner.number(2), scanner.skip(" ") || scanner.skip("T"),
      let hour = scanner.number(2), scanner.skip(":"),
      let minute = scanner.number(2), scanner.skip(":"),
      let second = scanner.number(2)
    else { return nil }
    var micros: Int64 = 0
    if scanner.skip(".") {
      var digits = 0
      while let digit = scanner.digit() {
        if digits < 6 { micros = micros * 10 + Int64(digit) }
        digits += 1
      }
      guard digits > 0 else { return nil }
      for _ in digits..<max(digits, 6) { micros *= 10 }
    }
    var offsetSeconds: Int64 = 0
    if scanner.skip("Z") {
      offsetSeconds = 0
    } else if let sign = scanner.sign() {
      guard let offsetHours = scanner.number(2) else { return nil }
      var offsetMinutes: Int64 = 0
      if scanner.skip(":") {
        guard let value = scanner.number(2) else { return nil }
        offsetMinutes = value
      }
      offsetSeconds = sign * (offsetHours * 3600 + offsetMinutes * 60)
    }
    guard scanner.atEnd, (1...12).contains(month), (1...31).contains(day), hour < 24,
      minute < 60, second < 61
    else { return nil }
    let days = daysFromCivil(year, month, day)
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offsetSeconds
    return Date(timeIntervalSince1970: Double(seconds) + Double(micros) / 1_000_000)
  }

  private static func pad(_ value: Int64, _ width: Int) -> String {
    let digits = String(value)
    return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
  }

  // Howard Hinnant's days-from-civil algorithms (proleptic Gregorian calendar).
  static func daysFromCivil(_ y: Int64, _ m: Int64, _ d: Int64) -> Int64 {
    let year = m <= 2 ? y - 1 : y
    let era = (year >= 0 ? year : year - 399) / 400
    let yoe = year - era * 400
    let doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
    return era * 146_097 + doe - 719_468
  }

  static func civilFromDays(_ days: Int64) -> (Int64, Int64, Int64) {
    let z = days + 719_468
    let era = (z >= 0 ? z : z - 146_096) / 146_097
    let doe = z - era * 146_097
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
    let mp = (5 * doy + 2) / 153
    let d = doy - (153 * mp + 2) / 5 + 1
    let m = mp < 10 ? mp + 3 : mp - 9
    return (m <= 2 ? yoe + era * 400 + 1 : yoe + era * 400, m, d)
  }

  private struct DigitScanner {
    var bytes: ArraySlice<UInt8>
    var atEnd: Bool { bytes.isEmpty }

    mutating func digit() -> Int64? {
      guard let byte = bytes.first, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else {
        return nil
      }
      bytes.removeFirst()
      return Int64(byte - UInt8(ascii: "0"))
    }

    mutating func number(_ count: Int) -> Int64? {
      var value: Int64 = 0
      for _ in 0..<count {
        guard let digit = digit() else { return nil }
        value = value * 10 + digit
      }
      return value
    }

    mutating func skip(_ character: Unicode.Scalar) -> Bool {
      guard bytes.first == UInt8(ascii: character) else { return false }
      bytes.removeFirst()
      return true
    }

    mutating func sign() -> Int64? {
      if skip("+") { return 1 }
      if skip("-") { return -1 }
      return nil
    }
  }
}

// MARK: - jsonb

/// A JSON document stored as `jsonb`, kept as its text.
public struct PostgresJSONB: PostgresEncodable, PostgresDecodable, Hashable {
  /// The JSON text.
  public var json: String
  public init(json: String) { self.json = json }

  public static var postgresType: PostgresDataType { .jsonb }
  public var postgresBind: PostgresBind { .text(json, .jsonb) }
  public init(postgresCell cell: PostgresCell) throws {
    try cell.expect(.jsonb, .json, as: PostgresJSONB.self)
    json = cell.text
  }
}
