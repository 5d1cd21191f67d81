public import AsyncHTTPClient
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import TLS

/// The adapter for "hmacpay"-style providers: every request is a JSON `POST` signed with
/// HMAC-SHA256 over its body (`X-Signature`, hex), the idempotency key travels in the body as
/// `request_id`, and every answer is HTTP 200 with `{"result", "code", "reference"}`: errors are
/// codes, not statuses.
///
/// Classification: `approved` → success; `declined` → permanent failure with its code;
/// `error` with `rate_limited` or `temporarily_unavailable` → transient, with any other code
/// (`bad_signature`, `invalid_request`) → permanent; a non-200 status → transient; a timeout or
/// a lost connection → unknown.
public struct HMACPayProvider: PaymentProvider {
  public let name: String
  private let baseURL: String
  private let secret: [UInt8]
  private let client: HTTPClient
  private let timeout: TimeAmount

  /// - Parameter secret: the shared signing secret (a secret: never logged).
  public init(
    name: String = "hmacpay", baseURL: String, secret: String, client: HTTPClient,
    timeout: Duration = .seconds(5)
  ) {
    self.name = name
    self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
    self.secret = Array(secret.utf8)
    self.client = client
    self.timeout = .nanoseconds(
      Int64(timeout.components.seconds) * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000)
  }

  struct Result: Decodable {
    var result: String
    var code: String
    var reference: String
  }

  public func charge(_ charge: ProviderChargeRequest) async -> ProviderOutcome {
    let body: [String: any Sendable] = [
      "request_id": charge.idempotencyKey, "amount_minor": charge.amountMinor, "currency": charge.currency,
      "payer": charge.payerAccount, "payee": charge.payeeAccount,
    ]
    let answer: Result
    do {
      guard let result = try await post("/hmacpay/v2/payments", body) else {
        return .transientFailure(reason: "the provider answered with an error status")
      }
      answer = result
    } catch {
      return SandboxProvider.classify(error)
    }
    switch (answer.result, answer.code) {
    case ("approved", _): return .succeeded(reference: answer.reference)
    case ("declined", let code): return .permanentFailure(code: code, message: "declined by \(name)")
    case ("error", "rate_limited"), ("error", "temporarily_unavailable"):
      return .transientFailure(reason: "\(name): \(answer.code)")
    default:
      return .permanentFailure(code: answer.code, message: "\(name) refused the request (\(answer.result))")
    }
  }

  public func inquire(idempotencyKey: String) async -> ProviderInquiry {
    do {
      guard let answer = try await post("/hmacpay/v2/payments/status", ["request_id": idempotencyKey]) else {
        return .unavailable(reason: "the provider answered with an error status")
      }
      switch answer.result {
      case "approved": return .charged(reference: answer.reference)
      case "declined": return .declined(code: answer.code, message: "declined by \(name)")
      case "unknown_request": return .notCharged
      default: return .unavailable(reason: "\(name): \(answer.code)")
      }
    } catch {
      return .unavailable(reason: "\(error)")
    }
  }

  /// Posts a signed JSON body; `nil` for a non-200 answer.
  private func post(_ path: String, _ body: [String: any Sendable]) async throws -> Result? {
    let data = try JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])
    var request = HTTPClientRequest(url: baseURL + path)
    request.method = .POST
    request.headers.add(name: "Content-Type", value: "application/json")
    request.headers.add(name: "X-Signature", value: hexString(hmacSHA256(key: secret, message: Array(data))))
    request.body = .bytes(ByteBuffer(data: data))
    let response = try await client.execute(request, timeout: timeout)
    let bytes = try await response.body.collect(upTo: 1 << 20)
    guard response.status == .ok else { return nil }
    return try JSONDecoder().decode(Result.self, from: bytes)
  }
}
