/// The complete result of a statement: its rows (fully received) and the affected-row count.
public struct PostgresRows: Sendable, RandomAccessCollection {
  /// The result columns, in order.
  public let columns: [PostgresColumn]
  /// For `INSERT`, `UPDATE`, `DELETE`, `MERGE`, `SELECT`, `COPY`: the number of rows affected.
  public let affectedRows: Int
  /// The server's command tag, for example `INSERT 0 1` or `COMMIT`.
  public let commandTag: String
  let storage: [PostgresRow]

  public var startIndex: Int { storage.startIndex }
  public var endIndex: Int { storage.endIndex }
  public subscript(position: Int) -> PostgresRow { storage[position] }

  /// The only row, or `nil` when there is none.
  ///
  /// - Throws: ``PostgresError`` (``PostgresError/Code/invalidUsage``) when there is more than one.
  public func singleRow() throws -> PostgresRow? {
    guard storage.count <= 1 else {
      throw PostgresError(
        code: .invalidUsage, message: "expected at most one row, got \(storage.count)")
    }
    return storage.first
  }
}

/// A result column.
public struct PostgresColumn: Sendable, Hashable {
  /// The column's name (or alias).
  public let name: String
  /// The column's type.
  public let type: PostgresDataType
}

/// One row of a result. Values are decoded on access, by position or by column name.
public struct PostgresRow: Sendable {
  let columns: [PostgresColumn]
  /// Each column's text bytes; `nil` is SQL `NULL`.
  let values: [ArraySlice<UInt8>?]

  /// The number of columns.
  public var count: Int { values.count }

  /// Decodes the value at `index` (0-based); `NULL` decodes only into an optional type.
  public func decode<Value: PostgresDecodable>(_ type: Value.Type = Value.self, at index: Int)
    throws -> Value
  {
    guard values.indices.contains(index) else {
      throw PostgresError(
        code: .invalidUsage, message: "column index \(index) out of range (row has \(count) columns)")
    }
    guard let bytes = values[index] else {
      throw PostgresError(
        code: .decoding,
        message: "column \"\(columns[index].name)\" is NULL; decode it as \(Value.self)? instead")
    }
    return try Value(
      postgresCell: PostgresCell(type: columns[index].type, columnName: columns[index].name, bytes: bytes))
  }

  /// Decodes the value at `index`, mapping `NULL` to `nil`.
  public func decode<Value: PostgresDecodable>(_ type: Value?.Type = Value?.self, at index: Int)
    throws -> Value?
  {
    guard values.indices.contains(index) else {
      throw PostgresError(
        code: .invalidUsage, message: "column index \(index) out of range (row has \(count) columns)")
    }
    guard values[index] != nil else { return nil }
    return try decode(Value.self, at: index)
  }

  /// Decodes the value of the column called `name`.
  public func decode<Value: PostgresDecodable>(_ type: Value.Type = Value.self, column name: String)
    throws -> Value
  {
    try decode(Value.self, at: try index(of: name))
  }

  /// Decodes the value of the column called `name`, mapping `NULL` to `nil`.
  public func decode<Value: PostgresDecodable>(_ type: Value?.Type = Value?.self, column name: String)
    throws -> Value?
  {
    try decode(Value?.self, at: try index(of: name))
  }

  /// True when the value at `index` is SQL `NULL`.
  public func isNull(at index: Int) -> Bool { values.indices.contains(index) && values[index] == nil }

  private func index(of name: String) throws -> Int {
    guard let index = columns.firstIndex(where: { $0.name == name }) else {
      throw PostgresError(code: .invalidUsage, message: "result has no column \"\(name)\"")
    }
    return index
  }
}
