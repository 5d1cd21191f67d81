public import ProtobufRuntime
import Synchronization

/// What a client interceptor sees of a call before it starts.
public struct ClientCallInfo: Sendable {
  /// The method called.
  public var method: MethodDescriptor
  /// The request metadata; interceptors may add to it (e.g. `authorization`).
  public var metadata: Metadata
  /// The call options.
  public var options: CallOptions

  public init(method: MethodDescriptor, metadata: Metadata, options: CallOptions) {
    self.method = method
    self.metadata = metadata
    self.options = options
  }
}

/// Runs around every call a client makes: credentials, logging, metrics and retries plug in
/// here. Call `next` to continue; errors of the call (``RPCError``) come out of it.
public protocol ClientInterceptor: Sendable {
  func intercept<Result: Sendable>(
    _ call: ClientCallInfo, next: @Sendable (ClientCallInfo) async throws -> Result
  ) async throws -> Result
}

/// A unary or client-streaming call's response, with the metadata that came with it.
public struct ClientResponse<Message: Sendable>: Sendable {
  /// The response message.
  public var message: Message
  /// The response headers' custom metadata.
  public var headers: Metadata
  /// The trailing metadata.
  public var trailers: Metadata
}

/// The responses of a streaming call: iterate it for messages; a call that ends with an error
/// status throws ``RPCError`` from the iteration. ``headers`` and ``trailers`` fill in as the
/// parts arrive.
public final class ClientResponseStream<Message: ProtobufMessage>: AsyncSequence, Sendable {
  private let parts: RPCAsyncSequence<ClientStreamPart>
  private let method: MethodDescriptor
  private let received = Mutex((headers: Metadata(), trailers: Metadata(), finished: false))

  init(parts: RPCAsyncSequence<ClientStreamPart>, method: MethodDescriptor) {
    self.parts = parts
    self.method = method
  }

  /// The response headers' custom metadata (empty until they arrived).
  public var headers: Metadata { received.withLock { $0.headers } }
  /// The trailing metadata (empty until the call ended).
  public var trailers: Metadata { received.withLock { $0.trailers } }

  /// The next response message, `nil` after an `OK` status.
  public func next() async throws -> Message? {
    if received.withLock({ $0.finished }) { return nil }
    var iterator = parts.makeAsyncIterator()
    while let part = try await iterator.next() {
      switch part {
      case .headers(let metadata):
        received.withLock { $0.headers = metadata }
      case .message(let bytes):
        do {
          return try Message(serializedBytes: bytes)
        } catch {
          throw RPCError(
            .internal, "\(method.fullName): response is not a valid \(Message.protoMessageName): \(error)")
        }
      case .status(let status, let trailers):
        received.withLock {
          $0.trailers = trailers
          $0.finished = true
        }
        guard status.code == .ok else { throw RPCError(status.code, status.message, metadata: trailers) }
        return nil
      }
    }
    throw RPCError(.internal, "\(method.fullName): the call ended without a status")
  }

  public struct AsyncIterator: AsyncIteratorProtocol {
    let stream: ClientResponseStream
    public mutating func next() async throws -> Message? { try await stream.next() }
  }

  public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(stream: self) }
}

/// Makes calls over a client transport: serializes messages, applies interceptors, enforces the
/// deadline locally too, and turns error statuses into ``RPCError``. Generated clients wrap it.
public struct RPCClient: Sendable {
  /// The transport calls go over.
  public let transport: any ClientTransport
  private let interceptors: [any ClientInterceptor]

  public init(transport: any ClientTransport, interceptors: [any ClientInterceptor] = []) {
    self.transport = transport
    self.interceptors = interceptors
  }

  /// A unary call.
  public func unary<Request: ProtobufMessage, Response: ProtobufMessage>(
    _ method: MethodDescriptor, request: Request, metadata: Metadata = [], options: CallOptions = .defaults
  ) async throws -> ClientResponse<Response> {
    try await clientStreaming(method, metadata: metadata, options: options) { writer in
      try await writer.write(request)
    }
  }

