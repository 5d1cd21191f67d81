import Synchronization

/// A wake-up signal between tasks: ``ring()`` wakes the task in ``wait(upTo:)``, or the next one
/// to wait if none is waiting. Rings while nobody waits collapse into one.
public final class Doorbell: Sendable {
  private struct State {
    var rung = false
    var waiter: CheckedContinuation<Void, Never>?
  }
  private let state = Mutex(State())

  public init() {}

  /// Wakes the waiting task, or lets the next wait return at once.
  public func ring() {
    let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
      if let waiter = state.waiter {
        state.waiter = nil
        return waiter
      }
      state.rung = true
      return nil
    }
    waiter?.resume()
  }

  /// Returns when the bell rings, after `timeout`, or when the task is cancelled, whichever comes
  /// first. One task waits at a time.
  public func wait(upTo timeout: Duration) async {
    await withTaskGroup(of: Void.self) { group in
      group.addTask {
        if (try? await Task.sleep(for: timeout)) != nil { self.ring() }
      }
      await self.waitForRing()
      group.cancelAll()
    }
  }

  private func waitForRing() async {
    await withTaskCancellationHandler {
      await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
        let resumeNow = state.withLock { state -> Bool in
          if state.rung || Task.isCancelled {
            state.rung = false
            return true
          }
          precondition(state.waiter == nil, "one task waits on a Doorbell at a time")
          state.waiter = continuation
          return false
        }
        if resumeNow { continuation.resume() }
      }
    } onCancel: {
      let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
        defer { state.waiter = nil }
        return state.waiter
      }
      waiter?.resume()
    }
  }
}
