public import RPCCore

/// Authenticates every call with `authorization: Bearer <api key>` and checks the scope its
/// service requires (docs/design.md §10). Health and reflection are open.
///
/// Missing, malformed, unknown or revoked keys end the call with `UNAUTHENTICATED`; a key
/// without the required scope with `PERMISSION_DENIED`. An address with too many failed
/// authentications gets `RESOURCE_EXHAUSTED` for keys that would need a database query
/// (``FailedAuthenticationLimiter``). The handler finds the client in
/// ``AuthenticatedClient/current``.
public struct AuthInterceptor: ServerInterceptor {
  private let store: APIKeyStore
  private let requiredScopes: [String: APIScope]
  private let failures: FailedAuthenticationLimiter?

  /// The services that need no key: health checks and reflection.
  public static let openServices: Set<String> = [
    "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
  ]

  /// - Parameters:
  ///   - requiredScopes: the scope each protected service (full name) requires. A call to any
  ///     other service that is not open is refused, so a forgotten entry fails closed.
  ///   - failures: the failed-authentication budget per address; `nil` for none.
  public init(
    store: APIKeyStore, requiredScopes: [String: APIScope],
    failures: FailedAuthenticationLimiter? = FailedAuthenticationLimiter()
  ) {
    self.store = store
    self.requiredScopes = requiredScopes
    self.failures = failures
  }

  public func intercept(
    _ context: ServerContext, next: @Sendable (ServerContext) async throws -> Void
  ) async throws {
    if Self.openServices.contains(context.method.service) { return try await next(context) }
    guard let header = context.metadata["authorization"] else {
      throw RPCError(.unauthenticated, "missing 'authorization: Bearer <api key>' header")
    }
    guard let token = Self.bearerToken(header) else {
      throw RPCError(.unauthenticated, "the authorization header must be 'Bearer <api key>'")
    }
    let address = ServerContext.address(ofPeer: context.peer)
    let lockout = failures?.lockedOut(address)
    let verdict: APIKeyStore.Verdict
    do {
      verdict = try await store.verify(token: token, lookUp: lockout == nil)
    } catch {
      throw RPCError(.unavailable, "cannot verify the API key right now; retry later", cause: error)
    }
    let client: AuthenticatedClient
    switch verdict {
    case .client(let found):
      client = found
    case .rejected:
      failures?.recordFailure(address)
      throw RPCError(.unauthenticated, "the API key is not valid (unknown, revoked or malformed)")
    case .unverified:
      let seconds = Int((lockout ?? .seconds(1)) / .seconds(1)) + 1
      throw RPCError(
        .resourceExhausted,
        "too many failed authentications from \(address); retry in \(seconds) s")
    }
    guard let scope = requiredScopes[context.method.service] else {
      throw RPCError(.permissionDenied, "no API key may call \(context.method.service)")
    }
    guard client.scopes.contains(scope) else {
      throw RPCError(
        .permissionDenied,
        "the API key of client '\(client.clientID)' lacks the '\(scope.rawValue)' scope that \(context.method.service) requires"
      )
    }
    try await AuthenticatedClient.$current.withValue(client) { try await next(context) }
  }
}

extension AuthInterceptor {
  /// The token of `Bearer <token>` (scheme case-insensitive, spaces around the token ignored).
  static func bearerToken(_ header: String) -> String? {
    let bytes = Array(header.utf8)
    let scheme = Array("bearer ".utf8)
    guard bytes.count > scheme.count else { return nil }
    for index in scheme.indices where bytes[index] | 0x20 != scheme[index] | 0x20 { return nil }
    var start = scheme.count
    var end = bytes.count
    while start < end, bytes[start] == UInt8(ascii: " ") { start += 1 }
    while end > start, bytes[end - 1] == UInt8(ascii: " ") { end -= 1 }
    guard start < end else { return nil }
    return String(decoding: bytes[start..<end], as: UTF8.self)
  }
}

extension AuthenticatedClient {
  /// The client of the current call, or `UNAUTHENTICATED` when no ``AuthInterceptor`` set one
  /// (a handler served without it).
  public static func required() throws -> AuthenticatedClient {
    guard let current else { throw RPCError(.unauthenticated, "no authenticated client") }
    return current
  }
}
