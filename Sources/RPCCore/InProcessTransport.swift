import Synchronization

/// A client and a server transport connected in memory: every service can be tested through
/// the same RPC path as over HTTP/2 (routing, interceptors, deadlines, statuses), without
/// sockets. Messages are still serialized, so encoding bugs show up here too.
public struct InProcessTransport: Sendable {
  /// Serve an ``RPCServer`` on this.
  public let server: Server
  /// Make an ``RPCClient`` with this.
  public let client: Client

  public init() {
    let calls = MessageQueue<Call>()
    server = Server(calls: calls)
    client = Client(calls: calls)
  }

  struct Call: Sendable {
    let stream: ServerStream
    /// Finished by the client when its call ends; a server still running the call cancels it.
    let reset: MessageQueue<Void>
  }

  /// The server side.
  public struct Server: ServerTransport {
    let calls: MessageQueue<Call>

    public func listen(_ handle: @escaping @Sendable (ServerStream) async -> Void) async throws {
      await withDiscardingTaskGroup { group in
        while let call = try? await calls.next() {
          group.addTask { await runCancellingOnReset(call.reset) { await handle(call.stream) } }
        }
        if Task.isCancelled { group.cancelAll() }
      }
    }

    public func beginGracefulShutdown() { calls.finish() }
  }

  /// The client side.
  public struct Client: ClientTransport {
    let calls: MessageQueue<Call>

    public func withStream<Result: Sendable>(
      method: MethodDescriptor, metadata: Metadata, deadline: ContinuousClock.Instant?,
      _ body: @Sendable (ClientStream) async throws -> Result
    ) async throws -> Result {
      let requests = MessageQueue<[UInt8]>()
      let responses = MessageQueue<ClientStreamPart>()
      let reset = MessageQueue<Void>()
      defer {
        reset.finish()
        requests.finish(throwing: CancellationError())
      }
      calls.yield(
        Call(
          stream: ServerStream(
            path: method.path, metadata: metadata, deadline: deadline, peer: "in-process",
            inbound: requests.elements, outbound: ResponseWriter(responses: responses)),
          reset: reset))
      return try await body(
        ClientStream(
          outbound: RequestWriter(requests: requests, responses: responses), inbound: responses.elements))
    }
  }

  struct ResponseWriter: ServerStreamWriter {
    let responses: MessageQueue<ClientStreamPart>
    func writeHeaders(_ metadata: Metadata) async throws { responses.yield(.headers(metadata)) }
    func writeMessage(_ bytes: [UInt8]) async throws { responses.yield(.message(bytes)) }
    func finish(_ status: RPCStatus, trailers: Metadata) async {
      responses.yield(.status(status, trailers))
      responses.finish()
    }
  }

  struct RequestWriter: ClientStreamWriter {
    let requests: MessageQueue<[UInt8]>
    let responses: MessageQueue<ClientStreamPart>
    func writeMessage(_ bytes: [UInt8]) async throws { requests.yield(bytes) }
    func finish() async throws { requests.finish() }
  }
}
