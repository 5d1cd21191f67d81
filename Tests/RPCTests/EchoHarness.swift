import Logging
import PaymentsTestSupport
import RPCCore
import Testing

/// The transports every behaviour test runs over.
enum TransportKind: String, CaseIterable, CustomTestStringConvertible {
  case inProcess
  var testDescription: String { rawValue }
}

/// Serves ``EchoService`` over `kind` and runs `body` with a typed client; stops the server
/// afterwards.
func withEchoServer<Result: Sendable>(
  _ kind: TransportKind, serverInterceptors: [any ServerInterceptor] = [],
  clientInterceptors: [any ClientInterceptor] = [],
  _ body: @Sendable (Echo_V1_Echo.Client) async throws -> Result
) async throws -> Result {
  switch kind {
  case .inProcess:
    let transport = InProcessTransport()
    let server = RPCServer(
      transport: transport.server, services: [EchoService()], interceptors: serverInterceptors,
      logger: quietLogger("echo-server"))
    return try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await server.run() }
      defer { group.cancelAll() }
      let client = RPCClient(transport: transport.client, interceptors: clientInterceptors)
      return try await body(Echo_V1_Echo.Client(client))
    }
  }
}

extension Echo_V1_EchoRequest {
  init(
    _ text: String, repeat count: Int32 = 0, failWithCode: Int32 = 0, delayMs: Int32 = 0,
    payload: [UInt8] = []
  ) {
    self.init()
    self.text = text
    self.repeat = count
    self.failWithCode = failWithCode
    self.delayMs = delayMs
    self.payload = payload
  }
}