  /// A server-streaming call: `handle` reads the responses.
  public func serverStreaming<Request: ProtobufMessage, Response: ProtobufMessage, Result: Sendable>(
    _ method: MethodDescriptor, request: Request, metadata: Metadata = [], options: CallOptions = .defaults,
    handle: @escaping @Sendable (ClientResponseStream<Response>) async throws -> Result
  ) async throws -> Result {
    try await bidirectionalStreaming(
      method, metadata: metadata, options: options, requests: { try await $0.write(request) }, handle: handle)
  }

  /// A client-streaming call: `requests` writes the requests.
  public func clientStreaming<Request: ProtobufMessage, Response: ProtobufMessage>(
    _ method: MethodDescriptor, metadata: Metadata = [], options: CallOptions = .defaults,
    requests: @escaping @Sendable (RPCWriter<Request>) async throws -> Void
  ) async throws -> ClientResponse<Response> {
    try await bidirectionalStreaming(method, metadata: metadata, options: options, requests: requests) {
      (responses: ClientResponseStream<Response>) in
      guard let message = try await responses.next() else {
        throw RPCError(.internal, "\(method.fullName) ended with OK but without a response message")
      }
      guard try await responses.next() == nil else {
        throw RPCError(.internal, "\(method.fullName) sent more than one response message")
      }
      return ClientResponse(message: message, headers: responses.headers, trailers: responses.trailers)
    }
  }

  /// A bidirectional-streaming call: `requests` writes requests while `handle` reads responses;
  /// the call is half-closed when `requests` returns.
  public func bidirectionalStreaming<Request: ProtobufMessage, Response: ProtobufMessage, Result: Sendable>(
    _ method: MethodDescriptor, metadata: Metadata = [], options: CallOptions = .defaults,
    requests: @escaping @Sendable (RPCWriter<Request>) async throws -> Void,
    handle: @escaping @Sendable (ClientResponseStream<Response>) async throws -> Result
  ) async throws -> Result {
    let transport = transport
    let start = ClientCallInfo(method: method, metadata: metadata, options: options)
    return try await Self.run(interceptors[...], start) { call in
      let deadline = call.options.timeout.map { ContinuousClock.now.advanced(by: $0) }
      return try await withDeadline(deadline) {
        try await transport.withStream(method: call.method, metadata: call.metadata, deadline: deadline) {
          stream in
          try await withThrowingTaskGroup(of: Result?.self) { group in
            let responses = ClientResponseStream<Response>(parts: stream.inbound, method: call.method)
            group.addTask {
              do {
                try await requests(
                  RPCWriter {
                    do {
                      try await stream.outbound.writeMessage($0.serializedBytes())
                    } catch {
                      throw CallEndedWhileWriting(cause: error)
                    }
                  })
                try await stream.outbound.finish()
              } catch is CallEndedWhileWriting {
                // The call is over (the server answered early, or the connection failed): the
                // transport ends the response with a status that says why, and that decides.
              } catch  where responses.trailersReceived {
                // The server ended the call before reading every request: its status decides.
              }
              return nil
            }
            group.addTask { try await handle(responses) }
            var result: Result?
            while true {
              do {
                guard let value = try await group.next() else { break }
                if let value {
                  result = value
                  group.cancelAll()  // a request writer still running is no longer needed
                }
              } catch  where result != nil {
                continue
              }
            }
            return result!
          }
        }
      }
    }
  }

  private static func run<Result: Sendable>(
    _ interceptors: ArraySlice<any ClientInterceptor>, _ call: ClientCallInfo,
    _ body: @escaping @Sendable (ClientCallInfo) async throws -> Result
  ) async throws -> Result {
    guard let first = interceptors.first else { return try await body(call) }
    let rest = interceptors.dropFirst()
    return try await first.intercept(call) { call in try await run(rest, call, body) }
  }
}

extension ClientResponseStream {
  var trailersReceived: Bool { received.withLock { $0.finished } }
}

/// A request could not be written because the call had ended; the response's status explains
/// the outcome.
private struct CallEndedWhileWriting: Error {
  let cause: any Error
}
