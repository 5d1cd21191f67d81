import CNGHTTP2

/// One header field.
public struct HTTP2Header: Sendable, Hashable {
  public var name: String
  public var value: String

  public init(_ name: String, _ value: String) {
    self.name = name
    self.value = value
  }
}

/// What a session received, in order. Collected during ``HTTP2Session/receive(_:)`` and taken
/// with ``HTTP2Session/takeEvents()``.
public enum HTTP2Event: Sendable, Equatable {
  /// Which HEADERS frame this is for the stream.
  public enum HeadersKind: Sendable, Equatable {
    /// A client's request headers (server side).
    case request
    /// A server's response headers (client side); with `endStream` a Trailers-Only response.
    case response
    /// Trailers (or other headers after the first HEADERS frame).
    case trailers
  }

  /// A complete header block.
  case headers(streamID: Int32, kind: HeadersKind, fields: [HTTP2Header], endStream: Bool)
  /// Body bytes of a DATA frame.
  case data(streamID: Int32, bytes: [UInt8])
  /// The peer ended its side of the stream with a DATA frame.
  case endStream(streamID: Int32)
  /// The stream is closed (`errorCode` 0 for a normal end, else the RST_STREAM/HTTP/2 code).
  case streamClosed(streamID: Int32, errorCode: UInt32)
  /// The peer sent GOAWAY: streams above `lastStreamID` were not and will not be processed.
  case goAway(lastStreamID: Int32, errorCode: UInt32)
  /// Client: a request's HEADERS were never sent (for example because GOAWAY arrived first), so
  /// the peer never saw the stream; `reason` is nghttp2's.
  case requestNotSent(streamID: Int32, reason: String)
}

/// An error of the HTTP/2 layer: the session can no longer be used and the connection should be
/// closed after flushing ``HTTP2Session/pendingOutput()`` (which then holds a GOAWAY).
public struct HTTP2Error: Error, Sendable, CustomStringConvertible {
  /// The nghttp2 error code (negative).
  public let code: Int32
  /// nghttp2's description of it.
  public var description: String { String(cString: nghttp2_strerror(code)) }

  /// The peer did not start with the HTTP/2 connection preface.
  public var isBadPreface: Bool { code == NGHTTP2_ERR_BAD_CLIENT_MAGIC.rawValue }
}

/// HTTP/2 error codes used in RST_STREAM and GOAWAY.
public enum HTTP2ErrorCode {
  public static let noError: UInt32 = 0x0
  public static let protocolError: UInt32 = 0x1
  public static let internalError: UInt32 = 0x2
  public static let refusedStream: UInt32 = 0x7
  public static let cancel: UInt32 = 0x8
  public static let enhanceYourCalm: UInt32 = 0xB
}

/// An nghttp2 session without I/O: bytes go in through ``receive(_:)`` and come out of
/// ``pendingOutput()``; what arrived is reported as ``HTTP2Event``s. Whoever owns it calls it
/// from one thread at a time (the connection's event loop).
///
/// Outbound bodies are buffered per stream and handed to nghttp2 as its flow control allows;
/// ``bufferedBytes(streamID:)`` lets writers apply backpressure. Inbound flow control is manual:
/// nothing is acknowledged to the peer until the owner calls ``consume(streamID:count:)``.
public final class HTTP2Session {
  /// Settings this side announces.
  public struct Settings: Sendable {
    /// SETTINGS_MAX_CONCURRENT_STREAMS: streams the peer may open at once (server side).
    public var maximumConcurrentStreams: UInt32 = 100
    /// SETTINGS_INITIAL_WINDOW_SIZE: bytes the peer may send per stream before it must wait.
    public var initialWindowSize: UInt32 = 1 << 20
    /// The connection-wide receive window. It is granted up front, before any byte is
    /// accounted, so each connection can make the process hold this much beyond its bounds: 1 MiB
    /// (not more) keeps 20 hostile connections' worth under 256 MiB of RSS (docs/rpc.md).
    public var connectionWindowSize: Int32 = 1 << 20
    /// SETTINGS_MAX_HEADER_LIST_SIZE, enforced on received header blocks.
    public var maximumHeaderListSize: UInt32 = 16 << 10

