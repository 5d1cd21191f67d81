import HTTP2
import Logging
import RPCCore
import Synchronization
import TLS

/// One HTTP/2 connection carrying gRPC calls, server or client side: the socket, the nghttp2
/// session, and the state of every open stream.
///
/// Confined to its event loop: every method runs on the loop thread (tasks reach it through
/// `EventLoop.execute`), which is why the class can be `@unchecked Sendable` without locks.
final class GRPCConnection: EventLoopSource, @unchecked Sendable {
  /// Limits and timeouts of one connection.
  struct Limits {
    var maximumReceiveMessageBytes: Int
    /// Response (server) or request (client) bytes buffered per stream before writers wait.
    var writeBufferBytes = 256 << 10
    /// Received messages queued per stream before the peer's window stops being replenished.
    var readBufferBytes = 1 << 20
    /// Received bytes buffered on the whole connection — queued messages and messages still
    /// arriving, of all its streams — above which the peer gets no more flow-control credit
    /// until some are taken (``InboundMemory`` has the process-wide bound).
    var connectionReadBufferBytes = 16 << 20
  }

  /// Per-stream state.
  final class Stream {
    let id: Int32
    var deframer: GRPCMessageDeframer
    /// Server: request messages for the handler. Client: response parts for the caller.
    let requests: MessageQueue<[UInt8]>?
    let parts: MessageQueue<ClientStreamPart>?
    /// Server: finished when the client reset the stream, to cancel the handler.
    let reset = MessageQueue<Void>()
    var queuedBytes = 0
    var heldCredit = 0
    /// Bytes of a message still arriving, held by ``deframer``.
    var partialBytes = 0
    /// This stream's bytes in the connection's and the process's inbound totals.
    var accountedBytes = 0
    var headersDone = false
    var outboundFinished = false
    var inboundFinished = false
    /// Inbound bytes are discarded (the call was answered with an error already).
    var discarding = false
    var writeWaiter: CheckedContinuation<Void, any Error>?
    /// Bytes of outbound messages not yet taken by nghttp2, shared with the stream's writer.
    let budget = WriteBudget()
    /// The stream's buffered bytes in the session at the last check (for ``budget``).
    var lastBuffered = 0

    init(
      id: Int32, maximumMessageBytes: Int, requests: MessageQueue<[UInt8]>?,
      parts: MessageQueue<ClientStreamPart>?
    ) {
      self.id = id
      self.deframer = GRPCMessageDeframer(maximumMessageBytes: maximumMessageBytes)
      self.requests = requests
      self.parts = parts
    }
  }

  let loop: EventLoop
  let descriptor: Int32
  let peer: String
  let isServer: Bool
  let session: HTTP2Session
  /// TLS between the socket and the session, when configured.
  let tls: TLSConnection?
  var limits: Limits
  let logger: Logger
  var streams: [Int32: Stream] = [:]
  private var output: [UInt8] = []
  private var outputOffset = 0
  private var readBuffer = [UInt8](repeating: 0, count: 64 << 10)
  private(set) var isClosed = false
  /// GOAWAY sent or received: no new streams.
  var isDraining = false
  /// Client: the socket is connected (writes before that are buffered).
  var isConnected: Bool
  private var idleTimer: Int?
  var idleTimeout: Duration?
  /// Received bytes buffered by all streams (queued and partial messages).
  private(set) var bufferedInboundBytes = 0
  /// While credit is held because of the process-wide bound, a check every 50 ms (memory freed
  /// on other connections raises no event here).
  private var creditTimer: Int?

  /// Server: a new call arrived (validated). Client: unused.
  var onCall: ((Stream, [HTTP2Header], Metadata, ContinuousClock.Instant?) -> Void)?
  /// Called once when the connection closed.
  var onClose: ((GRPCConnection) -> Void)?
  /// Client: why the connection failed, for the statuses of its streams.
  var failure: String?

  init(
    loop: EventLoop, descriptor: Int32, peer: String, isServer: Bool, settings: HTTP2Session.Settings,
    limits: Limits, tls: TLSConnection? = nil, logger: Logger
  ) throws {
    self.tls = tls
    self.loop = loop
    self.descriptor = descriptor
    self.peer = peer
    self.isServer = isServer
    self.session = try HTTP2Session(isServer: isServer, settings: settings)
    self.limits = limits
    self.logger = logger
    self.isConnected = isServer
  }

