import ArgumentParser
import Foundation
import Logging
import RPCCore
import RPCTransportHTTP2
import TLS

/// How to reach a server: TLS or plaintext, headers, timeouts, verbosity.
struct ConnectionOptions: ParsableArguments {
  @Flag(help: "Speak plaintext HTTP/2 (h2c) instead of TLS.")
  var plaintext = false

  @Option(help: "With TLS: trust the certificate authorities in this PEM file (default: the system's).")
  var cacert: String?

  @Flag(help: "With TLS: accept any server certificate (no verification; for debugging only).")
  var insecure = false

  @Option(name: .customLong("cert"), help: "With TLS: present this PEM client certificate (with --key).")
  var clientCertificate: String?

  @Option(name: .customLong("key"), help: "With TLS: the PEM private key of --cert.")
  var clientKey: String?

  @Option(
    help:
      "With TLS: the name the server's certificate must carry (default: --authority's host, else the address's)."
  )
  var servername: String?

  @Option(help: "The :authority sent with every call (default: the address).")
  var authority: String?

  @Option(
    name: [.customShort("H"), .customLong("header")],
    help: "Metadata for every call, reflection included, as 'name: value' (repeatable).")
  var headers: [String] = []

  @Option(name: .customLong("rpc-header"), help: "Metadata for the method call only (repeatable).")
  var rpcHeaders: [String] = []

  @Option(name: .customLong("reflect-header"), help: "Metadata for reflection requests only (repeatable).")
  var reflectHeaders: [String] = []

  @Option(name: .customLong("max-time"), help: "Seconds the whole operation may take (reflection included).")
  var maxTime: Double?

  @Option(
    name: .customLong("max-msg-sz"), help: "The largest response message accepted, in bytes (default 4 MiB).")
  var maxMessageSize: Int?

  @Option(
    name: .customLong("keepalive-time"),
    help:
      "Accepted for grpcurl compatibility; paymentsctl's connections live for one command, so it sends no pings."
  )
  var keepaliveTime: Double?

  @Option(name: .customLong("connect-timeout"), help: "Seconds connecting may take.")
  var connectTimeout: Double = 10

  @Flag(name: .shortAndLong, help: "Show request and response headers, trailers and timing (on stderr).")
  var verbose = false

  /// Which requests metadata is for: the method call or reflection.
  enum Purpose { case call, reflection }

