public import Postgres

/// The versioned schema migrations of the three services, embedded in the binary.
///
/// Each service owns one schema (`command`, `dispatcher`, `query`). Its migrations are the SQL
/// files in `Migrations/<schema>/`, named `<schema>_<version>_<description>.sql`; add a file and
/// list it in ``all`` (a test checks that every file is listed).
public enum PaymentsMigrations {
  /// Every migration of every schema.
  public static let all: [PostgresMigration] = command + dispatcher + query

  /// The command service's schema.
  public static let command: [PostgresMigration] = [
    migration("command", 1, "create schema", PackageResources.command_0001_create_schema_sql)
  ]

  /// The dispatcher's schema.
  public static let dispatcher: [PostgresMigration] = [
    migration("dispatcher", 1, "create schema", PackageResources.dispatcher_0001_create_schema_sql)
  ]

  /// The query service's schema.
  public static let query: [PostgresMigration] = [
    migration("query", 1, "create schema", PackageResources.query_0001_create_schema_sql)
  ]

  /// The migrations of one schema, by name.
  public static func forSchema(_ schema: String) -> [PostgresMigration]? {
    switch schema {
    case "command": command
    case "dispatcher": dispatcher
    case "query": query
    default: nil
    }
  }

  private static func migration(_ schema: String, _ version: Int, _ name: String, _ bytes: [UInt8])
    -> PostgresMigration
  {
    PostgresMigration(
      schema: schema, version: version, name: name, sql: String(decoding: bytes, as: UTF8.self))
  }
}