  /// Starts watching the socket (client: waits for the connect to finish).
  func start() {
    loop.register(descriptor, self, wantsWrite: !isConnected)
    if isConnected { flush() }
    armIdleTimer()
  }

  // MARK: Socket I/O

  func readable() {
    guard !isClosed else { return }
    if !isConnected { return writable() }
    while !isClosed {
      let count: Int?
      do {
        count = try TCPSocket.read(descriptor, into: &readBuffer)
      } catch {
        return close(reason: "\(error)")
      }
      guard let count else { break }
      if count == 0 { return close(reason: "closed by peer") }
      do {
        if let tls {
          readBuffer.withUnsafeBytes {
            tls.receiveCiphertext(UnsafeRawBufferPointer(rebasing: $0[0..<count]))
          }
          try tls.readPlaintext().withUnsafeBytes { try session.receive($0) }
        } else {
          try readBuffer.withUnsafeBytes {
            try session.receive(UnsafeRawBufferPointer(rebasing: $0[0..<count]))
          }
        }
      } catch let error as TLSError {
        logger.debug("TLS error", metadata: ["peer": "\(peer)", "error": "\(error)"])
        failure = "TLS with \(peer) failed: \(error)"
        flush()
        return close(reason: "TLS: \(error)")
      } catch let error as HTTP2Error {
        logger.debug("HTTP/2 protocol error", metadata: ["peer": "\(peer)", "error": "\(error)"])
        flush()
        return close(reason: "protocol error: \(error)")
      } catch {
        return close(reason: "\(error)")
      }
      processEvents()
      if count < readBuffer.count { break }
    }
    flush()
  }

  func writable() {
    guard !isClosed else { return }
    if !isConnected {
      if let error = TCPSocket.connectionError(descriptor) {
        failure = "cannot connect to \(peer): \(error)"
        return close(reason: "\(error)")
      }
      isConnected = true
    }
    flush()
  }

  /// Moves what the session wants to send to the socket, as far as the socket takes it.
  func flush() {
    guard !isClosed, isConnected else { return }
    while true {
      if outputOffset == output.count {
        output.removeAll(keepingCapacity: true)
        outputOffset = 0
        do {
          output = try session.pendingOutput()
          if let tls {
            try tls.writePlaintext(output)
            output = try tls.takeCiphertext()
          }
        } catch {
          return close(reason: "\(error)")
        }
        if output.isEmpty { break }
      }
      let written: Int
      do {
        written = try TCPSocket.write(descriptor, output, from: outputOffset)
      } catch {
        return close(reason: "\(error)")
      }
      outputOffset += written
      if written == 0 { break }
    }
    loop.setWantsWrite(descriptor, outputOffset < output.count)
    resumeWriters()
    if !session.wantsRead && !session.wantsWrite && outputOffset == output.count {
      close(reason: sessionEndReason)
    } else if isDraining && streams.isEmpty && outputOffset == output.count {
      close(reason: "drained")
    }
  }

  /// Why nghttp2 finished the session (it wants neither to read nor to write).
  private var sessionEndReason: String {
    if let code = session.sentGoAwayCode, code != HTTP2ErrorCode.noError {
      return "session ended: this side sent GOAWAY with HTTP/2 error code \(code)"
    }
    if let code = session.receivedGoAwayCode {
      return "session ended: \(peer) sent GOAWAY with HTTP/2 error code \(code)"
    }
    return "session finished"
  }

  /// Closes the socket; every open stream ends (server: handlers are cancelled; client: callers
  /// get `UNAVAILABLE`).
  func close(reason: String) {
    guard !isClosed else { return }
    isClosed = true
    logger.debug("connection closed", metadata: ["peer": "\(peer)", "reason": "\(reason)"])
    loop.deregister(descriptor)
    TCPSocket.close(descriptor)
    if let idleTimer { loop.cancelTimer(idleTimer) }
    if let creditTimer { loop.cancelTimer(creditTimer) }
    creditTimer = nil
    for stream in streams.values {
      endStream(
        stream,
        clientStatus: RPCStatus(
          code: .unavailable, message: failure ?? "connection to \(peer) lost: \(reason)"))
    }
    streams.removeAll()
    onClose?(self)
  }

