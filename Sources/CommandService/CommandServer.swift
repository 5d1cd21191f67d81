public import Kafka
public import Logging
public import PaymentsCore
import PaymentsProto
import Postgres
import RPCCore
import RPCStandardServices
public import RPCTransportHTTP2
public import ServiceKit

/// The command service process (`payments command`): the gRPC server for
/// `PaymentCommandService` with health and reflection, the group-commit order store, and the
/// outbox relay to `payments.orders.v1`.
public struct CommandServer: Sendable {
  public struct Configuration: Sendable {
    /// Where to listen (default port 50051; 0 picks a free port).
    public var transport = HTTP2ServerTransport.Configuration(host: "0.0.0.0", port: 50051)
    /// PostgreSQL connection string (secret: may hold a password).
    public var databaseURL: String
    /// Pool size; the store's writers, the relay and the key listener share it.
    public var databaseConnections = 16
    /// Kafka bootstrap servers and client settings.
    public var kafka: KafkaClientConfiguration
    /// Validation limits and the providers a request may name.
    public var rules = PaymentOrderRules(knownProviders: ["sandbox"])
    public var store = PaymentOrderStore.Configuration()
    public var relay = OutboxRelay.Configuration(schema: "command")
    /// Whether this instance runs an outbox relay (any number may).
    public var runsRelay = true
    /// The dispatcher (its `PaymentDispatcherService`), which decides `CancelPayment`; `nil`:
    /// cancellations answer UNAVAILABLE.
    public var dispatcher: HTTP2ClientTransport.Configuration? = .init(host: "127.0.0.1", port: 50053)
    /// How long published outbox rows are kept.
    public var outboxRetention: Duration = .seconds(7 * 86400)
    /// How long idempotency records are kept: a key may be reused for a new payment after this
    /// (at least the 30 days the API promises).
    public var idempotencyRetention: Duration = .seconds(30 * 86400)
    /// Failed authentications one client address may have in a burst (0: no limit), and how
    /// fast that budget refills (``FailedAuthenticationLimiter``).
    public var failedAuthenticationBurst = 20
    public var failedAuthenticationRefill: Duration = .seconds(3)

    public init(databaseURL: String, kafka: KafkaClientConfiguration) {
      self.databaseURL = databaseURL
      self.kafka = kafka
    }
  }

  public let configuration: Configuration
  private let logger: Logger

  public init(configuration: Configuration, logger: Logger) {
    self.configuration = configuration
    self.logger = logger
  }

  /// Runs until the task is cancelled; calls `onListening` with the bound port once it accepts
  /// connections.
  public func run(onListening: @escaping @Sendable (Int) -> Void = { _ in }) async throws {
    let pool = PostgresConnectionPool(
      configuration: .init(
        connection: .init(
          connectionString: configuration.databaseURL, applicationName: "payments-command",
          // Bounds on what a vanished instance can hold (the relay's lock, a transaction).
          limits: .init()),
        maximumConnections: configuration.databaseConnections),
      logger: logger)
    let producer: KafkaProducer
    do {
      producer = try KafkaProducer(
        configuration: KafkaProducerConfiguration(client: configuration.kafka), logger: logger)
    } catch {
      await pool.close()
      throw error
    }
    let keys = APIKeyStore(pool: pool, logger: logger)
    let store = PaymentOrderStore(pool: pool, configuration: configuration.store, logger: logger)
    let relay = OutboxRelay(
      pool: pool, producer: producer, configuration: configuration.relay, logger: logger)
    let retention = RetentionSweeper(
      pool: pool,
      rules: [
        .init(
          table: "command.outbox", timeColumn: "created_at", condition: "published_at IS NOT NULL",
          retention: configuration.outboxRetention),
        .init(
          table: "command.idempotency_keys", timeColumn: "created_at",
          retention: configuration.idempotencyRetention),
      ], logger: logger)
    // NOT_SERVING until the first readiness check has reached PostgreSQL and Kafka.
    let health = HealthService()
    health.setStatus(.notServing)
    health.setStatus(.notServing, forService: Payments_V1_PaymentCommandService.serviceName)
    let transport = HTTP2ServerTransport(configuration: configuration.transport, logger: logger)
    let dispatcherTransport = configuration.dispatcher.map {
      HTTP2ClientTransport(configuration: $0, logger: logger)
    }
    defer { dispatcherTransport?.close() }
    let server = RPCServer(
      transport: transport,
      services: [
        PaymentCommandHandler(
          store: store, rules: configuration.rules,
          dispatcher: dispatcherTransport.map {
            Payments_V1_PaymentDispatcherService.Client(RPCClient(transport: $0))
          }),
        health,
        try ReflectionService(files: PaymentsDescriptors.files),
      ],
      interceptors: [
        RPCMetricsInterceptor(),
        AuthInterceptor(
          store: keys, requiredScopes: [Payments_V1_PaymentCommandService.serviceName: .paymentsWrite],
          failures: configuration.failedAuthenticationBurst > 0
            ? FailedAuthenticationLimiter(
              burst: configuration.failedAuthenticationBurst,
              refillInterval: configuration.failedAuthenticationRefill)
            : nil),
      ],
      logger: logger)
    let runsRelay = configuration.runsRelay
    let shutdown = ShutdownSignal()
    shutdown.onTrigger {
      logger.notice("graceful shutdown: no new calls; finishing the running ones")
      health.setStatus(.notServing)
      health.setStatus(.notServing, forService: Payments_V1_PaymentCommandService.serviceName)
      server.beginGracefulShutdown()
    }
    await updateReadiness(
      health: health, services: [Payments_V1_PaymentCommandService.serviceName], pool: pool, kafka: producer,
      shutdown: shutdown)
    do {
      try await shutdown.triggeredByGracefulShutdown {
        try await withThrowingTaskGroup(of: Void.self) { group in
          group.addTask { await store.run() }
          group.addTask { await keys.run() }
          group.addTask { await retention.run() }
          group.addTask {
            await watchReadiness(
              health: health, services: [Payments_V1_PaymentCommandService.serviceName], pool: pool,
              kafka: producer, shutdown: shutdown)
          }
          if runsRelay { group.addTask { try await relay.run() } }
          // The server ends by itself after a graceful shutdown, once its calls have finished
          // (or the transport's grace period ran out); then the background parts stop.
          try await withThrowingTaskGroup(of: Void.self) { serving in
            serving.addTask { try await server.run() }
            let port = try await transport.boundPort()
            logger.info("command service listening", metadata: ["port": "\(port)"])
            onListening(port)
            try await serving.next()
          }
          group.cancelAll()
        }
      }
    } catch {
      await producer.close(flushTimeout: .seconds(5))
      await pool.close()
      throw error
    }
    // Every accepted order is committed with its outbox row; publish what is still pending so
    // that it reaches Kafka before this process exits (the next relay would otherwise).
    if runsRelay {
      let published = await relay.drain(timeout: .seconds(5))
      logger.info("outbox drained on shutdown", metadata: ["records": "\(published)"])
    }
    await producer.close(flushTimeout: .seconds(5))
    await pool.close()
  }
}
