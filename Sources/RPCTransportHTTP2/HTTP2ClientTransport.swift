import HTTP2
public import Logging
public import RPCCore
public import TLS

/// Calls a gRPC server over HTTP/2 (h2c, prior knowledge), with nghttp2.
///
/// All calls share one connection (HTTP/2 multiplexes them). The connection is opened on the
/// first call; when it drops or the server sends GOAWAY, calls already running on it finish (or
/// fail with `UNAVAILABLE`) and the next call opens a new one.
public final class HTTP2ClientTransport: ClientTransport {
  /// Where to connect and the client's limits.
  public struct Configuration: Sendable {
    /// The server's host name or address.
    public var host: String
    /// The server's port.
    public var port: Int
    /// The largest response message accepted (unless a call's options say otherwise).
    public var maximumReceiveMessageBytes = 4 << 20
    /// How long connecting may take before calls fail with `UNAVAILABLE`.
    public var connectTimeout: Duration = .seconds(10)
    /// Sent as `user-agent`.
    public var userAgent = "payments-swift-grpc/1"
    /// TLS (ALPN `h2`); `nil` (the default) speaks plaintext h2c.
    public var tls: TLSContext? = nil
    /// The name the server's certificate must carry (and SNI); defaults to ``authority``'s host,
    /// else ``host``.
    public var serverName: String? = nil
    /// Sent as `:authority`; defaults to `host:port`.
    public var authority: String? = nil

    /// ``authority`` without its port.
    var authorityHost: String? {
      guard let authority else { return nil }
      if authority.hasPrefix("["), let end = authority.firstIndex(of: "]") {
        return String(authority[authority.index(after: authority.startIndex)..<end])
      }
      return authority.split(separator: ":", maxSplits: 1).first.map(String.init)
    }

    public init(host: String, port: Int) {
      self.host = host
      self.port = port
    }
  }

  private final class LoopState: @unchecked Sendable {
    /// The connection new calls use.
    var connection: GRPCConnection?
    /// Every open connection (draining ones finish their calls), keeping them alive.
    var connections: [ObjectIdentifier: GRPCConnection] = [:]
    var closed = false
  }

  public let configuration: Configuration
  private let logger: Logger
  private let loop: EventLoop
  private let state = LoopState()

  public init(configuration: Configuration, logger: Logger) {
    self.configuration = configuration
    self.logger = logger
    self.loop = EventLoop(name: "grpc-client-\(configuration.host):\(configuration.port)")
  }

  /// Closes the connection (running calls fail with `UNAVAILABLE`) and stops the loop thread.
  public func close() {
    loop.execute { [state, loop] in
      state.closed = true
      for connection in Array(state.connections.values) { connection.close(reason: "client closed") }
      state.connection = nil
      loop.stop()
    }
  }

  deinit { loop.stop() }

  public func withStream<Result: Sendable>(
    method: MethodDescriptor, metadata: Metadata, deadline: ContinuousClock.Instant?,
    _ body: @Sendable (ClientStream) async throws -> Result
  ) async throws -> Result {
    var headers = [
      HTTP2Header(":method", "POST"), HTTP2Header(":scheme", configuration.tls == nil ? "http" : "https"),
      HTTP2Header(":path", method.path),
      HTTP2Header(":authority", configuration.authority ?? "\(configuration.host):\(configuration.port)"),
      HTTP2Header("content-type", "application/grpc"), HTTP2Header("te", "trailers"),
      HTTP2Header("user-agent", configuration.userAgent),
    ]
    if let deadline {
      headers.append(
        HTTP2Header("grpc-timeout", GRPCHeaders.formatTimeout(ContinuousClock.now.duration(to: deadline))))
    }
    headers += GRPCHeaders.fields(from: metadata)
    let requestHeaders = headers
    let maximum = configuration.maximumReceiveMessageBytes
    let (connection, stream): (WeakConnection, StreamHandle)
    do {
      (connection, stream) = try await loop.submit { [self] in
        let connection = try currentConnection()
        let stream = try connection.openCall(requestHeaders, maximumResponseBytes: maximum)
        return (WeakConnection(connection), StreamHandle(stream))
      }
    } catch is EventLoopStoppedError {
      throw RPCError(.unavailable, "the client transport is closed")
    }
    let loop = loop
    let id = stream.value.id
    defer { loop.execute { connection.value?.cancelCall(id) } }
    return try await body(
      ClientStream(
        outbound: RequestWriter(connection: connection, loop: loop, id: id, budget: stream.value.budget),
        inbound: stream.value.parts!.elements))
  }

  /// Opens the connection now (TCP; TLS completes with the first call) instead of with the first
  /// call: `UNAVAILABLE` when the server cannot be reached.
  public func connect() async throws {
    do {
      try await loop.submit { [self] in _ = try currentConnection() }
    } catch is EventLoopStoppedError {
      throw RPCError(.unavailable, "the client transport is closed")
    }
  }

  /// Loop side: the connection new calls use, opened if needed.
  private func currentConnection() throws -> GRPCConnection {
    guard !state.closed else { throw RPCError(.unavailable, "the client transport is closed") }
    if let connection = state.connection, !connection.isClosed, !connection.isDraining { return connection }
    let descriptor: Int32
    do {
      descriptor = try TCPSocket.connect(host: configuration.host, port: configuration.port)
    } catch {
      throw RPCError(.unavailable, "cannot connect to \(configuration.host):\(configuration.port): \(error)")
    }
    let connection = try GRPCConnection(
      loop: loop, descriptor: descriptor, peer: "\(configuration.host):\(configuration.port)",
      isServer: false,
      settings: HTTP2Session.Settings(),
      limits: GRPCConnection.Limits(maximumReceiveMessageBytes: configuration.maximumReceiveMessageBytes),
      tls: try configuration.tls.map {
        try TLSConnection(
          context: $0,
          serverName: configuration.serverName ?? configuration.authorityHost ?? configuration.host)
      },
      logger: logger)
    connection.onClose = { [state] closed in
      if state.connection === closed { state.connection = nil }
      state.connections[ObjectIdentifier(closed)] = nil
    }
    state.connection = connection
    state.connections[ObjectIdentifier(connection)] = connection
    connection.start()
    loop.schedule(at: .now.advanced(by: configuration.connectTimeout)) { [weak connection] in
      guard let connection, !connection.isConnected else { return }
      connection.failure = "connecting to \(connection.peer) timed out"
      connection.close(reason: "connect timeout")
    }
    return connection
  }
}

/// Carries a loop-confined stream out of the loop; only its thread-safe parts (the message
/// queue, the ID) are used elsewhere.
struct StreamHandle: @unchecked Sendable {
  let value: GRPCConnection.Stream
  init(_ value: GRPCConnection.Stream) { self.value = value }
}

/// A caller's requests, handed to the connection's loop.
struct RequestWriter: ClientStreamWriter {
  let connection: WeakConnection
  let loop: EventLoop
  let id: Int32
  let budget: WriteBudget

  func writeMessage(_ bytes: [UInt8]) async throws {
    try await connection.sendMessage(bytes, on: id, budget: budget, loop: loop)
  }

  func finish() async throws {
    let connection = connection
    let id = id
    loop.execute { connection.value?.finishRequests(id) }
  }
}
