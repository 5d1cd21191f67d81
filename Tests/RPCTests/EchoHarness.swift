import Logging
import PaymentsTestSupport
import RPCCore
import RPCTransportHTTP2
import Testing

/// The transports every behaviour test runs over.
enum TransportKind: String, CaseIterable, CustomTestStringConvertible {
  case inProcess
  case http2
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
  case .http2:
    return try await withHTTP2Server(interceptors: serverInterceptors) { port in
      let transport = HTTP2ClientTransport(
        configuration: .init(host: "127.0.0.1", port: port), logger: quietLogger("echo-client"))
      defer { transport.close() }
      return try await body(
        Echo_V1_Echo.Client(RPCClient(transport: transport, interceptors: clientInterceptors)))
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

/// Serves ``EchoService`` (plus `services`) over HTTP/2 on a free loopback port and runs `body`
/// with the port.
func withHTTP2Server<Result: Sendable>(
  configuration: HTTP2ServerTransport.Configuration = .init(host: "127.0.0.1", port: 0),
  services: [any RPCService] = [EchoService()], interceptors: [any ServerInterceptor] = [],
  _ body: @Sendable (Int) async throws -> Result
) async throws -> Result {
  let transport = HTTP2ServerTransport(configuration: configuration, logger: quietLogger("echo-server"))
  let server = RPCServer(
    transport: transport, services: services, interceptors: interceptors, logger: quietLogger("echo-server"))
  return try await withThrowingTaskGroup(of: Void.self) { group in
    group.addTask { try await server.run() }
    defer { group.cancelAll() }
    return try await body(try await transport.boundPort())
  }
}
