import ProtobufRuntime
import RPCCore
import Synchronization

/// The Swift implementation of the test service `echo.v1.Echo` (the Python peer has its own,
/// in tools/interop). Request metadata whose key starts with `echo-` comes back in the response
/// headers and, prefixed with `trailer-`, in the trailers.
struct EchoService: Echo_V1_Echo.ServiceProtocol {
  /// Counts `Expand` responses written and records when an `Expand` handler ends (and how).
  let observer: EchoObserver?

  init(observer: EchoObserver? = nil) { self.observer = observer }

  func get(_ request: Echo_V1_EchoRequest, context: ServerContext) async throws -> Echo_V1_EchoResponse {
    try await prepare(request, context)
    return .with {
      $0.text = request.text
      $0.payload = request.payload
    }
  }

  func expand(
    _ request: Echo_V1_EchoRequest, responses: RPCWriter<Echo_V1_EchoResponse>, context: ServerContext
  ) async throws {
    observer?.expandStarted()
    defer { observer?.expandEnded(cancelled: Task.isCancelled) }
    try await prepare(request, context)
    for index in 0..<Int(request.repeat) {
      observer?.wrote()
      try await responses.write(
        .with {
          $0.text = request.text
          $0.index = Int32(index)
        })
    }
  }

  func collect(
    _ requests: RPCAsyncSequence<Echo_V1_EchoRequest>, context: ServerContext
  ) async throws -> Echo_V1_EchoResponse {
    echoMetadata(context)
    var texts: [String] = []
    var payload: [UInt8] = []
    for try await request in requests {
      try await prepare(request, context, echo: false)
      texts.append(request.text)
      payload += request.payload
    }
    return .with {
      $0.text = texts.joined(separator: " ")
      $0.payload = payload
    }
  }

  func update(
    _ requests: RPCAsyncSequence<Echo_V1_EchoRequest>, responses: RPCWriter<Echo_V1_EchoResponse>,
    context: ServerContext
  ) async throws {
    echoMetadata(context)
    var index: Int32 = 0
    for try await request in requests {
      try await prepare(request, context, echo: false)
      try await responses.write(
        .with {
          $0.text = request.text
          $0.payload = request.payload
          $0.index = index
        })
      index += 1
    }
  }

  private func prepare(_ request: Echo_V1_EchoRequest, _ context: ServerContext, echo: Bool = true)
    async throws
  {
    if echo { echoMetadata(context) }
    if request.delayMs > 0 { try await Task.sleep(for: .milliseconds(Int(request.delayMs))) }
    if request.failWithCode != 0 {
      throw RPCError(RPCStatus.Code(rawValue: Int(request.failWithCode)), request.text)
    }
  }

  private func echoMetadata(_ context: ServerContext) {
    var initial = Metadata()
    var trailing = Metadata()
    for entry in context.metadata where entry.key.hasPrefix("echo-") {
      switch entry.value {
      case .string(let value):
        initial.addString(value, forKey: entry.key)
        trailing.addString(value, forKey: "trailer-" + entry.key)
      case .binary(let value):
        initial.addBinary(value, forKey: entry.key)
        trailing.addBinary(value, forKey: "trailer-" + entry.key)
      }
    }
    context.response.initial = initial
    context.response.trailing = trailing
  }
}

/// What the echo handlers did, for tests that check server-side effects.
final class EchoObserver: Sendable {
  private let state = Mutex((started: 0, written: 0, ended: [Bool]()))
  func expandStarted() { state.withLock { $0.started += 1 } }
  func wrote() { state.withLock { $0.written += 1 } }
  /// `Expand` handlers started so far.
  var started: Int { state.withLock { $0.started } }
  func expandEnded(cancelled: Bool) { state.withLock { $0.ended.append(cancelled) } }
  /// `Expand` responses handed to the transport so far.
  var written: Int { state.withLock { $0.written } }
  /// One entry per finished `Expand` handler: whether it ended cancelled.
  var ended: [Bool] { state.withLock { $0.ended } }
}
