import ArgumentParser
import Glibc
import Kafka
import Logging
import PaymentsConfiguration
import RPCTransportHTTP2
import ServiceKit
import ServiceLifecycle
import TLS
import UnixSignals

/// Options every service shares: the configuration file, where to listen, the database, Kafka,
/// TLS, logging and shutdown. Each flag overrides its key from the environment and the file
/// (docs/configuration.md); an option without a flag's value here is `nil`, not its default.
struct ServiceOptions: ParsableArguments {
  @Option(
    help: ArgumentHelp(
      "A configuration file (.yaml, .yml or .json); also $PAYMENTS_CONFIG.", valueName: "path"))
  var config: String?

  @Option(help: "Address to listen on.")
  var host: String?

  @Option(help: "Port to listen on (0 picks a free port; the bound port is printed).")
  var port: Int?

  @Option(help: "Port of the admin HTTP endpoint serving /metrics (none by default).")
  var adminPort: Int?

  @Option(
    name: .customLong("database-url"),
    help:
      "PostgreSQL connection string (URL or key=value). Better in $PAYMENTS_DATABASE_URL: it may hold a password."
  )
  var databaseURL: String?

  @Option(name: .customLong("kafka-brokers"), help: "Kafka bootstrap servers, comma-separated.")
  var kafkaBrokers: String?

  @Option(help: "PEM certificate chain for TLS (with --tls-key); plaintext h2c without it.")
  var tlsCertificate: String?

  @Option(help: "PEM private key for TLS.")
  var tlsKey: String?

  @Option(
    help: "PEM certificate authorities: with TLS, require client certificates they issued (mutual TLS).")
  var tlsClientCa: String?

  @Option(help: "Client connections open at once; one beyond it is closed at once.")
  var maximumConnections: Int?

  @Option(help: "Client connections open at once from one IP address (0: no limit).")
  var maximumConnectionsPerAddress: Int?

  @Option(help: "Seconds a graceful shutdown (SIGTERM) gives running calls and payments in hand to finish.")
  var shutdownGrace: Double?

  @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
  var logLevel: String?

  @Option(help: "Log format: text (one readable line per record) or json (one JSON object per line).")
  var logFormat: String?

  /// The configuration of a service with `keys`: these flags over the environment over the file.
  func settings(_ keys: [ConfigurationKey]) throws -> Settings {
    try processSettings(keys, config: config)
  }
}

/// The configuration of a subcommand with `keys` from this process: the file (`config`, else
/// `$PAYMENTS_CONFIG`) and the environment; the caller passes its flags when it reads a key.
func processSettings(_ keys: [ConfigurationKey], config: String?) throws -> Settings {
  let environment = ProcessInfoEnvironment.all
  return try Settings(keys: keys, file: config ?? environment["PAYMENTS_CONFIG"], environment: environment)
}

/// The failed-authentication budget of the services that check API keys (command, query).
struct AuthenticationOptions: ParsableArguments {
  @Option(help: "Failed authentications one client IP address may have in a burst (0: no limit).")
  var authFailureBurst: Int?

  @Option(help: "Seconds until an address may fail once more after its burst is spent.")
  var authFailureRefill: Double?

  /// The burst and the refill interval, from `settings`.
  func budget(_ settings: Settings) throws -> (burst: Int, refill: Duration) {
    let burst = try settings.integer("auth.failure-burst", flag: authFailureBurst, in: 0...1_000_000)!
    let refill = try settings.number("auth.failure-refill", flag: authFailureRefill, in: 0.001...86400)!
    return (burst, .milliseconds(Int64(refill * 1000)))
  }
}

/// The shared keys of a gRPC service, read from its settings.
struct ServerSettings {
  let settings: Settings
  let options: ServiceOptions

  var host: String { settings.string("host", flag: options.host) ?? "0.0.0.0" }

  func database() throws -> String { try settings.required("database.url", flag: options.databaseURL) }

  func brokers() throws -> [String] {
    let brokers = settings.list("kafka.brokers", flag: options.kafkaBrokers.map { [$0] } ?? [])
      .flatMap { $0.split(separator: ",") }.map { String($0).trimmingCharacters(in: " ") }.filter {
        !$0.isEmpty
      }
    guard !brokers.isEmpty else { _ = try settings.required("kafka.brokers"); return [] }
    return brokers
  }

  /// Runs `server` (named `name` in its "listening" line) until SIGTERM or SIGINT, with this
  /// configuration's grace period and admin endpoint.
  func run(
    _ name: String, logger: Logger,
    _ server: @escaping @Sendable (@escaping @Sendable (Int) -> Void) async throws -> Void
  ) async throws {
    try await runUntilSignalled(
      name: name, host: host, logger: logger, gracePeriod: try gracePeriod(), adminPort: try adminPort(),
      server)
  }

  func adminPort() throws -> Int? {
    try settings.integer("admin.port", flag: options.adminPort, in: 0...65535)
  }

  func gracePeriod() throws -> Duration {
    let seconds = try settings.number("shutdown.grace", flag: options.shutdownGrace, in: 0.001...3600) ?? 20
    return .milliseconds(Int64(seconds * 1000))
  }

