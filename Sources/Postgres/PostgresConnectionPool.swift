public import Logging
import Synchronization

/// A bounded pool of ``PostgresConnection``s.
///
/// - At most ``Configuration/maximumConnections`` connections are open at any time; connections
///   are opened lazily, when a caller needs one and none is idle.
/// - Callers that find no idle connection wait in a FIFO queue (first come, first served) for at
///   most ``Configuration/acquireTimeout``, then fail with ``PostgresError/Code/poolTimeout``.
/// - A connection that comes back broken, or still inside a transaction, is closed rather than
///   reused.
public final class PostgresConnectionPool: Sendable {
  /// Pool settings.
  public struct Configuration: Sendable {
    /// Where to connect.
    public var connection: PostgresConnectionConfiguration
    /// The most connections open at once. Default 10.
    public var maximumConnections: Int
    /// How long a caller waits for a connection before failing. Default 10 s.
    public var acquireTimeout: Duration

    public init(
      connection: PostgresConnectionConfiguration, maximumConnections: Int = 10,
      acquireTimeout: Duration = .seconds(10)
    ) {
      precondition(maximumConnections > 0, "maximumConnections must be positive")
      self.connection = connection
      self.maximumConnections = maximumConnections
      self.acquireTimeout = acquireTimeout
    }
  }

  private typealias Waiter = CheckedContinuation<PostgresConnection, any Error>

  private struct State {
    var idle: [PostgresConnection] = []
    /// Open connections plus connections being opened.
    var openCount = 0
    /// Connections being opened.
    var connecting = 0
    var waiters: [(id: Int, continuation: Waiter, timer: Task<Void, Never>?)] = []
    var nextWaiterID = 0
    var closed = false
  }

  public let configuration: Configuration
  private let logger: Logger
  private let state = Mutex(State())

  public init(configuration: Configuration, logger: Logger) {
    self.configuration = configuration
    self.logger = logger
  }

  /// Convenience for a pool with default settings.
  public convenience init(connectionString: String, maximumConnections: Int = 10, logger: Logger) {
    self.init(
      configuration: Configuration(
        connection: PostgresConnectionConfiguration(connectionString: connectionString),
        maximumConnections: maximumConnections),
      logger: logger)
  }

  /// Leases a connection for the duration of `body`.
  public func withConnection<Result>(
    _ body: (PostgresConnection) async throws -> Result
  ) async throws -> Result {
    let connection = try await acquire()
    do {
      let result = try await body(connection)
      release(connection)
      return result
    } catch {
      release(connection)
      throw error
    }
  }

  /// Runs one statement on a pooled connection.
  @discardableResult
  public func query(_ query: PostgresQuery) async throws -> PostgresRows {
    try await withConnection { try await $0.query(query) }
  }

  /// Runs one statement on a pooled connection and returns the number of rows it affected.
  @discardableResult
  public func execute(_ query: PostgresQuery) async throws -> Int {
    try await withConnection { try await $0.execute(query) }
  }

  /// Runs `body` in a transaction on a pooled connection (see
  /// ``PostgresConnection/withTransaction(isolation:_:)``).
  @discardableResult
  public func withTransaction<Result>(
    isolation: PostgresConnection.IsolationLevel = .readCommitted,
    _ body: (PostgresConnection) async throws -> Result
  ) async throws -> Result {
    try await withConnection { try await $0.withTransaction(isolation: isolation, body) }
  }

  /// Closes idle connections, fails waiting callers, and closes leased connections as they come
  /// back. Calls after this fail with ``PostgresError/Code/poolClosed``.
  public func close() async {
    let (idle, waiters) = state.withLock { state in
      state.closed = true
      defer {
        state.openCount -= state.idle.count
        state.idle = []
        state.waiters = []
      }
      return (state.idle, state.waiters)
    }
    for waiter in waiters {
      waiter.timer?.cancel()
      waiter.continuation.resume(throwing: PostgresError(code: .poolClosed, message: "pool closed"))
    }
    for connection in idle { await connection.close() }
  }

  /// The number of open connections (including ones being opened).
  public var openConnections: Int { state.withLock { $0.openCount } }

  // MARK: - Leasing

  private enum AcquireStep {
    case use(PostgresConnection)
    case wait(openNew: Bool)
    case fail(PostgresError)
  }

