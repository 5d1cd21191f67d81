import ArgumentParser
import Foundation
import ProtobufDynamic
import ProtobufRuntime
import RPCCore
import RPCTransportHTTP2

/// `paymentsctl list [HOST:PORT] [SERVICE]`.
struct ListCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "list", abstract: "List the server's services, or a service's methods.")

  @Argument(help: "HOST:PORT (not needed with --proto or --embedded), then optionally a service.")
  var arguments: [String] = []

  @OptionGroup var connection: ConnectionOptions
  @OptionGroup var schema: SchemaOptions

  func run() async throws {
    try await reportingErrors {
      let (server, rest) = try splitServer(arguments, schema: schema)
      guard rest.count <= 1 else { throw ValidationError("list takes at most one service") }
      if let service = rest.first {
        let pool = try await schema.pool(server: server, connection: connection, symbols: [service])
        guard let described = pool.service(service) else {
          throw CtlError.other("'\(service)' is not a service")
        }
        for method in described.methods { print("\(service).\(method.name)") }
      } else if schema.isOffline {
        let pool = try await schema.pool(server: server, connection: connection, symbols: [])
        for service in pool.services { print(service.fullName) }
      } else {
        let reflection = try ReflectionClient(
          transport: try await connection.dial(server!), connection: connection)
        defer { reflection.close() }
        let services: [String]
        do {
          services = try await reflection.services()
        } catch {
          throw CtlError.other("Failed to list services: \(reflectionFailure(error))")
        }
        for service in services { print(service) }
      }
    }
  }
}

/// `paymentsctl describe [HOST:PORT] SYMBOL`.
struct DescribeCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "describe", abstract: "Describe a service, method, message or enum (or every service).")

  @Argument(
    help:
      "HOST:PORT (not needed with --proto, --protoset or --embedded), then a fully qualified symbol (none: every service)."
  )
  var arguments: [String] = []

  @OptionGroup var connection: ConnectionOptions
  @OptionGroup var schema: SchemaOptions

  func run() async throws {
    try await reportingErrors {
      let (server, rest) = try splitServer(arguments, schema: schema)
      guard rest.count <= 1 else { throw ValidationError("describe takes at most one symbol") }
      guard let symbol = rest.first else {
        // No symbol: every service, as grpcurl does.
        let pool = try await schema.pool(server: server, connection: connection, symbols: [])
        do {
          print(try pool.services.map { try pool.describe($0.fullName) }.joined(separator: "\n"))
        } catch {
          throw CtlError.other("\(error)")
        }
        return
      }
      // A method's file is its service's.
      let lookup = symbol.split(separator: "/").first.map(String.init) ?? symbol
      let pool = try await schema.pool(server: server, connection: connection, symbols: [lookup])
      do {
        print(try pool.describe(symbol.replacingOccurrences(of: "/", with: ".")))
      } catch {
        throw CtlError.other("\(error)")
      }
    }
  }
}

