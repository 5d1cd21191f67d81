import CommandService
import Foundation
import Kafka
import Logging
import PaymentsCore
import PaymentsProto
import PaymentsSchema
import PaymentsTestSupport
import Postgres
import ProtobufRuntime
import QueryService
import RPCCore
import RPCTransportHTTP2
import ServiceKit
import Synchronization
import Testing

/// A migrated database, a dev Kafka cluster and the command and query services on loopback
/// ports, for one test.
struct Platform: Sendable {
  let databaseURL: String
  let cluster: MockKafkaCluster
  let commandPort: Int
  let queryPort: Int
  /// A pool for the test's own checks.
  let pool: PostgresConnectionPool
  let keys: APIKeyStore

  /// A key with both scopes for `client`.
  func key(client: String = "client-a", scopes: Set<APIScope> = [.paymentsWrite, .paymentsRead]) async throws
    -> String
  {
    try await keys.create(clientID: client, scopes: scopes).token
  }

  /// A command client sending `token` (no authorization header when `nil`).
  func commandClient(_ token: String?) -> AuthorizedClient<Payments_V1_PaymentCommandService.Client> {
    AuthorizedClient(port: commandPort, token: token) { Payments_V1_PaymentCommandService.Client($0) }
  }

  func queryClient(_ token: String?) -> AuthorizedClient<Payments_V1_PaymentQueryService.Client> {
    AuthorizedClient(port: queryPort, token: token) { Payments_V1_PaymentQueryService.Client($0) }
  }

  /// A producer for injecting records the way the relays publish them.
  func producer() throws -> KafkaProducer {
    try KafkaProducer(
      configuration: KafkaProducerConfiguration(client: TestKafka.client(cluster, id: "test-producer")),
      logger: quietLogger("test-producer"))
  }
}

/// A typed client over its own HTTP/2 connection, with the metadata that carries the API key.
struct AuthorizedClient<Client: Sendable>: Sendable {
  let client: Client
  let metadata: Metadata
  let transport: HTTP2ClientTransport

  init(port: Int, token: String?, make: (RPCClient) -> Client) {
    transport = HTTP2ClientTransport(
      configuration: .init(host: "127.0.0.1", port: port), logger: quietLogger("test-client"))
    client = make(RPCClient(transport: transport))
    metadata = token.map { [("authorization", "Bearer \($0)")] } ?? []
  }

  func close() { transport.close() }
}

struct PlatformOptions: Sendable {
  /// The services' logger (quiet by default).
  var logger: Logger? = nil
  var runQuery = true
  var runsRelay = true
  var query = PaymentQueryHandler.Configuration()
  var rules = PaymentOrderRules(maximumAmountMinor: 1_000_000_000, knownProviders: ["sandbox", "hmacpay"])
  /// How fast an address's failed-authentication budget refills (services' default: 3 s).
  var failedAuthenticationRefill: Duration = .seconds(3)
  /// Runs a dispatcher in the platform (given the database URL and the Kafka cluster; it calls
  /// its third argument with its bound port): the command service, started after it is
  /// listening, sends cancellations there. None: cancellations answer UNAVAILABLE.
  var dispatcher:
    (@Sendable (String, MockKafkaCluster, @escaping @Sendable (Int) -> Void) async throws -> Void)? = nil
}

/// Runs `body` against a fresh platform and stops it afterwards.
func withPlatform<Result: Sendable>(
  _ options: PlatformOptions = .init(), _ body: @Sendable (Platform) async throws -> Result
) async throws -> Result {
  let url = try await TestPostgres.shared.makeDatabase()
  let pool = PostgresConnectionPool(
    connectionString: url, maximumConnections: 4, logger: quietLogger("test-pool"))
  try await PostgresMigrator(pool: pool, logger: quietLogger("migrate")).migrate(PaymentsMigrations.all)
  let cluster = try TestKafka.makeCluster(topics: [PaymentsTopic.orders: 3, PaymentsTopic.events: 3])
  var command = CommandServer.Configuration(databaseURL: url, kafka: TestKafka.client(cluster, id: "command"))
  command.transport = .init(host: "127.0.0.1", port: 0)
  command.databaseConnections = 8
  command.rules = options.rules
  command.runsRelay = options.runsRelay
  command.failedAuthenticationRefill = options.failedAuthenticationRefill
  var query = QueryServer.Configuration(
    databaseURL: url, consumer: TestKafka.consumer(cluster, group: "payments-query", id: "query"))
  query.transport = .init(host: "127.0.0.1", port: 0)
  query.databaseConnections = 8
  query.handler = options.query
  query.failedAuthenticationRefill = options.failedAuthenticationRefill
  let queryConfiguration = query
  let commandPort = PortBox()
  let queryPort = PortBox()
  let result = try await withThrowingTaskGroup(of: Void.self) { group in
    if let dispatcher = options.dispatcher {
      // First, on a port of its own choosing (port 0: no race for a "free" port).
      let dispatcherPort = PortBox()
      group.addTask { try await dispatcher(url, cluster) { dispatcherPort.set($0) } }
      command.dispatcher = .init(host: "127.0.0.1", port: try await dispatcherPort.get())
    }
    let commandConfiguration = command
    group.addTask {
      try await CommandServer(
        configuration: commandConfiguration, logger: options.logger ?? quietLogger("command")
      ).run {
        commandPort.set($0)
      }
    }
    if options.runQuery {
      group.addTask {
        try await QueryServer(
          configuration: queryConfiguration, logger: options.logger ?? quietLogger("query")
        ).run {
          queryPort.set($0)
        }
      }
    }
    defer { group.cancelAll() }
    let platform = Platform(
      databaseURL: url, cluster: cluster, commandPort: try await commandPort.get(),
      queryPort: options.runQuery ? try await queryPort.get() : 0, pool: pool,
      keys: APIKeyStore(pool: pool, logger: quietLogger("keys")))
    return try await body(platform)
  }
  await pool.close()
  return result
}

