import HTTP2
public import Logging
public import RPCCore
import Synchronization
public import TLS

/// Serves gRPC over HTTP/2 (h2c, prior knowledge) on a TCP port, with nghttp2.
///
/// One event-loop thread owns the listening socket and every connection; handlers run as tasks
/// and hand their responses back to the loop. See ``Configuration`` for the limits.
public final class HTTP2ServerTransport: ServerTransport {
  /// Where to listen and the limits every connection gets.
  public struct Configuration: Sendable {
    /// Host or address to bind (`0.0.0.0`, `::`, `127.0.0.1`, a name).
    public var host: String
    /// Port to bind; 0 picks a free one (see ``HTTP2ServerTransport/boundPort()``).
    public var port: Int
    /// The largest request message accepted; larger ones end the call with `RESOURCE_EXHAUSTED`.
    public var maximumReceiveMessageBytes = 4 << 20
    /// Streams a client may have open at once on a connection.
    public var maximumConcurrentStreams: UInt32 = 100
    /// The largest header block accepted (bytes, as HTTP/2 counts them).
    public var maximumHeaderListBytes: UInt32 = 16 << 10
    /// A connection with no open stream for this long is closed (GOAWAY first).
    public var idleTimeout: Duration = .seconds(300)
    /// A connection whose client has not sent its preface and SETTINGS within this time is
    /// closed.
    public var handshakeTimeout: Duration = .seconds(10)
    /// After ``HTTP2ServerTransport/beginGracefulShutdown()``, running calls get this long to
    /// finish before their connections are closed.
    public var shutdownGracePeriod: Duration = .seconds(10)
    /// Server-initiated PING interval on busy connections (`nil`: only answer the client's).
    public var keepaliveInterval: Duration? = nil
    /// TLS (ALPN `h2`) in front of HTTP/2; `nil` (the default) serves plaintext h2c.
    public var tls: TLSContext? = nil
    /// Connections open at once; one accepted beyond it is closed at once (the client sees
    /// the connection closed and its calls fail `UNAVAILABLE`).
    public var maximumConnections = 1000
    /// Connections open at once from one IP address (`0`: no per-address limit), so that one
    /// host cannot take every connection. Raise it (or set 0) behind a proxy or NAT that
    /// funnels many clients into one address.
    public var maximumConnectionsPerAddress = 100

    public init(host: String = "0.0.0.0", port: Int = 0) {
      self.host = host
      self.port = port
    }
  }

  private struct PendingCall: Sendable {
    let stream: ServerStream
    let reset: MessageQueue<Void>
  }

  /// Listener and connections; only touched on the loop.
  private final class LoopState: @unchecked Sendable {
    var listener: Int32?
    var acceptor: Acceptor?
    var connections: [ObjectIdentifier: GRPCConnection] = [:]
    /// Open connections by the peer's IP address.
    var perAddress: [Substring: Int] = [:]
    var shuttingDown = false
    /// Connections refused for a limit since the last warning, and when that was logged.
    var refused = 0
    var lastRefusalWarning: ContinuousClock.Instant?
  }

  public let configuration: Configuration
  private let logger: Logger
  private let loop: EventLoop
  private let calls = MessageQueue<PendingCall>()
  private let state = LoopState()
  private let bound = Mutex<
    (port: Int?, waiters: [CheckedContinuation<Int, any Error>], error: (any Error)?)
  >(
    (nil, [], nil))

  public init(configuration: Configuration, logger: Logger) {
    self.configuration = configuration
    self.logger = logger
    self.loop = EventLoop(name: "grpc-server-\(configuration.port)")
  }

  deinit { loop.stop() }

  /// The port the server listens on, once it does (useful with port 0).
  public func boundPort() async throws -> Int {
    try await withCheckedThrowingContinuation { continuation in
      let ready: Result<Int, any Error>? = bound.withLock { bound in
        if let port = bound.port { return .success(port) }
        if let error = bound.error { return .failure(error) }
        bound.waiters.append(continuation)
        return nil
      }
      if let ready { continuation.resume(with: ready) }
    }
  }

  public func listen(_ handle: @escaping @Sendable (ServerStream) async -> Void) async throws {
    let listener: (descriptor: Int32, port: Int)
    do {
      listener = try TCPSocket.listen(host: configuration.host, port: configuration.port)
    } catch {
      let waiters = bound.withLock { bound in
        bound.error = error
        defer { bound.waiters = [] }
        return bound.waiters
      }
      for waiter in waiters { waiter.resume(throwing: error) }
      throw error
    }
    let acceptor = Acceptor(transport: self, descriptor: listener.descriptor)
    loop.execute { [state, loop] in
      state.listener = listener.descriptor
      state.acceptor = acceptor
      loop.register(listener.descriptor, acceptor)
    }
    let waiters = bound.withLock { bound in
      bound.port = listener.port
      defer { bound.waiters = [] }
      return bound.waiters
    }
    for waiter in waiters { waiter.resume(returning: listener.port) }
    logger.info(
      "gRPC server listening", metadata: ["host": "\(configuration.host)", "port": "\(listener.port)"])

    await withTaskCancellationHandler {
      await withDiscardingTaskGroup { group in
        while let call = try? await calls.next() {
          group.addTask { await runCancellingOnReset(call.reset) { await handle(call.stream) } }
        }
      }
    } onCancel: {
      self.loop.execute { self.closeEverything() }
    }
  }

