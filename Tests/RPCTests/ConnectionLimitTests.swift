import Glibc
import PaymentsTestSupport
import RPCCore
import RPCTransportHTTP2
import Testing

/// The server's connection limits, seen from raw TCP sockets bound to chosen loopback addresses:
/// an admitted connection gets the server's SETTINGS, a refused one is closed at once.
@Suite("HTTP/2 connection limits")
struct ConnectionLimitTests {
  /// A TCP connection from `source` (a loopback address) to the server.
  final class RawConnection {
    let descriptor: Int32
    init(port: Int, source: String = "127.0.0.1") throws {
      descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
      try #require(descriptor >= 0)
      var local = sockaddr_in()
      local.sin_family = sa_family_t(AF_INET)
      inet_pton(AF_INET, source, &local.sin_addr)
      var remote = sockaddr_in()
      remote.sin_family = sa_family_t(AF_INET)
      remote.sin_port = in_port_t(UInt16(port).bigEndian)
      inet_pton(AF_INET, "127.0.0.1", &remote.sin_addr)
      let length = socklen_t(MemoryLayout<sockaddr_in>.size)
      let bound = withUnsafePointer(to: &local) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) }
      }
      try #require(bound == 0, "bind \(source): errno \(errno)")
      let connected = withUnsafePointer(to: &remote) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, length) }
      }
      try #require(connected == 0, "connect: errno \(errno)")
    }
    deinit { close(descriptor) }

    /// Whether the server answers (its SETTINGS frame arrives) rather than closing the
    /// connection; waits up to 10 s for either.
    func admitted() -> Bool {
      var descriptor = pollfd(fd: self.descriptor, events: Int16(POLLIN), revents: 0)
      guard poll(&descriptor, 1, 10_000) == 1 else { return false }
      var header = [UInt8](repeating: 0, count: 9)
      let count = recv(self.descriptor, &header, 9, 0)
      return count == 9 && header[3] == 0x4  // a SETTINGS frame
    }
  }

  static func call(_ port: Int) async throws -> String {
    let transport = HTTP2ClientTransport(
      configuration: .init(host: "127.0.0.1", port: port), logger: quietLogger("limits-client"))
    defer { transport.close() }
    return try await Echo_V1_Echo.Client(RPCClient(transport: transport)).get(.init("in")).text
  }

  @Test("a connection beyond maximumConnections is closed at once; a freed slot admits the next")
  func totalLimit() async throws {
    var configuration = HTTP2ServerTransport.Configuration(host: "127.0.0.1", port: 0)
    configuration.maximumConnections = 3
    configuration.maximumConnectionsPerAddress = 0
    try await withHTTP2Server(configuration: configuration) { port in
      var open = try (0..<3).map { _ in try RawConnection(port: port) }
      for connection in open { #expect(connection.admitted()) }
      #expect(try RawConnection(port: port).admitted() == false)
      let error = await #expect(throws: RPCError.self) { try await Self.call(port) }
      #expect(error?.code == .unavailable, "\(String(describing: error))")
      open.removeLast()  // closes it; the server notices and frees the slot
      var answer: String?
      for _ in 0..<100 where answer == nil {
        answer = try? await Self.call(port)
        if answer == nil { try await Task.sleep(for: .milliseconds(100)) }
      }
      #expect(answer == "in")
      #expect(open.count == 2)
    }
  }

  @Test("one address cannot take every connection: the per-address limit refuses it, not others")
  func perAddressLimit() async throws {
    var configuration = HTTP2ServerTransport.Configuration(host: "127.0.0.1", port: 0)
    configuration.maximumConnections = 100
    configuration.maximumConnectionsPerAddress = 2
    try await withHTTP2Server(configuration: configuration) { port in
      let hostile = try (0..<2).map { _ in try RawConnection(port: port, source: "127.0.0.2") }
      for connection in hostile { #expect(connection.admitted()) }
      #expect(try RawConnection(port: port, source: "127.0.0.2").admitted() == false)
      #expect(try RawConnection(port: port, source: "127.0.0.3").admitted())
      #expect(try await Self.call(port) == "in")
      #expect(hostile.count == 2)
    }
  }

  @Test("a huge status message (one grapheme of 600,000 code points) arrives cut, never stalls the call")
  func hugeStatusMessage() async throws {
    try await withHTTP2Server { port in
      let transport = HTTP2ClientTransport(
        configuration: .init(host: "127.0.0.1", port: port), logger: quietLogger("limits-client"))
      defer { transport.close() }
      let client = Echo_V1_Echo.Client(RPCClient(transport: transport))
      let text = "a" + String(repeating: "\u{301}", count: 600_000)
      let error = await #expect(throws: RPCError.self) {
        try await client.get(.init(text, failWithCode: 3), options: .init(timeout: .seconds(20)))
      }
      #expect(error?.code == .invalidArgument, "\(String(describing: error?.code))")
      let message = error?.message ?? ""
      // (Compared in code points: the whole message is one grapheme cluster.)
      #expect(Array(message.unicodeScalars.prefix(2)) == Array("a\u{301}".unicodeScalars))
      #expect(message.unicodeScalars.last == "…")
      #expect(message.utf8.count < 2048, "\(message.utf8.count) bytes")
      // The connection is still good for the next call.
      let next = try await client.get(.init("next"))
      #expect(next.text == "next")
    }
  }
}
