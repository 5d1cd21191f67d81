import Foundation
import PaymentsProto
import PaymentsTestSupport
import ProtobufRuntime
import RPCCore
import Synchronization
import TLS
import Testing

/// Runs `program` with `arguments` (standard input from `input`); its exit status and standard
/// output (standard error apart).
func runSplit(
  _ program: String, _ arguments: [String], input: String? = nil, environment: [String: String] = [:]
)
  async throws -> (status: Int32, stdout: String, stderr: String)
{
  let directory = FileManager.default.temporaryDirectory.appendingPathComponent("split-\(UUID())").path
  try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
  defer { try? FileManager.default.removeItem(atPath: directory) }
  try (input ?? "").write(toFile: directory + "/in", atomically: true, encoding: .utf8)
  let script = "exec \"$@\" <\"$SPLIT_DIR/in\" >\"$SPLIT_DIR/out\" 2>\"$SPLIT_DIR/err\""
  let env = (environment.merging(["SPLIT_DIR": directory]) { $1 }).map { "\($0.key)=\($0.value)" }.sorted()
  let result = try await ChildProcess.run(
    "/usr/bin/timeout", ["60", "/usr/bin/env"] + env + ["bash", "-c", script, "_", program] + arguments)
  let read = { (name: String) in (try? String(contentsOfFile: directory + "/" + name, encoding: .utf8)) ?? ""
  }
  return (result.status, read("out"), read("err"))
}

/// paymentsctl takes grpcurl's command lines: each documented form (docs/paymentsctl.md, "grpcurl
/// parity") runs verbatim with grpcurl 1.8.6 (Go's gRPC; from PyPI, installed by tools/python-env)
/// and with paymentsctl against the same server, and both must exit alike and print the same.
@Suite("paymentsctl speaks grpcurl")
struct GrpcurlParityTests {
  static var grpcurl: String { PythonPeer.repository.appendingPathComponent(".venv/bin/grpcurl").path }

