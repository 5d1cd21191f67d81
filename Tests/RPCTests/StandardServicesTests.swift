import PaymentsTestSupport
import ProtobufRuntime
import RPCCore
import RPCStandardServices
import RPCTransportHTTP2
import Testing

@Suite("health and reflection services")
struct StandardServicesTests {
  static func withClient<Result: Sendable>(
    _ services: [any RPCService], _ body: @Sendable (RPCClient) async throws -> Result
  ) async throws -> Result {
    try await withHTTP2Server(services: services) { port in
      let transport = HTTP2ClientTransport(
        configuration: .init(host: "127.0.0.1", port: port), logger: quietLogger("standard-client"))
      defer { transport.close() }
      return try await body(RPCClient(transport: transport))
    }
  }

  @Test("Watch sends the current status, then every change")
  func healthWatch() async throws {
    let health = HealthService()
    health.setStatus(.serving, forService: "payments.v1.PaymentCommandService")
    let seen = try await Self.withClient([health]) { client in
      try await Grpc_Health_V1_Health.Client(client).watch(
        .with { $0.service = "payments.v1.PaymentCommandService" }
      ) {
        responses in
        var seen: [Grpc_Health_V1_HealthCheckResponse.ServingStatus] = []
        for try await response in responses {
          seen.append(response.status)
          switch seen.count {
          case 1: health.setStatus(.notServing, forService: "payments.v1.PaymentCommandService")
          case 2: health.setStatus(.serving, forService: "payments.v1.PaymentCommandService")
          default: return seen
          }
        }
        return seen
      }
    }
    #expect(seen == [.serving, .notServing, .serving])
  }

  @Test("Check reports per-service status; an unknown service is NOT_FOUND")
  func healthCheck() async throws {
    let health = HealthService()
    health.setStatus(.notServing, forService: "dispatcher")
    try await Self.withClient([health]) { client in
      let check = Grpc_Health_V1_Health.Client(client)
      let server = try await check.check(.with { $0.service = "" })
      let dispatcher = try await check.check(.with { $0.service = "dispatcher" })
      #expect(server.status == .serving)
      #expect(dispatcher.status == .notServing)
      let error = await #expect(throws: RPCError.self) {
        try await check.check(.with { $0.service = "nope" })
      }
      #expect(error?.code == .notFound)
    }
  }

  @Test("reflection refuses descriptors that do not decode or import files it lacks")
  func reflectionNeedsCompleteFiles() {
    #expect(throws: ReflectionService.InvalidFilesError.self) {
      _ = try ReflectionService(files: [
        .init(name: "broken.proto", serializedDescriptor: [0x0A, 0x50, 0x41])
      ])
    }
    // FileDescriptorProto { name: "a.proto", dependency: "missing.proto" }
    let importsMissing: [UInt8] =
      [0x0A, 7] + Array("a.proto".utf8) + [0x1A, 13] + Array("missing.proto".utf8)
    let error = #expect(throws: ReflectionService.InvalidFilesError.self) {
      _ = try ReflectionService(files: [.init(name: "a.proto", serializedDescriptor: importsMissing)])
    }
    #expect(error?.description.contains("missing.proto") == true)
  }
}
