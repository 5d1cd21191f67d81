public import RPCCore

/// Authenticates every call with `authorization: Bearer <api key>` and checks the scope its
/// service requires (ARCHITECTURE.md §10). Health and reflection are open.
///
/// Missing, malformed, unknown or revoked keys end the call with `UNAUTHENTICATED`; a key
/// without the required scope with `PERMISSION_DENIED`. The handler finds the client in
/// ``AuthenticatedClient/current``.
public struct AuthInterceptor: ServerInterceptor {
  private let store: APIKeyStore
  private let requiredScopes: [String: APIScope]

  /// The services that need no key: health checks and reflection.
  public static let openServices: Set<String> = [
    "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
  ]

  /// - Parameter requiredScopes: the scope each protected service (full name) requires. A call
  ///   to any other service that is not open is refused, so a forgotten entry fails closed.
  public init(store: APIKeyStore, requiredScopes: [String: APIScope]) {
    self.store = store
    self.requiredScopes = requiredScopes
  }

  public func intercept(
    _ context: ServerContext, next: @Sendable (ServerContext) async throws -> Void
  ) async throws {
    if Self.openServices.contains(context.method.service) { return try await next(context) }
    guard let header = context.metadata["authorization"] else {
      throw RPCError(.unauthenticated, "missing 'authorization: Bearer <api key>' header")
    }
    guard header.count > 7, header.prefix(7).lowercased() == "bearer " else {
      throw RPCError(.unauthenticated, "the authorization header must be 'Bearer <api key>'")
    }
    let token = String(header.dropFirst(7)).trimmingSpaces()
    let client: AuthenticatedClient?
    do {
      client = try await store.authenticate(token: token)
    } catch {
      throw RPCError(.unavailable, "cannot verify the API key right now; retry later", cause: error)
    }
    guard let client else {
      throw RPCError(.unauthenticated, "the API key is not valid (unknown, revoked or malformed)")
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

extension String {
  fileprivate func trimmingSpaces() -> String {
    String(self.drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
  }
}
