public import Metrics
public import RPCCore

/// Counts every call by method and status (`rpc_server_requests_total{method,code}`) and times it
/// (`rpc_server_duration_seconds{method}`, a histogram). Put it first, so that calls refused by
/// the interceptors after it (authentication) count too.
public struct RPCMetricsInterceptor: ServerInterceptor {
  public init() {}

  public func intercept(
    _ context: ServerContext, next: @Sendable (ServerContext) async throws -> Void
  ) async throws {
    let method = context.method.fullName
    let start = ContinuousClock.now
    var code = RPCStatus.Code.ok
    defer {
      Counter(label: "rpc_server_requests_total", dimensions: [("method", method), ("code", "\(code)")])
        .increment()
      Metrics.Timer(label: "rpc_server_duration_seconds", dimensions: [("method", method)])
        .recordInterval(since: start)
    }
    do {
      try await next(context)
    } catch let error as RPCError {
      code = error.code
      throw error
    } catch is CancellationError {
      code = .cancelled
      throw CancellationError()
    } catch {
      code = .unknown
      throw error
    }
  }
}

extension Metrics.Timer {
  /// Records the time from `start` until now.
  public func recordInterval(since start: ContinuousClock.Instant) {
    let elapsed = ContinuousClock.now - start
    recordNanoseconds(
      elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000)
  }
}
