import AsyncHTTPClient
import Foundation
public import Kafka
public import Logging
import Metrics
import NIOCore
public import PaymentsCore
import PaymentsProto
public import Postgres
import ProtobufRuntime
import RPCCore
import RPCStandardServices
public import RPCTransportHTTP2
import ServiceKit
import Synchronization

/// The dispatcher process (`payments dispatcher`; any number of instances): intake of
/// `payments.orders.v1` into the work table, workers that execute payments against providers
/// under the global rate limit, the outbox relay to `payments.events.v1`, and on its port
/// `payments.v1.PaymentDispatcherService` (cancellations, for the command service),
/// `grpc.health.v1.Health` and reflection.
public struct DispatcherServer: Sendable {
  public struct Configuration: Sendable {
    /// The health endpoint (default port 50053; 0 picks a free port).
    public var transport = HTTP2ServerTransport.Configuration(host: "0.0.0.0", port: 50053)
    /// PostgreSQL connection string (secret: may hold a password).
    public var databaseURL: String
    public var databaseConnections = 12
    /// Intake's consumer (group `payments-dispatcher`).
    public var consumer: KafkaConsumerConfiguration
    public var producer: KafkaClientConfiguration
    /// Concurrent payments per instance.
    public var workers = 4
    /// How long a claimed payment stays with this instance: from its claim, and again from the
    /// start of each provider call. Must be longer than any provider call (its timeout plus the
    /// rate limiter's `callSlack`); ``validate()`` refuses less.
    public var lease: Duration = .seconds(60)
    /// Time bounds of every database session of the dispatcher (and its relay).
    public var databaseLimits = PostgresConnectionConfiguration.SessionLimits()
    /// How long published outbox rows are kept.
    public var outboxRetention: Duration = .seconds(7 * 86400)
    public var retry = RetryPolicy()
    public var rateLimiter = PostgresRateLimiter.Configuration()
    /// Provider name → base URL of a provider with the sandbox API.
    public var sandboxProviders: [String: String] = ["sandbox": "http://127.0.0.1:8090"]
    /// Provider name → endpoint and signing secret of a provider with the "hmacpay" API.
    public var hmacProviders: [String: HMACProviderSettings] = [:]
    public var defaultProvider = "sandbox"
    /// Currency → provider name.
    public var routes: [String: String] = [:]
    /// Timeout of one provider call.
    public var providerTimeout: Duration = .seconds(5)
    /// Per-provider timeouts and retry policies (the rate limit per provider is in
    /// ``rateLimiter``'s `limits`).
    public var providerTimeouts: [String: Duration] = [:]
    public var providerRetry: [String: RetryPolicy] = [:]
    /// How long after its acceptance a payment may still be charged; later it fails with reason
    /// `expired` (never while a charge may exist: an unknown outcome is resolved first).
    /// `nil` (the default): payments do not expire.
    public var paymentExpiry: Duration? = nil

    public init(databaseURL: String, consumer: KafkaConsumerConfiguration, producer: KafkaClientConfiguration)
    {
      self.databaseURL = databaseURL
      self.consumer = consumer
      self.producer = producer
    }
  }

  public let configuration: Configuration
  private let logger: Logger

  /// A setting the dispatcher refuses to start with.
  public struct InvalidConfiguration: Error, CustomStringConvertible {
    public let description: String
  }

  public init(configuration: Configuration, logger: Logger) {
    self.configuration = configuration
    self.logger = logger
  }

