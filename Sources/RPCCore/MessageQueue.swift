import Synchronization

/// A single-consumer queue of messages between a producer (a transport's I/O loop) and the task
/// that reads a call's stream.
///
/// The producer never blocks: flow control happens one level down, where the transport only
/// opens its receive window again (``onConsume``) once the consumer took a message, so a slow
/// reader holds the peer back instead of filling memory.
public final class MessageQueue<Element: Sendable>: Sendable {
  private struct State {
    var buffer: [Element] = []
    var head = 0
    var end: Result<Void, any Error>? = nil
    var waiter: CheckedContinuation<Element?, any Error>? = nil

    mutating func compact() {
      if head == buffer.count {
        buffer.removeAll(keepingCapacity: true)
        head = 0
      } else if head > 64 && head * 2 > buffer.count {
        buffer.removeFirst(head)
        head = 0
      }
    }
  }

  private enum Outcome { case wait, element(Element), end(Result<Void, any Error>), cancelled }

  private let state = Mutex(State())
  private let onConsume: @Sendable (Element) -> Void

  /// - Parameter onConsume: Called (outside the queue's lock) for every element the consumer
  ///   takes; transports use it to return flow-control credit.
  public init(onConsume: @escaping @Sendable (Element) -> Void = { _ in }) {
    self.onConsume = onConsume
  }

  /// Adds an element; ignored once the queue is finished.
  public func yield(_ element: Element) {
    let waiter: CheckedContinuation<Element?, any Error>? = state.withLock { state in
      guard state.end == nil else { return nil }
      if let waiter = state.waiter {
        state.waiter = nil
        return waiter
      }
      state.buffer.append(element)
      return nil
    }
    if let waiter {
      onConsume(element)
      waiter.resume(returning: element)
    }
  }

  /// Ends the queue after the buffered elements: normally, or with `error`.
  public func finish(throwing error: (any Error)? = nil) {
    let waiter: CheckedContinuation<Element?, any Error>? = state.withLock { state in
      guard state.end == nil else { return nil }
      state.end = error.map { .failure($0) } ?? .success(())
      defer { state.waiter = nil }
      return state.waiter
    }
    if let error { waiter?.resume(throwing: error) } else { waiter?.resume(returning: nil) }
  }

  /// The next element, `nil` at the end; throws the error the queue finished with, or
  /// `CancellationError` when the waiting task is cancelled.
  public func next() async throws -> Element? {
    if let element = try takeBuffered() { return element }
    return try await withTaskCancellationHandler {
      try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Element?, any Error>) in
        let outcome: Outcome = state.withLock { state in
          if state.head < state.buffer.count {
            let element = state.buffer[state.head]
            state.head += 1
            state.compact()
            return .element(element)
          }
          if let end = state.end { return .end(end) }
          if Task.isCancelled { return .cancelled }
          precondition(state.waiter == nil, "MessageQueue has a single consumer")
          state.waiter = continuation
          return .wait
        }
        switch outcome {
        case .wait: break
        case .element(let element):
          onConsume(element)
          continuation.resume(returning: element)
        case .end(.success): continuation.resume(returning: nil)
        case .end(.failure(let error)): continuation.resume(throwing: error)
        case .cancelled: continuation.resume(throwing: CancellationError())
        }
      }
    } onCancel: {
      let waiter = state.withLock { state in
        defer { state.waiter = nil }
        return state.waiter
      }
      waiter?.resume(throwing: CancellationError())
    }
  }

  private func takeBuffered() throws -> Element? {
    let element: Element? = try state.withLock { state in
      if state.head < state.buffer.count {
        let element = state.buffer[state.head]
        state.head += 1
        state.compact()
        return element
      }
      if case .failure(let error) = state.end { throw error }
      return nil
    }
    if let element { onConsume(element) }
    return element
  }

  /// The elements as an async sequence (single consumer).
  public var elements: RPCAsyncSequence<Element> { RPCAsyncSequence { try await self.next() } }
}

/// An async sequence of a call's messages, whatever produces them.
public struct RPCAsyncSequence<Element: Sendable>: AsyncSequence, Sendable {
  private let nextElement: @Sendable () async throws -> Element?

  /// A sequence that calls `next` for each element until it returns `nil`.
  public init(next: @escaping @Sendable () async throws -> Element?) { self.nextElement = next }

  /// The elements transformed by `transform` (which may throw to end the sequence).
  public func map<T: Sendable>(_ transform: @escaping @Sendable (Element) throws -> T) -> RPCAsyncSequence<T>
  {
    let nextElement = nextElement
    return RPCAsyncSequence<T> { try await nextElement().map(transform) }
  }

  public struct AsyncIterator: AsyncIteratorProtocol {
    fileprivate let nextElement: @Sendable () async throws -> Element?
    public mutating func next() async throws -> Element? { try await nextElement() }
  }

  public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(nextElement: nextElement) }
}

/// Writes a call's messages; suspends while the transport applies backpressure.
public struct RPCWriter<Element: Sendable>: Sendable {
  private let writeElement: @Sendable (Element) async throws -> Void

  public init(_ write: @escaping @Sendable (Element) async throws -> Void) { self.writeElement = write }

  /// Sends one message.
  public func write(_ element: Element) async throws { try await writeElement(element) }

  /// Sends every message of `elements`, in order.
  public func write(contentsOf elements: some Sequence<Element>) async throws {
    for element in elements { try await writeElement(element) }
  }
}
