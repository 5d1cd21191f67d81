import CLibPQ
import Glibc
public import Logging
import Synchronization

/// How to reach a PostgreSQL server.
public struct PostgresConnectionConfiguration: Sendable {
  /// A libpq connection string: a URL (`postgresql://user@host:5432/db?sslmode=disable`) or
  /// key/value pairs (`host=localhost port=5432 dbname=payments`). May contain a password: it is
  /// never logged.
  public var connectionString: String
  /// Reported to the server as `application_name` (visible in `pg_stat_activity`).
  public var applicationName: String
  /// How long to wait for a connection to be established.
  public var connectTimeout: Duration
  /// Bounds on how long anything of this session can hold the server's resources (locks, a
  /// transaction) when the client stalls or vanishes; `nil` leaves the server's defaults.
  public var limits: SessionLimits?

  /// Time bounds of a session, so that a client that vanished (a killed process, a cut network)
  /// cannot hold locks for longer than these.
  public struct SessionLimits: Sendable, Hashable {
    /// `statement_timeout`: the longest one statement may run.
    public var statementTimeout: Duration
    /// `idle_in_transaction_session_timeout`: the longest a transaction may wait for its client.
    public var idleInTransactionTimeout: Duration
    /// TCP keepalives start after this much silence and give up after three unanswered probes a
    /// second apart; `tcp_user_timeout` drops the connection when sent data stays unacknowledged
    /// this long (both on the client's and, via the session settings, the server's socket).
    public var tcpTimeout: Duration

    public init(
      statementTimeout: Duration = .seconds(10), idleInTransactionTimeout: Duration = .seconds(10),
      tcpTimeout: Duration = .seconds(10)
    ) {
      self.statementTimeout = statementTimeout
      self.idleInTransactionTimeout = idleInTransactionTimeout
      self.tcpTimeout = tcpTimeout
    }
  }

  public init(
    connectionString: String, applicationName: String = "payments",
    connectTimeout: Duration = .seconds(10), limits: SessionLimits? = nil
  ) {
    self.connectionString = connectionString
    self.applicationName = applicationName
    self.connectTimeout = connectTimeout
    self.limits = limits
  }
}

/// One connection to a PostgreSQL server.
///
/// Each connection owns a dedicated OS thread that performs every libpq call, so statements
/// never block Swift's cooperative thread pool. Statements on one connection run one at a time,
/// in submission order. A connection is `Sendable`, but a transaction belongs to one task: use
/// ``withTransaction(isolation:_:)`` and don't share the connection while it runs.
///
/// Cancelling the task that awaits a statement sends a cancel request to the server; the
/// statement then fails with ``PostgresError/Code/cancelled``.
public final class PostgresConnection: Sendable {
  private let thread: ConnectionThread
  private let shared: SharedState
  let logger: Logger

  /// State shared between the connection thread and callers.
  final class SharedState: Sendable {
    struct Values {
      var broken = false
      var closed = false
      var idleInTransaction = false
      var cancelHandle: CancelHandle? = nil
      var subscribers: [String: [Int: AsyncThrowingStream<PostgresNotification, any Error>.Continuation]] =
        [:]
      var nextSubscriberID = 0
    }
    let values = Mutex(Values())
  }

  private init(thread: ConnectionThread, shared: SharedState, logger: Logger) {
    self.thread = thread
    self.shared = shared
    self.logger = logger
  }