  /// Runs until the task is cancelled; calls `onListening` with the health endpoint's port.
  public func run(onListening: @escaping @Sendable (Int) -> Void = { _ in }) async throws {
    try configuration.validate()
    // Before anything that must be closed again: this fails only on a broken descriptor set.
    let reflection = try ReflectionService(
      files: PaymentsDescriptors.dispatcherFiles, dependencies: PaymentsDescriptors.dispatcherDependencies)
    let configuration = self.configuration
    let logger = self.logger
    let pool = PostgresConnectionPool(
      configuration: .init(
        connection: .init(
          connectionString: configuration.databaseURL, applicationName: "payments-dispatcher",
          limits: configuration.databaseLimits),
        maximumConnections: configuration.databaseConnections),
      logger: logger)
    var httpConfiguration = HTTPClient.Configuration()
    httpConfiguration.timeout.connect = .seconds(1)
    let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: httpConfiguration)
    let producer: KafkaProducer
    do {
      producer = try KafkaProducer(
        configuration: KafkaProducerConfiguration(client: configuration.producer), logger: logger)
    } catch {
      try? await http.shutdown()
      await pool.close()
      throw error
    }
    var registry = ProviderRegistry(defaultProvider: configuration.defaultProvider)
    registry.routes = configuration.routes
    for (name, url) in configuration.sandboxProviders {
      registry.register(
        SandboxProvider(
          name: name, baseURL: url, client: http,
          timeout: configuration.providerTimeouts[name] ?? configuration.providerTimeout))
    }
    for (name, settings) in configuration.hmacProviders {
      registry.register(
        HMACPayProvider(
          name: name, baseURL: settings.baseURL, secret: settings.secret, client: http,
          timeout: configuration.providerTimeouts[name] ?? configuration.providerTimeout))
    }
    let owner = "\(ProcessInfo.processInfo.hostName)-\(getpid())-\(UUID().uuidString.prefix(8))"
    let store = WorkStore(pool: pool, owner: owner, lease: configuration.lease)
    // A call counts against the limit at most until its timeout (plus slack) when its answer is lost.
    var limiterConfiguration = configuration.rateLimiter
    limiterConfiguration.defaultCallTimeout = configuration.providerTimeout
    limiterConfiguration.callTimeouts = configuration.providerTimeouts
    let limiter = PostgresRateLimiter(pool: pool, configuration: limiterConfiguration, logger: logger)
    let providerHealth = ProviderHealth()
    let worker = PaymentWorker(
      store: store, limiter: limiter, providers: registry, retry: configuration.retry,
      retryByProvider: configuration.providerRetry, health: providerHealth, logger: logger)
    let doorbells = (0..<configuration.workers).map { _ in Doorbell() }
    var intake = BatchConsumer(
      configuration: configuration.consumer, topics: [PaymentsTopic.orders], logger: logger)
    intake.batchSize = 500
    let relay = OutboxRelay(
      pool: pool, producer: producer, configuration: OutboxRelay.Configuration(schema: "dispatcher"),
      logger: logger)
    let health = HealthService()
    let keys = APIKeyStore(pool: pool, logger: logger)
    let transport = HTTP2ServerTransport(configuration: configuration.transport, logger: logger)
    let server = RPCServer(
      // Reflection too: grpcurl and paymentsctl need it to call anything, even the health check.
      transport: transport,
      services: [
        PaymentDispatcherHandler(store: store, logger: logger), health,
        reflection,
      ],
      interceptors: [
        RPCMetricsInterceptor(),
        // The command service passes its caller's API key on; health and reflection stay open.
        AuthInterceptor(
          store: keys, requiredScopes: [Payments_V1_PaymentDispatcherService.serviceName: .paymentsWrite],
          failures: FailedAuthenticationLimiter(burst: 20, refillInterval: .seconds(3))),
      ],
      logger: logger)
    let finalRegistry = registry
    let finalIntake = intake
    let shutdown = ShutdownSignal()
    shutdown.onTrigger {
      logger.notice("graceful shutdown: intake stops; workers finish the payments in hand")
      health.setStatus(.notServing)
      for doorbell in doorbells { doorbell.ring() }
    }
    let providersAccepted: @Sendable () -> Bool = { providerHealth.isHealthy }
    await updateReadiness(
      health: health, services: [], pool: pool, kafka: producer, shutdown: shutdown, also: providersAccepted)
    do {
      try await shutdown.triggeredByGracefulShutdown {
        try await withThrowingTaskGroup(of: Void.self) { group in
          group.addTask { try await server.run() }
          group.addTask { await keys.run() }
          group.addTask { try await relay.run() }
          group.addTask {
            await RetentionSweeper(
              pool: pool,
              rules: [
                .init(
                  table: "dispatcher.outbox", timeColumn: "created_at", condition: "published_at IS NOT NULL",
                  retention: configuration.outboxRetention)
              ], logger: logger
            ).run()
          }
          group.addTask { await Self.listenForWork(pool: pool, doorbells: doorbells, logger: logger) }
          group.addTask {
            await Self.sampleQueue(
              store: store, limiter: limiter,
              providers: Array(configuration.sandboxProviders.keys) + Array(configuration.hmacProviders.keys))
          }
          group.addTask {
            await watchReadiness(
              health: health, services: [], pool: pool, kafka: producer, shutdown: shutdown,
              also: providersAccepted)
          }
          group.addTask {
            // Intake and workers stop on shutdown: intake at once (committing the offsets of the
            // orders it stored), each worker after the payment in hand.
            try await withThrowingTaskGroup(of: Void.self) { work in
              work.addTask {
                try await cancelling(on: shutdown) {
                  try await finalIntake.run { records in
                    let (orders, rejected) = Self.decodeOrders(records, logger: logger)
                    // Kept before the batch's offsets are committed, so none is lost.
                    try await store.deadLetter(rejected)
                    try await store.intake(orders, expiry: configuration.paymentExpiry) {
                      let provider = finalRegistry.route(
                        requested: $0.provider, currency: $0.amount?.currency ?? "")
                      if !finalRegistry.names.contains(provider) {
                        logger.warning(
                          "an order is routed to a provider this instance does not serve; it waits for an instance that does",
                          metadata: ["payment_id": "\($0.paymentID)", "provider": "\(provider)"])
                      }
                      return provider
                    }
                  }
                }
              }
              for doorbell in doorbells {
                work.addTask { await worker.run(doorbell: doorbell, shutdown: shutdown) }
              }
              try await work.waitForAll()
            }
            guard shutdown.isTriggered else { return }
            // What this instance still holds goes back to the others now, not after the lease.
            let released = (try? await store.releaseLeases()) ?? 0
            // The events of the last transitions leave before the process does.
            let published = await relay.drain(timeout: .seconds(5))
            logger.notice(
              "dispatcher stopped its work",
              metadata: ["released_leases": "\(released)", "events_published": "\(published)"])
            server.beginGracefulShutdown()
            await sleepUntilCancelled()
          }
          let port = try await transport.boundPort()
          logger.info(
            "dispatcher running", metadata: ["health_port": "\(port)", "workers": "\(configuration.workers)"])
          onListening(port)
          try await group.next()
          group.cancelAll()
        }
      }
    } catch {
      await Self.shutdown(store: store, producer: producer, http: http, pool: pool)
      if error is CancellationError || Task.isCancelled { return }
      throw error
    }
    await Self.shutdown(store: store, producer: producer, http: http, pool: pool)
  }

  /// The orders of a batch of intake records, and the records that are not orders with the
  /// reason. Such a record can never become an order, and holding the partition for it would
  /// stop every order behind it: it is logged, counted (`dispatcher_undecodable_orders_total`)
  /// and dead-lettered in `dispatcher.dead_letters` (`payments dead-letters list`).
  static func decodeOrders(_ records: [KafkaConsumerRecord], logger: Logger) -> (
    [Payments_V1_PaymentOrderRecord], [(KafkaConsumerRecord, String)]
  ) {
    var orders: [Payments_V1_PaymentOrderRecord] = []
    var rejected: [(KafkaConsumerRecord, String)] = []
    for record in records {
      let reason: String
      do {
        let order = try Payments_V1_PaymentOrderRecord(serializedBytes: record.value)
        if !order.paymentID.isEmpty {
          orders.append(order)
          continue
        }
        reason = "the order has no payment_id"
      } catch {
        reason = "not a payments.v1.PaymentOrderRecord: \(error)"
      }
      Counter(label: "dispatcher_undecodable_orders_total").increment()
      logger.error(
        "an intake record is not a payment order; it is dead-lettered",
        metadata: [
          "topic": "\(record.topic)", "partition": "\(record.partition)", "offset": "\(record.offset)",
          "bytes": "\(record.value.count)", "reason": "\(reason)",
        ])
      rejected.append((record, reason))
    }
    return (orders, rejected)
  }

  private static func shutdown(
    store: WorkStore, producer: KafkaProducer, http: HTTPClient, pool: PostgresConnectionPool
  ) async {
    // Also after a cancellation: what has no call in flight goes back at once; what a worker was
    // cut off in the middle of a call of keeps its lease (``WorkStore/releaseLeases()``). A fresh
    // task, because this one may be cancelled.
    await Task { _ = try? await store.releaseLeases() }.value
    await producer.close(flushTimeout: .seconds(5))
    try? await http.shutdown()
    await pool.close()
  }

  /// Records, every 5 s, the payments due and waiting for a worker
  /// (`dispatcher_work_queue_depth`) and the share of each provider's allowance this instance
  /// used in the last 10 s (`rate_limiter_slot_utilization`; summed over instances, the global
  /// utilization).
  private static func sampleQueue(store: WorkStore, limiter: PostgresRateLimiter, providers: [String]) async {
    let depth = Gauge(label: "dispatcher_work_queue_depth")
    while !Task.isCancelled {
      if let due = try? await store.dueCount() { depth.record(due) }
      limiter.recordUtilization(providers: providers)
      try? await Task.sleep(for: .seconds(5))
    }
  }

  /// Rings every worker's doorbell when new work is inserted (`dispatcher_work`).
  private static func listenForWork(pool: PostgresConnectionPool, doorbells: [Doorbell], logger: Logger) async
  {
    while !Task.isCancelled {
      do {
        try await pool.withConnection { connection in
          let notifications = try await connection.listen("dispatcher_work")
          for try await _ in notifications { for doorbell in doorbells { doorbell.ring() } }
        }
      } catch {
        if Task.isCancelled { return }
        logger.warning("work listener failed", metadata: ["error": "\(error)"])
      }
      try? await Task.sleep(for: .seconds(1))
    }
  }

}

