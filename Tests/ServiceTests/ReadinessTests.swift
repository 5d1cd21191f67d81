import Foundation
import Kafka
import PaymentsTestSupport
import Postgres
import ProtobufRuntime
import RPCCore
import RPCStandardServices
import RPCTransportHTTP2
import Testing

/// `grpc.health.v1` tells a load balancer the truth: SERVING only while PostgreSQL and Kafka can be
/// reached (issue 8).
@Suite("Readiness")
struct ReadinessTests {
  /// The status of `service` on the server at `port`.
  static func status(port: Int, service: String) async throws
    -> Grpc_Health_V1_HealthCheckResponse.ServingStatus
  {
    let transport = HTTP2ClientTransport(
      configuration: .init(host: "127.0.0.1", port: port), logger: quietLogger("health"))
    defer { transport.close() }
    return try await Grpc_Health_V1_Health.Client(RPCClient(transport: transport))
      .check(.with { $0.service = service }).status
  }

  /// Waits until every (port, service) reports `expected`; false after `timeout`.
  static func becomes(
    _ expected: Grpc_Health_V1_HealthCheckResponse.ServingStatus, _ targets: [(Int, String)],
    timeout: Duration = .seconds(20)
  ) async throws -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
      var all = true
      for (port, service) in targets where try await status(port: port, service: service) != expected {
        all = false
      }
      if all { return true }
      try await Task.sleep(for: .milliseconds(200))
    }
    return false
  }

  @Test(
    "command and query: SERVING with PostgreSQL and Kafka, NOT_SERVING while either is away, SERVING again after"
  )
  func followsDependencies() async throws {
    try await withPlatform { platform in
      let targets = [
        (platform.commandPort, ""), (platform.commandPort, "payments.v1.PaymentCommandService"),
        (platform.queryPort, ""), (platform.queryPort, "payments.v1.PaymentQueryService"),
      ]
      #expect(try await Self.becomes(.serving, targets))

      // Kafka answers too slowly to count as reachable (the readiness check waits 2 s).
      try platform.cluster.setRoundTripTime(.seconds(5))
      #expect(try await Self.becomes(.notServing, targets), "Kafka away")
      try platform.cluster.setRoundTripTime(.zero)
      #expect(try await Self.becomes(.serving, targets, timeout: .seconds(30)), "Kafka back")

      // The database refuses connections: the pools' connections are closed and cannot reopen.
      let database = try await platform.pool.query("SELECT current_database()")[0].decode(String.self, at: 0)
      let admin = PostgresConnectionPool(
        connectionString: try await TestPostgres.shared.adminConnectionString(), maximumConnections: 1,
        logger: quietLogger("admin"))
      defer { Task { await admin.close() } }
      try await admin.execute(PostgresQuery(unsafeSQL: "ALTER DATABASE \(database) ALLOW_CONNECTIONS false"))
      _ = try await admin.query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = \(database) AND pid <> pg_backend_pid()"
      )
      #expect(try await Self.becomes(.notServing, targets), "PostgreSQL away")
      try await admin.execute(PostgresQuery(unsafeSQL: "ALTER DATABASE \(database) ALLOW_CONNECTIONS true"))
      #expect(try await Self.becomes(.serving, targets, timeout: .seconds(30)), "PostgreSQL back")
    }
  }
}
