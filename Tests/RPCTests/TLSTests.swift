import Foundation
import PaymentsTestSupport
import RPCCore
import RPCTransportHTTP2
import TLS
import Testing

/// TLS (OpenSSL, ALPN h2) in front of the HTTP/2 transport.
@Suite("TLS")
struct TLSTests {
  static func withTLSServer<Result: Sendable>(
    _ certificate: TestCertificate, _ body: @Sendable (Int) async throws -> Result
  ) async throws -> Result {
    var configuration = HTTP2ServerTransport.Configuration(host: "127.0.0.1", port: 0)
    configuration.tls = try TLSContext.server(
      certificateChainPath: certificate.certificatePath, privateKeyPath: certificate.privateKeyPath)
    return try await withHTTP2Server(configuration: configuration, body)
  }

  @Test("our client calls our server over TLS, verifying its certificate")
  func ourClient() async throws {
    let certificate = try TestCertificate.make()
    try await Self.withTLSServer(certificate) { port in
      var configuration = HTTP2ClientTransport.Configuration(host: "127.0.0.1", port: port)
      configuration.tls = try TLSContext.client(trustedCertificatesPath: certificate.certificatePath)
      configuration.serverName = "localhost"
      let transport = HTTP2ClientTransport(configuration: configuration, logger: quietLogger("tls-client"))
      defer { transport.close() }
      let client = Echo_V1_Echo.Client(RPCClient(transport: transport))
      #expect(try await client.get(.init("secret")).text == "secret")
      let large = try await client.get(.init("big", payload: Array(repeating: 7, count: 1 << 20)))
      #expect(large.payload.count == 1 << 20)
      let count = try await client.expand(.init("x", repeat: 500)) { responses in
        var count = 0
        for try await _ in responses { count += 1 }
        return count
      }
      #expect(count == 500)
    }
  }

  @Test("Python grpcio calls our server over TLS")
  func pythonClient() async throws {
    let certificate = try TestCertificate.make()
    let output = try await Self.withTLSServer(certificate) { port in
      try await PythonPeer.run(
        "interop/client.py",
        [
          "--port", "\(port)", "--root-cert", certificate.certificatePath, "--only",
          "unary,bidi,error,large_3mib",
        ])
    }
    let json = output.split(separator: "\n").last.map(String.init) ?? ""
    let results = try #require(
      try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: [String: Any]])
    #expect(results["unary"]?["text"] as? String == "hello", "\(results)")
    #expect(results["bidi"]?["texts"] as? [String] == ["m0", "m1", "m2", "m3", "m4"])
    #expect(results["error"]?["code"] as? String == "NOT_FOUND")
    #expect(results["large_3mib"]?["size"] as? Int == 3 << 20)
  }

  @Test("a client that does not trust the certificate fails with UNAVAILABLE, the server keeps serving")
  func untrustedCertificate() async throws {
    let certificate = try TestCertificate.make()
    let stranger = try TestCertificate.make()
    try await Self.withTLSServer(certificate) { port in
      var configuration = HTTP2ClientTransport.Configuration(host: "127.0.0.1", port: port)
      configuration.tls = try TLSContext.client(trustedCertificatesPath: stranger.certificatePath)
      configuration.serverName = "localhost"
      let transport = HTTP2ClientTransport(configuration: configuration, logger: quietLogger("tls-client"))
      defer { transport.close() }
      let error = await #expect(throws: RPCError.self) {
        try await Echo_V1_Echo.Client(RPCClient(transport: transport)).get(.init("x"))
      }
      #expect(error?.code == .unavailable)
      #expect(error?.message.contains("certificate") == true, "\(String(describing: error))")

      // Plaintext against the TLS port fails too, without harming the server.
      let plaintext = HTTP2ClientTransport(
        configuration: .init(host: "127.0.0.1", port: port), logger: quietLogger("plaintext-client"))
      defer { plaintext.close() }
      await #expect(throws: RPCError.self) {
        try await Echo_V1_Echo.Client(RPCClient(transport: plaintext)).get(.init("x"))
      }

      var good = HTTP2ClientTransport.Configuration(host: "127.0.0.1", port: port)
      good.tls = try TLSContext.client(trustedCertificatesPath: certificate.certificatePath)
      good.serverName = "localhost"
      let trusted = HTTP2ClientTransport(configuration: good, logger: quietLogger("tls-client"))
      defer { trusted.close() }
      #expect(try await Echo_V1_Echo.Client(RPCClient(transport: trusted)).get(.init("fine")).text == "fine")
    }
  }
}