  func transport() throws -> HTTP2ServerTransport.Configuration {
    let port = try settings.integer("port", flag: options.port, in: 0...65535) ?? 0
    var configuration = HTTP2ServerTransport.Configuration(host: host, port: port)
    configuration.shutdownGracePeriod = try gracePeriod()
    configuration.maximumConnections =
      try settings.integer("maximum-connections", flag: options.maximumConnections, in: 1...1_000_000)!
    configuration.maximumConnectionsPerAddress =
      try settings.integer(
        "maximum-connections-per-address", flag: options.maximumConnectionsPerAddress, in: 0...1_000_000)!
    let certificate = settings.string("tls.certificate", flag: options.tlsCertificate)
    let key = settings.string("tls.key", flag: options.tlsKey)
    let clientCA = settings.string("tls.client-ca", flag: options.tlsClientCa)
    switch (certificate, key) {
    case (let certificate?, let key?):
      configuration.tls = try TLSContext.server(
        certificateChainPath: certificate, privateKeyPath: key, clientCertificateAuthorityPath: clientCA)
    case (nil, nil):
      if clientCA != nil {
        throw ConfigurationError(
          "configuration key 'tls.client-ca' needs TLS ('tls.certificate' and 'tls.key')")
      }
    default:
      throw ConfigurationError("configuration keys 'tls.certificate' and 'tls.key' go together")
    }
    return configuration
  }

  /// The process's logger at the configured level; logs the effective configuration (secrets as
  /// `<secret>`) at debug level.
  func logger(_ label: String) throws -> Logger {
    let name = settings.string("log.level", flag: options.logLevel) ?? "info"
    guard let level = Logger.Level(rawValue: name) else {
      throw settings.invalid(
        "log.level", flag: options.logLevel.map { [$0] },
        reason: "is not one of trace, debug, info, notice, warning, error, critical")
    }
    switch settings.string("log.format", flag: options.logFormat) ?? "text" {
    case "text": LoggingSystem.bootstrap(StreamLogHandler.standardError)
    case "json": LoggingSystem.bootstrap { JSONLogHandler.standardError(label: $0, metadataProvider: nil) }
    case let other:
      throw settings.invalid(
        "log.format", flag: options.logFormat.map { [$0] }, reason: "is not text or json")
    }
    var logger = Logger(label: label)
    logger.logLevel = level
    let clientVariables: Set<String> = [
      "PAYMENTS_CONFIG", "PAYMENTS_API_KEY", "PAYMENTS_COMMAND_ADDRESS", "PAYMENTS_QUERY_ADDRESS",
      "PAYMENTS_TEST_DATABASE_URL",
    ]
    let otherServices = Set(ServiceConfigurationKeys.all.flatMap { $0.keys.map(\.environmentVariable) })
    for variable in settings.unknownEnvironmentVariables(known: clientVariables.union(otherServices)) {
      logger.warning(
        "environment variable is not a configuration key of any payments service (misspelt?)",
        metadata: ["variable": "\(variable)"])
    }
    for entry in settings.summary {
      logger.debug(
        "configuration",
        metadata: ["key": "\(entry.key)", "value": "\(entry.value)", "source": "\(entry.source)"])
    }
    return logger
  }
}

extension String {
  fileprivate func trimmingCharacters(in set: Character) -> String {
    String(self.drop { $0 == set }.reversed().drop { $0 == set }.reversed())
  }
}

/// Runs a server as the one service of a `ServiceGroup` until SIGTERM or SIGINT, printing the
/// bound address on standard output.
///
/// A server that handles the graceful shutdown itself (stops taking work, finishes what is in
/// flight) gets `gracePeriod` for it; after that, and for servers that do not, the group cancels
/// it.
func runUntilSignalled(
  name: String, host: String, logger: Logger, handlesGracefulShutdown: Bool = true,
  gracePeriod: Duration = .seconds(20), adminPort: Int? = nil,
  _ body: @escaping @Sendable (@escaping @Sendable (Int) -> Void) async throws -> Void
) async throws {
  let service = SignalledServer(
    name: name, host: host, handlesGracefulShutdown: handlesGracefulShutdown, body: body)
  var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
  if let adminPort {
    // Made first: it bootstraps the metrics system before the server records anything.
    // It stops with the group; failing (a port taken) stops the group.
    services.append(
      .init(
        service: AdminServer(host: host, port: adminPort, logger: logger),
        successTerminationBehavior: .ignore,
        failureTerminationBehavior: .cancelGroup))
  }
  // When the server ends (after a graceful shutdown, or by failing), the whole group ends.
  services.append(.init(service: service, successTerminationBehavior: .gracefullyShutdownGroup))
  var configuration = ServiceGroupConfiguration(
    services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
  // The server's own grace period, then some for closing its clients (Kafka flush, pool).
  configuration.maximumGracefulShutdownDuration = gracePeriod + .seconds(10)
  configuration.maximumCancellationDuration = .seconds(10)
  try await ServiceGroup(configuration: configuration).run()
}

private struct SignalledServer: Service {
  let name: String
  let host: String
  let handlesGracefulShutdown: Bool
  let body: @Sendable (@escaping @Sendable (Int) -> Void) async throws -> Void

  func run() async throws {
    let name = self.name
    let host = self.host
    let onListening: @Sendable (Int) -> Void = { port in
      print("\(name) listening on \(host):\(port)")
      fflush(nil)
    }
    do {
      if handlesGracefulShutdown {
        try await body(onListening)
      } else {
        try await cancelWhenGracefulShutdown { try await body(onListening) }
      }
    } catch is CancellationError {
      return
    }
  }
}
