import ProtobufRuntime
import RPCCore
import Synchronization
import Testing

/// What a caller of any of our servers can rely on, checked over every transport.
@Suite("RPC behaviour")
struct RPCBehaviourTests {
  @Test("unary call returns the response", arguments: TransportKind.allCases)
  func unary(kind: TransportKind) async throws {
    let response = try await withEchoServer(kind) { try await $0.get(.init("hello", payload: [0, 1, 2])) }
    #expect(response.text == "hello")
    #expect(response.payload == [0, 1, 2])
  }

  @Test("server streaming delivers every response in order", arguments: TransportKind.allCases)
  func serverStreaming(kind: TransportKind) async throws {
    let indexes = try await withEchoServer(kind) { client in
      try await client.expand(.init("x", repeat: 100)) { responses in
        var indexes: [Int32] = []
        for try await response in responses { indexes.append(response.index) }
        return indexes
      }
    }
    #expect(indexes == Array(0..<100))
  }

  @Test("client streaming sees every request", arguments: TransportKind.allCases)
  func clientStreaming(kind: TransportKind) async throws {
    let response = try await withEchoServer(kind) { client in
      try await client.collect { writer in
        for word in ["a", "b", "c"] { try await writer.write(.init(word, payload: [1])) }
      }
    }
    #expect(response.text == "a b c")
    #expect(response.payload == [1, 1, 1])
  }

  @Test("bidirectional streaming answers each request as it arrives", arguments: TransportKind.allCases)
  func bidirectional(kind: TransportKind) async throws {
    // The writer waits for each answer before sending the next request: this only finishes if
    // responses flow while the request stream is still open.
    let answered = AsyncStream<Void>.makeStream()
    let texts = try await withEchoServer(kind) { client in
      try await client.update(
        requests: { writer in
          var iterator = answered.stream.makeAsyncIterator()
          for index in 0..<5 {
            try await writer.write(.init("m\(index)"))
            await iterator.next()
          }
        },
        handle: { responses in
          var texts: [String] = []
          for try await response in responses {
            texts.append(response.text)
            answered.continuation.yield()
          }
          return texts
        })
    }
    #expect(texts == ["m0", "m1", "m2", "m3", "m4"])
  }

  @Test(
    "metadata goes to the handler and comes back in headers and trailers", arguments: TransportKind.allCases)
  func metadata(kind: TransportKind) async throws {
    let response: ClientResponse<Echo_V1_EchoResponse> = try await withEchoServer(kind) { client in
      var metadata: Metadata = [("echo-text", "hello"), ("echo-text", "again")]
      metadata.addBinary([0, 255, 10], forKey: "echo-data-bin")
      return try await client.rpcClient.unary(
        Echo_V1_Echo.Method.get, request: Echo_V1_EchoRequest("x"), metadata: metadata)
    }
    #expect(response.headers.values(forKey: "echo-text") == [.string("hello"), .string("again")])
    #expect(response.headers.binaryValue(forKey: "echo-data-bin") == [0, 255, 10])
    #expect(response.trailers["trailer-echo-text"] == "hello")
    #expect(response.trailers.binaryValue(forKey: "trailer-echo-data-bin") == [0, 255, 10])
  }