  /// Sends GOAWAY: streams already open may finish, then the connection closes.
  func drain(debugData: String = "") {
    guard !isClosed, !isDraining else { return }
    isDraining = true
    session.goAway(debugData: debugData)
    flush()
  }

  private func armIdleTimer() {
    if let idleTimer { loop.cancelTimer(idleTimer) }
    idleTimer = nil
    guard let idleTimeout, streams.isEmpty, !isClosed else { return }
    idleTimer = loop.schedule(at: .now.advanced(by: idleTimeout)) { [weak self] in
      guard let self, self.streams.isEmpty else { return }
      self.drain(debugData: "idle")
      self.close(reason: "idle timeout")
    }
  }

  // MARK: Events

  private func processEvents() {
    for event in session.takeEvents() {
      switch event {
      case .headers(let id, let kind, let fields, let endStream):
        if isServer {
          if kind == .request {
            receivedRequest(id, fields, endStream: endStream)
          } else if endStream, let stream = streams[id] {
            receivedEnd(stream)
          }
        } else {
          receivedResponseHeaders(id, kind, fields, endStream: endStream)
        }
      case .data(let id, let bytes):
        receivedData(id, bytes)
      case .endStream(let id):
        if let stream = streams[id] { receivedEnd(stream) }
      case .streamClosed(let id, let errorCode):
        guard let stream = streams.removeValue(forKey: id) else { continue }
        let message =
          errorCode == HTTP2ErrorCode.noError
          ? "stream closed without a status"
          : errorCode == HTTP2ErrorCode.refusedStream
            ? "the request was refused by \(peer) before it was processed (REFUSED_STREAM); safe to retry"
            : "stream reset by \(peer) (HTTP/2 error code \(errorCode))"
        let code: RPCStatus.Code =
          errorCode == HTTP2ErrorCode.refusedStream
          ? .unavailable : errorCode == HTTP2ErrorCode.cancel ? .cancelled : .internal
        endStream(stream, clientStatus: RPCStatus(code: code, message: message))
        if streams.isEmpty { armIdleTimer() }
      case .requestNotSent(let id, let reason):
        guard let stream = streams.removeValue(forKey: id) else { continue }
        endStream(
          stream,
          clientStatus: RPCStatus(
            code: .unavailable, message: "the request to \(peer) was never sent (\(reason))"))
        if streams.isEmpty { armIdleTimer() }
      case .goAway(let lastStreamID, let errorCode):
        isDraining = true
        logger.debug(
          "GOAWAY received",
          metadata: ["peer": "\(peer)", "last_stream": "\(lastStreamID)", "code": "\(errorCode)"])
      }
    }
  }

  /// The stream is gone: wake everything that waits on it.
  private func endStream(_ stream: Stream, clientStatus: RPCStatus) {
    forget(stream)
    stream.writeWaiter?.resume(throwing: RPCError(.cancelled, "the stream was closed"))
    stream.writeWaiter = nil
    stream.budget.close()
    if let requests = stream.requests {
      if !stream.inboundFinished { requests.finish(throwing: CancellationError()) }
      stream.reset.finish()
    }
    if let parts = stream.parts, !stream.inboundFinished {
      parts.yield(.status(clientStatus, []))
      parts.finish()
    }
    stream.inboundFinished = true
  }

  private func receivedData(_ id: Int32, _ bytes: [UInt8]) {
    guard let stream = streams[id], !stream.discarding, !stream.inboundFinished else {
      session.consume(streamID: id, count: bytes.count)
      return
    }
    let messages: [[UInt8]]
    do {
      messages = try stream.deframer.append(bytes)
    } catch {
      session.consume(streamID: id, count: bytes.count)
      let status: RPCStatus =
        switch error {
        case .messageTooLarge(let length, let limit):
          RPCStatus(
            code: .resourceExhausted,
            message:
              "\(isServer ? "request" : "response") message of \(length) bytes exceeds the limit of \(limit) bytes"
          )
        case .unexpectedCompression:
          RPCStatus(
            code: .internal, message: "compressed message received, but no grpc-encoding was negotiated")
        case .invalidFlag(let flag):
          RPCStatus(code: .internal, message: "invalid message flag \(flag)")
        }
      return failInbound(stream, status)
    }
    // Every byte held counts — also those of a message still arriving, which may be as large as
    // the message limit — and credit goes back only while the stream, the connection and the
    // process are under their bounds; otherwise the peer's flow-control window stops it.
    let partial = stream.deframer.partialBytes
    let completed = messages.reduce(0) { $0 + $1.count + 5 }
    account(stream, partial - stream.partialBytes + completed)
    stream.partialBytes = partial
    stream.queuedBytes += completed
    if mayReturnCredit(stream) {
      session.consume(streamID: id, count: bytes.count)
    } else {
      stream.heldCredit += bytes.count
      armCreditTimer()
    }
    for message in messages {
      if isServer {
        stream.requests?.yield(message)
      } else if !stream.headersDone {
        return failInbound(
          stream, RPCStatus(code: .internal, message: "message received before response headers"))
      } else {
        stream.parts?.yield(.message(message))
      }
    }
  }