    public init() {}
  }

  fileprivate struct OutboundStream {
    var buffer: [UInt8] = []
    var head = 0
    var endRequested = false
    var trailers: [HTTP2Header]? = nil
    var deferred = false
    var count: Int { buffer.count - head }
  }

  fileprivate let session: OpaquePointer
  fileprivate var events: [HTTP2Event] = []
  fileprivate var outbound: [Int32: OutboundStream] = [:]
  fileprivate var receivingHeaders: [Int32: (fields: [HTTP2Header], size: Int)] = [:]
  fileprivate let maximumHeaderListSize: Int
  /// Set when a received header block was too large, to fail the stream after the callback.
  fileprivate var oversizedHeaderStreams: [Int32] = []
  /// Rapid-reset protection (CVE-2023-44487): RST_STREAM frames a peer may send in a burst,
  /// refilled at `resetRefillPerSecond`; a peer above that gets GOAWAY ENHANCE_YOUR_CALM. (nghttp2's
  /// own limit, 1000 and 33/s, stays behind it as a backstop.)
  fileprivate var resetTokens: Double = 500
  fileprivate let resetBurst: Double = 500
  fileprivate let resetRefillPerSecond: Double = 100
  fileprivate var resetTokensUpdated = ContinuousClock.now
  /// The GOAWAY this side sent, if any (its error code): explains why the session ended.
  public fileprivate(set) var sentGoAwayCode: UInt32?
  /// The GOAWAY the peer sent, if any (its error code).
  public fileprivate(set) var receivedGoAwayCode: UInt32?
  /// Streams to reset (NO_ERROR) once their final HEADERS frame went out.
  fileprivate var resetsAfterResponse: Set<Int32> = []

