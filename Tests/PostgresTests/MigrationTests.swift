import Foundation
import PaymentsSchema
import PaymentsTestSupport
import Postgres
import Testing

@Suite("Migrations")
struct MigrationTests {
  /// Non-idempotent on purpose: applying either migration twice fails or double-counts.
  static let sample = [
    PostgresMigration(
      schema: "sample", version: 1, name: "create",
      sql: "CREATE SCHEMA sample; CREATE TABLE sample.applications (n int NOT NULL);"),
    PostgresMigration(
      schema: "sample", version: 2, name: "count",
      sql: "INSERT INTO sample.applications VALUES (1); ALTER TABLE sample.applications ADD COLUMN note text;"
    ),
  ]

  @Test("three runners migrating concurrently apply each version exactly once")
  func concurrentRunners() async throws {
    let url = try await TestPostgres.shared.makeDatabase()
    let applied = try await withThrowingTaskGroup(of: Int.self) { group in
      for _ in 0..<3 {
        group.addTask {
          let pool = PostgresConnectionPool(
            connectionString: url, maximumConnections: 1, logger: quietLogger("m"))
          let applied = try await PostgresMigrator(pool: pool, logger: quietLogger("m"))
            .migrate(Self.sample + PaymentsMigrations.all)
          await pool.close()
          return applied.count
        }
      }
      return try await group.reduce(0, +)
    }
    let expected = Self.sample.count + PaymentsMigrations.all.count
    #expect(applied == expected, "between them the runners applied every migration once")
    let pool = PostgresConnectionPool(connectionString: url, maximumConnections: 1, logger: quietLogger("m"))
    let rows = try await pool.query("SELECT count(*) FROM sample.applications")
    #expect(try rows[0].decode(Int.self, at: 0) == 1)
    let recorded = try await pool.query(
      "SELECT schema_name, count(*) FROM public.schema_migrations GROUP BY schema_name ORDER BY schema_name")
    let counts = try Dictionary(
      uniqueKeysWithValues: recorded.map {
        (try $0.decode(String.self, at: 0), try $0.decode(Int.self, at: 1))
      })
    var expectedCounts = Dictionary(grouping: PaymentsMigrations.all, by: \.schema).mapValues(\.count)
    expectedCounts["sample"] = 2
    #expect(counts == expectedCounts)
    let schemas = try await pool.query(
      "SELECT nspname FROM pg_namespace WHERE nspname IN ('command', 'dispatcher', 'query') ORDER BY 1")
    #expect(try schemas.map { try $0.decode(String.self, at: 0) } == ["command", "dispatcher", "query"])
    await pool.close()
  }

  @Test("a migration edited after it was applied is detected")
  func editedMigration() async throws {
    let pool = try await makePool(maximumConnections: 1)
    let migrator = PostgresMigrator(pool: pool, logger: quietLogger("m"))
    try await migrator.migrate(Self.sample)
    var edited = Self.sample
    edited[1].sql += " -- changed"
    let error = try await #require(throws: PostgresError.self) { try await migrator.migrate(edited) }
    #expect(error.message.contains("changed after it was applied"))
    #expect(try await migrator.migrate(Self.sample).isEmpty)
    await pool.close()
  }

  @Test("a failing migration is rolled back entirely and not recorded")
  func failingMigration() async throws {
    let pool = try await makePool(maximumConnections: 1)
    let broken = PostgresMigration(
      schema: "broken", version: 1, name: "half", sql: "CREATE TABLE half_done (n int); SELECT 1/0;")
    await #expect(throws: PostgresError.self) {
      try await PostgresMigrator(pool: pool, logger: quietLogger("m")).migrate([broken])
    }
    let exists = try await pool.query("SELECT to_regclass('public.half_done') IS NOT NULL")
    #expect(try exists[0].decode(Bool.self, at: 0) == false)
    await pool.close()
  }

  @Test("every SQL file in Migrations/ is listed, with the version its name says")
  func everyFileIsListed() throws {
    let root = URL(fileURLWithPath: #filePath)
      .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
      .appendingPathComponent("Sources/PaymentsSchema/Migrations")
    let schemas = try FileManager.default.contentsOfDirectory(atPath: root.path).sorted()
    #expect(schemas == ["auth", "command", "dispatcher", "query"])
    for schema in schemas {
      let files = try FileManager.default.contentsOfDirectory(
        atPath: root.appendingPathComponent(schema).path
      ).filter { $0.hasSuffix(".sql") }.sorted()
      let listed = try #require(PaymentsMigrations.forSchema(schema))
      #expect(files.count == listed.count, "\(schema): \(files) vs \(listed.map(\.version))")
      for (file, migration) in zip(files, listed) {
        let version = Int(file.split(separator: "_")[1])
        #expect(version == migration.version, "\(file)")
        let contents = try String(
          contentsOf: root.appendingPathComponent(schema).appendingPathComponent(file), encoding: .utf8)
        #expect(contents == migration.sql, "\(file) is embedded as written")
      }
    }
  }
}