  /// The `-H` headers and those for `purpose` (`--rpc-header`, `--reflect-header`) as metadata,
  /// with `authorization: Bearer $PAYMENTS_API_KEY` unless a header sets `authorization` itself.
  func metadata(
    for purpose: Purpose = .call, environment: [String: String] = ProcessInfo.processInfo.environment
  ) throws -> Metadata {
    var metadata = Metadata()
    let headers = self.headers + (purpose == .call ? rpcHeaders : reflectHeaders)
    let ownAuthorization = headers.contains {
      $0.split(separator: ":", maxSplits: 1).first?.trimmingCharacters(in: .whitespaces).lowercased()
        == "authorization"
    }
    if !ownAuthorization, let key = environment["PAYMENTS_API_KEY"], !key.isEmpty {
      metadata.addString("Bearer \(key)", forKey: "authorization")
    }
    for header in headers {
      guard let colon = header.firstIndex(of: ":") else {
        throw ValidationError("-H '\(header)': expected 'name: value'")
      }
      let name = header[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
      let value = header[header.index(after: colon)...].trimmingCharacters(in: .whitespaces)
      guard Metadata.isValidCustomKey(name) else {
        throw ValidationError("-H '\(header)': '\(name)' is not a valid header name")
      }
      if name.hasSuffix("-bin") {
        guard let bytes = Data(base64Encoded: value) else {
          throw ValidationError("-H '\(header)': a -bin header's value must be base64")
        }
        metadata.addBinary(Array(bytes), forKey: name)
      } else {
        metadata.addString(value, forKey: name)
      }
    }
    return metadata
  }

  /// What is left of --max-time, which counts from the start of the command: reflection and the
  /// call share it.
  var timeout: Duration? {
    maxTime.map { .milliseconds(Int64($0 * 1000)) - (ContinuousClock.now - commandStart) }
  }

  /// A transport to `address`, connected: a server that cannot be reached fails here, as
  /// grpcurl's "Failed to dial target host" (exit 1), not as an RPC status.
  func dial(_ address: String) async throws -> HTTP2ClientTransport {
    let transport = try transport(to: address)
    do {
      try await transport.connect()
    } catch {
      transport.close()
      throw CtlError.other(
        "Failed to dial target host \"\(address)\": \((error as? RPCError)?.message ?? "\(error)")")
    }
    return transport
  }

  /// A transport to `address` (`HOST:PORT`).
  func transport(to address: String) throws -> HTTP2ClientTransport {
    let (host, port) = try parseAddress(address)
    var configuration = HTTP2ClientTransport.Configuration(host: host, port: port)
    configuration.connectTimeout = .milliseconds(Int64(connectTimeout * 1000))
    configuration.userAgent = "paymentsctl/1"
    configuration.authority = authority
    configuration.serverName = servername
    if let maxMessageSize {
      guard maxMessageSize > 0 else { throw ValidationError("--max-msg-sz must be greater than 0") }
      configuration.maximumReceiveMessageBytes = maxMessageSize
    }
    if !plaintext {
      guard (clientCertificate == nil) == (clientKey == nil) else {
        throw ValidationError("--cert and --key go together")
      }
      do {
        configuration.tls = try TLSContext.client(
          trustedCertificatesPath: cacert, certificateChainPath: clientCertificate, privateKeyPath: clientKey,
          verifyingServer: !insecure)
      } catch {
        throw CtlError.other("cannot set up TLS: \(error)")
      }
    }
    var logger = Logger(label: "paymentsctl")
    logger.logLevel = .critical
    return HTTP2ClientTransport(configuration: configuration, logger: logger)
  }
}

/// When the command started (--max-time counts from here); set first thing in `main`.
nonisolated(unsafe) var commandStart = ContinuousClock.now

/// Splits `HOST:PORT` (the host may be a bracketed IPv6 address).
func parseAddress(_ address: String) throws -> (String, Int) {
  guard let colon = address.lastIndex(of: ":"), colon != address.startIndex,
    let port = Int(address[address.index(after: colon)...]), (1...65535).contains(port)
  else { throw ValidationError("'\(address)' is not an address like 127.0.0.1:50051") }
  var host = String(address[..<colon])
  if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
  return (host, port)
}

/// True for `HOST:PORT`, which no protobuf symbol looks like.
func looksLikeAddress(_ text: String) -> Bool {
  guard let colon = text.lastIndex(of: ":") else { return false }
  return Int(text[text.index(after: colon)...]) != nil
}

/// How paymentsctl fails: a gRPC status (exit 64 + code) or anything else (exit 1).
enum CtlError: Error {
  case rpc(RPCStatus.Code, String)
  case other(String)
}

/// Prints the error as `CODE: message` (or its text) on stderr and exits with the status that
/// goes with it.
func exitReporting(_ error: any Error) -> ExitCode {
  let line: String
  let code: Int32
  switch error {
  case CtlError.rpc(let status, let message):
    line = "\(status): \(message)"
    code = 64 + Int32(status.rawValue)
  case let error as RPCError:
    line = "\(error.code): \(error.message)"
    code = 64 + Int32(error.code.rawValue)
  case CtlError.other(let message):
    line = message
    code = 1
  default:
    line = "\(error)"
    code = 1
  }
  FileHandle.standardError.write(Data((line + "\n").utf8))
  return ExitCode(code)
}

/// Runs `body`; errors become the exit status (ArgumentParser's own errors pass through).
func reportingErrors(_ body: () async throws -> Void) async throws {
  do {
    try await body()
  } catch let error as ValidationError {
    throw error
  } catch let error as ExitCode {
    throw error
  } catch {
    throw exitReporting(error)
  }
}

/// Writes to stderr.
func printError(_ text: String) {
  FileHandle.standardError.write(Data((text + "\n").utf8))
}