  /// A server session (`isServer`) or a client session, announcing `settings`.
  public init(isServer: Bool, settings: Settings = Settings()) throws(HTTP2Error) {
    var callbacks: OpaquePointer?
    nghttp2_session_callbacks_new(&callbacks)
    defer { nghttp2_session_callbacks_del(callbacks) }
    nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, onBeginHeaders)
    nghttp2_session_callbacks_set_on_header_callback(callbacks, onHeader)
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, onFrameReceived)
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, onDataChunk)
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, onStreamClose)
    nghttp2_session_callbacks_set_on_frame_send_callback(callbacks, onFrameSent)
    nghttp2_session_callbacks_set_on_frame_not_send_callback(callbacks, onFrameNotSent)

    var option: OpaquePointer?
    nghttp2_option_new(&option)
    defer { nghttp2_option_del(option) }
    nghttp2_option_set_no_auto_window_update(option, 1)
    nghttp2_option_set_max_send_header_block_length(option, 64 << 10)

    maximumHeaderListSize = Int(settings.maximumHeaderListSize)
    var created: OpaquePointer?
    let placeholder = UnsafeMutableRawPointer(bitPattern: 1)
    let result =
      isServer
      ? nghttp2_session_server_new2(&created, callbacks, placeholder, option)
      : nghttp2_session_client_new2(&created, callbacks, placeholder, option)
    guard result == 0, let created else { throw HTTP2Error(code: result) }
    session = created
    nghttp2_session_set_user_data(session, Unmanaged.passUnretained(self).toOpaque())

    var entries = [
      nghttp2_settings_entry(
        settings_id: Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue), value: settings.initialWindowSize),
      nghttp2_settings_entry(
        settings_id: Int32(NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE.rawValue),
        value: settings.maximumHeaderListSize),
    ]
    if isServer {
      entries.append(
        nghttp2_settings_entry(
          settings_id: Int32(NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS.rawValue),
          value: settings.maximumConcurrentStreams))
    } else {
      entries.append(
        nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_ENABLE_PUSH.rawValue), value: 0))
    }
    try check(nghttp2_submit_settings(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), &entries, entries.count))
    try check(
      nghttp2_session_set_local_window_size(
        session, UInt8(NGHTTP2_FLAG_NONE.rawValue), 0, settings.connectionWindowSize)
    )
  }

  deinit { nghttp2_session_del(session) }

  // MARK: Input and output

  /// Feeds bytes received from the peer. Throws when the peer broke the protocol (the session
  /// then queued a GOAWAY: flush ``pendingOutput()`` and close).
  public func receive(_ bytes: UnsafeRawBufferPointer) throws(HTTP2Error) {
    guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
    let result = nghttp2_session_mem_recv(session, base.assumingMemoryBound(to: UInt8.self), bytes.count)
    if result < 0 {
      if result == NGHTTP2_ERR_FLOODED.rawValue {
        // A flood (of PING, SETTINGS or RST_STREAM frames whose answers pile up) is abuse, not
        // a protocol mistake: RFC 9113 §5.4.1 names ENHANCE_YOUR_CALM for it.
        nghttp2_session_terminate_session(session, HTTP2ErrorCode.enhanceYourCalm)
      } else if result != NGHTTP2_ERR_BAD_CLIENT_MAGIC.rawValue {
        nghttp2_session_terminate_session(session, HTTP2ErrorCode.protocolError)
      }
      throw HTTP2Error(code: Int32(result))
    }
    for streamID in oversizedHeaderStreams {
      nghttp2_submit_rst_stream(
        session, UInt8(NGHTTP2_FLAG_NONE.rawValue), streamID, HTTP2ErrorCode.refusedStream)
    }
    oversizedHeaderStreams.removeAll()
  }

  /// Convenience for tests: feeds `bytes`.
  public func receive(_ bytes: [UInt8]) throws(HTTP2Error) {
    var failure: HTTP2Error?
    bytes.withUnsafeBytes { buffer in
      do throws(HTTP2Error) { try receive(buffer) } catch { failure = error }
    }
    if let failure { throw failure }
  }

  /// The events since the last call.
  public func takeEvents() -> [HTTP2Event] {
    defer { events.removeAll(keepingCapacity: true) }
    return events
  }

  /// Every byte the session wants to send now (frames, including DATA as flow control allows).
  public func pendingOutput() throws(HTTP2Error) -> [UInt8] {
    var output: [UInt8] = []
    while true {
      var data: UnsafePointer<UInt8>?
      let count = nghttp2_session_mem_send(session, &data)
      if count < 0 { throw HTTP2Error(code: Int32(count)) }
      guard count > 0, let data else { break }
      output.append(contentsOf: UnsafeBufferPointer(start: data, count: count))
    }
    return output
  }

  /// True once the peer sent a complete frame (after its preface): its part of the handshake.
  public fileprivate(set) var hasReceivedFrame = false

  /// Whether the session still wants to read (false after GOAWAY both ways or a fatal error).
  public var wantsRead: Bool { nghttp2_session_want_read(session) != 0 }
  /// Whether the session has something to send.
  public var wantsWrite: Bool { nghttp2_session_want_write(session) != 0 }

  // MARK: Streams

  /// Client: opens a stream with request `headers`; the body follows with ``send(streamID:_:)``
  /// and ``finish(streamID:trailers:)``. Returns the new stream's ID.
  public func submitRequest(_ headers: [HTTP2Header]) throws(HTTP2Error) -> Int32 {
    let streamID = try withNameValues(headers) { (nva) throws(HTTP2Error) -> Int32 in
      var provider = dataProvider()
      let id = nghttp2_submit_request(session, nil, nva.baseAddress, nva.count, &provider, nil)
      if id < 0 { throw HTTP2Error(code: id) }
      return id
    }
    outbound[streamID] = OutboundStream()
    return streamID
  }

  /// Server: sends response `headers`. With `endStream` the response is complete (Trailers-Only
  /// or an HTTP error); otherwise the body follows as for requests.
  public func submitResponse(streamID: Int32, _ headers: [HTTP2Header], endStream: Bool) throws(HTTP2Error) {
    try withNameValues(headers) { (nva) throws(HTTP2Error) in
      if endStream {
        try check(nghttp2_submit_response(session, streamID, nva.baseAddress, nva.count, nil))
      } else {
        outbound[streamID] = OutboundStream()
        var provider = dataProvider()
        try check(nghttp2_submit_response(session, streamID, nva.baseAddress, nva.count, &provider))
      }
    }
  }

  /// Queues body bytes on a stream opened with a body.
  public func send(streamID: Int32, _ bytes: [UInt8]) {
    guard var stream = outbound[streamID], !stream.endRequested else { return }
    stream.buffer += bytes
    outbound[streamID] = stream
    resumeIfDeferred(streamID)
  }

  /// Ends the body of a stream: with `trailers` (a final HEADERS frame) or with an empty DATA
  /// frame carrying END_STREAM.
  public func finish(streamID: Int32, trailers: [HTTP2Header]? = nil) {
    guard var stream = outbound[streamID], !stream.endRequested else { return }
    stream.endRequested = true
    stream.trailers = trailers
    outbound[streamID] = stream
    resumeIfDeferred(streamID)
  }

  /// Body bytes queued on a stream and not yet handed to nghttp2.
  public func bufferedBytes(streamID: Int32) -> Int { outbound[streamID]?.count ?? 0 }

  /// Resets a stream (RST_STREAM).
  public func reset(streamID: Int32, errorCode: UInt32) {
    nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), streamID, errorCode)
  }

  /// Server: stops the client's side of a stream once the response submitted so far is out
  /// (RST_STREAM NO_ERROR after the final HEADERS frame, as RFC 9113 §8.1 allows for a complete
  /// response to an incomplete request).
  public func resetAfterResponse(streamID: Int32) {
    resetsAfterResponse.insert(streamID)
  }

  /// Gives `count` received body bytes of a stream back to the peer's flow-control window.
  public func consume(streamID: Int32, count: Int) {
    guard count > 0 else { return }
    // Fails harmlessly for a stream that is already closed; the connection window is then
    // returned by nghttp2 itself.
    if nghttp2_session_consume(session, streamID, count) != 0 {
      nghttp2_session_consume_connection(session, count)
    }
  }

  /// Sends GOAWAY: streams up to `lastStreamID` (default: the last one processed) may finish,
  /// later ones are refused.
  public func goAway(
    errorCode: UInt32 = HTTP2ErrorCode.noError, lastStreamID: Int32? = nil, debugData: String = ""
  ) {
    let last = lastStreamID ?? nghttp2_session_get_last_proc_stream_id(session)
    var debug = Array(debugData.utf8)
    nghttp2_submit_goaway(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), last, errorCode, &debug, debug.count)
  }

  /// Sends a PING (answered PINGs are handled by nghttp2 itself).
  public func ping() {
    nghttp2_submit_ping(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), nil)
  }

  // MARK: Internals

  private func resumeIfDeferred(_ streamID: Int32) {
    guard var stream = outbound[streamID], stream.deferred else { return }
    stream.deferred = false
    outbound[streamID] = stream
    nghttp2_session_resume_data(session, streamID)
  }

  private func dataProvider() -> nghttp2_data_provider {
    nghttp2_data_provider(source: nghttp2_data_source(ptr: nil), read_callback: onReadBody)
  }

  private func check(_ result: Int32) throws(HTTP2Error) {
    if result != 0 { throw HTTP2Error(code: result) }
  }

  private func withNameValues<R>(
    _ headers: [HTTP2Header], _ body: (UnsafeMutableBufferPointer<nghttp2_nv>) throws(HTTP2Error) -> R
  ) throws(HTTP2Error) -> R {
    // nghttp2 copies names and values during submit, so these buffers only live for the call.
    var storage: [UInt8] = []
    var ranges: [(Int, Int, Int, Int)] = []
    for header in headers {
      let name = storage.count
      storage += header.name.utf8
      let value = storage.count
      storage += header.value.utf8
      ranges.append((name, header.name.utf8.count, value, header.value.utf8.count))
    }
    storage.append(0)
    return try storage.withUnsafeMutableBufferPointer { (bytes) throws(HTTP2Error) -> R in
      var nva = ranges.map { name, nameLength, value, valueLength in
        nghttp2_nv(
          name: bytes.baseAddress! + name, value: bytes.baseAddress! + value, namelen: nameLength,
          valuelen: valueLength, flags: UInt8(NGHTTP2_NV_FLAG_NONE.rawValue))
      }
      return try nva.withUnsafeMutableBufferPointer { (nva) throws(HTTP2Error) -> R in try body(nva) }
    }
  }

  fileprivate static func from(_ userData: UnsafeMutableRawPointer?) -> HTTP2Session {
    Unmanaged<HTTP2Session>.fromOpaque(userData!).takeUnretainedValue()
  }

  fileprivate func readBody(
    streamID: Int32, into buffer: UnsafeMutablePointer<UInt8>, length: Int,
    flags: UnsafeMutablePointer<UInt32>
  ) -> Int {
    guard var stream = outbound[streamID] else { return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue) }
    let count = min(length, stream.count)
    if count > 0 {
      stream.buffer.withUnsafeBufferPointer { source in
        buffer.update(from: source.baseAddress! + stream.head, count: count)
      }
      stream.head += count
      if stream.head == stream.buffer.count {
        stream.buffer.removeAll(keepingCapacity: true)
        stream.head = 0
      } else if stream.head > 1 << 16 {
        stream.buffer.removeFirst(stream.head)
        stream.head = 0
      }
    }
    if stream.count == 0 && stream.endRequested {
      flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue
      if let trailers = stream.trailers {
        flags.pointee |= NGHTTP2_DATA_FLAG_NO_END_STREAM.rawValue
        _ = try? withNameValues(trailers) { (nva) throws(HTTP2Error) in
          try check(nghttp2_submit_trailer(session, streamID, nva.baseAddress, nva.count))
        }
      }
      outbound[streamID] = nil
      return count
    }
    if count == 0 {
      stream.deferred = true
      outbound[streamID] = stream
      return Int(NGHTTP2_ERR_DEFERRED.rawValue)
    }
    outbound[streamID] = stream
    return count
  }
}

