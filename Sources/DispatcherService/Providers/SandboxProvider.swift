public import AsyncHTTPClient
import Foundation
import Glibc
import NIOCore
import NIOFoundationCompat
import NIOHTTP1

/// The adapter for `payments provider-sandbox` and providers with its API shape (Stripe-like):
/// JSON over HTTP, an `Idempotency-Key` header, errors as HTTP statuses with
/// `{"error": {"code", "message"}}`.
///
/// Classification (``classify(status:body:)``): 2xx → success; 402, 400, 404, 422 → permanent
/// failure with the provider's code; 429 and 503 (the provider did not process the request) and
/// a refused connection → transient; 401 and 403 (the platform's credentials) → configuration
/// error; anything else — 408, 409 (a request with the key in progress), 500, 502, 504, other
/// statuses, a timeout, a connection lost after the request was sent, an unreadable success —
/// → unknown: the money may have moved, so the dispatcher asks before deciding.
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

  struct Charge: Decodable {
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
    var request = HTTPClientRequest(url: baseURL + "/v1/charges")
    request.method = .POST
    request.headers.add(name: "Idempotency-Key", value: charge.idempotencyKey)
    request.headers.add(name: "Content-Type", value: "application/json")
    let body = ChargeBody(
      amount: charge.amountMinor, currency: charge.currency, source: charge.payerAccount,
      destination: charge.payeeAccount, description: charge.description)
    guard let data = try? JSONEncoder().encode(body) else {
      return .permanentFailure(code: "invalid_request", message: "the charge could not be encoded")
    }
    request.body = .bytes(ByteBuffer(data: data))
    let response: (status: Int, body: ByteBuffer)
    do {
      response = try await execute(request)
    } catch {
      return Self.classify(error)
    }
    return Self.classify(status: response.status, body: Array(response.body.readableBytesView))
  }

  /// The outcome class of a charge answer with HTTP `status` and `body`.
  public static func classify(status: Int, body: [UInt8]) -> ProviderOutcome {
    let body = ByteBuffer(bytes: body)
    switch status {
    case 200..<300:
      guard let charge = try? JSONDecoder().decode(Charge.self, from: body) else {
        return .unknown(reason: "the provider answered \(status) with an unreadable body")
      }
      return .succeeded(reference: charge.id)
    case 400, 402, 404, 422:
      let error = try? JSONDecoder().decode(ErrorBody.self, from: body)
      return .permanentFailure(
        code: error?.error.code ?? "http_\(status)",
        message: error?.error.message ?? "the provider refused the charge with HTTP \(status)")
    case 429, 503:
      return .transientFailure(reason: "the provider answered \(status)\(detail(body))")
    case 401, 403:
      return .configurationError(
        reason: "the provider refused the platform's credentials with HTTP \(status)\(detail(body))")
    default:
      return .unknown(reason: "the provider answered \(status)\(detail(body)); the charge may have been made")
    }
  }

  public func inquire(idempotencyKey: String) async -> ProviderInquiry {
    var components = URLComponents()
    components.queryItems = [URLQueryItem(name: "idempotency_key", value: idempotencyKey)]
    let request = HTTPClientRequest(
      url: baseURL + "/v1/charges" + (components.percentEncodedQuery.map { "?" + $0 } ?? ""))
    let response: (status: Int, body: ByteBuffer)
    do {
      response = try await execute(request)
    } catch {
      return .unavailable(reason: "\(error)")
    }
    switch response.status {
    case 200..<300:
      guard let charge = try? JSONDecoder().decode(Charge.self, from: response.body) else {
        return .unavailable(reason: "the provider answered \(response.status) with an unreadable body")
      }
      return .charged(reference: charge.id)
    case 404:
      return .notCharged
    case 402:
      let error = try? JSONDecoder().decode(ErrorBody.self, from: response.body)
      return .declined(code: error?.error.code ?? "declined", message: error?.error.message ?? "declined")
    case 401, 403:
      return .configurationError(
        reason: "the provider refused the platform's credentials with HTTP \(response.status)")
    default:
      return .unavailable(reason: "the provider answered \(response.status)\(Self.detail(response.body))")
    }
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
