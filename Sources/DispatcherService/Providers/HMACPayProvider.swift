public import AsyncHTTPClient
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import TLS

/// The adapter for "hmacpay"-style providers: every request is a JSON `POST` signed with
/// HMAC-SHA256 over its body (`X-Signature`, hex), the idempotency key travels in the body as
/// `request_id`, and every answer is HTTP 200 with `{"result", "code", "reference"}`: errors are
/// codes, not statuses. Charges are `/hmacpay/v2/payments` and `/payments/status`; refunds
/// `/hmacpay/v2/refunds` (`{"request_id", "payment_reference", "amount_minor", "currency",
/// "reason"}`, `payment_reference` being the charge's reference) and `/refunds/status`.
///
/// Classification, the same for charges and refunds: `approved` → success; `declined` →
/// permanent failure with its code (for a refund e.g. `charge_not_found`,
/// `amount_exceeds_charge`); `error` with `rate_limited` or `temporarily_unavailable` →
/// transient; `bad_signature` → configuration error (the platform's secret is wrong: the payment
/// is not at fault); `invalid_request` → permanent; any other answer — `request_in_progress`, an
/// unknown code, a non-200 status, a timeout or a lost connection — → unknown (the money may have
/// moved).
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
    return await create("/hmacpay/v2/payments", body, operation: "charge")
  }

  /// Refunds `refund.chargeReference` (sent as `payment_reference`);
  /// ``ProviderOutcome/succeeded(reference:)`` carries the refund's reference.
  public func refund(_ refund: ProviderRefundRequest) async -> ProviderOutcome {
    let body: [String: any Sendable] = [
      "request_id": refund.idempotencyKey, "payment_reference": refund.chargeReference,
      "amount_minor": refund.amountMinor, "currency": refund.currency, "reason": refund.reason,
    ]
    return await create("/hmacpay/v2/refunds", body, operation: "refund")
  }

  /// Posts a charge or refund request and classifies the answer.
  private func create(_ path: String, _ body: [String: any Sendable], operation: String) async
    -> ProviderOutcome
  {
    let answer: Result
    do {
      guard let result = try await post(path, body) else {
        return .unknown(
          reason: "the provider answered with an error status; the \(operation) may have been made")
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
    case ("error", "bad_signature"):
      return .configurationError(reason: "\(name) refused the request signature (check hmac.secret)")
    case ("error", "invalid_request"):
      return .permanentFailure(code: answer.code, message: "\(name) refused the request as invalid")
    default:
      return .unknown(
        reason: "\(name) answered \(answer.result)/\(answer.code); the \(operation) may have been made")
    }
  }

  public func inquire(idempotencyKey: String) async -> ProviderInquiry {
    await inquire("/hmacpay/v2/payments/status", idempotencyKey: idempotencyKey)
  }

  /// Looks the refund up by its key (`/hmacpay/v2/refunds/status`): `approved` →
  /// ``ProviderInquiry/charged(reference:)`` (refunded), `unknown_request` →
  /// ``ProviderInquiry/notCharged``.
  public func inquireRefund(idempotencyKey: String) async -> ProviderInquiry {
    await inquire("/hmacpay/v2/refunds/status", idempotencyKey: idempotencyKey)
  }

  /// Asks a status endpoint about the request with `idempotencyKey`.
  private func inquire(_ path: String, idempotencyKey: String) async -> ProviderInquiry {
    do {
      guard let answer = try await post(path, ["request_id": idempotencyKey]) else {
        return .unavailable(reason: "the provider answered with an error status")
      }
      switch answer.result {
      case "approved": return .charged(reference: answer.reference)
      case "declined": return .declined(code: answer.code, message: "declined by \(name)")
      case "unknown_request": return .notCharged
      case "error" where answer.code == "bad_signature":
        return .configurationError(reason: "\(name) refused the request signature (check hmac.secret)")
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
