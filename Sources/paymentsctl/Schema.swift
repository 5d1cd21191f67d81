import ArgumentParser
import Foundation
import PaymentsProto
import ProtobufCodeGen
import ProtobufDynamic
import ProtobufRuntime
import RPCCore
import RPCStandardServices
import RPCTransportHTTP2

/// Where schemas come from: server reflection (the default), `.proto` files, or the embedded
/// payments contract.
struct SchemaOptions: ParsableArguments {
  @Option(name: .customLong("proto"), help: "Read schemas from this .proto file (repeatable; needs protoc).")
  var protoFiles: [String] = []

  @Option(name: .customLong("import-path"), help: "Where --proto files and their imports are (repeatable).")
  var importPaths: [String] = []

  @Option(
    name: .customLong("protoset"),
    help: "Read schemas from this FileDescriptorSet file (protoc --descriptor_set_out; repeatable).")
  var protosets: [String] = []

  @Option(
    name: .customLong("protoset-out"),
    help: "Write the schema the command used to this file, as a FileDescriptorSet.")
  var protosetOut: String?

  @Flag(help: "Use the payments contract compiled into paymentsctl instead of asking the server.")
  var embedded = false

  /// True when the schema does not need a server.
  var isOffline: Bool { embedded || !protoFiles.isEmpty || !protosets.isEmpty }

  /// The schema for `symbols` (empty: every service the server lists).
  func pool(
    server: String?, connection: ConnectionOptions, symbols: [String]
  ) async throws -> DescriptorPool {
    var files: [FileDescriptorProto]
    if !protoFiles.isEmpty || !protosets.isEmpty {
      files = try (protoFiles.isEmpty ? [] : compileProtoFiles()) + readProtosets()
      // A file may be in more than one set: keep one copy of each.
      var seen: Set<String> = []
      files = files.filter { seen.insert($0.name).inserted }
    } else if embedded {
      files = try Self.embeddedFiles()
    } else {
      guard let server else { throw ValidationError("give a server address, --proto files or --embedded") }
      let reflection = try ReflectionClient(
        transport: try await connection.dial(server), connection: connection)
      defer { reflection.close() }
      do {
        files = try await reflection.files(for: symbols)
      } catch {
        // As grpcurl: the schema could not be had, which is not the status of a call (exit 1).
        throw CtlError.other(
          "Failed to resolve \(symbols.joined(separator: ", ")): \(reflectionFailure(error))")
      }
    }
    let pool: DescriptorPool
    do {
      pool = try DescriptorPool(files: files)
    } catch {
      throw CtlError.other("the schema is incomplete: \(error)")
    }
    if let protosetOut {
      var set = FileDescriptorSet()
      set.files = files.sorted { $0.name < $1.name }
      do {
        try Data(set.serializedBytes()).write(to: URL(fileURLWithPath: protosetOut))
      } catch {
        throw CtlError.other("cannot write \(protosetOut): \(error)")
      }
    }
    return pool
  }

  /// The files of the --protoset files.
  private func readProtosets() throws -> [FileDescriptorProto] {
    try protosets.flatMap { path -> [FileDescriptorProto] in
      guard let contents = FileManager.default.contents(atPath: path) else {
        throw CtlError.other("cannot read \(path)")
      }
      do {
        return try FileDescriptorSet(serializedBytes: Array(contents)).files
      } catch {
        throw CtlError.other("\(path) is not a FileDescriptorSet: \(error)")
      }
    }
  }

  /// Runs `protoc --descriptor_set_out` on the --proto files.
  private func compileProtoFiles() throws -> [FileDescriptorProto] {
    let output = FileManager.default.temporaryDirectory.appendingPathComponent(
      "paymentsctl-\(UUID().uuidString).pb")
    defer { try? FileManager.default.removeItem(at: output) }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    let paths = importPaths.isEmpty ? ["."] : importPaths
    process.arguments =
      ["protoc", "--include_imports", "--descriptor_set_out=\(output.path)"] + paths.map { "-I\($0)" }
      + protoFiles
    let errors = Pipe()
    process.standardError = errors
    do {
      try process.run()
    } catch {
      throw CtlError.other("cannot run protoc (is protobuf-compiler installed?): \(error)")
    }
    let message = errors.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
      throw CtlError.other("protoc failed: \(String(decoding: message, as: UTF8.self))")
    }
    let set = try FileDescriptorSet(serializedBytes: Array(try Data(contentsOf: output)))
    return set.files
  }

  /// The payments contract plus the standard files (health, reflection, well-known types).
  static func embeddedFiles() throws -> [FileDescriptorProto] {
    let standard = ReflectionService.standardFiles.map { ($0.name, $0.serializedDescriptor) }
    return try (standard + PaymentsProtoFiles.all.map { ($0.name, $0.serializedDescriptor) }).map {
      try FileDescriptorProto(serializedBytes: $0.1)
    }
  }
}

