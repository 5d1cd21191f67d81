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

  @Flag(help: "Use the payments contract compiled into paymentsctl instead of asking the server.")
  var embedded = false

  /// True when the schema does not need a server.
  var isOffline: Bool { embedded || !protoFiles.isEmpty }

  /// The schema for `symbols` (empty: every service the server lists).
  func pool(
    server: String?, connection: ConnectionOptions, symbols: [String]
  ) async throws -> DescriptorPool {
    let files: [FileDescriptorProto]
    if !protoFiles.isEmpty {
      files = try compileProtoFiles()
    } else if embedded {
      files = try Self.embeddedFiles()
    } else {
      guard let server else { throw ValidationError("give a server address, --proto files or --embedded") }
      let reflection = try ReflectionClient(
        transport: try connection.transport(to: server), connection: connection)
      defer { reflection.close() }
      files = try await reflection.files(for: symbols)
    }
    do {
      return try DescriptorPool(files: files)
    } catch {
      throw CtlError.other("the schema is incomplete: \(error)")
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

/// Asks a server's reflection service (v1, or v1alpha for older servers) for its schema.
final class ReflectionClient {
  private let transport: HTTP2ClientTransport
  private let client: RPCClient
  private let metadata: Metadata
  private let timeout: Duration?
  private var useAlpha = false

  init(transport: HTTP2ClientTransport, connection: ConnectionOptions) throws {
    self.transport = transport
    self.client = RPCClient(transport: transport)
    self.metadata = try connection.metadata()
    self.timeout = connection.timeout
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
        method, metadata: metadata, options: CallOptions(timeout: timeout),
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
