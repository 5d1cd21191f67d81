import ProtobufRuntime
public import RPCCore
import Synchronization

/// `grpc.health.v1.Health`: the standard health protocol that load balancers, Kubernetes probes
/// and `grpc_health_probe` speak.
///
/// The application sets each service's status (``setStatus(_:forService:)``); the empty service
/// name stands for the server as a whole. `Check` answers the current status (`NOT_FOUND` for a
/// service never set); `Watch` streams it, then every change, until the client leaves.
public final class HealthService: Grpc_Health_V1_Health.ServiceProtocol {
  /// A service's status.
  public typealias Status = Grpc_Health_V1_HealthCheckResponse.ServingStatus

  private struct State {
    var statuses: [String: Status] = ["": .serving]
    var watchers: [Int: (service: String, queue: MessageQueue<Status>)] = [:]
    var nextWatcher = 0
  }

  private let state = Mutex(State())

  /// A health service reporting the whole server as `SERVING`.
  public init() {}

  /// Sets the status of `service` (`""`: the whole server) and tells its watchers.
  public func setStatus(_ status: Status, forService service: String = "") {
    let watchers = state.withLock { state in
      guard state.statuses[service] != status else { return [MessageQueue<Status>]() }
      state.statuses[service] = status
      return state.watchers.values.filter { $0.service == service }.map(\.queue)
    }
    for queue in watchers { queue.yield(status) }
  }

  /// The current status of `service`, if it was ever set.
  public func status(ofService service: String) -> Status? { state.withLock { $0.statuses[service] } }

  public func check(
    _ request: Grpc_Health_V1_HealthCheckRequest, context: ServerContext
  ) async throws -> Grpc_Health_V1_HealthCheckResponse {
    guard let status = status(ofService: request.service) else {
      throw RPCError(.notFound, "unknown service '\(request.service)'")
    }
    return .with { $0.status = status }
  }

  public func watch(
    _ request: Grpc_Health_V1_HealthCheckRequest, responses: RPCWriter<Grpc_Health_V1_HealthCheckResponse>,
    context: ServerContext
  ) async throws {
    let queue = MessageQueue<Status>()
    let (id, current) = state.withLock { state in
      state.nextWatcher += 1
      state.watchers[state.nextWatcher] = (request.service, queue)
      return (state.nextWatcher, state.statuses[request.service] ?? .serviceUnknown)
    }
    defer { _ = state.withLock { $0.watchers.removeValue(forKey: id) } }
    var last = current
    try await responses.write(.with { $0.status = current })
    while let status = try await queue.next() {
      guard status != last else { continue }
      last = status
      try await responses.write(.with { $0.status = status })
    }
  }
}
