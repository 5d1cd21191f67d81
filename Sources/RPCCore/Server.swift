public import Logging
public import ProtobufRuntime
import Synchronization

/// What a handler knows about its call, and where it sets response metadata.
public struct ServerContext: Sendable {
  /// The method called.
  public let method: MethodDescriptor
  /// The request's custom metadata (e.g. `authorization`).
  public let metadata: Metadata
  /// When the client gives up, if it set a timeout. The server cancels the handler then.
  public let deadline: ContinuousClock.Instant?
  /// The client's address, for logs.
  public let peer: String
  /// Metadata to send back: set ``ResponseMetadata/initial`` before the first response message,
  /// ``ResponseMetadata/trailing`` any time before the handler returns.
  public let response: ResponseMetadata

  public init(
    method: MethodDescriptor, metadata: Metadata, deadline: ContinuousClock.Instant? = nil, peer: String = "",
    response: ResponseMetadata = ResponseMetadata()
  ) {
    self.method = method
    self.metadata = metadata
    self.deadline = deadline
    self.peer = peer
    self.response = response
  }

  /// The IP address of a peer written `host:port` or `[host]:port` (the whole string when it
  /// has no port).
  public static func address(ofPeer peer: String) -> Substring {
    guard let colon = peer.lastIndex(of: ":") else { return Substring(peer) }
    return peer[..<colon]
  }
}

/// Response metadata a handler (or interceptor) sets while the call runs.
public final class ResponseMetadata: Sendable {
  private let storage = Mutex((initial: Metadata(), trailing: Metadata()))

  public init() {}

  /// Sent with the response headers.
  public var initial: Metadata {
    get { storage.withLock { $0.initial } }
    set { storage.withLock { $0.initial = newValue } }
  }

  /// Sent with the status.
  public var trailing: Metadata {
    get { storage.withLock { $0.trailing } }
    set { storage.withLock { $0.trailing = newValue } }
  }
}

/// Runs around every call a server handles: authentication, logging and metrics plug in here.
///
/// Call `next` to continue (with the same or a changed context); throw an ``RPCError`` to end
/// the call with that status instead. Errors the handler throws come out of `next`.
public protocol ServerInterceptor: Sendable {
  func intercept(
    _ context: ServerContext, next: @Sendable (ServerContext) async throws -> Void
  ) async throws
}

/// A service implementation: registers its methods with a router. Generated service protocols
/// conform to it.
public protocol RPCService: Sendable {
  /// Adds every method of the service to `router`.
  func register(with router: inout RPCRouter)
}

/// Maps `:path` to method handlers. Generated code registers typed handlers through the four
/// `register` methods, one per streaming kind.
public struct RPCRouter: Sendable {
  /// A method handler on raw bytes: reads requests from the stream, writes responses.
  public typealias RawHandler =
    @Sendable (RPCAsyncSequence<[UInt8]>, RPCWriter<[UInt8]>, ServerContext) async throws -> Void

  struct Route: Sendable {
    let method: MethodDescriptor
    let handler: RawHandler
  }

  private(set) var routes: [String: Route] = [:]

  public init() {}

  /// The methods registered, sorted by full name.
  public var methods: [MethodDescriptor] { routes.values.map(\.method).sorted { $0.fullName < $1.fullName } }

  /// The names of the services registered, sorted.
  public var services: [String] { Array(Set(routes.values.map(\.method.service))).sorted() }

  /// Registers a handler on raw messages (a later registration of the same method replaces it).
  public mutating func register(_ method: MethodDescriptor, handler: @escaping RawHandler) {
    routes[method.path] = Route(method: method, handler: handler)
  }

  /// Registers a unary method.
  public mutating func registerUnary<Request: ProtobufMessage, Response: ProtobufMessage>(
    _ method: MethodDescriptor,
    _ handler: @escaping @Sendable (Request, ServerContext) async throws -> Response
  ) {
    register(method) { requests, responses, context in
      let request: Request = try await Self.single(requests, method)
      try await responses.write(try await handler(request, context).serializedBytes())
    }
  }

