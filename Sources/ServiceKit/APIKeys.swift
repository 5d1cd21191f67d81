public import Logging
public import Postgres
import Synchronization
import TLS

/// What a key may do (docs/design.md §10).
public enum APIScope: String, Sendable, CaseIterable, Hashable {
  /// Submit payments (the command service).
  case paymentsWrite = "payments.write"
  /// Read one's own payments (the query service).
  case paymentsRead = "payments.read"
}

/// The client a verified API key belongs to, available to handlers through ``current``.
public struct AuthenticatedClient: Sendable, Hashable {
  /// The client system's name, the scope of idempotency keys and of what it may read.
  public var clientID: String
  /// The key's public identifier (never the secret; safe to log).
  public var keyID: String
  public var scopes: Set<APIScope>

  public init(clientID: String, keyID: String, scopes: Set<APIScope>) {
    self.clientID = clientID
    self.keyID = keyID
    self.scopes = scopes
  }

  /// The client of the call the current task serves, set by ``AuthInterceptor``.
  @TaskLocal public static var current: AuthenticatedClient?
}

/// An API key as handed to a client once: `pk_<key id>_<secret>`. Only its SHA-256 is stored.
public struct APIKey: Sendable, CustomStringConvertible {
  /// 16 hex digits; public, stored in clear, used to find the key's row.
  public let keyID: String
  /// The whole key, the bearer token.
  public let token: String

  /// The key ID and a redacted secret: keys never appear in logs in full.
  public var description: String { "pk_\(keyID)_…" }

  /// A new random key: 64 bits of key ID and 256 bits of secret.
  public static func generate() -> APIKey {
    let keyID = hex(secureRandomBytes(8))
    let secret = base64URL(secureRandomBytes(32))
    return APIKey(keyID: keyID, token: "pk_\(keyID)_\(secret)")
  }

  /// The key ID of a token of the right shape, else `nil`.
  public static func keyID(ofToken token: String) -> String? {
    let parts = token.split(separator: "_", maxSplits: 2, omittingEmptySubsequences: false)
    guard parts.count == 3, parts[0] == "pk", parts[1].utf8.count == 16,
      parts[1].utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }),
      parts[2].utf8.count == 43
    else { return nil }
    return String(parts[1])
  }

  static func hex(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef".utf8)
    return String(decoding: bytes.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 15)]] }, as: UTF8.self)
  }

  static func base64URL(_ bytes: [UInt8]) -> String {
    let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
    var output: [UInt8] = []
    var index = 0
    while index < bytes.count {
      let chunk = bytes[index..<min(index + 3, bytes.count)]
      var value = 0
      for byte in chunk { value = value << 8 | Int(byte) }
      value <<= 8 * (3 - chunk.count)
      for position in 0...chunk.count { output.append(alphabet[(value >> (18 - 6 * position)) & 63]) }
      index += 3
    }
    return String(decoding: output, as: UTF8.self)
  }
}

/// API keys in PostgreSQL (`auth.api_keys`): creation, revocation and verification.
///
/// Verification looks the key up by its key ID and compares the SHA-256 of the presented token
/// with the stored hash in constant time. Looked-up rows are cached while ``run()`` listens for
/// changes (`auth_api_keys_changed`, sent by a trigger on every write), so a revocation reaches
/// every running service within moments; without a listener nothing is cached.
public final class APIKeyStore: Sendable {
  private struct KeyRow: Sendable {
    var clientID: String
    var hash: [UInt8]
    var scopes: Set<APIScope>
    var revoked: Bool
  }

  private struct Cache {
    var enabled = false
    /// By key ID: the row, or `nil` for a key ID that does not exist (so that a stream of
    /// well-formed bogus tokens costs no database query per call; a created key is notified
    /// like any change and clears these entries).
    var rows: [String: KeyRow?] = [:]
    var generation = 0
    /// Key IDs that verified in this process (kept when the rows are forgotten): their lookups
    /// are allowed even from an address out of failed-authentication budget, so that one failing
    /// client behind a shared proxy address cannot lock out the others after a key change
    /// cleared the cache.
    var verifiedKeyIDs: Set<String> = []
  }

  private let pool: PostgresConnectionPool
  private let logger: Logger
  private let cache = Mutex(Cache())
  /// Enough for every active key of a platform; beyond it the cache starts over.
  private static let cacheLimit = 10_000

  public init(pool: PostgresConnectionPool, logger: Logger) {
    self.pool = pool
    self.logger = logger
  }

