// `echo.v1.Echo/Get` served by grpc/grpc-swift-2 with grpc-swift-nio-transport (SwiftNIO) and
// swift-protobuf messages, for the h2load comparison in tools/benchmark-grpc.
// Usage: EchoServerGRPCSwift PORT
import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCProtobuf

struct Echo: RegistrableRPCService {
  func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
    router.registerHandler(
      forMethod: MethodDescriptor(fullyQualifiedService: "echo.v1.Echo", method: "Get"),
      deserializer: ProtobufDeserializer<Echo_V1_EchoRequest>(),
      serializer: ProtobufSerializer<Echo_V1_EchoResponse>()
    ) { request, context in
      let single = try await ServerRequest(stream: request)
      var response = Echo_V1_EchoResponse()
      response.text = single.message.text
      response.payload = single.message.payload
      return StreamingServerResponse(single: ServerResponse(message: response))
    }
  }
}

let port = Int(CommandLine.arguments.dropFirst().first ?? "") ?? 50098
var config = HTTP2ServerTransport.Posix.Config.defaults
config.http2.maxConcurrentStreams = 1000
let server = GRPCServer(
  transport: .http2NIOPosix(
    address: .ipv4(host: "127.0.0.1", port: port), transportSecurity: .plaintext, config: config),
  services: [Echo()])
try await server.serve()