// MARK: - nghttp2 callbacks (C functions: they never throw and report through return codes)

private func onBeginHeaders(
  _ session: OpaquePointer?, _ frame: UnsafePointer<nghttp2_frame>?, _ userData: UnsafeMutableRawPointer?
) -> Int32 {
  let owner = HTTP2Session.from(userData)
  owner.receivingHeaders[frame!.pointee.hd.stream_id] = ([], 0)
  return 0
}

private func onHeader(
  _ session: OpaquePointer?, _ frame: UnsafePointer<nghttp2_frame>?, _ name: UnsafePointer<UInt8>?,
  _ nameLength: Int, _ value: UnsafePointer<UInt8>?, _ valueLength: Int, _ flags: UInt8,
  _ userData: UnsafeMutableRawPointer?
) -> Int32 {
  let owner = HTTP2Session.from(userData)
  let streamID = frame!.pointee.hd.stream_id
  guard var block = owner.receivingHeaders[streamID] else { return 0 }
  block.size += nameLength + valueLength + 32
  if block.size > owner.maximumHeaderListSize {
    owner.receivingHeaders[streamID] = nil
    owner.oversizedHeaderStreams.append(streamID)
    return Int32(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue)
  }
  block.fields.append(
    HTTP2Header(
      String(decoding: UnsafeBufferPointer(start: name, count: nameLength), as: UTF8.self),
      String(decoding: UnsafeBufferPointer(start: value, count: valueLength), as: UTF8.self)))
  owner.receivingHeaders[streamID] = block
  return 0
}

