import Hummingbird
import Logging
import Metrics
import Prometheus
import ServiceLifecycle

/// The admin HTTP endpoint of a service process: `GET /metrics` in Prometheus text format.
///
/// Creating it bootstraps swift-metrics with a Prometheus registry, so it must be made before the
/// service it reports on starts (once per process).
struct AdminServer: Service {
  let host: String
  let port: Int
  let logger: Logger
  private let registry = PrometheusCollectorRegistry()

  init(host: String, port: Int, logger: Logger) {
    self.host = host
    self.port = port
    self.logger = logger
    var factory = PrometheusMetricsFactory(registry: registry)
    // Seconds from 1 ms to 30 s: RPCs, rate-limit waits and provider calls all fall in here.
    factory.defaultDurationHistogramBuckets = [
      .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
      .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
      .seconds(2), .seconds(5), .seconds(10), .seconds(30),
    ]
    MetricsSystem.bootstrap(factory)
  }

  func run() async throws {
    let router = Router()
    let registry = self.registry
    router.get("/metrics") { _, _ in registry.emitToString() }
    let (host, port, logger) = (self.host, self.port, self.logger)
    let app = Application(
      router: router,
      configuration: .init(address: .hostname(host, port: port), serverName: "payments-admin"),
      onServerRunning: { channel in
        logger.info("admin endpoint listening", metadata: ["port": "\(channel.localAddress?.port ?? port)"])
      },
      logger: logger)
    // As a service of the process's group (not `runService`, which would start a group of its own
    // with its own signal handling).
    try await app.run()
  }
}
