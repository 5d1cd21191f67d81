public import Postgres

/// The versioned schema migrations of the three services, embedded in the binary.
///
/// Each service owns one schema (`command`, `dispatcher`, `query`); `auth` holds the API keys
/// that the command and query services read and `payments keys` writes. Its migrations are the SQL
/// files in `Migrations/<schema>/`, named `<schema>_<version>_<description>.sql`; add a file and
/// list it in ``all`` (a test checks that every file is listed).
public enum PaymentsMigrations {
  /// Every migration of every schema.
  public static let all: [PostgresMigration] = auth + command + dispatcher + query

  /// API keys.
  public static let auth: [PostgresMigration] = [
    migration("auth", 1, "api keys", PackageResources.auth_0001_api_keys_sql)
  ]

  /// The command service's schema.
  public static let command: [PostgresMigration] = [
    migration("command", 1, "create schema", PackageResources.command_0001_create_schema_sql),
    migration(
      "command", 2, "payments and outbox", PackageResources.command_0002_payments_and_outbox_sql),
    migration(
      "command", 3, "outbox dead letters", PackageResources.command_0003_outbox_dead_letters_sql),
    migration("command", 4, "retention", PackageResources.command_0004_retention_sql),
  ]

  /// The dispatcher's schema.
  public static let dispatcher: [PostgresMigration] = [
    migration("dispatcher", 1, "create schema", PackageResources.dispatcher_0001_create_schema_sql),
    migration("dispatcher", 2, "rate limits", PackageResources.dispatcher_0002_rate_limits_sql),
    migration("dispatcher", 3, "work and outbox", PackageResources.dispatcher_0003_work_and_outbox_sql),
    migration("dispatcher", 4, "rate limit calls", PackageResources.dispatcher_0004_rate_limit_calls_sql),
    migration("dispatcher", 5, "fenced leases", PackageResources.dispatcher_0005_fenced_leases_sql),
    migration("dispatcher", 6, "dead letters", PackageResources.dispatcher_0006_dead_letters_sql),
    migration("dispatcher", 7, "retention", PackageResources.dispatcher_0007_retention_sql),
    migration(
      "dispatcher", 8, "rate limit function", PackageResources.dispatcher_0008_rate_limit_function_sql),
    migration("dispatcher", 9, "cancellation", PackageResources.dispatcher_0009_cancellation_sql),
    migration("dispatcher", 10, "refunds", PackageResources.dispatcher_0010_refunds_sql),
  ]

  /// The query service's schema.
  public static let query: [PostgresMigration] = [
    migration("query", 1, "create schema", PackageResources.query_0001_create_schema_sql),
    migration("query", 2, "payments read model", PackageResources.query_0002_payments_read_model_sql),
    migration("query", 3, "page token key", PackageResources.query_0003_page_token_key_sql),
    migration("query", 4, "event feed", PackageResources.query_0004_event_feed_sql),
    migration("query", 5, "refunds", PackageResources.query_0005_refunds_sql),
  ]

  /// The migrations of one schema, by name.
  public static func forSchema(_ schema: String) -> [PostgresMigration]? {
    switch schema {
    case "auth": auth
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
