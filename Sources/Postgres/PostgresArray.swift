/// An array parameter: `elements` sent as one PostgreSQL array literal, for statements that take
/// a whole batch of values with one fixed SQL text (`unnest($1::text[], $2::bigint[])`), so the
/// server can reuse one prepared plan whatever the batch size.
///
/// The parameter's type is left to the server: cast it in the SQL (`$1::text[]`).
public struct PostgresArray<Element: PostgresEncodable>: PostgresEncodable {
  public var elements: [Element?]

  public init(_ elements: [Element?]) { self.elements = elements }
  public init(_ elements: [Element]) { self.elements = elements.map { $0 } }

  public static var postgresType: PostgresDataType { .unspecified }

  public var postgresBind: PostgresBind {
    var literal: [UInt8] = [UInt8(ascii: "{")]
    for (index, element) in elements.enumerated() {
      if index > 0 { literal.append(UInt8(ascii: ",")) }
      guard let bind = element?.postgresBind, let bytes = bind.bytes else {
        literal.append(contentsOf: "NULL".utf8)
        continue
      }
      literal.append(UInt8(ascii: "\""))
      switch bind.format {
      case .text:
        for byte in bytes {
          if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") { literal.append(UInt8(ascii: "\\")) }
          literal.append(byte)
        }
      case .binary:
        // Only bytea binds are binary; its text form is \x followed by hex digits.
        literal.append(contentsOf: "\\\\x".utf8)
        let digits = Array("0123456789abcdef".utf8)
        for byte in bytes {
          literal.append(digits[Int(byte >> 4)])
          literal.append(digits[Int(byte & 0x0F)])
        }
      }
      literal.append(UInt8(ascii: "\""))
    }
    literal.append(UInt8(ascii: "}"))
    return PostgresBind(type: .unspecified, bytes: literal, format: .text)
  }
}