/// `paymentsctl call HOST:PORT SERVICE/METHOD [-d JSON]`.
struct CallCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "call",
    abstract: "Call a method with JSON requests; print each response as JSON.",
    discussion: """
      -d takes the request as JSON, @FILE to read it from a file or @- from standard input.
      Client-streaming and bidirectional methods take several JSON objects, one after the other.
      Without -d the request is empty ({}).
      """)

  @Argument(help: "The server, HOST:PORT.")
  var server: String

  @Argument(help: "The method, as package.Service/Method (or package.Service.Method).")
  var method: String

  @Option(
    name: [.customShort("d"), .customLong("data")], help: "Request JSON, @FILE, or @ / @- for standard input."
  )
  var data: String?

  @Flag(name: .customLong("emit-defaults"), help: "Print fields that have their default value too.")
  var emitDefaults = false

  @Flag(
    name: .customLong("allow-unknown-fields"),
    help: "Skip request JSON fields (and enum names) the schema does not know instead of failing.")
  var allowUnknownFields = false

  @Option(help: "Request and response format: json (the only one paymentsctl speaks so far).")
  var format = "json"

  @Flag(
    name: .customLong("format-error"),
    help: "On an RPC error, print its status as JSON ({\"code\", \"message\"}) on standard error.")
  var formatError = false

  @OptionGroup var connection: ConnectionOptions
  @OptionGroup var schema: SchemaOptions

  func validate() throws {
    guard format == "json" else {
      throw ValidationError(
        "--format \(format): paymentsctl reads and writes JSON only (text format is not supported yet)")
    }
  }

  func run() async throws {
    try await reportingErrors {
      do {
        try await call()
      } catch let error as RPCError where formatError {
        printStatusJSON(error.code, error.message)
        throw ExitCode(64 + Int32(error.code.rawValue))
      }
    }
  }

  /// grpcurl's -format-error: the status as JSON (instead of `CODE: message`) on standard error.
  private func printStatusJSON(_ code: RPCStatus.Code, _ message: String) {
    var escaped = ""
    for scalar in message.unicodeScalars {
      switch scalar {
      case "\"": escaped += "\\\""
      case "\\": escaped += "\\\\"
      case "\n": escaped += "\\n"
      case _ where scalar.value < 0x20: escaped += String(format: "\\u%04x", scalar.value)
      default: escaped.unicodeScalars.append(scalar)
      }
    }
    // grpcurl ends it without a newline.
    FileHandle.standardError.write(
      Data("{\n  \"code\": \(code.rawValue),\n  \"message\": \"\(escaped)\"\n}".utf8))
  }

  private func call() async throws {
    let methodName = method.replacingOccurrences(of: "/", with: ".")
    guard let dot = methodName.lastIndex(of: ".") else {
      throw ValidationError("'\(method)' is not a method like package.Service/Method")
    }
    let serviceName = String(methodName[..<dot])
    let pool = try await schema.pool(server: server, connection: connection, symbols: [serviceName])
    guard let described = pool.method(methodName) else {
      throw CtlError.other("'\(method)' is not a method of the server's schema")
    }
    // As grpcurl: a request that cannot be read or does not fit the schema is the tool's error
    // (exit 1), before anything is sent.
    let requests: [[UInt8]]
    do {
      let documents = try splitJSONDocuments(try readInput())
      requests = try (documents.isEmpty ? ["{}"] : documents).map {
        try pool.decodeJSON($0, as: described.inputType, ignoringUnknownFields: allowUnknownFields)
      }
      if !described.isClientStreaming, requests.count != 1 {
        throw CtlError.other("\(methodName) takes exactly one request message (got \(requests.count))")
      }
    } catch {
      throw CtlError.other(
        "Error invoking method \"\(method)\": error getting request data: \(reflectionFailure(error))")
    }
    let metadata = try connection.metadata()
    let kind: RPCCore.MethodDescriptor.Kind =
      switch (described.isClientStreaming, described.isServerStreaming) {
      case (false, false): .unary
      case (false, true): .serverStreaming
      case (true, false): .clientStreaming
      case (true, true): .bidirectionalStreaming
      }
    let descriptor = RPCCore.MethodDescriptor(
      service: serviceName, method: String(methodName[methodName.index(after: dot)...]), kind: kind)
    let transport = try await connection.dial(server)
    defer { transport.close() }
    let client = RPCClient(transport: transport)
    let verbose = connection.verbose
    let emitDefaults = emitDefaults
    if verbose {
      printError("method: \(descriptor.path) (\(kind))")
      for entry in metadata { printError("request metadata: \(entry.key): \(entry.value)") }
    }
    let start = ContinuousClock.now
    let outputType = described.outputType
    let received = Counter()
    do {
      try await client.bidirectionalStreaming(
        descriptor, metadata: metadata, options: CallOptions(timeout: connection.timeout),
        requests: { writer in
          for request in requests { try await writer.write(RawMessage(bytes: request)) }
        },
        handle: { (responses: ClientResponseStream<RawMessage>) in
          var printedHeaders = false
          while let response = try await responses.next() {
            if verbose, !printedHeaders {
              printedHeaders = true
              for entry in responses.headers { printError("response header: \(entry.key): \(entry.value)") }
            }
            received.increment()
            let json = try pool.encodeJSON(
              response.unknownFields.data, as: outputType, emitDefaults: emitDefaults, prettyPrinted: true)
            print(json)
            fflush(nil)
          }
          if verbose {
            for entry in responses.trailers { printError("response trailer: \(entry.key): \(entry.value)") }
          }
        })
      if verbose {
        printError(
          "sent \(requests.count) request(s), received \(received.value) response(s) in \(ContinuousClock.now - start); status OK"
        )
      }
    } catch let error as RPCError {
      if verbose {
        for entry in error.metadata { printError("response trailer: \(entry.key): \(entry.value)") }
        printError(
          "sent \(requests.count) request(s), received \(received.value) response(s) in \(ContinuousClock.now - start)"
        )
      }
      throw error
    }
  }

  private func readInput() throws -> String {
    guard let data else { return "" }
    if data == "@-" || data == "@" {  // `-d @` is grpcurl's spelling of standard input
      return String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
    }
    if data.hasPrefix("@") {
      let path = String(data.dropFirst())
      guard let contents = FileManager.default.contents(atPath: path) else {
        throw CtlError.other("cannot read \(path)")
      }
      return String(decoding: contents, as: UTF8.self)
    }
    return data
  }
}