  /// A message was taken by its reader: give flow-control credit back if it was held.
  func messageConsumed(_ id: Int32, bytes: Int) {
    guard let stream = streams[id], stream.accountedBytes > 0 else { return }
    stream.queuedBytes -= bytes + 5
    account(stream, -(bytes + 5))
    releaseHeldCredit()
  }

  private func receivedEnd(_ stream: Stream) {
    guard !stream.inboundFinished, !stream.discarding else { return }
    guard stream.deframer.isAtMessageBoundary else {
      return failInbound(
        stream, RPCStatus(code: .internal, message: "stream ended in the middle of a message"))
    }
    if isServer {
      stream.inboundFinished = true
      stream.requests?.finish()
    }
  }

  /// Ends a call because of what the peer sent: server answers with `status`, client reports it
  /// and cancels the stream.
  /// Adds `delta` received bytes held for `stream` to the connection's and the process's totals.
  private func account(_ stream: Stream, _ delta: Int) {
    guard delta != 0 else { return }
    stream.accountedBytes += delta
    bufferedInboundBytes += delta
    InboundMemory.add(delta)
  }

  /// The stream holds nothing any more: its bytes leave the totals and held credit goes back (to
  /// the connection's window, if the stream is closed).
  private func forget(_ stream: Stream) {
    account(stream, -stream.accountedBytes)
    stream.partialBytes = 0
    stream.queuedBytes = 0
    if stream.heldCredit > 0 {
      session.consume(streamID: stream.id, count: stream.heldCredit)
      stream.heldCredit = 0
    }
    releaseHeldCredit()
  }

  private func mayReturnCredit(_ stream: Stream) -> Bool {
    stream.queuedBytes < limits.readBufferBytes && bufferedInboundBytes < limits.connectionReadBufferBytes
      && InboundMemory.bufferedBytes < InboundMemory.limit
  }

  /// Gives held credit back to every stream now under all bounds.
  private func releaseHeldCredit() {
    guard !isClosed else { return }
    var released = false
    var stillHeld = false
    for stream in streams.values where stream.heldCredit > 0 {
      if mayReturnCredit(stream) {
        session.consume(streamID: stream.id, count: stream.heldCredit)
        stream.heldCredit = 0
        released = true
      } else {
        stillHeld = true
      }
    }
    if released { flush() }
    if stillHeld { armCreditTimer() }
  }

  private func armCreditTimer() {
    guard creditTimer == nil, !isClosed else { return }
    creditTimer = loop.schedule(at: .now.advanced(by: .milliseconds(50))) { [weak self] in
      guard let self else { return }
      self.creditTimer = nil
      self.releaseHeldCredit()
    }
  }

  private func failInbound(_ stream: Stream, _ status: RPCStatus) {
    stream.discarding = true
    // What arrived of the failed call is dropped (and stops counting).
    stream.deframer = GRPCMessageDeframer(maximumMessageBytes: stream.deframer.maximumMessageBytes)
    forget(stream)
    if isServer {
      stream.inboundFinished = true
      stream.requests?.finish(throwing: RPCError(status.code, status.message))
      stream.reset.finish()  // the handler must not answer as well
      sendStatus(stream.id, status, trailers: [])
    } else {
      stream.inboundFinished = true
      stream.parts?.yield(.status(status, []))
      stream.parts?.finish()
      session.reset(streamID: stream.id, errorCode: HTTP2ErrorCode.cancel)
    }
  }

  // MARK: Server side

