import HTTP2
import RPCCore
import Testing

@testable import RPCTransportHTTP2

/// The protocol pieces without sockets: gRPC message framing, header conventions, and two
/// nghttp2 sessions talking through memory.
@Suite("gRPC wire format and HTTP/2 sessions")
struct WireFormatTests {
  @Test("messages split across frames, and several in one frame, are reassembled")
  func deframing() throws {
    let messages: [[UInt8]] = [[1, 2, 3], [], Array(repeating: 7, count: 1000), [9]]
    let stream = messages.flatMap(GRPCFraming.frame)
    for chunkSize in [1, 2, 5, 7, 64, stream.count] {
      var deframer = GRPCMessageDeframer(maximumMessageBytes: 4096)
      var received: [[UInt8]] = []
      var index = 0
      while index < stream.count {
        received += try deframer.append(Array(stream[index..<min(index + chunkSize, stream.count)]))
        index += chunkSize
      }
      #expect(received == messages, "chunk size \(chunkSize)")
      #expect(deframer.isAtMessageBoundary)
    }
  }

  @Test("a length prefix above the limit is refused before the message arrives")
  func oversized() {
    var deframer = GRPCMessageDeframer(maximumMessageBytes: 4 << 20)
    #expect(throws: GRPCFramingError.messageTooLarge(length: 0xFFFF_FFFF, limit: 4 << 20)) {
      _ = try deframer.append([0, 0xFF, 0xFF, 0xFF, 0xFF])
    }
  }

  @Test("compressed flag without negotiated compression, and unknown flags, are errors")
  func flags() {
    var compressed = GRPCMessageDeframer(maximumMessageBytes: 100)
    #expect(throws: GRPCFramingError.unexpectedCompression) { _ = try compressed.append([1, 0, 0, 0, 1, 0]) }
    var unknown = GRPCMessageDeframer(maximumMessageBytes: 100)
    #expect(throws: GRPCFramingError.invalidFlag(2)) { _ = try unknown.append([2, 0, 0, 0, 0]) }
  }

  @Test(
    "grpc-timeout values parse per the spec",
    arguments: [
      ("1S", Duration.seconds(1)), ("100m", .milliseconds(100)), ("5u", .microseconds(5)),
      ("7n", .nanoseconds(7)),
      ("2M", .seconds(120)), ("1H", .seconds(3600)), ("99999999m", .milliseconds(99_999_999)),
    ])
  func timeouts(text: String, duration: Duration) {
    #expect(GRPCHeaders.parseTimeout(text) == duration)
  }

  @Test(
    "malformed grpc-timeout values are rejected",
    arguments: ["", "S", "1", "1x", "-1S", "123456789S", "1.5S"])
  func malformedTimeouts(text: String) {
    #expect(GRPCHeaders.parseTimeout(text) == nil)
  }

  @Test("formatted timeouts fit in 8 digits and never announce less time")
  func formatTimeouts() throws {
    #expect(GRPCHeaders.formatTimeout(.milliseconds(250)) == "250000u")
    #expect(GRPCHeaders.formatTimeout(.seconds(30)) == "30000000u")
    #expect(GRPCHeaders.formatTimeout(.seconds(3600)) == "3600000m")
    for duration in [
      Duration.nanoseconds(1), .milliseconds(1), .seconds(100_000), .seconds(1) + .nanoseconds(1),
    ] {
      let text = GRPCHeaders.formatTimeout(duration)
      #expect(text.count <= 9)
      #expect(try #require(GRPCHeaders.parseTimeout(text)) >= duration)
    }
  }

  @Test("grpc-message is percent-encoded and decoded losslessly")
  func percentEncoding() {
    let message = "amount_minor: must be > 0 (got -5) — 100% sure\nnext line"
    let encoded = GRPCHeaders.percentEncode(message)
    #expect(encoded.utf8.allSatisfy { $0 >= 0x20 && $0 <= 0x7E })
    #expect(encoded.contains("%25"))
    #expect(GRPCHeaders.percentDecode(encoded) == message)
    #expect(GRPCHeaders.percentDecode("bad %zz escape") == "bad %zz escape")
  }

  @Test("binary metadata round-trips through base64 headers; reserved and invalid keys are not sent")
  func metadataHeaders() {
    var metadata: Metadata = [("x-request-id", "42"), ("grpc-status", "0"), ("Bad Key", "x")]
    metadata.addBinary([0, 1, 2, 255], forKey: "trace-bin")
    let fields = GRPCHeaders.fields(from: metadata)
    #expect(fields.map(\.name) == ["x-request-id", "trace-bin"])
    let back = GRPCHeaders.metadata(
      from: fields + [HTTP2Header(":path", "/x"), HTTP2Header("te", "trailers")])
    #expect(back["x-request-id"] == "42")
    #expect(back.binaryValue(forKey: "trace-bin") == [0, 1, 2, 255])
    #expect(back.count == 2)
    // Peers may send unpadded base64.
    #expect(
      GRPCHeaders.metadata(from: [HTTP2Header("a-bin", "AAEC")]).binaryValue(forKey: "a-bin") == [0, 1, 2])
    #expect(GRPCHeaders.metadata(from: [HTTP2Header("a-bin", "AAE")]).binaryValue(forKey: "a-bin") == [0, 1])
  }

  @Test("a client and a server session exchange a request and a response in memory")
  func sessionsInMemory() throws {
    let client = try HTTP2Session(isServer: false)
    let server = try HTTP2Session(isServer: true)
    func pump() throws {
      for _ in 0..<10 {
        let toServer = try client.pendingOutput()
        let toClient = try server.pendingOutput()
        if toServer.isEmpty && toClient.isEmpty { return }
        try server.receive(toServer)
        try client.receive(toClient)
      }
    }
    let id = try client.submitRequest([
      HTTP2Header(":method", "POST"), HTTP2Header(":scheme", "http"), HTTP2Header(":path", "/s/m"),
      HTTP2Header(":authority", "x"), HTTP2Header("content-type", "application/grpc"),
    ])
    client.send(streamID: id, GRPCFraming.frame([1, 2, 3]))
    client.finish(streamID: id)
    try pump()
    let serverEvents = server.takeEvents()
    #expect(
      serverEvents.contains {
        if case .headers(id, .request, let fields, false) = $0 {
          fields.contains(HTTP2Header(":path", "/s/m"))
        } else {
          false
        }
      })
    #expect(serverEvents.contains(.data(streamID: id, bytes: GRPCFraming.frame([1, 2, 3]))))
    #expect(serverEvents.contains(.endStream(streamID: id)))

    try server.submitResponse(
      streamID: id, [HTTP2Header(":status", "200"), HTTP2Header("content-type", "application/grpc")],
      endStream: false)
    server.send(streamID: id, GRPCFraming.frame([4]))
    server.finish(streamID: id, trailers: [HTTP2Header("grpc-status", "0")])
    try pump()
    let clientEvents = client.takeEvents()
    #expect(
      clientEvents == [
        .headers(
          streamID: id, kind: .response,
          fields: [HTTP2Header(":status", "200"), HTTP2Header("content-type", "application/grpc")],
          endStream: false),
        .data(streamID: id, bytes: GRPCFraming.frame([4])),
        .headers(streamID: id, kind: .trailers, fields: [HTTP2Header("grpc-status", "0")], endStream: true),
        .streamClosed(streamID: id, errorCode: 0),
      ])
  }

  @Test("body bytes beyond the peer's window stay buffered until the peer consumes")
  func flowControl() throws {
    let client = try HTTP2Session(isServer: false)
    var settings = HTTP2Session.Settings()
    settings.initialWindowSize = 1000
    let server = try HTTP2Session(isServer: true, settings: settings)
    try server.receive(try client.pendingOutput())
    try client.receive(try server.pendingOutput())
    try server.receive(try client.pendingOutput())
    let id = try client.submitRequest([
      HTTP2Header(":method", "POST"), HTTP2Header(":scheme", "http"), HTTP2Header(":path", "/s/m"),
      HTTP2Header(":authority", "x"),
    ])
    client.send(streamID: id, Array(repeating: 1, count: 5000))
    try server.receive(try client.pendingOutput())
    let received = server.takeEvents().reduce(0) { total, event in
      if case .data(_, let bytes) = event { total + bytes.count } else { total }
    }
    #expect(received == 1000)
    #expect(client.bufferedBytes(streamID: id) == 4000)
    // Consuming opens the window again.
    server.consume(streamID: id, count: 1000)
    try client.receive(try server.pendingOutput())
    try server.receive(try client.pendingOutput())
    let more = server.takeEvents().reduce(0) { total, event in
      if case .data(_, let bytes) = event { total + bytes.count } else { total }
    }
    #expect(more > 0)
  }

  @Test("bytes that are not HTTP/2 are a bad preface")
  func badPreface() throws {
    let server = try HTTP2Session(isServer: true)
    #expect {
      try server.receive(Array("GET / HTTP/1.1\r\n\r\n".utf8))
    } throws: { ($0 as? HTTP2Error)?.isBadPreface == true }
  }
}