/// The server address (first argument, when it is `HOST:PORT`) and the rest.
func splitServer(_ arguments: [String], schema: SchemaOptions) throws -> (String?, [String]) {
  if let first = arguments.first, looksLikeAddress(first) { return (first, Array(arguments.dropFirst())) }
  guard schema.isOffline else { throw ValidationError("the first argument must be the server, HOST:PORT") }
  return (nil, arguments)
}

/// Counts responses across the call's tasks.
final class Counter: @unchecked Sendable {
  private let lock = NSLock()
  private var count = 0
  func increment() { lock.withLock { count += 1 } }
  var value: Int { lock.withLock { count } }
}

/// A message kept as its encoded bytes (the schema lives in a ``DescriptorPool``).
struct RawMessage: ProtobufMessage {
  static let protoMessageName = "paymentsctl.Raw"
  var unknownFields = UnknownFields()
  init() {}
  init(bytes: [UInt8]) { unknownFields.data = bytes }
  mutating func decodeField(_ field: Int, _ wireType: WireType, from decoder: inout ProtobufDecoder) throws {
    try decoder.skipField(field, wireType, keepingIn: &unknownFields)
  }
  func encode(to encoder: inout ProtobufEncoder) { encoder.writeUnknownFields(unknownFields) }
}

/// Splits concatenated JSON values (`{…} {…}`) into one text each.
func splitJSONDocuments(_ text: String) throws -> [String] {
  var documents: [String] = []
  var depth = 0
  var inString = false
  var escaped = false
  var start: String.Index?
  var index = text.startIndex
  while index < text.endIndex {
    let character = text[index]
    if inString {
      if escaped {
        escaped = false
      } else if character == "\\" {
        escaped = true
      } else if character == "\"" {
        inString = false
      }
    } else if character == "\"" {
      inString = true
      if start == nil { start = index }
    } else if character == "{" || character == "[" {
      if start == nil { start = index }
      depth += 1
    } else if character == "}" || character == "]" {
      depth -= 1
      if depth < 0 { throw CtlError.other("unbalanced '\(character)'") }
      if depth == 0, let begin = start {
        documents.append(String(text[begin...index]))
        start = nil
      }
    } else if !character.isWhitespace, start == nil {
      throw CtlError.other("expected an object, found '\(character)'")
    }
    index = text.index(after: index)
  }
  if start != nil || depth != 0 {
    throw CtlError.other("it ends too early")
  }
  return documents
}
