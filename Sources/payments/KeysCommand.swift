import ArgumentParser
import Logging
import Postgres
import ServiceKit

/// `payments keys create|revoke`: API keys of client systems (docs/design.md §10).
struct KeysCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "keys", abstract: "Create and revoke API keys.",
    subcommands: [Create.self, Revoke.self])

  struct DatabaseOption: ParsableArguments {
    @Option(
      name: .customLong("database-url"),
      help: "PostgreSQL connection string. Default: $PAYMENTS_DATABASE_URL.")
    var databaseURL: String?

    func withStore<Result>(_ body: (APIKeyStore) async throws -> Result) async throws -> Result {
      try await withPool { pool in
        var logger = Logger(label: "payments.keys")
        logger.logLevel = .warning
        return try await body(APIKeyStore(pool: pool, logger: logger))
      }
    }
  }

  struct Create: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Create an API key and print it (it is shown only this once).")

    @Option(help: "The client system the key belongs to (it sees only its own payments).")
    var client: String

    @Option(help: "Comma-separated scopes: payments.write, payments.read.")
    var scopes: String = "payments.write,payments.read"

    @OptionGroup var database: DatabaseOption

    func validate() throws {
      guard !client.isEmpty, client.count <= 100, !client.contains(where: \.isWhitespace) else {
        throw ValidationError("--client must be 1-100 characters without spaces")
      }
      _ = try parsedScopes()
    }

    func parsedScopes() throws -> Set<APIScope> {
      var result: Set<APIScope> = []
      for name in scopes.split(separator: ",") {
        guard let scope = APIScope(rawValue: String(name)) else {
          throw ValidationError(
            "--scopes: '\(name)' is not a scope (known: \(APIScope.allCases.map(\.rawValue).joined(separator: ", ")))"
          )
        }
        result.insert(scope)
      }
      guard !result.isEmpty else { throw ValidationError("--scopes must name at least one scope") }
      return result
    }

    func run() async throws {
      let scopes = try parsedScopes()
      let key = try await database.withStore { try await $0.create(clientID: client, scopes: scopes) }
      print(key.token)
    }
  }

  struct Revoke: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Revoke an API key at once.")

    @Argument(help: "The key, or its key ID (the 16 hex digits after pk_).")
    var key: String

    @OptionGroup var database: DatabaseOption

    func run() async throws {
      let revoked = try await database.withStore { try await $0.revoke(key) }
      guard revoked else { throw ValidationError("no active key with that ID") }
      print("revoked")
    }
  }
}
