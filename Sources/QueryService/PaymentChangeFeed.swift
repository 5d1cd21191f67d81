public import Logging
public import Postgres
public import ServiceKit
import Synchronization

/// Tells waiting calls (`WatchPayment`, `GetPayment` with `min_version`) that a payment changed,
/// from one `LISTEN query_payments_changed` connection per process, so that they re-read the
/// read model when something happened instead of polling it in a tight loop.
///
/// While the listener is down every waiter is woken once a second, so nothing waits for a
/// notification that was lost.
public final class PaymentChangeFeed: Sendable {
  private struct State {
    var byPayment: [String: [Int: Doorbell]] = [:]
    var everything: [Int: Doorbell] = [:]
    var nextID = 0
  }

  private let pool: PostgresConnectionPool
  private let logger: Logger
  private let state = Mutex(State())

  public init(pool: PostgresConnectionPool, logger: Logger) {
    self.pool = pool
    self.logger = logger
  }

  /// Runs `body` with a doorbell that rings when payment `paymentID` changes (any payment when
  /// `nil`). Subscribe before reading, so that no change between the read and the wait is missed.
  public func withSubscription<Result>(
    to paymentID: String?, _ body: (Doorbell) async throws -> Result
  ) async throws -> Result {
    let doorbell = Doorbell()
    let id = state.withLock { state in
      defer { state.nextID += 1 }
      if let paymentID {
        state.byPayment[paymentID, default: [:]][state.nextID] = doorbell
      } else {
        state.everything[state.nextID] = doorbell
      }
      return state.nextID
    }
    defer {
      state.withLock { state in
        if let paymentID {
          state.byPayment[paymentID]?[id] = nil
          if state.byPayment[paymentID]?.isEmpty == true { state.byPayment[paymentID] = nil }
        } else {
          state.everything[id] = nil
        }
      }
    }
    return try await body(doorbell)
  }

  /// Listens until the task is cancelled, reconnecting after failures.
  public func run() async {
    while !Task.isCancelled {
      do {
        try await pool.withConnection { connection in
          let notifications = try await connection.listen(PaymentReadModel.changeChannel)
          ringAll()  // changes may have happened while nobody listened
          for try await notification in notifications { ring(notification.payload) }
        }
      } catch {
        if Task.isCancelled { return }
        logger.warning(
          "payment change listener failed; waking waiters every second", metadata: ["error": "\(error)"])
      }
      ringAll()
      try? await Task.sleep(for: .seconds(1))
    }
  }

  private func ring(_ paymentID: String) {
    let doorbells = state.withLock { state in
      Array((state.byPayment[paymentID] ?? [:]).values) + Array(state.everything.values)
    }
    for doorbell in doorbells { doorbell.ring() }
  }

  /// Wakes every subscriber (on shutdown, so that waiting calls notice at once).
  public func ringAll() {
    let doorbells = state.withLock { state in
      state.byPayment.values.flatMap(\.values) + Array(state.everything.values)
    }
    for doorbell in doorbells { doorbell.ring() }
  }
}
