// Plays a hostile HTTP/2 client against a server session: the connection preface, then arbitrary
// bytes, fed in input-chosen pieces as a socket would deliver them. After each piece the server
// answers what it got as the gRPC layer does (a response with a body and trailers to each request,
// credit for the data it took) and writes its output. Any crash, hang or leak in our callbacks
// around nghttp2 is a bug; protocol errors (which end the session) are expected.
import HTTP2

let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  guard size > 0 else { return 0 }
  let input = Array(UnsafeBufferPointer(start: data, count: size))
  var settings = HTTP2Session.Settings()
  settings.maximumConcurrentStreams = 8
  settings.maximumHeaderListSize = 4096
  guard let session = try? HTTP2Session(isServer: true, settings: settings) else { return 0 }
  // The first byte picks the piece size (1...256 bytes).
  let pieceSize = Int(input[0]) + 1
  let stream = preface + input.dropFirst()
  var index = 0
  while index < stream.count {
    let end = min(index + pieceSize, stream.count)
    do {
      try session.receive(Array(stream[index..<end]))
    } catch {
      _ = try? session.pendingOutput()
      return 0
    }
    index = end
    for event in session.takeEvents() {
      switch event {
      case .headers(let streamID, .request, _, _):
        try? session.submitResponse(
          streamID: streamID, [HTTP2Header(":status", "200"), HTTP2Header("content-type", "application/grpc")],
          endStream: false)
        session.send(streamID: streamID, [0, 0, 0, 0, 2, 0x08, 0x01])
        session.finish(streamID: streamID, trailers: [HTTP2Header("grpc-status", "0")])
      case .data(let streamID, let bytes):
        session.consume(streamID: streamID, count: bytes.count)
      default:
        break
      }
    }
    guard (try? session.pendingOutput()) != nil else { return 0 }
  }
  return 0
}
