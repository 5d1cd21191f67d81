import Foundation
import Glibc
import Synchronization

/// Something with a file descriptor that an ``EventLoop`` watches. Its methods run on the loop's
/// thread.
public protocol EventLoopSource: AnyObject {
  /// The descriptor became readable (or hung up, or failed).
  func readable()
  /// The descriptor became writable (only while write interest is set).
  func writable()
}

/// One OS thread that waits in `poll(2)` on registered descriptors and runs their handlers,
/// timers and submitted work, in order. Connections are confined to their loop: everything that
/// touches one runs here, so connection state needs no locks; other threads hand work over with
/// ``execute(_:)``.
public final class EventLoop: Sendable {
  private struct Registration {
    weak var source: (any EventLoopSource)?
    var wantsWrite: Bool
  }

  private struct Timer {
    let id: Int
    let deadline: ContinuousClock.Instant
    let work: () -> Void
  }

  /// State only the loop thread touches.
  private final class LoopState: @unchecked Sendable {
    var registrations: [Int32: Registration] = [:]
    var timers: [Timer] = []
    var nextTimerID = 0
  }

  private let jobs = Mutex<(queue: [@Sendable () -> Void], stopped: Bool)>(([], false))
  private let wakeRead: Int32
  private let wakeWrite: Int32
  // Safe: only accessed on the loop thread (the methods that touch it are documented as
  // "Loop thread" and called from work the loop runs).
  private let loop = LoopState()

  /// Starts the loop's thread.
  public init(name: String) {
    var descriptors: [Int32] = [0, 0]
    precondition(pipe(&descriptors) == 0, "pipe failed: \(errno)")
    for descriptor in descriptors {
      _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
      _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
    }
    wakeRead = descriptors[0]
    wakeWrite = descriptors[1]
    let thread = Thread { [self] in self.run() }
    thread.name = name
    thread.start()
  }

  /// Runs `work` on the loop's thread, after the work submitted before it. Ignored after
  /// ``stop()``.
  public func execute(_ work: @escaping @Sendable () -> Void) {
    enqueue(work)
  }

  /// Queues `work`; false when the loop is stopped (the work will never run).
  @discardableResult
  private func enqueue(_ work: @escaping @Sendable () -> Void) -> Bool {
    let accepted = jobs.withLock { jobs -> Bool in
      guard !jobs.stopped else { return false }
      jobs.queue.append(work)
      return true
    }
    if accepted {
      var byte: UInt8 = 1
      _ = write(wakeWrite, &byte, 1)
    }
    return accepted
  }

  /// Runs `work` on the loop and returns its result.
  ///
  /// - Throws: ``EventLoopStoppedError`` when the loop has been stopped (nothing runs it any more).
  public func submit<Value: Sendable>(_ work: @escaping @Sendable () throws -> Value) async throws -> Value {
    try await withCheckedThrowingContinuation { continuation in
      let accepted = enqueue { continuation.resume(with: Swift.Result { try work() }) }
      if !accepted { continuation.resume(throwing: EventLoopStoppedError()) }
    }
  }

  /// Loop thread: watches `descriptor` for `source`.
  public func register(_ descriptor: Int32, _ source: any EventLoopSource, wantsWrite: Bool = false) {
    loop.registrations[descriptor] = Registration(source: source, wantsWrite: wantsWrite)
  }

  /// Loop thread: turns write readiness notifications on or off.
  public func setWantsWrite(_ descriptor: Int32, _ wantsWrite: Bool) {
    loop.registrations[descriptor]?.wantsWrite = wantsWrite
  }

  /// Loop thread: stops watching `descriptor` (call before closing it).
  public func deregister(_ descriptor: Int32) {
    loop.registrations[descriptor] = nil
  }

  /// Loop thread: runs `work` at `deadline`; returns an ID for ``cancelTimer(_:)``.
  @discardableResult
  public func schedule(at deadline: ContinuousClock.Instant, _ work: @escaping () -> Void) -> Int {
    loop.nextTimerID += 1
    loop.timers.append(Timer(id: loop.nextTimerID, deadline: deadline, work: work))
    return loop.nextTimerID
  }

  /// Loop thread: cancels a timer that has not fired.
  public func cancelTimer(_ id: Int) {
    loop.timers.removeAll { $0.id == id }
  }

  /// Ends the thread after the work already submitted. Descriptors stay open: their owners close
  /// them.
  public func stop() {
    let first = jobs.withLock { jobs in
      defer { jobs.stopped = true }
      return !jobs.stopped
    }
    guard first else { return }
    var byte: UInt8 = 1
    _ = write(wakeWrite, &byte, 1)
  }

  // The wake-up pipe is closed only here, when nothing can call `execute` or `stop` any more:
  // closed when the thread ended, a late `stop()` (a transport's `close()` then its deinit) or
  // an `enqueue` racing with the end wrote its byte into whatever socket had reused the number,
  // corrupting that connection (seen as a peer's GOAWAY with FRAME_SIZE_ERROR in CI).
  deinit {
    close(wakeRead)
    close(wakeWrite)
  }

  private func run() {
    var descriptors: [pollfd] = []
    var sources: [Int32] = []
    while true {
      // Work from other threads first.
      let (work, stopped) = jobs.withLock { jobs in
        defer { jobs.queue.removeAll(keepingCapacity: true) }
        return (jobs.queue, jobs.stopped)
      }
      for job in work { job() }
      if stopped && work.isEmpty { break }

      // Due timers.
      let now = ContinuousClock.now
      let due = loop.timers.filter { $0.deadline <= now }
      if !due.isEmpty {
        loop.timers.removeAll { $0.deadline <= now }
        for timer in due { timer.work() }
      }

      descriptors.removeAll(keepingCapacity: true)
      sources.removeAll(keepingCapacity: true)
      descriptors.append(pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0))
      for (descriptor, registration) in loop.registrations {
        var events = Int16(POLLIN)
        if registration.wantsWrite { events |= Int16(POLLOUT) }
        descriptors.append(pollfd(fd: descriptor, events: events, revents: 0))
        sources.append(descriptor)
      }
      var timeout: Int32 = -1
      if let next = loop.timers.map(\.deadline).min() {
        let remaining = ContinuousClock.now.duration(to: next)
        let milliseconds =
          remaining.components.seconds * 1000 + remaining.components.attoseconds / 1_000_000_000_000_000
        timeout = Int32(clamping: max(0, milliseconds + 1))
      }
      let ready = poll(&descriptors, nfds_t(descriptors.count), timeout)
      if ready < 0 {
        precondition(errno == EINTR, "poll failed: \(errno)")
        continue
      }
      if descriptors[0].revents != 0 {
        var buffer = [UInt8](repeating: 0, count: 256)
        while read(wakeRead, &buffer, buffer.count) > 0 {}
      }
      for (index, descriptor) in sources.enumerated() {
        let revents = descriptors[index + 1].revents
        guard revents != 0 else { continue }
        // A handler may have deregistered this (or another) descriptor meanwhile.
        guard let registration = loop.registrations[descriptor], let source = registration.source else {
          continue
        }
        if revents & Int16(POLLOUT) != 0 { source.writable() }
        if revents & ~Int16(POLLOUT) != 0, loop.registrations[descriptor] != nil { source.readable() }
      }
    }
  }
}

/// Work was handed to an ``EventLoop`` after ``EventLoop/stop()``.
public struct EventLoopStoppedError: Error, CustomStringConvertible {
  public var description: String { "the event loop is stopped" }
}