  /// Opens a connection.
  ///
  /// - Throws: ``PostgresError`` with code ``PostgresError/Code/connectionFailed``.
  public static func connect(
    configuration: PostgresConnectionConfiguration, logger: Logger
  ) async throws -> PostgresConnection {
    let shared = SharedState()
    let thread = ConnectionThread(name: "postgres-connection") { handle in
      PostgresConnection.consumeIdleInput(handle, shared: shared)
    }
    let connection = PostgresConnection(thread: thread, shared: shared, logger: logger)
    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
      thread.submit { handle in
        do {
          try PostgresConnection.open(handle, configuration: configuration, shared: shared, logger: logger)
          continuation.resume()
        } catch {
          continuation.resume(throwing: error)
        }
      }
    }
    return connection
  }

  deinit {
    let shared = self.shared
    thread.finish { handle in PostgresConnection.teardown(handle, shared: shared) }
  }

  /// Closes the connection. Statements queued after this fail with
  /// ``PostgresError/Code/connectionLost``.
  public func close() async {
    let shared = self.shared
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
      let alreadyClosed = shared.values.withLock { values -> Bool in
        defer { values.closed = true }
        return values.closed
      }
      if alreadyClosed {
        continuation.resume()
        return
      }
      thread.finish { handle in
        PostgresConnection.teardown(handle, shared: shared)
        continuation.resume()
      }
    }
  }

  /// True once the connection has failed or been closed; a pool discards such connections.
  public var isUsable: Bool {
    shared.values.withLock { !$0.broken && !$0.closed }
  }

  /// True when the last statement left a transaction open (or failed inside one).
  var isInTransaction: Bool { shared.values.withLock { $0.idleInTransaction } }

  // MARK: - Statements

  /// Runs one statement and returns all of its rows.
  @discardableResult
  public func query(_ query: PostgresQuery) async throws -> PostgresRows {
    try await run(query, cancellable: true)
  }

  /// Runs one statement and returns the number of rows it affected.
  @discardableResult
  public func execute(_ query: PostgresQuery) async throws -> Int {
    try await run(query, cancellable: true).affectedRows
  }

  /// Runs trusted SQL text that may hold several statements (migration files), without
  /// parameters. Never pass text that contains input.
  func executeScript(_ sql: String) async throws {
    _ = try await run(PostgresQuery(unsafeSQL: sql), cancellable: true, script: true)
  }

  func run(_ query: PostgresQuery, cancellable: Bool, script: Bool = false) async throws -> PostgresRows {
    if cancellable, Task.isCancelled {
      throw PostgresError(code: .cancelled, message: "task cancelled before the statement was sent")
    }
    let job = StatementJob()
    let shared = self.shared
    let operation = {
      try await withCheckedThrowingContinuation {
        (continuation: CheckedContinuation<PostgresRows, any Error>) in
        let accepted = self.thread.submit { handle in
          guard job.start() else {
            continuation.resume(
              throwing: PostgresError(code: .cancelled, message: "statement cancelled before it was sent"))
            return
          }
          let result = Result {
            try PostgresConnection.execute(query, script: script, handle, shared: shared)
          }
          job.finish()
          continuation.resume(with: result)
        }
        if !accepted {
          continuation.resume(throwing: PostgresError(code: .connectionLost, message: "connection is closed"))
        }
      }
    }
    guard cancellable else { return try await operation() }
    return try await withTaskCancellationHandler(operation: operation) {
      job.cancel(shared: shared)
    }
  }

  // MARK: - Transactions

  /// The isolation level of a transaction.
  public enum IsolationLevel: Sendable {
    case readCommitted, repeatableRead, serializable
    var sql: PostgresQuery {
      switch self {
      case .readCommitted: "BEGIN ISOLATION LEVEL READ COMMITTED"
      case .repeatableRead: "BEGIN ISOLATION LEVEL REPEATABLE READ"
      case .serializable: "BEGIN ISOLATION LEVEL SERIALIZABLE"
      }
    }
  }

  /// Runs `body` in a transaction: commits when it returns, rolls back when it throws or when
  /// the task is cancelled.
  ///
  /// - Throws: what `body` throws; ``PostgresError`` when `BEGIN` or `COMMIT` fails (a failed
  ///   `COMMIT` means nothing was committed, except for ``PostgresError/Code/connectionLost``,
  ///   whose outcome is unknown). If `body` swallowed a statement error, the transaction is
  ///   aborted and this throws instead of pretending to commit.
  @discardableResult
  public func withTransaction<Result>(
    isolation: IsolationLevel = .readCommitted,
    _ body: (PostgresConnection) async throws -> Result
  ) async throws -> Result {
    try await query(isolation.sql)
    let result: Result
    do {
      result = try await body(self)
      if Task.isCancelled {
        throw PostgresError(code: .cancelled, message: "task cancelled; transaction rolled back")
      }
    } catch {
      await rollback()
      throw error
    }
    let commit: PostgresRows
    do {
      commit = try await run("COMMIT", cancellable: false)
    } catch {
      await rollback()
      throw error
    }
    if commit.commandTag == "ROLLBACK" {
      throw PostgresError(
        code: .server,
        message: "transaction was aborted by an earlier error and has been rolled back")
    }
    return result
  }

  private func rollback() async {
    guard isUsable else { return }
    do {
      _ = try await run("ROLLBACK", cancellable: false)
    } catch {
      logger.debug("rollback failed", metadata: ["error": "\(error)"])
    }
  }

  // MARK: - LISTEN / NOTIFY

  /// Subscribes to `channel` (`LISTEN`) and returns its notifications as they arrive.
  ///
  /// The subscription ends (`UNLISTEN` when it was the last one) when the sequence's iterator is
  /// dropped or its task is cancelled; it fails with ``PostgresError/Code/connectionLost`` when
  /// the connection breaks. Notifications are signals: when a consumer falls more than
  /// `bufferLimit` behind, the oldest are dropped.
  public func listen(_ channel: String, bufferLimit: Int = 10_000) async throws
    -> AsyncThrowingStream<PostgresNotification, any Error>
  {
    let (stream, continuation) = AsyncThrowingStream<PostgresNotification, any Error>.makeStream(
      bufferingPolicy: .bufferingNewest(bufferLimit))
    let (id, first) = shared.values.withLock { values -> (Int, Bool) in
      let id = values.nextSubscriberID
      values.nextSubscriberID += 1
      let first = values.subscribers[channel, default: [:]].isEmpty
      values.subscribers[channel, default: [:]][id] = continuation
      return (id, first)
    }
    continuation.onTermination = { [weak self] _ in
      self?.unsubscribe(channel: channel, id: id)
    }
    if first {
      do {
        try await executeChannelCommand("LISTEN", channel)
      } catch {
        continuation.finish(throwing: error)
        throw error
      }
    }
    return stream
  }

  /// Sends a notification on `channel` (`pg_notify`), delivered when the current transaction (if
  /// any) commits.
  public func notify(_ channel: String, payload: String = "") async throws {
    try await query("SELECT pg_notify(\(channel), \(payload))")
  }

  private func unsubscribe(channel: String, id: Int) {
    let last = shared.values.withLock { values -> Bool in
      values.subscribers[channel]?[id] = nil
      if values.subscribers[channel]?.isEmpty == true {
        values.subscribers[channel] = nil
        return !values.closed && !values.broken
      }
      return false
    }
    guard last else { return }
    let shared = self.shared
    thread.submit { handle in
      // A subscriber may have arrived in between: only UNLISTEN if there is still none.
      let stillUnused = shared.values.withLock { $0.subscribers[channel] == nil }
      guard stillUnused, let connection = handle.connection,
        let identifier = PostgresConnection.escapeIdentifier(channel, connection)
      else { return }
      _ = try? PostgresConnection.execute(
        PostgresQuery(unsafeSQL: "UNLISTEN " + identifier), script: true, handle, shared: shared)
    }
  }

  private func executeChannelCommand(_ command: String, _ channel: String) async throws {
    let shared = self.shared
    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
      let accepted = thread.submit { handle in
        guard let connection = handle.connection,
          let identifier = PostgresConnection.escapeIdentifier(channel, connection)
        else {
          continuation.resume(throwing: PostgresError(code: .connectionLost, message: "connection is closed"))
          return
        }
        continuation.resume(
          with: Result {
            _ = try PostgresConnection.execute(
              PostgresQuery(unsafeSQL: command + " " + identifier), script: true, handle, shared: shared)
          })
      }
      if !accepted {
        continuation.resume(throwing: PostgresError(code: .connectionLost, message: "connection is closed"))
      }
    }
  }
}