/// A port reported from a server task.
final class PortBox: Sendable {
  private let value = Mutex<Int?>(nil)
  func set(_ port: Int) { value.withLock { $0 = port } }
  func get() async throws -> Int {
    let deadline = ContinuousClock.now + .seconds(30)
    while ContinuousClock.now < deadline {
      if let port = value.withLock({ $0 }) { return port }
      try await Task.sleep(for: .milliseconds(10))
    }
    throw HarnessError("server did not start listening within 30 s")
  }
}

/// A valid request; tests change what they test.
func validRequest(key: String = "order-\(UUID().uuidString)", amount: Int64 = 1234, currency: String = "EUR")
  -> Payments_V1_SubmitPaymentRequest
{
  .with { request in
    request.idempotencyKey = key
    request.amount = .with {
      $0.currency = currency
      $0.amountMinor = amount
    }
    request.payer = .with {
      $0.accountID = "acct_payer"
      $0.name = "Ada Payer"
    }
    request.payee = .with {
      $0.accountID = "acct_payee"
      $0.name = "Bob Payee"
    }
    request.description = "invoice 42"
    request.metadata = ["order": "42", "channel": "web"]
  }
}

/// The gRPC status code of `body`'s error (fails the test if it succeeds or throws another error).
func rpcError(
  sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> some Any
) async -> RPCError? {
  do {
    _ = try await body()
    Issue.record("expected an RPC error, but the call succeeded", sourceLocation: sourceLocation)
    return nil
  } catch let error as RPCError {
    return error
  } catch {
    Issue.record("expected an RPCError, got \(error)", sourceLocation: sourceLocation)
    return nil
  }
}

/// Waits until `condition` holds, for at most `timeout`.
func eventually(
  timeout: Duration = .seconds(15), sourceLocation: SourceLocation = #_sourceLocation,
  _ condition: @Sendable () async throws -> Bool
) async throws {
  let deadline = ContinuousClock.now + timeout
  while try await !condition() {
    guard ContinuousClock.now < deadline else {
      Issue.record("condition not met within \(timeout)", sourceLocation: sourceLocation)
      return
    }
    try await Task.sleep(for: .milliseconds(25))
  }
}

/// Reads the records of `topic` from the beginning until `count` arrived or `timeout` passed,
/// then a moment longer (to catch duplicates), and returns what arrived.
func readTopic(
  _ cluster: MockKafkaCluster, _ topic: String, atLeast count: Int, timeout: Duration = .seconds(20)
) async throws -> [KafkaConsumerRecord] {
  let configuration = TestKafka.consumer(cluster, group: "reader-\(UUID())")
  let consumer = try KafkaConsumer(
    configuration: configuration, topics: [topic], logger: quietLogger("reader"))
  let received = RecordBox()
  try await withThrowingTaskGroup(of: Void.self) { group in
    group.addTask {
      for try await record in consumer.records { received.records.withLock { $0.append(record) } }
    }
    let deadline = ContinuousClock.now + timeout
    while received.records.withLock({ $0.count }) < count, ContinuousClock.now < deadline {
      try await Task.sleep(for: .milliseconds(25))
    }
    try await Task.sleep(for: .milliseconds(300))
    group.cancelAll()
  }
  await consumer.close()
  return received.records.withLock { $0 }
}

final class RecordBox: Sendable {
  let records = Mutex<[KafkaConsumerRecord]>([])
}
