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

  @Option(
    name: [.customShort("H"), .customLong("header")],
    help: "Request metadata as 'name: value' (repeatable).")
  var headers: [String] = []

  @Option(name: .customLong("max-time"), help: "Seconds the whole operation may take.")
  var maxTime: Double?

  @Option(name: .customLong("connect-timeout"), help: "Seconds connecting may take.")
  var connectTimeout: Double = 10

  @Flag(name: .shortAndLong, help: "Show request and response headers, trailers and timing (on stderr).")
  var verbose = false

  /// The `-H` headers as metadata, with `authorization: Bearer $PAYMENTS_API_KEY` unless a `-H`
  /// sets `authorization` itself.
  func metadata(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Metadata {
    var metadata = Metadata()
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

  /// The deadline of an operation, from --max-time.
  var timeout: Duration? { maxTime.map { .milliseconds(Int64($0 * 1000)) } }

  /// A transport to `address` (`HOST:PORT`).
  func transport(to address: String) throws -> HTTP2ClientTransport {
    let (host, port) = try parseAddress(address)
    var configuration = HTTP2ClientTransport.Configuration(host: host, port: port)
    configuration.connectTimeout = .milliseconds(Int64(connectTimeout * 1000))
    configuration.userAgent = "paymentsctl/1"
    if !plaintext {
      do {
        configuration.tls = try TLSContext.client(trustedCertificatesPath: cacert)
      } catch {
        throw CtlError.other("cannot set up TLS: \(error)")
      }
    }
    var logger = Logger(label: "paymentsctl")
    logger.logLevel = .critical
    return HTTP2ClientTransport(configuration: configuration, logger: logger)
  }
}

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