  /// Registers a server-streaming method.
  public mutating func registerServerStreaming<Request: ProtobufMessage, Response: ProtobufMessage>(
    _ method: MethodDescriptor,
    _ handler: @escaping @Sendable (Request, RPCWriter<Response>, ServerContext) async throws -> Void
  ) {
    register(method) { requests, responses, context in
      let request: Request = try await Self.single(requests, method)
      try await handler(request, RPCWriter { try await responses.write($0.serializedBytes()) }, context)
    }
  }

  /// Registers a client-streaming method.
  public mutating func registerClientStreaming<Request: ProtobufMessage, Response: ProtobufMessage>(
    _ method: MethodDescriptor,
    _ handler: @escaping @Sendable (RPCAsyncSequence<Request>, ServerContext) async throws -> Response
  ) {
    register(method) { requests, responses, context in
      let response = try await handler(requests.map { try Self.decode($0, method) }, context)
      try await responses.write(response.serializedBytes())
    }
  }

  /// Registers a bidirectional-streaming method.
  public mutating func registerBidirectionalStreaming<Request: ProtobufMessage, Response: ProtobufMessage>(
    _ method: MethodDescriptor,
    _ handler:
      @escaping @Sendable (RPCAsyncSequence<Request>, RPCWriter<Response>, ServerContext) async throws ->
      Void
  ) {
    register(method) { requests, responses, context in
      try await handler(
        requests.map { try Self.decode($0, method) },
        RPCWriter { try await responses.write($0.serializedBytes()) },
        context)
    }
  }

  static func decode<Message: ProtobufMessage>(_ bytes: [UInt8], _ method: MethodDescriptor) throws -> Message
  {
    do {
      return try Message(serializedBytes: bytes)
    } catch {
      throw RPCError(
        .invalidArgument, "\(method.fullName): request is not a valid \(Message.protoMessageName): \(error)")
    }
  }

  static func single<Message: ProtobufMessage>(
    _ requests: RPCAsyncSequence<[UInt8]>, _ method: MethodDescriptor
  ) async throws -> Message {
    var iterator = requests.makeAsyncIterator()
    guard let first = try await iterator.next() else {
      throw RPCError(.internal, "\(method.fullName) expects exactly one request message, got none")
    }
    guard try await iterator.next() == nil else {
      throw RPCError(.internal, "\(method.fullName) expects exactly one request message, got more")
    }
    return try decode(first, method)
  }
}

/// Serves services over a transport: routes each call, runs interceptors and the handler,
/// enforces the deadline, and maps errors to statuses.
public struct RPCServer: Sendable {
  /// The transport calls arrive on.
  public let transport: any ServerTransport
  /// The routes of every registered service.
  public let router: RPCRouter
  private let interceptors: [any ServerInterceptor]
  private let logger: Logger
  /// The longest a unary or client-streaming call may run, whatever deadline its client set (or
  /// none): a call that is still receiving its request then ends with `DEADLINE_EXCEEDED` and
  /// frees what it held. Server-streaming and bidirectional calls (watches) are not bounded.
  public let maximumUnaryDuration: Duration?

  public init(
    transport: any ServerTransport, services: [any RPCService], interceptors: [any ServerInterceptor] = [],
    maximumUnaryDuration: Duration? = .seconds(60), logger: Logger
  ) {
    var router = RPCRouter()
    for service in services { service.register(with: &router) }
    self.init(
      transport: transport, router: router, interceptors: interceptors,
      maximumUnaryDuration: maximumUnaryDuration,
      logger: logger)
  }

  public init(
    transport: any ServerTransport, router: RPCRouter, interceptors: [any ServerInterceptor],
    maximumUnaryDuration: Duration? = .seconds(60), logger: Logger
  ) {
    self.transport = transport
    self.router = router
    self.interceptors = interceptors
    self.maximumUnaryDuration = maximumUnaryDuration
    self.logger = logger
  }

