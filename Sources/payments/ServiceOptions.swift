import ArgumentParser
import Glibc
import Kafka
import Logging
import RPCTransportHTTP2
import ServiceLifecycle
import TLS
import UnixSignals

/// Options every service shares: where to listen, the database, Kafka, TLS.
struct ServiceOptions: ParsableArguments {
  @Option(help: "Address to listen on.")
  var host: String = "0.0.0.0"

  @Option(help: "Port to listen on (0 picks a free port; the bound port is printed).")
  var port: Int?

  @Option(
    name: .customLong("database-url"),
    help: "PostgreSQL connection string (URL or key=value). Default: $PAYMENTS_DATABASE_URL.")
  var databaseURL: String?

  @Option(
    name: .customLong("kafka-brokers"),
    help: "Kafka bootstrap servers, comma-separated. Default: $PAYMENTS_KAFKA_BROKERS.")
  var kafkaBrokers: String?

  @Option(help: "PEM certificate chain for TLS (with --tls-key); plaintext h2c without it.")
  var tlsCertificate: String?

  @Option(help: "PEM private key for TLS.")
  var tlsKey: String?

  @Option(
    help:
      "Seconds a graceful shutdown (SIGTERM) gives running calls and payments in hand to finish.")
  var shutdownGrace: Double = 20

  @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
  var logLevel: String = ProcessInfoEnvironment.value("PAYMENTS_LOG_LEVEL") ?? "info"

  func database() throws -> String {
    guard let url = databaseURL ?? ProcessInfoEnvironment.value("PAYMENTS_DATABASE_URL") else {
      throw ValidationError("no database: pass --database-url or set PAYMENTS_DATABASE_URL")
    }
    return url
  }

  func brokers() throws -> [String] {
    guard let list = kafkaBrokers ?? ProcessInfoEnvironment.value("PAYMENTS_KAFKA_BROKERS"), !list.isEmpty
    else {
      throw ValidationError("no Kafka: pass --kafka-brokers or set PAYMENTS_KAFKA_BROKERS")
    }
    return list.split(separator: ",").map { String($0).trimmingCharacters(in: " ") }
  }

  func transport(defaultPort: Int) throws -> HTTP2ServerTransport.Configuration {
    let port = self.port ?? defaultPort
    guard (0...65535).contains(port) else { throw ValidationError("--port \(port) is not a port number") }
    var configuration = HTTP2ServerTransport.Configuration(host: host, port: port)
    configuration.shutdownGracePeriod = try gracePeriod()
    switch (tlsCertificate, tlsKey) {
    case (let certificate?, let key?):
      configuration.tls = try TLSContext.server(certificateChainPath: certificate, privateKeyPath: key)
    case (nil, nil):
      break
    default:
      throw ValidationError("--tls-certificate and --tls-key go together")
    }
    return configuration
  }

  func gracePeriod() throws -> Duration {
    guard shutdownGrace > 0, shutdownGrace <= 3600 else {
      throw ValidationError("--shutdown-grace \(shutdownGrace) must be between 0 and 3600 seconds")
    }
    return .milliseconds(Int64(shutdownGrace * 1000))
  }

  func logger(_ label: String) throws -> Logger {
    guard let level = Logger.Level(rawValue: logLevel) else {
      throw ValidationError(
        "--log-level '\(logLevel)' is not one of trace, debug, info, notice, warning, error, critical")
    }
    LoggingSystem.bootstrap(StreamLogHandler.standardError)
    var logger = Logger(label: label)
    logger.logLevel = level
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
  gracePeriod: Duration = .seconds(20),
  _ body: @escaping @Sendable (@escaping @Sendable (Int) -> Void) async throws -> Void
) async throws {
  let service = SignalledServer(
    name: name, host: host, handlesGracefulShutdown: handlesGracefulShutdown, body: body)
  var configuration = ServiceGroupConfiguration(
    services: [.init(service: service)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
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