  private func receivedRequest(_ id: Int32, _ fields: [HTTP2Header], endStream: Bool) {
    func field(_ name: String) -> String? { fields.first { $0.name == name }?.value }
    if isDraining {
      session.reset(streamID: id, errorCode: HTTP2ErrorCode.refusedStream)
      return
    }
    guard field(":method") == "POST" else {
      return respondHTTPError(
        id, status: 405, message: "gRPC requires POST, got \(field(":method") ?? "no method")")
    }
    // Protobuf is the only codec: `application/grpc`, `application/grpc+proto`, with or without
    // parameters; another subtype (`+json`) would be read as protobuf by mistake.
    let mediaType = field("content-type")?.split(separator: ";", maxSplits: 1).first
      .map { String($0.drop { $0 == " " }.reversed().drop { $0 == " " }.reversed()).lowercased() }
    guard mediaType == "application/grpc" || mediaType == "application/grpc+proto" else {
      return respondHTTPError(
        id, status: 415,
        message:
          "content-type must be application/grpc or application/grpc+proto, got \(field("content-type") ?? "none")"
      )
    }
    let stream = Stream(
      id: id, maximumMessageBytes: limits.maximumReceiveMessageBytes, requests: nil, parts: nil)
    if let encoding = field("grpc-encoding"), encoding != "identity" {
      streams[id] = stream
      stream.discarding = true
      return sendStatus(
        id,
        RPCStatus(
          code: .unimplemented, message: "grpc-encoding \(encoding) is not supported (only identity)"),
        trailers: [], extra: [HTTP2Header("grpc-accept-encoding", "identity")])
    }
    var deadline: ContinuousClock.Instant?
    if let timeout = field("grpc-timeout") {
      guard let duration = GRPCHeaders.parseTimeout(timeout) else {
        streams[id] = stream
        stream.discarding = true
        return sendStatus(
          id, RPCStatus(code: .internal, message: "malformed grpc-timeout '\(timeout)'"), trailers: [])
      }
      deadline = .now.advanced(by: duration)
    }
    let loop = loop
    let connection = WeakConnection(self)
    let requests = MessageQueue<[UInt8]> { message in
      loop.execute { connection.value?.messageConsumed(id, bytes: message.count) }
    }
    let call = Stream(
      id: id, maximumMessageBytes: limits.maximumReceiveMessageBytes, requests: requests, parts: nil)
    streams[id] = call
    if let idleTimer { loop.cancelTimer(idleTimer) }
    idleTimer = nil
    if endStream {
      call.inboundFinished = true
      requests.finish()
    }
    onCall?(call, fields, GRPCHeaders.metadata(from: fields), deadline)
  }

  private func respondHTTPError(_ id: Int32, status: Int, message: String) {
    try? session.submitResponse(
      streamID: id,
      [
        HTTP2Header(":status", "\(status)"), HTTP2Header("content-type", "application/grpc"),
        HTTP2Header("grpc-status", "\(RPCStatus.Code.internal.rawValue)"),
        HTTP2Header("grpc-message", GRPCHeaders.percentEncode(message)),
      ], endStream: true)
  }

  /// Server: response headers (before the first message).
  func sendHeaders(_ id: Int32, _ metadata: Metadata) {
    guard let stream = streams[id], !stream.headersDone, !stream.outboundFinished else { return }
    stream.headersDone = true
    do {
      try session.submitResponse(
        streamID: id,
        [HTTP2Header(":status", "200"), HTTP2Header("content-type", "application/grpc")]
          + GRPCHeaders.fields(from: metadata), endStream: false)
    } catch {
      session.reset(streamID: id, errorCode: HTTP2ErrorCode.internalError)
    }
    flush()
  }

  /// Server: the call's status, as trailers or (without headers sent yet) Trailers-Only.
  func sendStatus(_ id: Int32, _ status: RPCStatus, trailers: Metadata, extra: [HTTP2Header] = []) {
    guard let stream = streams[id], !stream.outboundFinished else { return }
    stream.outboundFinished = true
    let fields = GRPCHeaders.boundedTrailers(status: status, extra + GRPCHeaders.fields(from: trailers))
    if stream.headersDone {
      session.finish(streamID: id, trailers: fields)
    } else {
      stream.headersDone = true
      do {
        try session.submitResponse(
          streamID: id,
          [HTTP2Header(":status", "200"), HTTP2Header("content-type", "application/grpc")] + fields,
          endStream: true)
      } catch {
        // Never leave the client waiting for an answer that cannot be sent.
        session.reset(streamID: id, errorCode: HTTP2ErrorCode.internalError)
      }
    }
    if !stream.inboundFinished || stream.discarding {
      // The client is still sending, but nothing it sends matters now: stop it once the status
      // is out (RST_STREAM NO_ERROR, as RFC 9113 §8.1 allows).
      session.resetAfterResponse(streamID: id)
    }
    flush()
  }

