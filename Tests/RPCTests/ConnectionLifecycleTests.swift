import PaymentsTestSupport
import RPCCore
import RPCTransportHTTP2
import Testing

/// Cancellation, deadlines, shutdown and reconnection over real HTTP/2 connections.
@Suite("HTTP/2 connection lifecycle")
struct ConnectionLifecycleTests {
  static func client(_ port: Int) -> (Echo_V1_Echo.Client, HTTP2ClientTransport) {
    let transport = HTTP2ClientTransport(
      configuration: .init(host: "127.0.0.1", port: port), logger: quietLogger("lifecycle-client"))
    return (Echo_V1_Echo.Client(RPCClient(transport: transport)), transport)
  }

  @Test("a caller that stops reading a stream cancels the server's handler (RST_STREAM)")
  func clientCancellation() async throws {
    let observer = EchoObserver()
    try await withHTTP2Server(services: [EchoService(observer: observer)]) { port in
      let (client, transport) = Self.client(port)
      defer { transport.close() }
      let first = try await client.expand(.init("x", repeat: 1_000_000)) { responses in
        for try await response in responses { return response.index }
        return -1
      }
      #expect(first == 0)
      try await eventually { observer.ended.count == 1 }
      #expect(observer.written < 1_000_000)
      // The connection is still usable.
      #expect(try await client.get(.init("next")).text == "next")
    }
  }

  @Test("a call past its deadline is cancelled on the server too")
  func serverEnforcesDeadline() async throws {
    let observer = EchoObserver()
    try await withHTTP2Server(services: [EchoService(observer: observer)]) { port in
      let (client, transport) = Self.client(port)
      defer { transport.close() }
      let error = await #expect(throws: RPCError.self) {
        try await client.expand(
          // 5 s: the handler must have started before the deadline (under AddressSanitizer in a
          // loaded CI run, 1.5 s once ran out first, and the handler never started at all).
          .init("x", repeat: 1, delayMs: 60_000), options: CallOptions(timeout: .seconds(5))
        ) {
          responses in
          for try await _ in responses {}
        }
      }
      #expect(error?.code == .deadlineExceeded)
      try await eventually { observer.ended == [true] }
    }
  }

  @Test("graceful shutdown lets running calls finish, then run() returns")
  func gracefulShutdown() async throws {
    let transport = HTTP2ServerTransport(
      configuration: .init(host: "127.0.0.1", port: 0), logger: quietLogger("lifecycle-server"))
    let observer = EchoObserver()
    let server = RPCServer(
      transport: transport, services: [EchoService(observer: observer)],
      logger: quietLogger("lifecycle-server"))
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await server.run() }
      let port = try await transport.boundPort()
      let (client, clientTransport) = Self.client(port)
      defer { clientTransport.close() }
      #expect(try await client.get(.init("warm up")).text == "warm up")
      async let slow = client.expand(.init("slow", repeat: 1, delayMs: 500)) { responses in
        var texts: [String] = []
        for try await response in responses { texts.append(response.text) }
        return texts
      }
      try await eventually { observer.started == 1 }
      server.beginGracefulShutdown()
      #expect(try await slow == ["slow"])
      try await group.next()  // run() returned
      let (late, lateTransport) = Self.client(port)
      defer { lateTransport.close() }
      let error = await #expect(throws: RPCError.self) { try await late.get(.init("too late")) }
      #expect(error?.code == .unavailable)
    }
  }

  @Test("after the server closes an idle connection (GOAWAY), the next call opens a new one")
  func reconnectAfterGoAway() async throws {
    var configuration = HTTP2ServerTransport.Configuration(host: "127.0.0.1", port: 0)
    configuration.idleTimeout = .milliseconds(100)
    try await withHTTP2Server(configuration: configuration) { port in
      let (client, transport) = Self.client(port)
      defer { transport.close() }
      #expect(try await client.get(.init("one")).text == "one")
      try await Task.sleep(for: .milliseconds(400))
      #expect(try await client.get(.init("two")).text == "two")
    }
  }

  @Test(
    "a call to a port nobody listens on fails with UNAVAILABLE, and the client recovers when a server appears"
  )
  func reconnectAfterRefusal() async throws {
    // Find a free port, then leave it unused.
    let port = try await withHTTP2Server { $0 }
    let (client, transport) = Self.client(port)
    defer { transport.close() }
    let error = await #expect(throws: RPCError.self) { try await client.get(.init("nobody home")) }
    #expect(error?.code == .unavailable)
    let text = try await withHTTP2Server(configuration: .init(host: "127.0.0.1", port: port)) { _ in
      try await client.get(.init("now")).text
    }
    #expect(text == "now")
  }

  @Test("one connection carries many concurrent calls")
  func multiplexing() async throws {
    try await withHTTP2Server { port in
      let (client, transport) = Self.client(port)
      defer { transport.close() }
      let texts = try await withThrowingTaskGroup(of: String.self) { group in
        for index in 0..<200 {
          group.addTask { try await client.get(.init("call \(index)", delayMs: 20)).text }
        }
        var texts: Set<String> = []
        for try await text in group { texts.insert(text) }
        return texts
      }
      #expect(texts == Set((0..<200).map { "call \($0)" }))
    }
  }
}
