public import Kafka
public import Logging
import PaymentsProto
import Postgres
import RPCCore
import RPCStandardServices
public import RPCTransportHTTP2
import ServiceKit

/// The query service process (`payments query`): the projection from Kafka into the read model,
/// and the gRPC server for `PaymentQueryService` with health and reflection.
public struct QueryServer: Sendable {
  public struct Configuration: Sendable {
    /// Where to listen (default port 50052; 0 picks a free port).
    public var transport = HTTP2ServerTransport.Configuration(host: "0.0.0.0", port: 50052)
    /// PostgreSQL connection string (secret: may hold a password).
    public var databaseURL: String
    public var databaseConnections = 16
    /// The projection's consumer (group `payments-query` by default).
    public var consumer: KafkaConsumerConfiguration
    public var handler = PaymentQueryHandler.Configuration()
    /// Failed authentications one client address may have in a burst (0: no limit), and how
    /// fast that budget refills (``FailedAuthenticationLimiter``).
    public var failedAuthenticationBurst = 20
    public var failedAuthenticationRefill: Duration = .seconds(3)
    /// How long the event feed keeps an event.
    public var eventRetention: Duration = .seconds(30 * 86400)

    public init(databaseURL: String, consumer: KafkaConsumerConfiguration) {
      self.databaseURL = databaseURL
      self.consumer = consumer
    }
  }

  public let configuration: Configuration
  private let logger: Logger

  public init(configuration: Configuration, logger: Logger) {
    self.configuration = configuration
    self.logger = logger
  }

  /// Runs until the task is cancelled; calls `onListening` with the bound port.
  public func run(onListening: @escaping @Sendable (Int) -> Void = { _ in }) async throws {
    let pool = PostgresConnectionPool(
      configuration: .init(
        connection: .init(
          connectionString: configuration.databaseURL, applicationName: "payments-query",
          // Bounds on what a vanished instance can hold (the relay's lock, a transaction).
          limits: .init()),
        maximumConnections: configuration.databaseConnections),
      logger: logger)
    let keys = APIKeyStore(pool: pool, logger: logger)
    let readModel = PaymentReadModel(pool: pool)
    let feed = PaymentChangeFeed(pool: pool, logger: logger)
    let projection = PaymentProjection(readModel: readModel, consumer: configuration.consumer, logger: logger)
    // NOT_SERVING until the first readiness check has reached PostgreSQL and Kafka (through a
    // producer that only asks for metadata: the projection's consumer is busy consuming).
    let health = HealthService()
    health.setStatus(.notServing)
    health.setStatus(.notServing, forService: Payments_V1_PaymentQueryService.serviceName)
    let probe: KafkaProducer
    do {
      var client = configuration.consumer.client
      client.clientID += "-readiness"
      probe = try KafkaProducer(configuration: KafkaProducerConfiguration(client: client), logger: logger)
    } catch {
      await pool.close()
      throw error
    }
    let transport = HTTP2ServerTransport(configuration: configuration.transport, logger: logger)
    let shutdown = ShutdownSignal()
    do {
      let server = RPCServer(
        transport: transport,
        services: [
          PaymentQueryHandler(
            readModel: readModel, feed: feed, configuration: configuration.handler, shutdown: shutdown),
          health,
          try ReflectionService(files: PaymentsDescriptors.files),
        ],
        interceptors: [
          RPCMetricsInterceptor(),
          AuthInterceptor(
            store: keys, requiredScopes: [Payments_V1_PaymentQueryService.serviceName: .paymentsRead],
            failures: configuration.failedAuthenticationBurst > 0
              ? FailedAuthenticationLimiter(
                burst: configuration.failedAuthenticationBurst,
                refillInterval: configuration.failedAuthenticationRefill)
              : nil),
        ],
        logger: logger)
      shutdown.onTrigger {
        logger.notice("graceful shutdown: no new calls; finishing the running ones, ending watches")
        health.setStatus(.notServing)
        health.setStatus(.notServing, forService: Payments_V1_PaymentQueryService.serviceName)
        server.beginGracefulShutdown()
        feed.ringAll()
      }
      await updateReadiness(
        health: health, services: [Payments_V1_PaymentQueryService.serviceName], pool: pool, kafka: probe,
        shutdown: shutdown)
      try await shutdown.triggeredByGracefulShutdown {
        try await withThrowingTaskGroup(of: Void.self) { group in
          group.addTask { try await server.run() }
          group.addTask { await keys.run() }
          group.addTask { await feed.run() }
          group.addTask {
            await RetentionSweeper(
              pool: pool,
              rules: [
                .init(
                  table: "query.events", timeColumn: "recorded_at", retention: configuration.eventRetention)
              ], logger: logger
            ).run()
          }
          group.addTask {
            await watchReadiness(
              health: health, services: [Payments_V1_PaymentQueryService.serviceName], pool: pool,
              kafka: probe,
              shutdown: shutdown)
          }
          group.addTask {
            // On shutdown the projection stops at once (committing the offsets of what it
            // applied), while the server finishes its calls; a projection that fails ends the
            // service.
            try await cancelling(on: shutdown) { try await projection.run() }
            await sleepUntilCancelled()
          }
          let port = try await transport.boundPort()
          logger.info("query service listening", metadata: ["port": "\(port)"])
          onListening(port)
          // The server ends by itself after a graceful shutdown, once its calls have finished.
          try await group.next()
          group.cancelAll()
        }
      }
    } catch {
      await probe.close(flushTimeout: .zero)
      await pool.close()
      throw error
    }
    await probe.close(flushTimeout: .zero)
    await pool.close()
  }
}
