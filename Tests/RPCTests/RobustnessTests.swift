import Foundation
import PaymentsTestSupport
import RPCCore
import RPCTransportHTTP2
import Testing

/// The server facing peers that break the rules (raw HTTP/2 from Python h2): each gets the right
/// status or GOAWAY, and the server keeps serving everyone else.
@Suite("HTTP/2 server robustness")
struct RobustnessTests {
  static func misbehave(_ scenario: String, port: Int, _ extra: [String] = []) async throws -> [String: Any] {
    let output = try await PythonPeer.run(
      "interop/raw_h2.py", ["--port", "\(port)", "--scenario", scenario] + extra)
    let json = output.split(separator: "\n").last.map(String.init) ?? ""
    return try #require(
      try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any], "\(output)")
  }

  /// A normal call on a fresh connection.
  static func stillServes(_ port: Int) async throws {
    let transport = HTTP2ClientTransport(
      configuration: .init(host: "127.0.0.1", port: port), logger: quietLogger("robustness-client"))
    defer { transport.close() }
    let response = try await Echo_V1_Echo.Client(RPCClient(transport: transport)).get(.init("still serving"))
    #expect(response.text == "still serving")
  }

  @Test("garbage instead of the connection preface: the connection is closed")
  func garbagePreface() async throws {
    try await withHTTP2Server { port in
      let result = try await Self.misbehave("garbage-preface", port: port)
      #expect(result["closed"] as? Bool == true, "\(result)")
      try await Self.stillServes(port)
    }
  }

  @Test("a request with a wrong content-type, or a codec we do not speak (+json), gets HTTP 415")
  func wrongContentType() async throws {
    try await withHTTP2Server { port in
      for scenario in ["wrong-content-type", "json-content-type"] {
        let headers = try await Self.misbehave(scenario, port: port)
        #expect(headers[":status"] as? String == "415", "\(scenario): \(headers)")
        #expect((headers["grpc-message"] as? String)?.contains("content-type") == true)
      }
      try await Self.stillServes(port)
    }
  }

  @Test("a message claiming 4 GiB is refused with RESOURCE_EXHAUSTED before any allocation")
  func hugeLengthPrefix() async throws {
    try await withHTTP2Server { port in
      let headers = try await Self.misbehave("huge-length-prefix", port: port)
      #expect(headers["grpc-status"] as? String == "8", "\(headers)")
      #expect((headers["grpc-message"] as? String)?.contains("4294967295") == true)
      try await Self.stillServes(port)
    }
  }

  @Test("1,000 streams opened and reset at once: GOAWAY ENHANCE_YOUR_CALM, others unaffected")
  func rapidReset() async throws {
    try await withHTTP2Server { port in
      let result = try await Self.misbehave("rapid-reset", port: port)
      #expect(result["goaway"] as? Bool == true, "\(result)")
      #expect(result["goaway_code"] as? Int == 11, "\(result)")
      try await Self.stillServes(port)
    }
  }

  @Test("the server announces its stream, header and window limits in SETTINGS")
  func announcedLimits() async throws {
    try await withHTTP2Server { port in
      let settings = try await Self.misbehave("settings", port: port)
      #expect(settings["max_concurrent_streams"] as? Int == 100, "\(settings)")
      #expect(settings["max_header_list_size"] as? Int == 16 << 10)
      #expect(settings["initial_window_size"] as? Int == 1 << 20)
    }
  }

  @Test("a header block above the limit gets the stream refused, not the connection")
  func oversizedHeaders() async throws {
    try await withHTTP2Server { port in
      let result = try await Self.misbehave("big-headers", port: port)
      #expect(result["reset"] as? Bool == true, "\(result)")
      #expect(result["connection_closed"] as? Bool == false)
      try await Self.stillServes(port)
    }
  }

  @Test("a connection that sends nothing is closed after the handshake timeout")
  func silentConnection() async throws {
    var configuration = HTTP2ServerTransport.Configuration(host: "127.0.0.1", port: 0)
    configuration.handshakeTimeout = .milliseconds(300)
    try await withHTTP2Server(configuration: configuration) { port in
      let result = try await Self.misbehave("silent", port: port)
      // The script waits up to 10 s; the server must close the connection well before.
      #expect(result["closed"] as? Bool == true, "\(result)")
      try await Self.stillServes(port)
    }
  }

  @Test("with keepalive configured, the server pings a connection while a call runs")
  func serverPings() async throws {
    var configuration = HTTP2ServerTransport.Configuration(host: "127.0.0.1", port: 0)
    configuration.keepaliveInterval = .milliseconds(100)
    try await withHTTP2Server(configuration: configuration) { port in
      let result = try await Self.misbehave("pings", port: port)
      #expect(result["grpc_status"] as? String == "0", "\(result)")
      #expect((result["pings"] as? Int ?? 0) >= 1, "\(result)")
    }
  }

  @Test(
    "20 connections x 100 streams, each sending an unfinished 4 MiB message: the server holds a bounded amount and serves others"
  )
  func partialMessagesAreBounded() async throws {
    try await withHTTP2Server { port in
      let attack = Task {
        try await PythonPeer.run(
          "interop/raw_h2.py", ["--port", "\(port)", "--scenario", "partial-messages", "--seconds", "8"])
      }
      // While the attack runs, another client is served, and the server's inbound buffers stay
      // under the process bound plus one connection window (1 MiB) per attacking connection.
      var peak = 0
      for _ in 0..<10 {
        try await Task.sleep(for: .milliseconds(500))
        peak = max(peak, InboundMemory.bufferedBytes)
        try await Self.stillServes(port)
      }
      let output = try await attack.value
      let json = output.split(separator: "\n").last.map(String.init) ?? ""
      let result = try #require(
        try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any], "\(json)")
      let sent = try #require(result["sent_bytes"] as? Int)
      let bound = InboundMemory.limit + 20 * (1 << 20)
      print(
        "partial messages: the peers sent \(sent) bytes; the server held at most \(peak) (bound \(bound))")
      #expect(peak <= bound, "the server held \(peak) bytes")
      // Without the bound the peers could send 8 GiB (20 x 100 x 4 MiB) as fast as they can.
      #expect(sent <= bound + (8 << 20), "the peers could send \(sent) bytes")
      #expect(sent > 20 << 20, "the peers did send a lot (\(sent) bytes)")
    }
  }

  @Test("a client that never reads holds its handler back instead of filling the server's memory")
  func clientThatNeverReads() async throws {
    let observer = EchoObserver()
    try await withHTTP2Server(services: [EchoService(observer: observer)]) { port in
      // The stalled client asks for 1,000,000 responses of 1 KB and reads none of them.
      let script = PythonPeer.repository.appendingPathComponent("tools/interop/raw_h2.py").path
      let pid = try ChildProcess.spawn(
        try PythonPeer.python(), [script, "--port", "\(port)", "--scenario", "stall", "--seconds", "5"])
      try await eventually { observer.written > 0 }
      try await Task.sleep(for: .seconds(1))
      let written = observer.written
      try await Self.stillServes(port)
      _ = try await ChildProcess.wait(pid)
      // Flow control window (64 KiB) + the stream's write buffer (256 KiB) + socket buffers:
      // a few thousand 1 KB messages at most, never the million asked for.
      #expect(written < 20_000, "the handler wrote \(written) responses to a client that reads nothing")
      // Once the client is gone, the handler stops (its write fails) rather than waiting forever.
      try await eventually { observer.ended.count == 1 }
    }
  }
}

/// Waits (up to 10 s) until `condition` holds; records an issue if it never does.
func eventually(
  _ condition: @Sendable () -> Bool, sourceLocation: SourceLocation = #_sourceLocation
) async throws {
  let deadline = ContinuousClock.now.advanced(by: .seconds(10))
  while !condition() {
    guard ContinuousClock.now < deadline else {
      Issue.record("condition not met within 10 s", sourceLocation: sourceLocation)
      return
    }
    try await Task.sleep(for: .milliseconds(20))
  }
}
