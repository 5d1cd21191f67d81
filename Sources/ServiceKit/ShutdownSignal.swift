public import ServiceLifecycle
import Synchronization

/// A one-way switch a service flips when it begins its graceful shutdown, so that its parts
/// (listeners, intake, workers) can stop taking new work while in-flight work finishes.
public final class ShutdownSignal: Sendable {
  private struct State {
    var triggered = false
    var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
    var nextWaiter = 0
  }
  private let state = Mutex(State())
  private let actions = Mutex<[@Sendable () -> Void]>([])

  public init() {}

  /// Whether the shutdown has begun.
  public var isTriggered: Bool { state.withLock { $0.triggered } }

  /// Begins the shutdown: wakes every ``wait()`` and runs the ``onTrigger(_:)`` actions once.
  public func trigger() {
    let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
      guard !state.triggered else { return [] }
      state.triggered = true
      defer { state.waiters = [:] }
      return Array(state.waiters.values)
    }
    for waiter in waiters { waiter.resume() }
    for action in actions.withLock({ actions in
      defer { actions = [] }
      return actions
    }) {
      action()
    }
  }

  /// Runs `action` when the shutdown begins (at once if it has).
  public func onTrigger(_ action: @escaping @Sendable () -> Void) {
    let runNow = state.withLock { state in
      if !state.triggered { actions.withLock { $0.append(action) } }
      return state.triggered
    }
    if runNow { action() }
  }

  /// Returns when the shutdown begins or the task is cancelled.
  public func wait() async {
    let id = state.withLock { state in
      defer { state.nextWaiter += 1 }
      return state.nextWaiter
    }
    await withTaskCancellationHandler {
      await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
        let resumeNow = state.withLock { state -> Bool in
          if state.triggered || Task.isCancelled { return true }
          state.waiters[id] = continuation
          return false
        }
        if resumeNow { continuation.resume() }
      }
    } onCancel: {
      state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
    }
  }

  /// Runs `body`, triggering this signal when the surrounding `ServiceGroup` begins a graceful
  /// shutdown (SIGTERM). Outside a service group the signal is triggered only by ``trigger()``.
  public func triggeredByGracefulShutdown<Result: Sendable>(
    _ body: () async throws -> Result
  ) async throws -> Result {
    try await withGracefulShutdownHandler {
      try await body()
    } onGracefulShutdown: {
      self.trigger()
    }
  }
}

/// Runs `body` until it returns or `signal` triggers; in the latter case `body`'s task is
/// cancelled and this returns once it has ended.
public func cancelling(
  on signal: ShutdownSignal, _ body: @escaping @Sendable () async throws -> Void
) async throws {
  try await withThrowingTaskGroup(of: Void.self) { group in
    group.addTask { try await body() }
    group.addTask {
      await signal.wait()
      throw CancellationError()
    }
    do {
      try await group.next()
    } catch is CancellationError where signal.isTriggered {
      // the signal's child ends the group; body's cancellation follows below
    }
    group.cancelAll()
    while let _ = try? await group.next() {}
  }
}

/// Returns when the task is cancelled.
public func sleepUntilCancelled() async {
  await ShutdownSignal().wait()
}