  // MARK: Both sides: outbound messages

  /// Queues a framed message whose writer did not wait (its ``WriteBudget`` had room).
  func enqueueMessage(_ id: Int32, _ framed: [UInt8]) {
    guard let stream = streams[id], !stream.outboundFinished else { return }
    session.send(streamID: id, framed)
    stream.lastBuffered += framed.count
    flush()
  }

  /// Queues a framed message; resumes `continuation` at once or when the buffer drained.
  func sendMessage(_ id: Int32, _ framed: [UInt8], _ continuation: CheckedContinuation<Void, any Error>) {
    guard let stream = streams[id], !stream.outboundFinished else {
      return continuation.resume(throwing: RPCError(.cancelled, "the stream was closed"))
    }
    session.send(streamID: id, framed)
    stream.lastBuffered += framed.count
    flush()
    if isClosed || streams[id] == nil {
      continuation.resume(throwing: RPCError(.cancelled, "the stream was closed"))
    } else if session.bufferedBytes(streamID: id) < limits.writeBufferBytes {
      continuation.resume()
    } else {
      stream.writeWaiter = continuation
    }
  }

  private func resumeWriters() {
    for stream in streams.values where stream.lastBuffered > 0 {
      let buffered = session.bufferedBytes(streamID: stream.id)
      if buffered < stream.lastBuffered {
        stream.budget.release(stream.lastBuffered - buffered)
        stream.lastBuffered = buffered
      }
    }
    for stream in streams.values where stream.writeWaiter != nil {
      if session.bufferedBytes(streamID: stream.id) < limits.writeBufferBytes {
        stream.writeWaiter?.resume()
        stream.writeWaiter = nil
      }
    }
  }

  // MARK: Client side

  /// Opens a call; the returned stream's `parts` deliver the response.
  func openCall(_ headers: [HTTP2Header], maximumResponseBytes: Int) throws -> Stream {
    guard !isClosed, !isDraining else { throw RPCError(.unavailable, "connection to \(peer) is closing") }
    let id = try session.submitRequest(headers)
    let loop = loop
    let connection = WeakConnection(self)
    let parts = MessageQueue<ClientStreamPart> { part in
      if case .message(let bytes) = part {
        loop.execute { connection.value?.messageConsumed(id, bytes: bytes.count) }
      }
    }
    let stream = Stream(id: id, maximumMessageBytes: maximumResponseBytes, requests: nil, parts: parts)
    streams[id] = stream
    if let idleTimer { loop.cancelTimer(idleTimer) }
    idleTimer = nil
    flush()
    return stream
  }

  /// Client: no more requests.
  func finishRequests(_ id: Int32) {
    guard let stream = streams[id], !stream.outboundFinished else { return }
    stream.outboundFinished = true
    session.finish(streamID: id)
    flush()
  }

  /// Client: the caller is done with the call; cancels it if it is still open.
  func cancelCall(_ id: Int32) {
    guard let stream = streams.removeValue(forKey: id) else { return }
    forget(stream)
    stream.inboundFinished = true
    stream.parts?.finish()
    stream.writeWaiter?.resume(throwing: CancellationError())
    stream.writeWaiter = nil
    stream.budget.close()
    session.reset(streamID: id, errorCode: HTTP2ErrorCode.cancel)
    flush()
    if streams.isEmpty { armIdleTimer() }
  }