  /// Stores a new key for `clientID` and returns it; the token is not recoverable afterwards.
  public func create(clientID: String, scopes: Set<APIScope>) async throws -> APIKey {
    let key = APIKey.generate()
    let scopeList = "{" + scopes.map(\.rawValue).sorted().joined(separator: ",") + "}"
    try await pool.execute(
      """
      INSERT INTO auth.api_keys (key_id, client_id, key_hash, scopes)
      VALUES (\(key.keyID), \(clientID), \(SHA256.hash(key.token)), \(scopeList)::text[])
      """)
    return key
  }

  /// Revokes a key, given its key ID or the whole token. Returns whether an active key was
  /// revoked.
  @discardableResult
  public func revoke(_ keyIDOrToken: String) async throws -> Bool {
    let keyID = APIKey.keyID(ofToken: keyIDOrToken) ?? keyIDOrToken
    let count = try await pool.execute(
      "UPDATE auth.api_keys SET revoked_at = now() WHERE key_id = \(keyID) AND revoked_at IS NULL")
    forgetCachedKeys()
    return count > 0
  }

  /// The client `token` belongs to, or `nil` when it is malformed, unknown, revoked or wrong.
  public func authenticate(token: String) async throws -> AuthenticatedClient? {
    if case .client(let client) = try await verify(token: token, lookUp: true) { return client }
    return nil
  }

  /// What the store can say of a token.
  public enum Verdict: Sendable {
    /// The token is a valid key of this client.
    case client(AuthenticatedClient)
    /// The token is malformed, unknown, revoked or wrong.
    case rejected
    /// Not known without a database query, and the caller did not allow one.
    case unverified
  }

  /// Verifies `token`, from the cache alone unless `lookUp` allows a database query (or its key
  /// ID verified in this process before).
  public func verify(token: String, lookUp: Bool) async throws -> Verdict {
    guard let keyID = APIKey.keyID(ofToken: token) else { return .rejected }
    let (cached, generation) = cache.withLock { cache in
      (cache.enabled ? cache.rows[keyID] : nil, cache.generation)
    }
    let found: KeyRow?
    if let cached {
      found = cached
    } else {
      guard lookUp || cache.withLock({ $0.verifiedKeyIDs.contains(keyID) }) else { return .unverified }
      let rows = try await pool.query(
        """
        SELECT client_id, key_hash, array_to_string(scopes, ','), revoked_at IS NOT NULL
        FROM auth.api_keys WHERE key_id = \(keyID)
        """)
      found = try rows.singleRow().map { row in
        KeyRow(
          clientID: try row.decode(String.self, at: 0), hash: try row.decode([UInt8].self, at: 1),
          scopes: Set(
            try row.decode(String.self, at: 2).split(separator: ",").compactMap {
              APIScope(rawValue: String($0))
            }),
          revoked: try row.decode(Bool.self, at: 3))
      }
      cache.withLock { cache in
        // A change notified while the row was read must not be overwritten by the older read.
        guard cache.enabled, cache.generation == generation else { return }
        if cache.rows.count >= Self.cacheLimit { cache.rows = [:] }
        cache.rows[keyID] = .some(found)
      }
    }
    guard let row = found, !row.revoked, constantTimeEquals(SHA256.hash(token), row.hash) else {
      return .rejected
    }
    cache.withLock { cache in
      if cache.verifiedKeyIDs.count >= Self.cacheLimit { cache.verifiedKeyIDs.removeAll() }
      cache.verifiedKeyIDs.insert(keyID)
    }
    return .client(AuthenticatedClient(clientID: row.clientID, keyID: keyID, scopes: row.scopes))
  }

  /// Listens for key changes and keeps the cache on while it does; runs until cancelled.
  public func run() async {
    while !Task.isCancelled {
      do {
        try await pool.withConnection { connection in
          let changes = try await connection.listen("auth_api_keys_changed")
          // A new generation: a row read before LISTEN took effect may predate a change whose
          // notification this listener never heard (a revocation during the reconnect), so no
          // such read may enter the cache.
          cache.withLock { cache in
            cache.rows = [:]
            cache.generation += 1
            cache.enabled = true
          }
          for try await _ in changes { forgetCachedKeys() }
        }
      } catch {
        if !Task.isCancelled {
          logger.warning(
            "API key change listener failed; caching off until it is back", metadata: ["error": "\(error)"])
        }
      }
      cache.withLock { cache in
        cache.enabled = false
        cache.rows = [:]
        cache.generation += 1
      }
      try? await Task.sleep(for: .seconds(1))
    }
  }

  private func forgetCachedKeys() {
    cache.withLock { cache in
      cache.rows = [:]
      cache.generation += 1
    }
  }
}