  @Test("a handler's error reaches the client with its code and message", arguments: TransportKind.allCases)
  func handlerError(kind: TransportKind) async throws {
    let error = await #expect(throws: RPCError.self) {
      try await withEchoServer(kind) { try await $0.get(.init("no such payment: pay_1", failWithCode: 5)) }
    }
    #expect(error?.code == .notFound)
    #expect(error?.message == "no such payment: pay_1")
  }

  @Test("an error after streamed responses arrives after them", arguments: TransportKind.allCases)
  func streamingError(kind: TransportKind) async throws {
    let received = Mutex(0)
    let error = await #expect(throws: RPCError.self) {
      try await withEchoServer(kind) { client in
        try await client.update(
          requests: { writer in
            try await writer.write(.init("one"))
            try await writer.write(.init("stop here", failWithCode: 9))
          },
          handle: { responses in
            for try await _ in responses { received.withLock { $0 += 1 } }
          })
      }
    }
    #expect(error?.code == .failedPrecondition)
    #expect(error?.message == "stop here")
    #expect(received.withLock { $0 } == 1)
  }

  @Test("a call past its deadline ends with DEADLINE_EXCEEDED", arguments: TransportKind.allCases)
  func deadline(kind: TransportKind) async throws {
    let error = await #expect(throws: RPCError.self) {
      try await withEchoServer(kind) {
        try await $0.get(.init("slow", delayMs: 10_000), options: CallOptions(timeout: .milliseconds(50)))
      }
    }
    #expect(error?.code == .deadlineExceeded)
  }

  @Test("an unknown method is UNIMPLEMENTED and names the method", arguments: TransportKind.allCases)
  func unknownMethod(kind: TransportKind) async throws {
    let missing = MethodDescriptor(service: "echo.v1.Echo", method: "Missing", kind: .unary)
    let error = await #expect(throws: RPCError.self) {
      try await withEchoServer(kind) { client in
        let _: ClientResponse<Echo_V1_EchoResponse> = try await client.rpcClient.unary(
          missing, request: Echo_V1_EchoRequest("x"))
      }
    }
    #expect(error?.code == .unimplemented, "\(String(describing: error))")
    #expect(error?.message.contains("/echo.v1.Echo/Missing") == true)
  }

  @Test("a request that is not valid protobuf is INVALID_ARGUMENT", arguments: TransportKind.allCases)
  func undecodableRequest(kind: TransportKind) async throws {
    let error = await #expect(throws: RPCError.self) {
      try await withEchoServer(kind) { client in
        // Field 1 (text) as a length-delimited value that claims 100 bytes but has 1.
        let _: ClientResponse<Echo_V1_EchoResponse> = try await client.rpcClient.unary(
          Echo_V1_Echo.Method.get, request: rawMessage([0x0A, 100, 0x41]))
      }
    }
    #expect(error?.code == .invalidArgument)
    #expect(error?.message.contains("echo.v1.EchoRequest") == true)
  }

  @Test("interceptors run around calls on both sides", arguments: TransportKind.allCases)
  func interceptors(kind: TransportKind) async throws {
    let seen = Recorder()
    let response = try await withEchoServer(
      kind, serverInterceptors: [RequireToken(seen: seen)], clientInterceptors: [AddToken()]
    ) { try await $0.get(.init("through")) }
    #expect(response.text == "through")
    #expect(seen.all == ["echo.v1.Echo/Get"])

    let error = await #expect(throws: RPCError.self) {
      try await withEchoServer(kind, serverInterceptors: [RequireToken(seen: seen)]) {
        try await $0.get(.init("x"))
      }
    }
    #expect(error?.code == .unauthenticated)
  }
}

/// A message whose encoding is `bytes` as they are (carried as unknown fields), to send
/// malformed requests.
func rawMessage(_ bytes: [UInt8]) -> Echo_V1_EchoResponse {
  var message = Echo_V1_EchoResponse()
  message.unknownFields.data = bytes
  return message
}

/// Collects strings from concurrent tasks.
final class Recorder: Sendable {
  private let entries = Mutex<[String]>([])
  func record(_ entry: String) { entries.withLock { $0.append(entry) } }
  var all: [String] { entries.withLock { $0 } }
}

struct AddToken: ClientInterceptor {
  func intercept<Result: Sendable>(
    _ call: ClientCallInfo, next: @Sendable (ClientCallInfo) async throws -> Result
  ) async throws -> Result {
    var call = call
    call.metadata.addString("Bearer secret", forKey: "authorization")
    return try await next(call)
  }
}

struct RequireToken: ServerInterceptor {
  let seen: Recorder

  func intercept(_ context: ServerContext, next: @Sendable (ServerContext) async throws -> Void) async throws
  {
    guard context.metadata["authorization"] == "Bearer secret" else {
      throw RPCError(.unauthenticated, "missing or wrong authorization")
    }
    seen.record(context.method.fullName)
    try await next(context)
  }
}
