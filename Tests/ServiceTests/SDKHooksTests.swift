import Foundation
import PaymentsClient
import PaymentsProto
import PaymentsTestSupport
import ProtobufRuntime
import RPCCore
import RPCTransportHTTP2
import Synchronization
import Testing

/// A query service whose `GetPayment` fails with `failure` for the first `failures` calls, and
/// records the metadata of every call.
final class FlakyQueryService: UnimplementedQueryService {
  let failures: Int
  let failure: RPCError
  let seen = Mutex<[Metadata]>([])

  init(failures: Int, failure: RPCError = RPCError(.unavailable, "try again")) {
    self.failures = failures
    self.failure = failure
  }

  func getPayment(_ request: Payments_V1_GetPaymentRequest, context: ServerContext) async throws
    -> Payments_V1_Payment
  {
    let count = seen.withLock {
      $0.append(context.metadata)
      return $0.count
    }
    if count <= failures { throw failure }
    return .with {
      $0.paymentID = SDKTransportSecurityTests.id
      $0.status = .succeeded
      $0.version = 3
    }
  }
}

/// Records the calls it sees and adds a header to each.
final class RecordingInterceptor: ClientInterceptor {
  let calls = Mutex<[String]>([])

  func intercept<Result: Sendable>(
    _ call: ClientCallInfo, next: @Sendable (ClientCallInfo) async throws -> Result
  ) async throws -> Result {
    var call = call
    calls.withLock { $0.append("\(call.method.path) \(call.metadata["x-request-id"] != nil)") }
    call.metadata.addString("sdk-test", forKey: "x-tenant")
    return try await next(call)
  }
}

@Suite("SDK: interceptors, request IDs, read retries")
struct SDKHooksTests {
  func client(_ port: Int, _ change: (inout PaymentsClient.Configuration) -> Void = { _ in }) throws
    -> PaymentsClient
  {
    var configuration = PaymentsClient.Configuration(apiKey: "pk_secret")
    configuration.query = .init(host: "127.0.0.1", port: port)
    configuration.transportSecurity = .plaintext
    configuration.retryBase = .milliseconds(5)
    configuration.retryCap = .milliseconds(20)
    change(&configuration)
    return try PaymentsClient(configuration: configuration)
  }

  @Test(
    "interceptors run around every call, after the SDK's own request ID; what they add reaches the server")
  func interceptors() async throws {
    let service = FlakyQueryService(failures: 0)
    let recorder = RecordingInterceptor()
    try await withQueryServer(service, tls: nil) { port in
      let sdk = try client(port) { $0.interceptors = [recorder] }
      defer { sdk.close() }
      _ = try await sdk.payment(id: SDKTransportSecurityTests.id)
      _ = try await sdk.payment(idempotencyKey: "k")
    }
    #expect(
      recorder.calls.withLock { $0 }
        == Array(repeating: "/payments.v1.PaymentQueryService/GetPayment true", count: 2))
    let seen = service.seen.withLock { $0 }
    #expect(seen.map { $0["x-tenant"] } == ["sdk-test", "sdk-test"])
    #expect(seen.allSatisfy { $0["authorization"] == "Bearer pk_secret" })
    let ids = seen.compactMap { $0["x-request-id"] }
    #expect(ids.count == 2 && Set(ids).count == 2, "a new request ID per call: \(ids)")
  }

  @Test(
    "reads are retried on UNAVAILABLE (readAttempts), each try a new request ID; the error names the last one"
  )
  func readRetries() async throws {
    let flaky = FlakyQueryService(failures: 2)
    try await withQueryServer(flaky, tls: nil) { port in
      let sdk = try client(port)
      defer { sdk.close() }
      let payment = try await sdk.payment(id: SDKTransportSecurityTests.id)
      #expect(payment.status == .succeeded)
    }
    #expect(flaky.seen.withLock { $0.count } == 3, "two failures, then the answer")

    let once = FlakyQueryService(failures: 5)
    try await withQueryServer(once, tls: nil) { port in
      let sdk = try client(port) { $0.readAttempts = 1 }
      defer { sdk.close() }
      do {
        _ = try await sdk.payment(id: SDKTransportSecurityTests.id)
        Issue.record("the failure was hidden")
      } catch let error as PaymentsError {
        #expect(error.code == .unavailable)
        #expect(error.requestID != nil && error.requestID == once.seen.withLock { $0.last?["x-request-id"] })
      }
    }
    #expect(once.seen.withLock { $0.count } == 1, "readAttempts = 1: no retry")

    // Only UNAVAILABLE is retried: an answer about the payment is not.
    let notFound = FlakyQueryService(failures: 5, failure: RPCError(.notFound, "no payment"))
    try await withQueryServer(notFound, tls: nil) { port in
      let sdk = try client(port)
      defer { sdk.close() }
      await #expect(throws: PaymentsError.self) {
        _ = try await sdk.payment(id: SDKTransportSecurityTests.id)
      }
    }
    #expect(notFound.seen.withLock { $0.count } == 1)
  }
}
