import Foundation

/// A throwaway self-signed certificate for `localhost` and `127.0.0.1` (made with the `openssl`
/// command), for TLS tests.
public struct TestCertificate: Sendable {
  /// PEM certificate (also the trust anchor clients use).
  public let certificatePath: String
  /// PEM private key.
  public let privateKeyPath: String

  /// Makes a new key and certificate in a temporary directory.
  public static func make() throws -> TestCertificate {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tls-\(UUID())")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    let certificate = directory.appendingPathComponent("cert.pem").path
    let key = directory.appendingPathComponent("key.pem").path
    let result = try ChildProcess.run(
      "/usr/bin/openssl",
      [
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
        "-out", certificate, "-days", "2", "-subj", "/CN=localhost",
        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
      ])
    guard result.status == 0 else { throw HarnessError("openssl req failed: \(result.output)") }
    return TestCertificate(certificatePath: certificate, privateKeyPath: key)
  }
}
