/// An error from the PostgreSQL layer: a failed connection, a lost connection, an error the
/// server reported (with its SQLSTATE), a pool that could not hand out a connection in time, or
/// a value that could not be decoded.
public struct PostgresError: Error, Sendable, CustomStringConvertible {
  /// What kind of failure this is. Extensible: switch with a `default` branch.
  public struct Code: Hashable, Sendable, CustomStringConvertible {
    private enum Wrapped: Hashable, Sendable {
      case connectionFailed, connectionLost, server, poolTimeout, poolClosed, decoding, cancelled
      case invalidUsage
    }
    private let wrapped: Wrapped
    private init(_ wrapped: Wrapped) { self.wrapped = wrapped }

    /// The connection could not be established (bad address, authentication, server down).
    public static let connectionFailed = Code(.connectionFailed)
    /// An established connection broke; the statement's outcome may be unknown.
    public static let connectionLost = Code(.connectionLost)
    /// The server rejected a statement; ``PostgresError/sqlState`` tells why.
    public static let server = Code(.server)
    /// No pooled connection became free within the acquire timeout.
    public static let poolTimeout = Code(.poolTimeout)
    /// The pool was closed.
    public static let poolClosed = Code(.poolClosed)
    /// A column value could not be decoded into the requested Swift type.
    public static let decoding = Code(.decoding)
    /// The statement was cancelled because the calling task was cancelled.
    public static let cancelled = Code(.cancelled)
    /// The API was used in a way it does not support (for example a closed connection).
    public static let invalidUsage = Code(.invalidUsage)

    public var description: String {
      switch wrapped {
      case .connectionFailed: "connection failed"
      case .connectionLost: "connection lost"
      case .server: "server error"
      case .poolTimeout: "pool timeout"
      case .poolClosed: "pool closed"
      case .decoding: "decoding error"
      case .cancelled: "cancelled"
      case .invalidUsage: "invalid usage"
      }
    }
  }

  /// The kind of failure.
  public var code: Code
  /// The SQLSTATE the server reported, if it reported one.
  public var sqlState: SQLState?
  /// The primary, human-readable message.
  public var message: String
  /// The server's optional detail line (for a unique violation: the conflicting key).
  public var detail: String?
  /// The constraint that was violated, if any.
  public var constraint: String?
  /// The table the error refers to, if any.
  public var table: String?

  public init(
    code: Code, message: String, sqlState: SQLState? = nil, detail: String? = nil,
    constraint: String? = nil, table: String? = nil
  ) {
    self.code = code
    self.message = message
    self.sqlState = sqlState
    self.detail = detail
    self.constraint = constraint
    self.table = table
  }

  /// True for a violated unique or primary-key constraint (SQLSTATE 23505).
  public var isUniqueViolation: Bool { sqlState == .uniqueViolation }
  /// True when retrying the whole transaction may succeed: serialization failure (40001) or
  /// deadlock (40P01).
  public var isTransactionRetryable: Bool {
    sqlState == .serializationFailure || sqlState == .deadlockDetected
  }

  public var description: String {
    var text = "PostgreSQL \(code): \(message)"
    if let sqlState { text += " (SQLSTATE \(sqlState.rawValue))" }
    if let detail { text += " — \(detail)" }
    return text
  }
}

/// A five-character SQLSTATE code as defined by PostgreSQL (Appendix A of its manual).
public struct SQLState: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
  public let rawValue: String
  public init(rawValue: String) { self.rawValue = rawValue }

  /// The two-character class, for example `23` (integrity constraint violation).
  public var errorClass: Substring { rawValue.prefix(2) }
  public var description: String { rawValue }

  public static let uniqueViolation = SQLState(rawValue: "23505")
  public static let foreignKeyViolation = SQLState(rawValue: "23503")
  public static let notNullViolation = SQLState(rawValue: "23502")
  public static let checkViolation = SQLState(rawValue: "23514")
  public static let serializationFailure = SQLState(rawValue: "40001")
  public static let deadlockDetected = SQLState(rawValue: "40P01")
  public static let queryCanceled = SQLState(rawValue: "57014")
  public static let adminShutdown = SQLState(rawValue: "57P01")
  public static let undefinedTable = SQLState(rawValue: "42P01")
  public static let syntaxError = SQLState(rawValue: "42601")
  public static let lockNotAvailable = SQLState(rawValue: "55P03")
}
