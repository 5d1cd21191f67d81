// `echo.v1.Echo/Get` served by our gRPC stack (RPCCore + RPCTransportHTTP2 on nghttp2), for the
// h2load comparison in tools/benchmark-grpc. Usage: EchoServerOurs PORT
import Logging
import ProtobufRuntime
import RPCCore
import RPCTransportHTTP2

struct Echo: Echo_V1_Echo.ServiceProtocol {
  func get(_ request: Echo_V1_EchoRequest, context: ServerContext) async throws -> Echo_V1_EchoResponse {
    .with {
      $0.text = request.text
      $0.payload = request.payload
    }
  }
  func expand(
    _ request: Echo_V1_EchoRequest, responses: RPCWriter<Echo_V1_EchoResponse>, context: ServerContext
  )
    async throws
  { throw RPCError(.unimplemented, "not part of the benchmark") }
  func collect(_ requests: RPCAsyncSequence<Echo_V1_EchoRequest>, context: ServerContext) async throws
    -> Echo_V1_EchoResponse
  { throw RPCError(.unimplemented, "not part of the benchmark") }
  func update(
    _ requests: RPCAsyncSequence<Echo_V1_EchoRequest>, responses: RPCWriter<Echo_V1_EchoResponse>,
    context: ServerContext
  ) async throws { throw RPCError(.unimplemented, "not part of the benchmark") }
}

let port = Int(CommandLine.arguments.dropFirst().first ?? "") ?? 50099
var logger = Logger(label: "echo-server")
logger.logLevel = .warning
var configuration = HTTP2ServerTransport.Configuration(host: "127.0.0.1", port: port)
configuration.maximumConcurrentStreams = 1000
let transport = HTTP2ServerTransport(configuration: configuration, logger: logger)
try await RPCServer(transport: transport, services: [Echo()], logger: logger).run()
