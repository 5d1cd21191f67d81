/// A gRPC status: the outcome of a call as the wire carries it (`grpc-status`, `grpc-message`).
public struct RPCStatus: Sendable, Hashable, CustomStringConvertible {
  /// The status code; ``Code/ok`` for success.
  public var code: Code
  /// A human-readable message (empty for success).
  public var message: String

  public init(code: Code, message: String = "") {
    self.code = code
    self.message = message
  }

  /// Success.
  public static let ok = RPCStatus(code: .ok)

  public var description: String { message.isEmpty ? "\(code)" : "\(code): \(message)" }

  /// The gRPC status codes (grpc/grpc `doc/statuscodes.md`). Unknown numbers stay
  /// representable, since a peer may send codes that this list does not know.
  public struct Code: Sendable, Hashable, CustomStringConvertible {
    /// The number on the wire.
    public let rawValue: Int

    /// A code from its wire number; numbers outside 0...16 are kept as they are.
    public init(rawValue: Int) { self.rawValue = rawValue }

    public static let ok = Code(rawValue: 0)
    public static let cancelled = Code(rawValue: 1)
    public static let unknown = Code(rawValue: 2)
    public static let invalidArgument = Code(rawValue: 3)
    public static let deadlineExceeded = Code(rawValue: 4)
    public static let notFound = Code(rawValue: 5)
    public static let alreadyExists = Code(rawValue: 6)
    public static let permissionDenied = Code(rawValue: 7)
    public static let resourceExhausted = Code(rawValue: 8)
    public static let failedPrecondition = Code(rawValue: 9)
    public static let aborted = Code(rawValue: 10)
    public static let outOfRange = Code(rawValue: 11)
    public static let unimplemented = Code(rawValue: 12)
    public static let `internal` = Code(rawValue: 13)
    public static let unavailable = Code(rawValue: 14)
    public static let dataLoss = Code(rawValue: 15)
    public static let unauthenticated = Code(rawValue: 16)

    private static let names = [
      "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
      "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
      "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
    ]

    /// The canonical upper-case name, e.g. `INVALID_ARGUMENT`.
    public var description: String {
      Self.names.indices.contains(rawValue) ? Self.names[rawValue] : "CODE_\(rawValue)"
    }
  }
}

/// An error a call ends with: the status code, a message that names the problem, and optional
/// trailing metadata (for example structured details in a `-bin` key).
///
/// Handlers throw it to choose the status a client sees; clients receive it for every call that
/// does not end with `OK`. Any other error a handler throws reaches the client as `UNKNOWN`
/// without its text, so that internals never leak.
public struct RPCError: Error, Sendable, CustomStringConvertible {
  /// The status code; never ``RPCStatus/Code/ok``.
  public var code: RPCStatus.Code
  /// What went wrong, for people.
  public var message: String
  /// Trailing metadata sent with (or received with) the status.
  public var metadata: Metadata
  /// The underlying error, if any (never sent over the wire).
  public var cause: (any Error)?

  public init(_ code: RPCStatus.Code, _ message: String, metadata: Metadata = [], cause: (any Error)? = nil) {
    precondition(code != .ok, "an RPCError cannot have status OK")
    self.code = code
    self.message = message
    self.metadata = metadata
    self.cause = cause
  }

  /// The status this error is sent as.
  public var status: RPCStatus { RPCStatus(code: code, message: message) }

  public var description: String { message.isEmpty ? "\(code)" : "\(code): \(message)" }
}