extension DispatcherServer.Configuration {
  /// Refuses settings under which the dispatcher's guarantees would not hold: a lease shorter
  /// than the longest provider call (its timeout plus the limiter's slack) would let a second
  /// worker take a payment over while the first one's request may still reach the provider.
  public func validate() throws {
    let providers = Set(sandboxProviders.keys).union(hmacProviders.keys)
    for provider in providers.sorted() {
      let timeout = providerTimeouts[provider] ?? providerTimeout
      let longest = timeout + rateLimiter.callSlack
      guard lease >= longest else {
        throw DispatcherServer.InvalidConfiguration(
          description:
            "the lease (\(lease)) must be at least provider '\(provider)''s timeout (\(timeout)) plus the call slack (\(rateLimiter.callSlack)): a shorter lease lets another worker take a payment over while its request may still reach the provider"
        )
      }
    }
    guard workers >= 1 else {
      throw DispatcherServer.InvalidConfiguration(description: "workers must be at least 1")
    }
  }
}

/// Where an "hmacpay" provider is and the secret it signs with.
public struct HMACProviderSettings: Sendable {
  public var baseURL: String
  /// Secret: never logged.
  public var secret: String
  public init(baseURL: String, secret: String) {
    self.baseURL = baseURL
    self.secret = secret
  }
}