  private func receivedResponseHeaders(
    _ id: Int32, _ kind: HTTP2Event.HeadersKind, _ fields: [HTTP2Header], endStream: Bool
  ) {
    guard let stream = streams[id], !stream.inboundFinished, let parts = stream.parts else { return }
    if kind == .response {
      let httpStatus = fields.first { $0.name == ":status" }.flatMap { Int($0.value) } ?? 0
      if httpStatus != 200 {
        let status =
          GRPCHeaders.status(from: fields)
          ?? RPCStatus(
            code: GRPCHeaders.status(forHTTPStatus: httpStatus), message: "HTTP status \(httpStatus)")
        return finishParts(stream, status, GRPCHeaders.metadata(from: fields))
      }
      if endStream {
        let status =
          GRPCHeaders.status(from: fields)
          ?? RPCStatus(code: .internal, message: "response ended without grpc-status")
        return finishParts(stream, status, GRPCHeaders.metadata(from: fields))
      }
      let contentType = fields.first { $0.name == "content-type" }?.value ?? ""
      guard contentType.hasPrefix("application/grpc") else {
        return failInbound(
          stream, RPCStatus(code: .internal, message: "response content-type is '\(contentType)'"))
      }
      stream.headersDone = true
      parts.yield(.headers(GRPCHeaders.metadata(from: fields)))
    } else {
      guard stream.deframer.isAtMessageBoundary else {
        return failInbound(
          stream, RPCStatus(code: .internal, message: "trailers arrived in the middle of a message"))
      }
      let status =
        GRPCHeaders.status(from: fields)
        ?? RPCStatus(code: .internal, message: "trailers without grpc-status")
      finishParts(stream, status, GRPCHeaders.metadata(from: fields))
    }
  }

  private func finishParts(_ stream: Stream, _ status: RPCStatus, _ trailers: Metadata) {
    stream.inboundFinished = true
    stream.parts?.yield(.status(status, trailers))
    stream.parts?.finish()
  }
}

/// A weak reference that closures running elsewhere may hold; they only dereference it on the
/// connection's loop.
struct WeakConnection: @unchecked Sendable {
  weak var value: GRPCConnection?
  init(_ value: GRPCConnection) { self.value = value }

  /// Frames `message` (off the loop) and queues it on stream `id`. While the stream's budget has
  /// room this returns at once (no round trip through the loop); otherwise it returns once the
  /// stream's buffer has room again (backpressure). Throws when the stream or connection is gone.
  func sendMessage(_ message: [UInt8], on id: Int32, budget: WriteBudget, loop: EventLoop) async throws {
    let framed = GRPCFraming.frame(message)
    let reference = self
    if budget.reserve(framed.count) {
      loop.execute { reference.value?.enqueueMessage(id, framed) }
      return
    }
    budget.add(framed.count)  // counted too, so that the loop's releases balance exactly
    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
      loop.execute {
        guard let connection = reference.value else {
          return continuation.resume(throwing: RPCError(.unavailable, "the connection was closed"))
        }
        connection.sendMessage(id, framed, continuation)
      }
    }
  }
}

/// The bytes a stream's writer has queued that nghttp2 has not yet taken: writers reserve,
/// the loop releases as the session drains. Lets a writer skip waiting for the loop while the
/// stream is below its buffer limit.
final class WriteBudget: Sendable {
  private let state = Mutex((pending: 0, closed: false))
  let limit: Int

  init(limit: Int = 256 << 10) { self.limit = limit }

  /// Takes `count` bytes if that stays within the limit and the stream is open.
  func reserve(_ count: Int) -> Bool {
    state.withLock { state in
      guard !state.closed, state.pending + count <= limit else { return false }
      state.pending += count
      return true
    }
  }

  /// Counts `count` bytes that a waiting writer queued regardless of the limit.
  func add(_ count: Int) { state.withLock { $0.pending += count } }

  func release(_ count: Int) { state.withLock { $0.pending = max(0, $0.pending - count) } }

  func close() { state.withLock { $0.closed = true } }
}

/// Received gRPC bytes buffered by every connection of this process (queued messages and messages
/// still arriving). Above ``limit``, no connection gives its peer more flow-control credit until
/// some are taken, so however many streams and connections send partial messages, what the
/// process holds stays near ``limit`` plus one connection window (4 MiB) per connection.
public enum InboundMemory {
  private static let buffered = Atomic<Int>(0)
  private static let configuredLimit = Atomic<Int>(128 << 20)

  /// The bytes held now.
  public static var bufferedBytes: Int { buffered.load(ordering: .relaxed) }

  /// The bound (default 128 MiB).
  public static var limit: Int {
    get { configuredLimit.load(ordering: .relaxed) }
    set { configuredLimit.store(newValue, ordering: .relaxed) }
  }

  static func add(_ delta: Int) { buffered.add(delta, ordering: .relaxed) }
}
