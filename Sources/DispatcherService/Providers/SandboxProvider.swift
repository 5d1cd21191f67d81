public import AsyncHTTPClient
import Foundation
import Glibc
import NIOCore
import NIOFoundationCompat
import NIOHTTP1

/// The adapter for `payments provider-sandbox` and providers with its API shape (Stripe-like):
/// JSON over HTTP, an `Idempotency-Key` header, errors as HTTP statuses with
/// `{"error": {"code", "message"}}`. Charges are `POST /v1/charges` and
/// `GET /v1/charges?idempotency_key=`; refunds `POST /v1/refunds` (`{"charge", "amount",
/// "currency", "reason"}`) and `GET /v1/refunds?idempotency_key=`.
///
/// Classification (``classify(status:body:operation:)``), the same for charges and refunds: 2xx
/// → success; 402, 400, 404, 422 → permanent failure with the provider's code (for a refund e.g.
/// `charge_not_found`, `currency_mismatch`, `amount_exceeds_charge`); 429 and 503 (the provider
/// did not process the request) and a refused connection → transient; 401 and 403 (the
/// platform's credentials) → configuration error; anything else — 408, 409 (a request with the
/// key in progress), 500, 502, 504, other statuses, a timeout, a connection lost after the
/// request was sent, an unreadable success — → unknown: the money may have moved, so the
/// dispatcher asks before deciding.
public struct SandboxProvider: PaymentProvider {
  public let name: String
  private let baseURL: String
  private let client: HTTPClient
  private let timeout: TimeAmount

  /// - Parameters:
  ///   - baseURL: e.g. `http://127.0.0.1:8090`.
  ///   - client: shared, pooled HTTP client (AsyncHTTPClient); the caller shuts it down.
  public init(name: String = "sandbox", baseURL: String, client: HTTPClient, timeout: Duration = .seconds(5))
  {
    self.name = name
    self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
    self.client = client
    self.timeout = .nanoseconds(
      Int64(timeout.components.seconds) * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000)
  }

  struct ChargeBody: Encodable {
    var amount: Int64
    var currency: String
    var source: String
    var destination: String
    var description: String
  }

  struct RefundBody: Encodable {
    var charge: String
    var amount: Int64
    var currency: String
    var reason: String
  }

  /// What the provider made (a charge or a refund): only its ID matters here.
  struct Created: Decodable {
    var id: String
  }

  struct ErrorBody: Decodable {
    struct Detail: Decodable {
      var code: String
      var message: String
    }
    var error: Detail
  }

  public func charge(_ charge: ProviderChargeRequest) async -> ProviderOutcome {
    let body = ChargeBody(
      amount: charge.amountMinor, currency: charge.currency, source: charge.payerAccount,
      destination: charge.payeeAccount, description: charge.description)
    return await create("/v1/charges", idempotencyKey: charge.idempotencyKey, body: body, operation: "charge")
  }

  /// Refunds `refund.chargeReference` (the charge's ID); ``ProviderOutcome/succeeded(reference:)``
  /// carries the refund's ID.
  public func refund(_ refund: ProviderRefundRequest) async -> ProviderOutcome {
    let body = RefundBody(
      charge: refund.chargeReference, amount: refund.amountMinor, currency: refund.currency,
      reason: refund.reason)
    return await create("/v1/refunds", idempotencyKey: refund.idempotencyKey, body: body, operation: "refund")
  }

  /// POSTs `body` to `path` with `idempotencyKey` and classifies the answer.
  private func create(
    _ path: String, idempotencyKey: String, body: some Encodable, operation: String
  ) async -> ProviderOutcome {
    var request = HTTPClientRequest(url: baseURL + path)
    request.method = .POST
    request.headers.add(name: "Idempotency-Key", value: idempotencyKey)
    request.headers.add(name: "Content-Type", value: "application/json")
    guard let data = try? JSONEncoder().encode(body) else {
      return .permanentFailure(code: "invalid_request", message: "the \(operation) could not be encoded")
    }
    request.body = .bytes(ByteBuffer(data: data))
    let response: (status: Int, body: ByteBuffer)
    do {
      response = try await execute(request)
    } catch {
      return Self.classify(error)
    }
    return Self.classify(
      status: response.status, body: Array(response.body.readableBytesView), operation: operation)
  }

  /// The outcome class of a charge or refund answer with HTTP `status` and `body`.
  ///
  /// - Parameter operation: what the call asked for (`charge` or `refund`), for the messages.
  public static func classify(status: Int, body: [UInt8], operation: String = "charge") -> ProviderOutcome {
    let body = ByteBuffer(bytes: body)
    switch status {
    case 200..<300:
      guard let created = try? JSONDecoder().decode(Created.self, from: body) else {
        return .unknown(reason: "the provider answered \(status) with an unreadable body")
      }
      return .succeeded(reference: created.id)
    case 400, 402, 404, 422:
      let error = try? JSONDecoder().decode(ErrorBody.self, from: body)
      return .permanentFailure(
        code: error?.error.code ?? "http_\(status)",
        message: error?.error.message ?? "the provider refused the \(operation) with HTTP \(status)")
    case 429, 503:
      return .transientFailure(reason: "the provider answered \(status)\(detail(body))")
    case 401, 403:
      return .configurationError(
        reason: "the provider refused the platform's credentials with HTTP \(status)\(detail(body))")
    default:
      return .unknown(
        reason: "the provider answered \(status)\(detail(body)); the \(operation) may have been made")
    }
  }

