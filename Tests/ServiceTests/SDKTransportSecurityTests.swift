import Foundation
import PaymentsClient
import PaymentsProto
import PaymentsTestSupport
import ProtobufRuntime
import RPCCore
import RPCTransportHTTP2
import Synchronization
import TLS
import Testing

/// A query service that answers `GetPayment` with a fixed payment and counts the calls that
/// reached it (with the API key they carried).
final class FixedQueryService: UnimplementedQueryService {
  let calls = Mutex<[String]>([])

  func getPayment(_ request: Payments_V1_GetPaymentRequest, context: ServerContext) async throws
    -> Payments_V1_Payment
  {
    calls.withLock { $0.append(context.metadata["authorization"] ?? "") }
    return .with {
      $0.paymentID = SDKTransportSecurityTests.id
      $0.status = .succeeded
      $0.version = 3
    }
  }
}

/// A query service whose methods answer UNIMPLEMENTED unless a test service implements them.
protocol UnimplementedQueryService: Payments_V1_PaymentQueryService.ServiceProtocol {}

extension UnimplementedQueryService {
  func listPayments(_ request: Payments_V1_ListPaymentsRequest, context: ServerContext) async throws
    -> Payments_V1_ListPaymentsResponse
  { throw RPCError(.unimplemented, "not in this test") }
  func watchPayment(
    _ request: Payments_V1_WatchPaymentRequest, responses: RPCWriter<Payments_V1_Payment>,
    context: ServerContext
  ) async throws { throw RPCError(.unimplemented, "not in this test") }
  func getRefund(_ request: Payments_V1_GetRefundRequest, context: ServerContext) async throws
    -> Payments_V1_Refund
  { throw RPCError(.unimplemented, "not in this test") }
  func listEvents(_ request: Payments_V1_ListEventsRequest, context: ServerContext) async throws
    -> Payments_V1_ListEventsResponse
  { throw RPCError(.unimplemented, "not in this test") }
  func watchEvents(
    _ request: Payments_V1_WatchEventsRequest, responses: RPCWriter<Payments_V1_FeedEvent>,
    context: ServerContext
  ) async throws { throw RPCError(.unimplemented, "not in this test") }
  func getPayment(_ request: Payments_V1_GetPaymentRequest, context: ServerContext) async throws
    -> Payments_V1_Payment
  { throw RPCError(.unimplemented, "not in this test") }
}

/// Serves `service` on a loopback port (TLS when `tls` is given) and runs `body` with the port.
func withQueryServer<Result: Sendable>(
  _ service: some Payments_V1_PaymentQueryService.ServiceProtocol, tls: TLSContext?,
  _ body: @Sendable (Int) async throws -> Result
) async throws -> Result {
  var configuration = HTTP2ServerTransport.Configuration(host: "127.0.0.1", port: 0)
  configuration.tls = tls
  let transport = HTTP2ServerTransport(configuration: configuration, logger: quietLogger("tls-server"))
  let server = RPCServer(transport: transport, services: [service], logger: quietLogger("tls-server"))
  return try await withThrowingTaskGroup(of: Void.self) { group in
    group.addTask { try await server.run() }
    defer { group.cancelAll() }
    return try await body(try await transport.boundPort())
  }
}

@Suite("SDK: transport security")
struct SDKTransportSecurityTests {
  static let id = "pay_0190f0c1a2b37c4d8e9fa0b1c2d3e4f5"

  /// The payment read through a client with `security`, or the error.
  func read(port: Int, _ security: PaymentsClient.Configuration.TransportSecurity?, serverName: String? = nil)
    async -> Result<Payment, PaymentsError>
  {
    var configuration = PaymentsClient.Configuration(apiKey: "pk_secret")
    configuration.query = .init(host: "127.0.0.1", port: port)
    if let security { configuration.transportSecurity = security }
    configuration.serverName = serverName
    configuration.connectTimeout = .seconds(3)
    do {
      return .success(
        try await withPaymentsClient(configuration: configuration) {
          try await $0.payment(id: Self.id, timeout: .seconds(5))
        })
    } catch let error as PaymentsError {
      return .failure(error)
    } catch {
      return .failure(PaymentsError(.unknown, "\(error)"))
    }
  }

