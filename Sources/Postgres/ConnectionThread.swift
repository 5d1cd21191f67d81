import CLibPQ
import Foundation
import Glibc
import Synchronization

/// The dedicated OS thread that owns one libpq connection.
///
/// Every libpq call for the connection runs on this thread, so the blocking calls (`PQconnectdb`,
/// `PQexecParams`) never occupy a thread of Swift's cooperative pool. While no job is queued the
/// thread sleeps in `poll(2)` on two descriptors: an `eventfd` that ``submit(_:)`` signals, and the
/// connection's socket, so that `NOTIFY` messages and a server-side disconnect are noticed while
/// the connection is idle.
final class ConnectionThread: Sendable {
  /// A unit of work. It receives the connection handle, which never leaves this thread.
  typealias Job = @Sendable (ConnectionHandle) -> Void

  private struct State {
    var jobs: [Job] = []
    var head = 0
    var closed = false
  }

  private let state = Mutex(State())
  /// The read and write ends of the self-pipe that wakes the thread.
  private let wakeDescriptor: Int32
  private let wakeWriteDescriptor: Int32

  /// Called on the thread when the idle connection's socket has input (notifications).
  let onIdleInput: @Sendable (ConnectionHandle) -> Void

  init(name: String, onIdleInput: @escaping @Sendable (ConnectionHandle) -> Void) {
    var descriptors: [Int32] = [0, 0]
    precondition(pipe(&descriptors) == 0, "pipe failed: \(errno)")
    for descriptor in descriptors {
      _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
      _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
    }
    wakeDescriptor = descriptors[0]
    wakeWriteDescriptor = descriptors[1]
    self.onIdleInput = onIdleInput
    let thread = Thread { [self] in self.run() }
    thread.name = name
    thread.start()
  }

  /// Queues `job`; returns false when the thread has been told to stop.
  @discardableResult
  func submit(_ job: @escaping Job) -> Bool {
    let accepted = state.withLock { state -> Bool in
      guard !state.closed else { return false }
      state.jobs.append(job)
      return true
    }
    if accepted { wake() }
    return accepted
  }

  /// Runs `job` as the last one and then ends the thread.
  func finish(with job: @escaping Job) {
    let accepted = state.withLock { state -> Bool in
      guard !state.closed else { return false }
      state.jobs.append(job)
      state.closed = true
      return true
    }
    if accepted { wake() }
  }

  private func wake() {
    // A full pipe already means "wake up", so a failed non-blocking write is fine.
    var byte: UInt8 = 1
    _ = write(wakeWriteDescriptor, &byte, 1)
  }

  private func nextJob() -> (job: Job?, closed: Bool) {
    state.withLock { state in
      if state.head < state.jobs.count {
        let job = state.jobs[state.head]
        state.head += 1
        if state.head == state.jobs.count {
          state.jobs.removeAll(keepingCapacity: true)
          state.head = 0
        }
        return (job, false)
      }
      return (nil, state.closed)
    }
  }

  private func run() {
    let handle = ConnectionHandle()
    while true {
      let (job, closed) = nextJob()
      if let job {
        job(handle)
        continue
      }
      if closed { break }
      var descriptors = [pollfd(fd: wakeDescriptor, events: Int16(POLLIN), revents: 0)]
      let socket = handle.idleSocket
      if socket >= 0 {
        descriptors.append(pollfd(fd: socket, events: Int16(POLLIN), revents: 0))
      }
      let ready = poll(&descriptors, nfds_t(descriptors.count), -1)
      if ready < 0 { continue }  // EINTR
      if descriptors[0].revents != 0 {
        var drain = [UInt8](repeating: 0, count: 64)
        while read(wakeDescriptor, &drain, drain.count) > 0 {}
      }
      if descriptors.count > 1, descriptors[1].revents != 0 {
        onIdleInput(handle)
      }
    }
    handle.finish()
  }

  // Closed only here, when no one can call `wake()` any more: closed when the thread ends, a
  // `submit` racing with the end could write its wake-up byte into a descriptor that another
  // socket had taken over meanwhile (the event loop of the HTTP/2 transport had that bug).
  deinit {
    close(wakeDescriptor)
    close(wakeWriteDescriptor)
  }
}

/// The `PGconn *` of one connection. Only ``ConnectionThread`` creates it, and it is only used on
/// that thread (it is deliberately not `Sendable`).
final class ConnectionHandle {
  var connection: OpaquePointer?
  /// Whether the idle loop should watch the socket (false once the connection is broken, since a
  /// socket at EOF would otherwise wake the loop forever).
  var watchSocket = false
  /// Receives the server's notices (kept alive as long as the connection).
  var noticeSink: NoticeSink?
  /// Server-side prepared statements of this connection, by SQL text.
  var preparedStatements: [String: String] = [:]
  /// The most statements a connection prepares; further distinct statements run unprepared.
  static let preparedStatementLimit = 200

  var idleSocket: Int32 {
    guard watchSocket, let connection else { return -1 }
    return PQsocket(connection)
  }

  func finish() {
    if let connection {
      PQfinish(connection)
      self.connection = nil
    }
  }
}
