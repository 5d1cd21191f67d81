public import Kafka
public import Postgres
public import RPCStandardServices

/// Sets `health` (the server as a whole and each of `services`) to SERVING when PostgreSQL
/// answers a query and a Kafka broker answers a metadata request (within 2 s), else to
/// NOT_SERVING; after a graceful shutdown began, always NOT_SERVING. Returns whether it is ready.
///
/// A server runs this once before it starts listening, so that its first answer is already true.
@discardableResult
public func updateReadiness(
  health: HealthService, services: [String], pool: PostgresConnectionPool, kafka: KafkaProducer,
  shutdown: ShutdownSignal, also: @Sendable () -> Bool = { true }
) async -> Bool {
  async let database = (try? await pool.query("SELECT 1")) != nil
  async let brokers = kafka.brokersReachable(timeout: .seconds(2))
  let (databaseReachable, brokersReachable) = await (database, brokers)
  let ready = databaseReachable && brokersReachable && !shutdown.isTriggered && also()
  for service in [""] + services { health.setStatus(ready ? .serving : .notServing, forService: service) }
  return ready
}

/// Keeps `grpc.health.v1` true to the service's readiness (``updateReadiness``), checking every
/// `interval` until the task is cancelled.
public func watchReadiness(
  health: HealthService, services: [String], pool: PostgresConnectionPool, kafka: KafkaProducer,
  shutdown: ShutdownSignal, interval: Duration = .seconds(2), also: @Sendable () -> Bool = { true }
) async {
  while !Task.isCancelled {
    await updateReadiness(
      health: health, services: services, pool: pool, kafka: kafka, shutdown: shutdown, also: also)
    if shutdown.isTriggered {
      await sleepUntilCancelled()  // NOT_SERVING from now on; the caller's group ends this task
      return
    }
    await shutdown.waitOrSleep(interval)
  }
}

extension ShutdownSignal {
  /// Returns after `duration`, or at once when the shutdown begins or the task is cancelled.
  func waitOrSleep(_ duration: Duration) async {
    await withTaskGroup(of: Void.self) { group in
      group.addTask { await self.wait() }
      group.addTask { try? await Task.sleep(for: duration) }
      await group.next()
      group.cancelAll()
    }
  }
}