  @Test("TLS by default: the API key never goes out in plaintext unless plaintext is asked for by name")
  func tlsByDefault() async throws {
    #expect(PaymentsClient.Configuration(apiKey: "k").transportSecurity == .tls())
    let server = try TestCertificate.make()
    // A plaintext server: the default client does not talk to it at all.
    let plain = FixedQueryService()
    try await withQueryServer(plain, tls: nil) { port in
      guard case .failure(let error) = await read(port: port, nil) else {
        Issue.record("the default client spoke plaintext")
        return
      }
      #expect(error.code == .unavailable, "\(error)")
      #expect(plain.calls.withLock { $0 }.isEmpty, "no call, so no key, reached the plaintext server")
      guard case .success = await read(port: port, .plaintext) else {
        Issue.record("plaintext by name works")
        return
      }
    }
    // A TLS server: trusted through its CA file; the system's trust store does not know it; a
    // server name the certificate does not carry is refused.
    let secure = FixedQueryService()
    let context = try TLSContext.server(
      certificateChainPath: server.certificatePath, privateKeyPath: server.privateKeyPath)
    try await withQueryServer(secure, tls: context) { port in
      let trusted = await read(port: port, .tls(trustedCertificatesPath: server.certificatePath))
      #expect((try? trusted.get())?.status == .succeeded, "\(trusted)")
      #expect(secure.calls.withLock { $0 } == ["Bearer pk_secret"])
      guard case .failure(let untrusted) = await read(port: port, nil) else {
        Issue.record("a certificate the system does not trust was accepted")
        return
      }
      #expect(untrusted.code == .unavailable, "\(untrusted)")
      let renamed = await read(
        port: port, .tls(trustedCertificatesPath: server.certificatePath), serverName: "localhost")
      #expect((try? renamed.get())?.version == 3, "the certificate names localhost too: \(renamed)")
      guard
        case .failure = await read(
          port: port, .tls(trustedCertificatesPath: server.certificatePath), serverName: "payments.example")
      else {
        Issue.record("a certificate for another name was accepted")
        return
      }
      #expect(secure.calls.withLock { $0.count } == 2)
    }
  }

  @Test(
    "mutual TLS: a service that requires client certificates serves the SDK with one, and refuses it without")
  func mutualTLS() async throws {
    let server = try TestCertificate.make()
    let client = try TestCertificate.make()
    let service = FixedQueryService()
    let context = try TLSContext.server(
      certificateChainPath: server.certificatePath, privateKeyPath: server.privateKeyPath,
      clientCertificateAuthorityPath: client.certificatePath)
    try await withQueryServer(service, tls: context) { port in
      guard
        case .failure(let refused) = await read(
          port: port, .tls(trustedCertificatesPath: server.certificatePath))
      else {
        Issue.record("a client without a certificate was served")
        return
      }
      // TLS 1.3 reports the missing certificate after the client's handshake is done: the call
      // fails when the server's alert arrives (UNAVAILABLE), or at its deadline on a loaded
      // machine. Either way no call reached the service (checked below).
      #expect([.unavailable, .deadlineExceeded].contains(refused.code), "\(refused)")
      let stranger = try TestCertificate.make()  // a certificate the service's CA did not issue
      guard
        case .failure = await read(
          port: port,
          .mutualTLS(
            trustedCertificatesPath: server.certificatePath, certificateChainPath: stranger.certificatePath,
            privateKeyPath: stranger.privateKeyPath))
      else {
        Issue.record("a client certificate from another authority was accepted")
        return
      }
      #expect(service.calls.withLock { $0 }.isEmpty)
      let accepted = await read(
        port: port,
        .mutualTLS(
          trustedCertificatesPath: server.certificatePath, certificateChainPath: client.certificatePath,
          privateKeyPath: client.privateKeyPath))
      #expect((try? accepted.get())?.status == .succeeded, "\(accepted)")
      #expect(service.calls.withLock { $0.count } == 1)
    }
  }
}
