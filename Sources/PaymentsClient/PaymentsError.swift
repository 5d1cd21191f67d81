import Foundation
import PaymentsCore
import PaymentsProto
import ProtobufRuntime
public import RPCCore

/// The one error the SDK throws: the gRPC status code, the server's message, and for
/// `invalidArgument` every field that broke a rule.
///
/// ```swift
/// do {
///   _ = try await client.submitPayment(order)
/// } catch let error as PaymentsError where error.code == .invalidArgument {
///   for violation in error.fieldViolations { print(violation.field, violation.description) }
/// }
/// ```
public struct PaymentsError: Error, Sendable, Hashable, CustomStringConvertible {
  /// The gRPC status code (`unavailable` when the platform could not be reached).
  public var code: RPCStatus.Code
  /// What went wrong, for people.
  public var message: String
  /// For `invalidArgument`: each field of the request that broke a rule.
  public var fieldViolations: [FieldViolation]

  /// One broken rule of a request.
  public struct FieldViolation: Sendable, Hashable, CustomStringConvertible {
    /// The field's path, e.g. `amount.currency`.
    public var field: String
    /// What is wrong with it.
    public var description: String

    public init(field: String, description: String) {
      self.field = field
      self.description = description
    }
  }

  /// The `x-request-id` the SDK sent with the call that failed (the last one, after retries).
  /// The services log it with every failure that has an internal reason (a database error
  /// behind `unavailable`, say): quote it when you ask an operator about a failure.
  public var requestID: String?

  public init(
    _ code: RPCStatus.Code, _ message: String, fieldViolations: [FieldViolation] = [],
    requestID: String? = nil
  ) {
    self.code = code
    self.message = message
    self.fieldViolations = fieldViolations
    self.requestID = requestID
  }

  /// `CODE: message`, as `paymentsctl` prints it.
  public var description: String { "\(code): \(message)" }

  /// The SDK's view of any error a call ended with.
  static func from(_ error: any Error) -> PaymentsError {
    switch error {
    case let error as PaymentsError:
      return error
    case let error as RPCError:
      var violations: [FieldViolation] = []
      if let bytes = error.metadata.binaryValue(forKey: FieldViolationsTrailer.key),
        let details = try? Payments_V1_FieldViolations(serializedBytes: bytes)
      {
        violations = details.violations.map { FieldViolation(field: $0.field, description: $0.description) }
      }
      return PaymentsError(
        error.code, error.message, fieldViolations: violations,
        requestID: error.metadata[RequestIDInterceptor.key])
    case is CancellationError:
      return PaymentsError(.cancelled, "the call was cancelled")
    default:
      return PaymentsError(.unknown, "\(error)")
    }
  }
}

/// Runs `body`, turning every error into a ``PaymentsError``.
func mappingErrors<T>(_ body: () async throws -> T) async throws(PaymentsError) -> T {
  do {
    return try await body()
  } catch {
    throw PaymentsError.from(error)
  }
}

/// Gives every call an `x-request-id` (a new UUID, unless the caller's metadata has one) and
/// puts it into the error a call fails with, so that ``PaymentsError/requestID`` names it.
struct RequestIDInterceptor: ClientInterceptor {
  static let key = "x-request-id"

  func intercept<Result: Sendable>(
    _ call: ClientCallInfo, next: @Sendable (ClientCallInfo) async throws -> Result
  ) async throws -> Result {
    var call = call
    let id = call.metadata[Self.key] ?? UUID().uuidString.lowercased()
    if call.metadata[Self.key] == nil { call.metadata.addString(id, forKey: Self.key) }
    do {
      return try await next(call)
    } catch let error as RPCError {
      var metadata = error.metadata
      metadata.removeAll(forKey: Self.key)
      metadata.addString(id, forKey: Self.key)
      throw RPCError(error.code, error.message, metadata: metadata, cause: error.cause)
    }
  }
}
