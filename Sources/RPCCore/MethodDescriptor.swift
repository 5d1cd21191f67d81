/// Names a method of a service: what the generated code declares and the router dispatches on.
public struct MethodDescriptor: Sendable, Hashable, CustomStringConvertible {
  /// How many messages each side sends.
  public enum Kind: Sendable, Hashable {
    /// One request, one response.
    case unary
    /// One request, a stream of responses.
    case serverStreaming
    /// A stream of requests, one response.
    case clientStreaming
    /// Streams both ways.
    case bidirectionalStreaming
  }

  /// The fully qualified service name, e.g. `payments.v1.PaymentCommandService`.
  public let service: String
  /// The method name, e.g. `SubmitPayment`.
  public let method: String
  /// The streaming kind.
  public let kind: Kind

  public init(service: String, method: String, kind: Kind) {
    self.service = service
    self.method = method
    self.kind = kind
  }

  /// `service/method`, the full name used in reflection and logs.
  public var fullName: String { "\(service)/\(method)" }
  /// `/service/method`, the HTTP/2 `:path`.
  public var path: String { "/\(service)/\(method)" }

  public var description: String { fullName }
}

/// Call options a client sets per call.
public struct CallOptions: Sendable {
  /// How long the call may take, end to end; sent to the server as `grpc-timeout`.
  public var timeout: Duration?
  /// The largest response message accepted (bytes).
  public var maximumResponseMessageBytes: Int

  public init(timeout: Duration? = nil, maximumResponseMessageBytes: Int = 4 * 1024 * 1024) {
    self.timeout = timeout
    self.maximumResponseMessageBytes = maximumResponseMessageBytes
  }

  /// No timeout, 4 MiB responses.
  public static let defaults = CallOptions()
}