  public func beginGracefulShutdown() {
    loop.execute { [self] in
      guard !state.shuttingDown else { return }
      state.shuttingDown = true
      stopListening()
      for connection in state.connections.values { connection.drain(debugData: "server shutting down") }
      finishIfDone()
      loop.schedule(at: .now.advanced(by: configuration.shutdownGracePeriod)) { [self] in closeEverything() }
    }
  }

  // MARK: Loop side

  private func stopListening() {
    if let listener = state.listener {
      loop.deregister(listener)
      TCPSocket.close(listener)
      state.listener = nil
    }
  }

  private func closeEverything() {
    state.shuttingDown = true
    stopListening()
    for connection in Array(state.connections.values) { connection.close(reason: "server stopped") }
    finishIfDone()
  }

  private func finishIfDone() {
    if state.shuttingDown && state.connections.isEmpty && state.listener == nil { calls.finish() }
  }

  /// Whether a connection from `address` stays within the connection limits; logs refusals
  /// (at most one warning every 10 s, with the count).
  private func admits(_ address: Substring) -> Bool {
    let limit = configuration.maximumConnectionsPerAddress
    let overTotal = state.connections.count >= configuration.maximumConnections
    let overAddress = limit > 0 && state.perAddress[address, default: 0] >= limit
    guard overTotal || overAddress else { return true }
    state.refused += 1
    let now = ContinuousClock.now
    if state.lastRefusalWarning.map({ now - $0 >= .seconds(10) }) ?? true {
      logger.warning(
        "refusing connections over the limit",
        metadata: [
          "refused": "\(state.refused)", "peer_address": "\(address)",
          "limit": overTotal
            ? "maximumConnections \(configuration.maximumConnections)"
            : "maximumConnectionsPerAddress \(limit)",
        ])
      state.refused = 0
      state.lastRefusalWarning = now
    }
    return false
  }

  fileprivate func accept(from listener: Int32) {
    while let (descriptor, peer) = TCPSocket.accept(listener) {
      let address = ServerContext.address(ofPeer: peer)
      guard admits(address) else {
        TCPSocket.close(descriptor)
        continue
      }
      var settings = HTTP2Session.Settings()
      settings.maximumConcurrentStreams = configuration.maximumConcurrentStreams
      settings.maximumHeaderListSize = configuration.maximumHeaderListBytes
      let connection: GRPCConnection
      do {
        connection = try GRPCConnection(
          loop: loop, descriptor: descriptor, peer: peer, isServer: true, settings: settings,
          limits: GRPCConnection.Limits(maximumReceiveMessageBytes: configuration.maximumReceiveMessageBytes),
          tls: try configuration.tls.map { try TLSConnection(context: $0) }, logger: logger)
      } catch {
        TCPSocket.close(descriptor)
        continue
      }
      connection.idleTimeout = configuration.idleTimeout
      connection.onCall = { [calls, weak connection] stream, fields, metadata, deadline in
        guard let connection else { return }
        let path = fields.first { $0.name == ":path" }?.value ?? ""
        calls.yield(
          PendingCall(
            stream: ServerStream(
              path: path, metadata: metadata, deadline: deadline, peer: connection.peer,
              inbound: stream.requests!.elements,
              outbound: ResponseWriter(
                connection: WeakConnection(connection), loop: connection.loop, id: stream.id,
                budget: stream.budget)),
            reset: stream.reset))
      }
      connection.onClose = { [weak self] connection in
        guard let self else { return }
        if self.state.connections.removeValue(forKey: ObjectIdentifier(connection)) != nil {
          let remaining = self.state.perAddress[address, default: 1] - 1
          self.state.perAddress[address] = remaining > 0 ? remaining : nil
        }
        self.finishIfDone()
      }
      state.connections[ObjectIdentifier(connection)] = connection
      state.perAddress[address, default: 0] += 1
      connection.start()
      loop.schedule(at: .now.advanced(by: configuration.handshakeTimeout)) { [weak connection] in
        guard let connection, !connection.session.hasReceivedFrame else { return }
        connection.close(reason: "no HTTP/2 preface within the handshake timeout")
      }
      if let interval = configuration.keepaliveInterval { schedulePing(connection, every: interval) }
    }
  }

  private func schedulePing(_ connection: GRPCConnection, every interval: Duration) {
    loop.schedule(at: .now.advanced(by: interval)) { [weak self, weak connection] in
      guard let self, let connection, !connection.isClosed else { return }
      if !connection.streams.isEmpty {
        connection.session.ping()
        connection.flush()
      }
      self.schedulePing(connection, every: interval)
    }
  }

  /// Accepts connections; confined to the loop like the connections.
  fileprivate final class Acceptor: EventLoopSource, @unchecked Sendable {
    unowned let transport: HTTP2ServerTransport
    let descriptor: Int32
    init(transport: HTTP2ServerTransport, descriptor: Int32) {
      self.transport = transport
      self.descriptor = descriptor
    }
    func readable() { transport.accept(from: descriptor) }
    func writable() {}
  }
}

/// A handler's response, handed to the connection's loop.
struct ResponseWriter: ServerStreamWriter {
  let connection: WeakConnection
  let loop: EventLoop
  let id: Int32
  let budget: WriteBudget

  func writeHeaders(_ metadata: Metadata) async throws {
    let connection = connection
    let id = id
    loop.execute { connection.value?.sendHeaders(id, metadata) }
  }

  func writeMessage(_ bytes: [UInt8]) async throws {
    try await connection.sendMessage(bytes, on: id, budget: budget, loop: loop)
  }

  func finish(_ status: RPCStatus, trailers: Metadata) async {
    let connection = connection
    let id = id
    loop.execute { connection.value?.sendStatus(id, status, trailers: trailers) }
  }
}