  /// Serves until the transport is shut down or the task is cancelled.
  public func run() async throws {
    try await transport.listen { stream in await self.handle(stream) }
  }

  /// Stops accepting calls; running calls may finish.
  public func beginGracefulShutdown() { transport.beginGracefulShutdown() }

  /// Handles one call to its end (public so that other transports can reuse the dispatch).
  public func handle(_ stream: ServerStream) async {
    guard let route = router.routes[stream.path] else {
      await stream.outbound.finish(
        RPCStatus(code: .unimplemented, message: "unknown method \(stream.path)"), trailers: [])
      return
    }
    var deadline = stream.deadline
    if let limit = maximumUnaryDuration, route.method.kind == .unary || route.method.kind == .clientStreaming
    {
      let latest = ContinuousClock.now.advanced(by: limit)
      deadline = deadline.map { min($0, latest) } ?? latest
    }
    let context = ServerContext(
      method: route.method, metadata: stream.metadata, deadline: deadline, peer: stream.peer)
    let outbound = stream.outbound
    let headersSent = Mutex(false)
    // Response headers go out once: before the first message, or with an OK status.
    let sendHeadersOnce: @Sendable () async throws -> Void = {
      guard
        headersSent.withLock({ sent in
          defer { sent = true }; return !sent
        })
      else { return }
      try await outbound.writeHeaders(context.response.initial)
    }
    let writer = RPCWriter<[UInt8]> { bytes in
      try await sendHeadersOnce()
      try await outbound.writeMessage(bytes)
    }
    let interceptors = interceptors
    let inbound = stream.inbound
    let status: RPCStatus
    var trailers = Metadata()
    do {
      try await withDeadline(deadline) {
        try await Self.run(interceptors[...], context) { context in
          try await route.handler(inbound, writer, context)
        }
      }
      status = .ok
    } catch let error as RPCError {
      status = error.status
      trailers = error.metadata
      if let cause = error.cause {
        // A status with an internal reason behind it (a database error behind UNAVAILABLE): the
        // client sees the status, the operator the reason, both with the client's request ID.
        logger.warning(
          "call failed",
          metadata: [
            "rpc.method": "\(route.method.fullName)", "code": "\(error.code)",
            "request_id": "\(context.metadata["x-request-id"] ?? "")",
            "cause": "\(String(reflecting: cause))",
          ])
      }
    } catch is CancellationError {
      // The client reset the stream (or its deadline ended the handler): a normal end of a call,
      // not a failure, so not an error line (a rapid-reset client would write hundreds).
      if Task.isCancelled { return }  // nobody to answer
      logger.debug("call cancelled", metadata: ["rpc.method": "\(route.method.fullName)"])
      status = RPCStatus(code: .cancelled, message: "\(route.method.fullName) was cancelled")
    } catch {
      logger.error(
        "handler failed",
        metadata: [
          "rpc.method": "\(route.method.fullName)", "request_id": "\(context.metadata["x-request-id"] ?? "")",
          "error": "\(String(reflecting: error))",
        ])
      status = RPCStatus(code: .unknown, message: "\(route.method.fullName) failed with an unexpected error")
    }
    if Task.isCancelled { return }
    trailers.add(contentsOf: context.response.trailing)
    if status.code == .ok { try? await sendHeadersOnce() }
    await outbound.finish(status, trailers: trailers)
  }

  private static func run(
    _ interceptors: ArraySlice<any ServerInterceptor>, _ context: ServerContext,
    _ handler: @escaping @Sendable (ServerContext) async throws -> Void
  ) async throws {
    guard let first = interceptors.first else { return try await handler(context) }
    let rest = interceptors.dropFirst()
    try await first.intercept(context) { context in try await run(rest, context, handler) }
  }
}
