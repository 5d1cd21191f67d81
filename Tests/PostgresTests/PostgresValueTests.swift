import Foundation
import PaymentsTestSupport
import Postgres
import Testing

@Suite("PostgreSQL values")
struct PostgresValueTests {
  @Test("every supported type round-trips through the server, NULLs included")
  func roundTrip() async throws {
    let connection = try await makeConnection()
    defer { Task { await connection.close() } }

    let text = "héllo wörld ✓ 日本語 🎉 'quoted' \"double\" \\backslash $1"
    let bytes: [UInt8] = [0, 1, 0x5c, 0x78, 127, 128, 255]
    let uuid = UUID()
    let date = Date(timeIntervalSince1970: 1_795_000_000.123456)
    let json = PostgresJSONB(json: #"{"a": [1, "ü", null], "b": {"c": true}}"#)

    let row = try #require(
      try await connection.query(
        """
        SELECT \(text), \(Int64.max), \(Int64.min), \(Int32.min), \(Int16.max), \(true), \(false),
               \(bytes), \([UInt8]()), \(uuid), \(date), \(json), \(0.1 as Double), \(42 as Int)
        """
      ).singleRow())
    #expect(try row.decode(String.self, at: 0) == text)
    #expect(try row.decode(Int64.self, at: 1) == Int64.max)
    #expect(try row.decode(Int64.self, at: 2) == Int64.min)
    #expect(try row.decode(Int32.self, at: 3) == Int32.min)
    #expect(try row.decode(Int16.self, at: 4) == Int16.max)
    #expect(try row.decode(Bool.self, at: 5) == true)
    #expect(try row.decode(Bool.self, at: 6) == false)
    #expect(try row.decode([UInt8].self, at: 7) == bytes)
    #expect(try row.decode([UInt8].self, at: 8) == [])
    #expect(try row.decode(UUID.self, at: 9) == uuid)
    let decodedDate = try row.decode(Date.self, at: 10)
    #expect(abs(decodedDate.timeIntervalSince1970 - date.timeIntervalSince1970) < 0.000_001)
    #expect(try row.decode(PostgresJSONB.self, at: 11) == json)
    #expect(try row.decode(Double.self, at: 12) == 0.1)
    #expect(try row.decode(Int.self, at: 13) == 42)

    let nulls = try #require(
      try await connection.query(
        """
        SELECT \(String?.none), \(Int64?.none), \(Bool?.none), \([UInt8]?.none), \(UUID?.none),
               \(Date?.none), \(PostgresJSONB?.none)
        """
      ).singleRow())
    #expect(try nulls.decode(String?.self, at: 0) == nil)
    #expect(try nulls.decode(Int64?.self, at: 1) == nil)
    #expect(try nulls.decode(Bool?.self, at: 2) == nil)
    #expect(try nulls.decode([UInt8]?.self, at: 3) == nil)
    #expect(try nulls.decode(UUID?.self, at: 4) == nil)
    #expect(try nulls.decode(Date?.self, at: 5) == nil)
    #expect(try nulls.decode(PostgresJSONB?.self, at: 6) == nil)
    #expect(nulls.isNull(at: 0))
    // A NULL never silently decodes into a non-optional.
    #expect(throws: PostgresError.self) { try nulls.decode(String.self, at: 0) }
  }

  @Test("values stored in a table come back unchanged, by column name")
  func tableRoundTrip() async throws {
    let connection = try await makeConnection()
    defer { Task { await connection.close() } }
    try await connection.query(
      """
      CREATE TABLE sample (id uuid PRIMARY KEY, name text, amount bigint NOT NULL, ok boolean,
                           blob bytea, at timestamptz, doc jsonb)
      """)
    let id = UUID()
    let at = Date(timeIntervalSince1970: 86_400 * 365 * 30 + 0.5)
    let inserted = try await connection.execute(
      """
      INSERT INTO sample (id, name, amount, ok, blob, at, doc)
      VALUES (\(id), \("Zoë"), \(Int64(1234)), \(Bool?.none), \([UInt8]([9, 8, 7])), \(at), \(PostgresJSONB(json: "[]")))
      """)
    #expect(inserted == 1)
    let row = try #require(try await connection.query("SELECT * FROM sample WHERE id = \(id)").singleRow())
    #expect(try row.decode(UUID.self, column: "id") == id)
    #expect(try row.decode(String.self, column: "name") == "Zoë")
    #expect(try row.decode(Int64.self, column: "amount") == 1234)
    #expect(try row.decode(Bool?.self, column: "ok") == nil)
    #expect(try row.decode([UInt8].self, column: "blob") == [9, 8, 7])
    #expect(try row.decode(Date.self, column: "at") == at)
    #expect(try row.decode(PostgresJSONB.self, column: "doc").json == "[]")
  }

  @Test("decoding into the wrong type is a typed error that names the column")
  func typeMismatch() async throws {
    let connection = try await makeConnection()
    defer { Task { await connection.close() } }
    let row = try #require(try await connection.query("SELECT 'abc'::text AS label").singleRow())
    let error = try #require(throws: PostgresError.self) { try row.decode(Int64.self, column: "label") }
    #expect(error.code == .decoding)
    #expect(error.message.contains("label"))
  }

  @Test("a value is never spliced into SQL text")
  func injectionIsInert() async throws {
    let connection = try await makeConnection()
    defer { Task { await connection.close() } }
    try await connection.query("CREATE TABLE victims (name text)")
    let hostile = "x'); DROP TABLE victims; --"
    let query: PostgresQuery = "INSERT INTO victims (name) VALUES (\(hostile))"
    #expect(query.sql == "INSERT INTO victims (name) VALUES ($1)")
    try await connection.query(query)
    let row = try #require(try await connection.query("SELECT name FROM victims").singleRow())
    #expect(try row.decode(String.self, at: 0) == hostile)
  }

  @Test("text with a NUL character is refused instead of truncated")
  func nulCharacter() async throws {
    let connection = try await makeConnection()
    defer { Task { await connection.close() } }
    let error = try await #require(throws: PostgresError.self) {
      try await connection.query("SELECT \("a\u{0}b")")
    }
    #expect(error.code == .invalidUsage)
    #expect(try await connection.query("SELECT 1").count == 1)
  }

  @Test("appended queries renumber their parameters")
  func appendRenumbers() {
    var query: PostgresQuery = "SELECT * FROM t WHERE a = \(1) AND b = '$1'"
    query.append(" AND c = \(2) AND d = \("x")")
    #expect(query.sql == "SELECT * FROM t WHERE a = $1 AND b = '$1' AND c = $2 AND d = $3")
    #expect(query.binds.count == 3)
  }

  @Test(
    "timestamps format and parse at microsecond precision",
    arguments: [0.0, -1.5, 1_795_000_000.123456, 951_782_400.000001, -62_135_596_800.0])
  func timestampCodec(seconds: Double) throws {
    let date = Date(timeIntervalSince1970: seconds)
    let bind = date.postgresBind
    let text = String(decoding: bind.bytes ?? [], as: UTF8.self)
    let parsed = try Date(
      postgresCell: PostgresCell(
        type: .timestamptz, columnName: "t",
        bytes: ArraySlice(text.replacingOccurrences(of: "T", with: " ").utf8)))
    #expect(abs(parsed.timeIntervalSince1970 - seconds) < 0.000_001)
  }
}

@Suite("test harness")
struct TestHarnessTests {
  @Test(
    "a fresh test database is addressed in both connection-string forms",
    arguments: [
      (
        "host=127.0.0.1 port=5 user=postgres dbname=postgres",
        "host=127.0.0.1 port=5 user=postgres dbname=postgres dbname=t1"
      ),
      (
        "postgresql://postgres@127.0.0.1:5/postgres?sslmode=disable",
        "postgresql://postgres@127.0.0.1:5/t1?sslmode=disable"
      ),
      ("postgresql://postgres@127.0.0.1:5", "postgresql://postgres@127.0.0.1:5/t1"),
      ("postgres://u:p@h/db", "postgres://u:p@h/t1"),
    ])
  func databaseSwitch(input: String, expected: String) {
    #expect(TestPostgres.connectionString(input, database: "t1") == expected)
  }
}

@Suite("test harness isolation")
struct TestHarnessIsolationTests {
  @Test("each test gets its own database, not the cluster's default one")
  func ownDatabase() async throws {
    let connection = try await makeConnection()
    let name = try #require(try await connection.query("SELECT current_database()").singleRow())
      .decode(String.self, at: 0)
    #expect(name.hasPrefix("test_"))
    await connection.close()
  }
}