  func acquire() async throws -> PostgresConnection {
    let waiterID = state.withLock { state -> Int in
      defer { state.nextWaiterID += 1 }
      return state.nextWaiterID
    }
    return try await withTaskCancellationHandler {
      try await withCheckedThrowingContinuation { (continuation: Waiter) in
        let step = state.withLock { state -> AcquireStep in
          if state.closed { return .fail(PostgresError(code: .poolClosed, message: "pool closed")) }
          if Task.isCancelled {
            return .fail(PostgresError(code: .cancelled, message: "cancelled while waiting for a connection"))
          }
          if state.waiters.isEmpty, let connection = state.idle.popLast() {
            return .use(connection)
          }
          state.waiters.append((waiterID, continuation, nil))
          // Open another connection only for waiters that no connection attempt will serve.
          if state.openCount < configuration.maximumConnections, state.waiters.count > state.connecting {
            state.openCount += 1
            state.connecting += 1
            return .wait(openNew: true)
          }
          return .wait(openNew: false)
        }
        switch step {
        case .use(let connection):
          continuation.resume(returning: connection)
        case .fail(let error):
          continuation.resume(throwing: error)
        case .wait(let openNew):
          if openNew { openConnection() }
          scheduleTimeout(for: waiterID)
        }
      }
    } onCancel: {
      failWaiter(
        waiterID, PostgresError(code: .cancelled, message: "cancelled while waiting for a connection"))
    }
  }

  func release(_ connection: PostgresConnection) {
    guard connection.isUsable, !connection.isInTransaction else {
      discard(connection)
      return
    }
    enum Next { case handOver(Waiter), keepIdle, close }
    let next = state.withLock { state -> Next in
      if state.closed {
        state.openCount -= 1
        return .close
      }
      if !state.waiters.isEmpty {
        let waiter = state.waiters.removeFirst()
        waiter.timer?.cancel()
        return .handOver(waiter.continuation)
      }
      state.idle.append(connection)
      return .keepIdle
    }
    switch next {
    case .handOver(let waiter): waiter.resume(returning: connection)
    case .keepIdle: break
    case .close: Task { await connection.close() }
    }
  }

  private func discard(_ connection: PostgresConnection) {
    let replace = state.withLock { state -> Bool in
      // Keep the slot if someone is waiting: a replacement connection takes it over.
      if !state.closed, !state.waiters.isEmpty {
        state.connecting += 1
        return true
      }
      state.openCount -= 1
      return false
    }
    Task { await connection.close() }
    if replace { openConnection() }
  }

  private func openConnection() {
    let configuration = self.configuration.connection
    let logger = self.logger
    Task {
      do {
        let connection = try await PostgresConnection.connect(configuration: configuration, logger: logger)
        self.state.withLock { $0.connecting -= 1 }
        self.release(connection)
      } catch {
        logger.warning("could not open a PostgreSQL connection", metadata: ["error": "\(error)"])
        // The oldest waiter gets the error; if others still wait on a free slot, try again for
        // them (each failure consumes one waiter, so this ends).
        let (waiter, retry) = self.state.withLock { state -> (Waiter?, Bool) in
          state.openCount -= 1
          state.connecting -= 1
          guard !state.waiters.isEmpty else { return (nil, false) }
          let waiter = state.waiters.removeFirst()
          waiter.timer?.cancel()
          let retry =
            !state.closed && state.waiters.count > state.connecting
            && state.openCount < self.configuration.maximumConnections
          if retry {
            state.openCount += 1
            state.connecting += 1
          }
          return (waiter.continuation, retry)
        }
        waiter?.resume(throwing: error)
        if retry { self.openConnection() }
      }
    }
  }

  private func scheduleTimeout(for waiterID: Int) {
    let timeout = configuration.acquireTimeout
    let size = configuration.maximumConnections
    let timer = Task { [weak self] in
      guard (try? await Task.sleep(for: timeout)) != nil else { return }
      self?.failWaiter(
        waiterID,
        PostgresError(
          code: .poolTimeout,
          message: "no connection became free within \(timeout) (pool of \(size) connections)"))
    }
    let stillWaiting = state.withLock { state -> Bool in
      guard let index = state.waiters.firstIndex(where: { $0.id == waiterID }) else { return false }
      state.waiters[index].timer = timer
      return true
    }
    if !stillWaiting { timer.cancel() }
  }

  private func failWaiter(_ waiterID: Int, _ error: PostgresError) {
    let waiter = state.withLock { state -> Waiter? in
      guard let index = state.waiters.firstIndex(where: { $0.id == waiterID }) else { return nil }
      let waiter = state.waiters.remove(at: index)
      waiter.timer?.cancel()
      return waiter.continuation
    }
    waiter?.resume(throwing: error)
  }
}
