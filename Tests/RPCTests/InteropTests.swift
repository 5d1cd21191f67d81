import Foundation
import PaymentsTestSupport
import RPCCore
import RPCStandardServices
import RPCTransportHTTP2
import Testing

/// Our gRPC implementation against an independent one: Python grpcio (Google's C core).
@Suite("interop with Python grpcio")
struct InteropTests {
  @Test(
    "Python grpcio calls our server: every call kind, metadata, errors, deadlines, limits, health, reflection"
  )
  func pythonClientCallsOurServer() async throws {
    let reflection = try ReflectionService(files: [
      .init(
        name: Echo_V1_Echo_ProtoFile.name, serializedDescriptor: Echo_V1_Echo_ProtoFile.serializedDescriptor)
    ])
    let output = try await withHTTP2Server(services: [EchoService(), HealthService(), reflection]) { port in
      try await PythonPeer.run("interop/client.py", ["--port", "\(port)"])
    }
    let json = output.split(separator: "\n").last.map(String.init) ?? ""
    let results = try #require(
      try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any], "\(output)")
    func result(_ name: String) -> [String: Any] { results[name] as? [String: Any] ?? ["missing": name] }

    #expect(result("unary")["text"] as? String == "hello")
    #expect(result("unary_payload")["payload"] as? String == "0001ff")
    #expect(result("server_streaming")["indexes"] as? [Int] == [0, 1, 2, 3, 4])
    #expect(result("client_streaming")["text"] as? String == "a b c")
    #expect(result("bidi")["texts"] as? [String] == ["m0", "m1", "m2", "m3", "m4"])

    let metadata = result("metadata")
    #expect((metadata["initial"] as? [String: String])?["echo-text"] == "hello")
    #expect((metadata["initial"] as? [String: String])?["echo-data-bin"] == "00ff")
    #expect((metadata["trailing"] as? [String: String])?["trailer-echo-text"] == "hello")
    #expect((metadata["trailing"] as? [String: String])?["trailer-echo-data-bin"] == "00ff")

    #expect(result("error")["code"] as? String == "NOT_FOUND")
    #expect(result("error")["details"] as? String == "no such payment: pay_1")
    #expect(result("streaming_error")["code"] as? String == "FAILED_PRECONDITION")
    #expect(result("deadline")["code"] as? String == "DEADLINE_EXCEEDED")
    #expect(result("large_3mib")["size"] as? Int == 3 << 20)
    #expect(
      result("too_large_5mib")["code"] as? String == "RESOURCE_EXHAUSTED", "\(result("too_large_5mib"))")
    #expect((result("too_large_5mib")["details"] as? String)?.contains("exceeds the limit") == true)
    #expect(result("unknown_method")["code"] as? String == "UNIMPLEMENTED")

    #expect(result("health")["status"] as? String == "SERVING")
    #expect(result("health_unknown")["code"] as? String == "NOT_FOUND")

    let v1alpha = result("reflection_v1alpha")
    #expect((v1alpha["services"] as? [String])?.contains("echo.v1.Echo") == true, "\(v1alpha)")
    #expect((v1alpha["services"] as? [String])?.contains("grpc.health.v1.Health") == true)
    #expect(v1alpha["methods"] as? [String] == ["Get", "Expand", "Collect", "Update"])
    #expect(v1alpha["file"] as? String == "echo/v1/echo.proto")
    let v1 = result("reflection_v1")
    #expect((v1["services"] as? [String])?.contains("grpc.reflection.v1.ServerReflection") == true, "\(v1)")
    #expect(v1["files"] as? [String] == ["echo/v1/echo.proto"])
    #expect(v1["missing_code"] as? Int == 5)
  }

  @Test("our client calls a Python grpcio server: every call kind, metadata, errors, deadlines")
  func ourClientCallsPythonServer() async throws {
    let server = try await PythonPeer.startServer("interop/server.py")
    defer { server.stop() }
    let transport = HTTP2ClientTransport(
      configuration: .init(host: "127.0.0.1", port: server.port), logger: quietLogger("interop-client"))
    defer { transport.close() }
    let client = Echo_V1_Echo.Client(RPCClient(transport: transport))

    #expect(try await client.get(.init("hello", payload: [0, 1, 255])).payload == [0, 1, 255])
    let indexes = try await client.expand(.init("x", repeat: 50)) { responses in
      var indexes: [Int32] = []
      for try await response in responses { indexes.append(response.index) }
      return indexes
    }
    #expect(indexes == Array(0..<50))
    let collected = try await client.collect { writer in
      for word in ["a", "b", "c"] { try await writer.write(.init(word)) }
    }
    #expect(collected.text == "a b c")
    let texts = try await client.update(
      requests: { writer in for index in 0..<5 { try await writer.write(.init("m\(index)")) } },
      handle: { responses in
        var texts: [String] = []
        for try await response in responses { texts.append(response.text) }
        return texts
      })
    #expect(texts == ["m0", "m1", "m2", "m3", "m4"])

    var metadata: Metadata = [("echo-text", "hello")]
    metadata.addBinary([0, 255], forKey: "echo-data-bin")
    let response: ClientResponse<Echo_V1_EchoResponse> = try await client.rpcClient.unary(
      Echo_V1_Echo.Method.get, request: Echo_V1_EchoRequest("x"), metadata: metadata)
    #expect(response.headers["echo-text"] == "hello")
    #expect(response.headers.binaryValue(forKey: "echo-data-bin") == [0, 255])
    #expect(response.trailers["trailer-echo-text"] == "hello")

    let notFound = await #expect(throws: RPCError.self) {
      try await client.get(.init("no such payment", failWithCode: 5))
    }
    #expect(notFound?.code == .notFound)
    #expect(notFound?.message == "no such payment")

    let late = await #expect(throws: RPCError.self) {
      try await client.get(.init("slow", delayMs: 2000), options: CallOptions(timeout: .milliseconds(100)))
    }
    #expect(late?.code == .deadlineExceeded)

    // The connection still serves calls after all of that.
    #expect(try await client.get(.init("still here")).text == "still here")
  }
}