/// A reflection failure in words (its status code, when it has one).
func reflectionFailure(_ error: any Error) -> String {
  switch error {
  case let error as RPCError: "\(error.code): \(error.message)"
  case CtlError.rpc(let code, let message): "\(code): \(message)"
  case CtlError.other(let message): message
  default: "\(error)"
  }
}

/// Asks a server's reflection service (v1, or v1alpha for older servers) for its schema.
final class ReflectionClient {
  private let transport: HTTP2ClientTransport
  private let client: RPCClient
  private let metadata: Metadata
  private let connection: ConnectionOptions
  private var useAlpha = false

  init(transport: HTTP2ClientTransport, connection: ConnectionOptions) throws {
    self.transport = transport
    self.client = RPCClient(transport: transport)
    self.metadata = try connection.metadata(for: .reflection)
    self.connection = connection
  }

  func close() { transport.close() }

  /// The services the server lists (reflection itself included).
  func services() async throws -> [String] {
    let response = try await ask(.with { $0.messageRequest = .listServices("") })
    guard case .listServicesResponse(let list) = response.messageResponse else {
      throw CtlError.other("the server's reflection answered list_services with something else")
    }
    return list.service.map(\.name).sorted()
  }

  /// The files that define `symbols` (all listed services when empty) and everything they import.
  func files(for symbols: [String]) async throws -> [FileDescriptorProto] {
    let wanted = symbols.isEmpty ? try await services() : symbols
    var files: [String: FileDescriptorProto] = [:]
    var missing: [String] = []
    for symbol in wanted {
      for file in try await fileDescriptors(.fileContainingSymbol(symbol), naming: symbol) {
        files[file.name] = file
      }
    }
    // Imports the server did not send along.
    repeat {
      missing = Set(files.values.flatMap(\.dependencies)).subtracting(files.keys).sorted()
      for name in missing {
        for file in try await fileDescriptors(.fileByFilename(name), naming: name) { files[file.name] = file }
        if files[name] == nil { throw CtlError.other("the server's reflection did not send \(name)") }
      }
    } while !missing.isEmpty
    return Array(files.values)
  }

  private func fileDescriptors(
    _ request: Grpc_Reflection_V1_ServerReflectionRequest.MessageRequest, naming symbol: String
  ) async throws -> [FileDescriptorProto] {
    let response = try await ask(.with { $0.messageRequest = request })
    switch response.messageResponse {
    case .fileDescriptorResponse(let files):
      return try files.fileDescriptorProto.map { try FileDescriptorProto(serializedBytes: $0) }
    case .errorResponse(let error):
      throw CtlError.rpc(
        RPCStatus.Code(rawValue: Int(error.errorCode)),
        "reflection cannot resolve '\(symbol)': \(error.errorMessage)")
    default:
      throw CtlError.other("the server's reflection gave an unexpected answer for '\(symbol)'")
    }
  }

  /// One question, one answer (v1 and v1alpha messages are the same on the wire).
  private func ask(_ request: Grpc_Reflection_V1_ServerReflectionRequest) async throws
    -> Grpc_Reflection_V1_ServerReflectionResponse
  {
    let service =
      useAlpha ? "grpc.reflection.v1alpha.ServerReflection" : "grpc.reflection.v1.ServerReflection"
    let method = RPCCore.MethodDescriptor(
      service: service, method: "ServerReflectionInfo", kind: .bidirectionalStreaming)
    do {
      return try await client.bidirectionalStreaming(
        method, metadata: metadata, options: CallOptions(timeout: connection.timeout),
        requests: { try await $0.write(request) },
        handle: { (responses: ClientResponseStream<Grpc_Reflection_V1_ServerReflectionResponse>) in
          guard let response = try await responses.next() else {
            throw CtlError.other("the server's reflection sent no answer")
          }
          return response
        })
    } catch let error as RPCError where error.code == .unimplemented && !useAlpha {
      useAlpha = true
      return try await ask(request)
    }
  }
}
