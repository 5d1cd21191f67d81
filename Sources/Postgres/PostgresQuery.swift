/// A SQL statement whose values travel separately from its text, as `$1`, `$2`, ... parameters.
///
/// Build one with string interpolation; every interpolated value becomes a parameter, so a value
/// can never be spliced into the SQL text:
///
/// ```swift
/// let rows = try await connection.query(
///   "SELECT id FROM payments WHERE client = \(client) AND amount > \(minimum)")
/// // sent as: SELECT id FROM payments WHERE client = $1 AND amount > $2
/// ```
///
/// Only string *literals* can contribute SQL text. To compose statements, append other queries
/// with ``append(_:)``: their parameters are renumbered.
public struct PostgresQuery: Sendable, Hashable, ExpressibleByStringInterpolation {
  /// The SQL text with `$n` placeholders.
  public private(set) var sql: String
  /// The parameter values, `binds[0]` being `$1`.
  public private(set) var binds: [PostgresBind]

  public init(stringLiteral value: StaticString) {
    self.sql = value.description
    self.binds = []
  }

  public init(stringInterpolation: StringInterpolation) {
    self.sql = stringInterpolation.sql
    self.binds = stringInterpolation.binds
  }

  /// Appends another query (text and parameters), renumbering its placeholders.
  public mutating func append(_ other: PostgresQuery) {
    let offset = binds.count
    sql += offset == 0 ? other.sql : Self.renumber(other.sql, by: offset)
    binds += other.binds
  }

  /// Shifts every `$n` placeholder outside of quoted text by `offset`.
  private static func renumber(_ sql: String, by offset: Int) -> String {
    var result = ""
    var iterator = sql.makeIterator()
    var pending: Character? = nil
    var quote: Character? = nil
    while let character = pending ?? iterator.next() {
      pending = nil
      if let open = quote {
        result.append(character)
        if character == open { quote = nil }
        continue
      }
      if character == "'" || character == "\"" {
        quote = character
        result.append(character)
        continue
      }
      guard character == "$" else {
        result.append(character)
        continue
      }
      var digits = ""
      while let next = iterator.next() {
        if next.isASCII, next.isNumber {
          digits.append(next)
        } else {
          pending = next
          break
        }
      }
      if let number = Int(digits) {
        result += "$\(number + offset)"
      } else {
        result += "$" + digits
      }
    }
    return result
  }

  public struct StringInterpolation: StringInterpolationProtocol, Sendable {
    var sql: String
    var binds: [PostgresBind]

    public init(literalCapacity: Int, interpolationCount: Int) {
      sql = ""
      sql.reserveCapacity(literalCapacity + interpolationCount * 3)
      binds = []
      binds.reserveCapacity(interpolationCount)
    }

    public mutating func appendLiteral(_ literal: StaticString) {
      sql += literal.description
    }

    /// Appends a value as the next `$n` parameter.
    public mutating func appendInterpolation(_ value: some PostgresEncodable) {
      binds.append(value.postgresBind)
      sql += "$\(binds.count)"
    }

    /// Appends a value that may be `NULL` as the next `$n` parameter.
    public mutating func appendInterpolation<Value: PostgresEncodable>(_ value: Value?) {
      binds.append(value?.postgresBind ?? .null(Value.postgresType))
      sql += "$\(binds.count)"
    }
  }
}

/// One parameter value as it is sent to the server.
public struct PostgresBind: Sendable, Hashable {
  /// How the value is represented on the wire.
  public enum Format: Sendable, Hashable {
    /// PostgreSQL's text representation.
    case text
    /// PostgreSQL's binary representation (used for `bytea`).
    case binary
  }

  /// The server-side type.
  public var type: PostgresDataType
  /// The encoded value; `nil` is SQL `NULL`.
  public var bytes: [UInt8]?
  /// The encoding of ``bytes``.
  public var format: Format

  public init(type: PostgresDataType, bytes: [UInt8]?, format: Format) {
    self.type = type
    self.bytes = bytes
    self.format = format
  }

  /// A text-format value.
  public static func text(_ string: String, _ type: PostgresDataType) -> PostgresBind {
    PostgresBind(type: type, bytes: Array(string.utf8), format: .text)
  }

  /// SQL `NULL` of the given type.
  public static func null(_ type: PostgresDataType) -> PostgresBind {
    PostgresBind(type: type, bytes: nil, format: .text)
  }
}

/// A PostgreSQL type, identified by its OID.
public struct PostgresDataType: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
  public let rawValue: UInt32
  public init(rawValue: UInt32) { self.rawValue = rawValue }

  /// Let the server infer the type from the statement.
  public static let unspecified = PostgresDataType(rawValue: 0)
  public static let bool = PostgresDataType(rawValue: 16)
  public static let bytea = PostgresDataType(rawValue: 17)
  public static let int8 = PostgresDataType(rawValue: 20)
  public static let int2 = PostgresDataType(rawValue: 21)
  public static let int4 = PostgresDataType(rawValue: 23)
  public static let text = PostgresDataType(rawValue: 25)
  public static let oid = PostgresDataType(rawValue: 26)
  public static let json = PostgresDataType(rawValue: 114)
  public static let float4 = PostgresDataType(rawValue: 700)
  public static let float8 = PostgresDataType(rawValue: 701)
  public static let bpchar = PostgresDataType(rawValue: 1042)
  public static let varchar = PostgresDataType(rawValue: 1043)
  public static let timestamp = PostgresDataType(rawValue: 1114)
  public static let timestamptz = PostgresDataType(rawValue: 1184)
  public static let numeric = PostgresDataType(rawValue: 1700)
  public static let uuid = PostgresDataType(rawValue: 2950)
  public static let jsonb = PostgresDataType(rawValue: 3802)
  public static let name = PostgresDataType(rawValue: 19)
  public static let textArray = PostgresDataType(rawValue: 1009)

  public var description: String {
    switch self {
    case .bool: "bool"
    case .bytea: "bytea"
    case .int8: "int8"
    case .int2: "int2"
    case .int4: "int4"
    case .text: "text"
    case .json: "json"
    case .float8: "float8"
    case .varchar: "varchar"
    case .timestamptz: "timestamptz"
    case .timestamp: "timestamp"
    case .numeric: "numeric"
    case .uuid: "uuid"
    case .jsonb: "jsonb"
    case .name: "name"
    default: "oid \(rawValue)"
    }
  }
}

extension PostgresQuery {
  /// A statement from SQL text that is *not* a literal. The text must come from the program
  /// itself (a migration file, a fixed fragment), never from input: values belong in `binds`.
  public init(unsafeSQL sql: String, binds: [PostgresBind] = []) {
    self.sql = sql
    self.binds = binds
  }
}