private func onFrameReceived(
  _ session: OpaquePointer?, _ frame: UnsafePointer<nghttp2_frame>?, _ userData: UnsafeMutableRawPointer?
) -> Int32 {
  let owner = HTTP2Session.from(userData)
  let header = frame!.pointee.hd
  let endStream = header.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0
  owner.hasReceivedFrame = true
  switch Int(header.type) {
  case Int(NGHTTP2_HEADERS.rawValue):
    guard let block = owner.receivingHeaders.removeValue(forKey: header.stream_id) else { return 0 }
    let kind: HTTP2Event.HeadersKind =
      switch frame!.pointee.headers.cat {
      case NGHTTP2_HCAT_REQUEST: .request
      case NGHTTP2_HCAT_RESPONSE: .response
      default: .trailers
      }
    owner.events.append(
      .headers(streamID: header.stream_id, kind: kind, fields: block.fields, endStream: endStream))
  case Int(NGHTTP2_DATA.rawValue):
    if endStream { owner.events.append(.endStream(streamID: header.stream_id)) }
  case Int(NGHTTP2_RST_STREAM.rawValue):
    let now = ContinuousClock.now
    let elapsed = owner.resetTokensUpdated.duration(to: now)
    owner.resetTokensUpdated = now
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    owner.resetTokens = min(owner.resetBurst, owner.resetTokens + seconds * owner.resetRefillPerSecond) - 1
    if owner.resetTokens < 0 {
      nghttp2_session_terminate_session(session, HTTP2ErrorCode.enhanceYourCalm)
    }
  case Int(NGHTTP2_GOAWAY.rawValue):
    let goaway = frame!.pointee.goaway
    owner.receivedGoAwayCode = goaway.error_code
    owner.events.append(.goAway(lastStreamID: goaway.last_stream_id, errorCode: goaway.error_code))
  default:
    break
  }
  return 0
}