/// A notification received through `LISTEN`.
public struct PostgresNotification: Sendable, Hashable {
  /// The channel it was sent on.
  public var channel: String
  /// The payload (empty when none was given).
  public var payload: String
  /// The process ID of the sending server backend.
  public var senderProcessID: Int32
}

/// Tracks whether a statement may still be cancelled, and serializes cancel requests with the
/// statement's completion so that a late cancel request can never hit the *next* statement.
final class StatementJob: Sendable {
  private enum Phase { case pending, running, finished, cancelled }
  private let phase = Mutex(Phase.pending)

  /// Moves to running; false when the statement was cancelled before it started.
  func start() -> Bool {
    phase.withLock { phase in
      guard phase == .pending else { return false }
      phase = .running
      return true
    }
  }

  func finish() {
    phase.withLock { $0 = .finished }
  }

  func cancel(shared: PostgresConnection.SharedState) {
    phase.withLock { phase in
      switch phase {
      case .pending:
        phase = .cancelled
      case .running:
        // Holding the lock keeps the connection thread from starting another statement until
        // the cancel request has been delivered.
        shared.values.withLock { values in
          if let cancelHandle = values.cancelHandle {
            var buffer = [CChar](repeating: 0, count: 256)
            _ = PQcancel(cancelHandle.pointer, &buffer, Int32(buffer.count))
          }
        }
      case .finished, .cancelled:
        break
      }
    }
  }
}

/// libpq's `PGcancel *`. libpq documents `PQcancel` as safe to call from any thread with its own
/// `PGcancel` object; it is only used under `SharedState`'s lock and freed under it too.
struct CancelHandle: @unchecked Sendable {
  let pointer: OpaquePointer
}