  @Test(
    "the documented grpcurl command forms: same exit status, same output (list, JSON responses, error statuses)"
  )
  func documentedForms() async throws {
    try await withPlatform { platform in
      let key = try await platform.key()
      let command = "127.0.0.1:\(platform.commandPort)"
      let query = "127.0.0.1:\(platform.queryPort)"
      let client = platform.commandClient(key)
      defer { client.close() }
      let payment = try await client.client.submitPayment(
        validRequest(key: "grpcurl-parity"), metadata: client.metadata
      ).payment!
      let id = payment.paymentID
      // In the read model before the forms run (or both tools would agree on NOT_FOUND).
      let reader = platform.queryClient(key)
      defer { reader.close() }
      _ = try await reader.client.getPayment(
        .with {
          $0.lookup = .paymentID(id)
          $0.minVersion = 1
        }, metadata: reader.metadata)
      let directory = FileManager.default.temporaryDirectory.appendingPathComponent("parity-\(UUID())").path
      try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
      defer { try? FileManager.default.removeItem(atPath: directory) }
      let protoset = directory + "/payments.protoset"
      let protoc = try await ChildProcess.run(
        "/usr/bin/env",
        [
          "protoc", "-I", PythonPeer.repository.appendingPathComponent("proto").path, "--include_imports",
          "--descriptor_set_out=\(protoset)", "payments/v1/query_service.proto",
        ])
      #expect(protoc.status == 0, "\(protoc.output)")
      let auth = "authorization: Bearer \(key)"
      let get = #"{"paymentId": "\#(id)"}"#

      /// Each form: its arguments, standard input, and how the outputs must compare.
      enum Compare { case same, sameLines, exitOnly, firstLine, sameStderr }
      let forms: [(name: String, arguments: [String], input: String?, compare: Compare)] = [
        ("list services", ["-plaintext", command, "list"], nil, .sameLines),
        ("list methods", ["-plaintext", query, "list", "payments.v1.PaymentQueryService"], nil, .sameLines),
        ("describe a message", ["-plaintext", command, "describe", "payments.v1.Money"], nil, .firstLine),
        ("describe everything", ["-plaintext", command, "describe"], nil, .exitOnly),
        (
          "unary call",
          ["-plaintext", "-H", auth, "-d", get, query, "payments.v1.PaymentQueryService/GetPayment"], nil,
          .same
        ),
        (
          "request from stdin",
          ["-plaintext", "-H", auth, "-d", "@", query, "payments.v1.PaymentQueryService/GetPayment"], get,
          .same
        ),
        (
          "rpc-header",
          [
            "-plaintext", "-rpc-header", auth, "-d", get, query, "payments.v1.PaymentQueryService/GetPayment",
          ], nil, .same
        ),
        (
          "reflect-header",
          [
            "-plaintext", "-reflect-header", "x-trace: 1", "-rpc-header", auth, "-d", get, query,
            "payments.v1.PaymentQueryService/GetPayment",
          ], nil, .same
        ),
        (
          "max-time",
          [
            "-plaintext", "-max-time", "10", "-H", auth, "-d", get, query,
            "payments.v1.PaymentQueryService/GetPayment",
          ], nil, .same
        ),
        (
          "emit-defaults",
          [
            "-plaintext", "-emit-defaults", "-H", auth, "-d", get, query,
            "payments.v1.PaymentQueryService/GetPayment",
          ], nil, .exitOnly
        ),
        (
          "protoset",
          [
            "-plaintext", "-protoset", protoset, "-H", auth, "-d", get, query,
            "payments.v1.PaymentQueryService/GetPayment",
          ], nil, .same
        ),
        (
          "allow-unknown-fields",
          [
            "-plaintext", "-allow-unknown-fields", "-H", auth, "-d",
            #"{"paymentId": "\#(id)", "color": "red"}"#, query, "payments.v1.PaymentQueryService/GetPayment",
          ], nil, .same
        ),
        (
          "NOT_FOUND",
          [
            "-plaintext", "-H", auth, "-d", #"{"paymentId": "pay_00000000000000000000000000000000"}"#, query,
            "payments.v1.PaymentQueryService/GetPayment",
          ], nil, .exitOnly
        ),
        (
          "format-error",
          [
            "-plaintext", "-format-error", "-H", auth, "-d",
            #"{"paymentId": "pay_00000000000000000000000000000000"}"#, query,
            "payments.v1.PaymentQueryService/GetPayment",
          ], nil, .sameStderr
        ),
        (
          "bad request JSON",
          [
            "-plaintext", "-H", auth, "-d", #"{"paymentId": 12"#, query,
            "payments.v1.PaymentQueryService/GetPayment",
          ], nil, .exitOnly
        ),
        (
          "unknown field",
          [
            "-plaintext", "-H", auth, "-d", #"{"color": "red"}"#, query,
            "payments.v1.PaymentQueryService/GetPayment",
          ], nil, .exitOnly
        ),
        (
          "unknown method", ["-plaintext", "-H", auth, query, "payments.v1.PaymentQueryService/Nope"], nil,
          .exitOnly
        ),
        ("unknown symbol", ["-plaintext", command, "describe", "payments.v1.Nope"], nil, .exitOnly),
        ("nothing listens", ["-plaintext", "-connect-timeout", "2", "127.0.0.1:1", "list"], nil, .exitOnly),
        (
          "UNAUTHENTICATED", ["-plaintext", "-d", get, query, "payments.v1.PaymentQueryService/GetPayment"],
          nil, .exitOnly
        ),
        (
          "INVALID_ARGUMENT",
          [
            "-plaintext", "-H", auth, "-d", #"{"paymentId": "nope"}"#, query,
            "payments.v1.PaymentQueryService/GetPayment",
          ], nil, .exitOnly
        ),
        (
          "format json",
          [
            "-plaintext", "-format", "json", "-H", auth, "-d", get, query,
            "payments.v1.PaymentQueryService/GetPayment",
          ], nil, .same
        ),
        (
          "keepalive-time",
          [
            "-plaintext", "-keepalive-time", "30", "-H", auth, "-d", get, query,
            "payments.v1.PaymentQueryService/GetPayment",
          ], nil, .same
        ),
        (
          "max-msg-sz",
          [
            "-plaintext", "-max-msg-sz", "10", "-H", auth, "-d", get, query,
            "payments.v1.PaymentQueryService/GetPayment",
          ], nil, .exitOnly
        ),
        (
          "authority",
          [
            "-plaintext", "-authority", "payments.example", "-H", auth, "-d", get, query,
            "payments.v1.PaymentQueryService/GetPayment",
          ], nil, .same
        ),
      ]
      let ours = try Executables.path("paymentsctl")
      // paymentsctl would add PAYMENTS_API_KEY to every call: not set here, as for grpcurl.
      // What each form must end with (0 unless named), so that no comparison passes by both
      // tools failing alike.
      let statuses: [String: Int32] = [
        "NOT_FOUND": 69, "format-error": 69, "UNAUTHENTICATED": 80, "INVALID_ARGUMENT": 67, "max-msg-sz": 1,
        "bad request JSON": 1, "unknown field": 1, "unknown method": 1, "unknown symbol": 1,
        "nothing listens": 1,
      ]
      for form in forms {
        let theirs = try await runSplit(Self.grpcurl, form.arguments, input: form.input)
        let mine = try await runSplit(ours, form.arguments, input: form.input)
        #expect(
          theirs.status == statuses[form.name] ?? 0, "\(form.name): grpcurl \(theirs.status) \(theirs.stderr)"
        )
        #expect(
          theirs.status == mine.status,
          "\(form.name): grpcurl \(theirs.status) (\(theirs.stderr)), paymentsctl \(mine.status) (\(mine.stderr))"
        )
        switch form.compare {
        case .same:
          #expect(
            mine.stdout == theirs.stdout,
            "\(form.name):\n--- grpcurl\n\(theirs.stdout)\n--- paymentsctl\n\(mine.stdout)")
        case .sameLines:
          #expect(
            mine.stdout.split(separator: "\n").sorted() == theirs.stdout.split(separator: "\n").sorted(),
            "\(form.name):\n--- grpcurl\n\(theirs.stdout)\n--- paymentsctl\n\(mine.stdout)")
        case .firstLine:
          #expect(
            mine.stdout.split(separator: "\n").first == theirs.stdout.split(separator: "\n").first,
            "\(form.name):\n--- grpcurl\n\(theirs.stdout)\n--- paymentsctl\n\(mine.stdout)")
        case .sameStderr:
          #expect(
            mine.stderr == theirs.stderr,
            "\(form.name):\n--- grpcurl\n\(theirs.stderr)\n--- paymentsctl\n\(mine.stderr)")
        case .exitOnly:
          break
        }
      }
    }
  }

  @Test(
    "TLS flags against a TLS server, as grpcurl: --cacert, --insecure, --servername, --authority, --cert/--key"
  )
  func tlsFlags() async throws {
    let server = try TestCertificate.make()
    let client = try TestCertificate.make()
    let stranger = try TestCertificate.make()
    let ours = try Executables.path("paymentsctl")
    let get = #"{"paymentId": "pay_0190f0c1a2b37c4d8e9fa0b1c2d3e4f5"}"#
    // The embedded contract (the test server has no reflection); grpcurl gets a protoset of it.
    let protoset = FileManager.default.temporaryDirectory.appendingPathComponent("tls-\(UUID()).protoset")
      .path
    defer { try? FileManager.default.removeItem(atPath: protoset) }
    let written = try await runSplit(ours, ["list", "--embedded", "--protoset-out", protoset])
    #expect(written.status == 0 && FileManager.default.fileExists(atPath: protoset), "\(written.stderr)")
    let offline = try await runSplit(ours, ["describe", "--protoset", protoset, "payments.v1.Refund"])
    #expect(
      offline.stdout.contains("refund_id"), "--protoset reads what --protoset-out wrote: \(offline.stdout)")

    let service = FixedQueryService()
    let context = try TLSContext.server(
      certificateChainPath: server.certificatePath, privateKeyPath: server.privateKeyPath,
      clientCertificateAuthorityPath: client.certificatePath)
    try await withQueryServer(service, tls: context) { port in
      let address = "127.0.0.1:\(port)"
      func both(_ arguments: [String]) async throws -> (grpcurl: Int32, paymentsctl: Int32, output: String) {
        let common = ["-protoset", protoset, "-d", get]
        let tail = [address, "payments.v1.PaymentQueryService/GetPayment"]
        let theirs = try await runSplit(Self.grpcurl, common + arguments + tail)
        let mine = try await runSplit(ours, common + arguments + tail)
        return (theirs.status, mine.status, "grpcurl: \(theirs.stderr) paymentsctl: \(mine.stderr)")
      }
      let mutual = ["-cert", client.certificatePath, "-key", client.privateKeyPath]
      let trusted = try await both(["-cacert", server.certificatePath] + mutual)
      #expect(trusted.grpcurl == 0 && trusted.paymentsctl == 0, "\(trusted)")
      let insecure = try await both(["-insecure"] + mutual)
      #expect(insecure.grpcurl == 0 && insecure.paymentsctl == 0, "\(insecure)")
      let untrusted = try await both(mutual)
      #expect(
        untrusted.grpcurl != 0 && untrusted.paymentsctl != 0, "the system does not trust it: \(untrusted)")
      let misnamed = try await both(["-cacert", server.certificatePath, "-servername", "elsewhere"] + mutual)
      #expect(misnamed.grpcurl != 0 && misnamed.paymentsctl != 0, "\(misnamed)")
      let renamed = try await both(["-cacert", server.certificatePath, "-servername", "localhost"] + mutual)
      #expect(renamed.grpcurl == 0 && renamed.paymentsctl == 0, "\(renamed)")
      let authority = try await both(["-cacert", server.certificatePath, "-authority", "localhost"] + mutual)
      #expect(authority.grpcurl == 0 && authority.paymentsctl == 0, "\(authority)")
      let noCertificate = try await both(["-cacert", server.certificatePath])
      #expect(noCertificate.grpcurl != 0 && noCertificate.paymentsctl != 0, "mTLS: \(noCertificate)")
      let wrongCertificate = try await both(
        [
          "-cacert", server.certificatePath, "-cert", stranger.certificatePath, "-key",
          stranger.privateKeyPath,
        ])
      #expect(wrongCertificate.grpcurl != 0 && wrongCertificate.paymentsctl != 0, "\(wrongCertificate)")
    }
    #expect(
      service.calls.withLock { $0 }.count == 8, "each accepted connection made one call: 4 forms × 2 tools")
  }
}
