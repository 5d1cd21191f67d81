/// One call as a server transport hands it to ``RPCServer``: what the client asked for, its
/// request messages (raw bytes, already unframed) and a writer for the response.
public struct ServerStream: Sendable {
  /// The HTTP/2 `:path`, e.g. `/payments.v1.PaymentQueryService/GetPayment`.
  public var path: String
  /// The request's custom metadata (reserved headers removed).
  public var metadata: Metadata
  /// When the client gives up (from `grpc-timeout`), if it set a timeout.
  public var deadline: ContinuousClock.Instant?
  /// The client's address, for logs.
  public var peer: String
  /// The request messages.
  public var inbound: RPCAsyncSequence<[UInt8]>
  /// Where the response goes.
  public var outbound: any ServerStreamWriter

  public init(
    path: String, metadata: Metadata, deadline: ContinuousClock.Instant?, peer: String,
    inbound: RPCAsyncSequence<[UInt8]>, outbound: any ServerStreamWriter
  ) {
    self.path = path
    self.metadata = metadata
    self.deadline = deadline
    self.peer = peer
    self.inbound = inbound
    self.outbound = outbound
  }
}

/// The response side of a server call, implemented by a transport.
///
/// ``RPCServer`` calls ``writeHeaders(_:)`` at most once, before any message, and
/// ``finish(_:trailers:)`` exactly once, last; a transport whose stream is already gone (client
/// reset) ignores both quietly.
public protocol ServerStreamWriter: Sendable {
  /// Sends the response headers with `metadata`.
  func writeHeaders(_ metadata: Metadata) async throws
  /// Sends one response message; suspends while the client is not reading.
  func writeMessage(_ bytes: [UInt8]) async throws
  /// Ends the call with `status` and trailing metadata.
  func finish(_ status: RPCStatus, trailers: Metadata) async
}

/// Accepts calls and hands each to a handler, until shut down. Implemented by the HTTP/2
/// transport and the in-process transport.
public protocol ServerTransport: Sendable {
  /// Accepts calls until ``beginGracefulShutdown()`` (then waits for running calls) or until
  /// the calling task is cancelled (then cancels them). Each call runs `handle` in a task of
  /// its own, which the transport cancels when the client resets the stream.
  func listen(_ handle: @escaping @Sendable (ServerStream) async -> Void) async throws
  /// Stops accepting new calls; running calls may finish.
  func beginGracefulShutdown()
}

/// One part of a call's response as a client transport receives it.
public enum ClientStreamPart: Sendable {
  /// The response headers' custom metadata.
  case headers(Metadata)
  /// One response message (raw bytes).
  case message([UInt8])
  /// The final status and trailing metadata; always the last part.
  case status(RPCStatus, Metadata)
}

/// The request side of a client call, implemented by a transport.
public protocol ClientStreamWriter: Sendable {
  /// Sends one request message; suspends while the server is not reading.
  func writeMessage(_ bytes: [UInt8]) async throws
  /// Half-closes the call: no more request messages.
  func finish() async throws
}

/// One open call on a client transport.
public struct ClientStream: Sendable {
  /// Where request messages go.
  public var outbound: any ClientStreamWriter
  /// The response: headers, messages, then exactly one status (transport failures surface as
  /// a status such as `UNAVAILABLE`, not as a thrown error).
  public var inbound: RPCAsyncSequence<ClientStreamPart>

  public init(outbound: any ClientStreamWriter, inbound: RPCAsyncSequence<ClientStreamPart>) {
    self.outbound = outbound
    self.inbound = inbound
  }
}

/// Opens calls to a server. Implemented by the HTTP/2 transport and the in-process transport.
public protocol ClientTransport: Sendable {
  /// Opens a call and runs `body` with it; when `body` returns or throws before the call
  /// finished, the transport cancels the call (HTTP/2: `RST_STREAM`).
  func withStream<Result: Sendable>(
    method: MethodDescriptor, metadata: Metadata, deadline: ContinuousClock.Instant?,
    _ body: @Sendable (ClientStream) async throws -> Result
  ) async throws -> Result
}

/// Runs `body`, cancelling it and throwing `DEADLINE_EXCEEDED` once `deadline` passes.
public func withDeadline<Result: Sendable>(
  _ deadline: ContinuousClock.Instant?, _ body: @escaping @Sendable () async throws -> Result
) async throws -> Result {
  guard let deadline else { return try await body() }
  if deadline <= .now { throw RPCError(.deadlineExceeded, "deadline exceeded before the call started") }
  return try await withThrowingTaskGroup(of: Result?.self) { group in
    group.addTask { try await body() }
    group.addTask {
      try await Task.sleep(until: deadline, clock: .continuous)
      return nil
    }
    defer { group.cancelAll() }
    guard let first = try await group.next(), let value = first else {
      throw RPCError(.deadlineExceeded, "deadline exceeded")
    }
    return value
  }
}

/// Runs a server call's handler, cancelling it when `reset` finishes (the transport's signal
/// that the client abandoned the call); returns when the handler returned.
public func runCancellingOnReset(
  _ reset: MessageQueue<Void>, _ handle: @escaping @Sendable () async -> Void
) async {
  await withTaskGroup(of: Void.self) { group in
    group.addTask { await handle() }
    group.addTask { _ = try? await reset.next() }
    await group.next()
    group.cancelAll()
  }
}