private func onFrameSent(
  _ session: OpaquePointer?, _ frame: UnsafePointer<nghttp2_frame>?, _ userData: UnsafeMutableRawPointer?
) -> Int32 {
  let owner = HTTP2Session.from(userData)
  let header = frame!.pointee.hd
  if Int(header.type) == Int(NGHTTP2_GOAWAY.rawValue) {
    owner.sentGoAwayCode = frame!.pointee.goaway.error_code
  }
  if Int(header.type) == Int(NGHTTP2_HEADERS.rawValue),
    header.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0,
    owner.resetsAfterResponse.remove(header.stream_id) != nil
  {
    owner.reset(streamID: header.stream_id, errorCode: HTTP2ErrorCode.noError)
  }
  return 0
}

private func onFrameNotSent(
  _ session: OpaquePointer?, _ frame: UnsafePointer<nghttp2_frame>?, _ errorCode: Int32,
  _ userData: UnsafeMutableRawPointer?
) -> Int32 {
  let owner = HTTP2Session.from(userData)
  let header = frame!.pointee.hd
  // A request that never left: nghttp2 opens no stream for it, so no close callback follows.
  if Int(header.type) == Int(NGHTTP2_HEADERS.rawValue),
    frame!.pointee.headers.cat == NGHTTP2_HCAT_REQUEST
  {
    owner.outbound[header.stream_id] = nil
    owner.events.append(
      .requestNotSent(streamID: header.stream_id, reason: String(cString: nghttp2_strerror(errorCode))))
  }
  return 0
}

private func onDataChunk(
  _ session: OpaquePointer?, _ flags: UInt8, _ streamID: Int32, _ data: UnsafePointer<UInt8>?, _ length: Int,
  _ userData: UnsafeMutableRawPointer?
) -> Int32 {
  let owner = HTTP2Session.from(userData)
  owner.events.append(
    .data(streamID: streamID, bytes: Array(UnsafeBufferPointer(start: data, count: length))))
  return 0
}

private func onStreamClose(
  _ session: OpaquePointer?, _ streamID: Int32, _ errorCode: UInt32, _ userData: UnsafeMutableRawPointer?
) -> Int32 {
  let owner = HTTP2Session.from(userData)
  owner.outbound[streamID] = nil
  owner.receivingHeaders[streamID] = nil
  owner.resetsAfterResponse.remove(streamID)
  owner.events.append(.streamClosed(streamID: streamID, errorCode: errorCode))
  return 0
}

private func onReadBody(
  _ session: OpaquePointer?, _ streamID: Int32, _ buffer: UnsafeMutablePointer<UInt8>?, _ length: Int,
  _ flags: UnsafeMutablePointer<UInt32>?, _ source: UnsafeMutablePointer<nghttp2_data_source>?,
  _ userData: UnsafeMutableRawPointer?
) -> Int {
  HTTP2Session.from(userData).readBody(streamID: streamID, into: buffer!, length: length, flags: flags!)
}