  public func inquire(idempotencyKey: String) async -> ProviderInquiry {
    await inquire("/v1/charges", idempotencyKey: idempotencyKey, refusals: [402: nil])
  }

  /// Looks the refund up by its key: ``ProviderInquiry/charged(reference:)`` (refunded, with the
  /// refund's ID), ``ProviderInquiry/notCharged`` for 404 `not_found` (no refund with that key),
  /// ``ProviderInquiry/declined(code:message:)`` for a refusal the provider keeps under the key
  /// with a code it documents (400 `invalid_request`; 402; 404 `charge_not_found`; 422
  /// `amount_exceeds_charge`, `currency_mismatch`). Any other answer (a 404 page of a proxy, a code this adapter does not
  /// know) is `unavailable`: it says nothing about whether the refund was made, so it is asked
  /// again rather than taken as "not refunded" or "refused".
  public func inquireRefund(idempotencyKey: String) async -> ProviderInquiry {
    await inquire(
      "/v1/refunds", idempotencyKey: idempotencyKey,
      refusals: [
        402: nil, 404: ["charge_not_found"],
        422: ["amount_exceeds_charge", "currency_mismatch", "invalid_request"],
      ])
  }

  /// GETs `path?idempotency_key=` and reads the answer: 2xx → made; 404 with the provider's code
  /// `not_found` → not made; a status of `refusals` with one of its codes (`nil`: any code) →
  /// declined with the provider's code; 401, 403 → configuration error; anything else (a 404
  /// without the provider's error body included) → unavailable.
  private func inquire(
    _ path: String, idempotencyKey: String, refusals: [Int: Set<String>?]
  ) async -> ProviderInquiry {
    var components = URLComponents()
    components.queryItems = [URLQueryItem(name: "idempotency_key", value: idempotencyKey)]
    let request = HTTPClientRequest(
      url: baseURL + path + (components.percentEncodedQuery.map { "?" + $0 } ?? ""))
    let response: (status: Int, body: ByteBuffer)
    do {
      response = try await execute(request)
    } catch {
      return .unavailable(reason: "\(error)")
    }
    let error = try? JSONDecoder().decode(ErrorBody.self, from: response.body)
    switch response.status {
    case 200..<300:
      guard let created = try? JSONDecoder().decode(Created.self, from: response.body) else {
        return .unavailable(reason: "the provider answered \(response.status) with an unreadable body")
      }
      return .charged(reference: created.id)
    case 404 where error?.error.code == "not_found":
      return .notCharged
    case let status where Self.isRefusal(status, code: error?.error.code, refusals):
      return .declined(code: error?.error.code ?? "declined", message: error?.error.message ?? "declined")
    case 401, 403:
      return .configurationError(
        reason: "the provider refused the platform's credentials with HTTP \(response.status)")
    default:
      return .unavailable(reason: "the provider answered \(response.status)\(Self.detail(response.body))")
    }
  }

  /// Whether `status` with the provider's `code` is one of `refusals` (a `nil` code set: any code).
  private static func isRefusal(_ status: Int, code: String?, _ refusals: [Int: Set<String>?]) -> Bool {
    guard let codes = refusals[status] else { return false }
    guard let codes else { return true }
    return code.map(codes.contains) ?? false
  }

  private func execute(_ request: HTTPClientRequest) async throws -> (status: Int, body: ByteBuffer) {
    let response = try await client.execute(request, timeout: timeout)
    let body = try await response.body.collect(upTo: 1 << 20)
    return (Int(response.status.code), body)
  }

  /// A failed request: refused connections never reached the provider (transient); anything else
  /// may have happened after the provider received the charge (unknown).
  static func classify(_ error: any Error) -> ProviderOutcome {
    let text = String(describing: error)
    let neverConnected =
      (error as? HTTPClientError) == .connectTimeout || (error as? IOError)?.errnoCode == ECONNREFUSED
      || text.contains("Connection refused")  // NIOConnectionError lists the per-address errors
    if neverConnected { return .transientFailure(reason: "could not connect to the provider: \(text)") }
    return .unknown(reason: "no answer from the provider: \(text)")
  }

  private static func detail(_ body: ByteBuffer) -> String {
    guard let error = try? JSONDecoder().decode(ErrorBody.self, from: body) else { return "" }
    return " (\(error.error.code): \(error.error.message))"
  }
}
