import ProtobufCodeGen
import ProtobufRuntime
public import RPCCore

/// `grpc.reflection.v1.ServerReflection` and its older twin `grpc.reflection.v1alpha` (same
/// messages on the wire): lets tools such as grpcurl, Postman and `paymentsctl` discover the
/// services and fetch their schemas, from the file descriptors the code generator embeds.
public struct ReflectionService: RPCService {
  /// One `.proto` file as the generator embeds it (`<Prefix>_<File>_ProtoFile`).
  public struct File: Sendable {
    /// The file's name, e.g. `payments/v1/payment.proto`.
    public var name: String
    /// Its serialized `google.protobuf.FileDescriptorProto`.
    public var serializedDescriptor: [UInt8]

    public init(name: String, serializedDescriptor: [UInt8]) {
      self.name = name
      self.serializedDescriptor = serializedDescriptor
    }
  }

  /// Why the files given do not form a complete set.
  public struct InvalidFilesError: Error, CustomStringConvertible {
    public let description: String
  }

  private let files: [String: File]
  private let dependencies: [String: [String]]
  /// Fully qualified symbol → file name.
  private let symbols: [String: String]
  private let messageTypes: Set<String>
  private let services: [String]

  /// The files of the standard services and well-known types every server has.
  public static let standardFiles: [File] = [
    File(
      name: Grpc_Health_V1_Health_ProtoFile.name,
      serializedDescriptor: Grpc_Health_V1_Health_ProtoFile.serializedDescriptor),
    File(
      name: Grpc_Reflection_V1_Reflection_ProtoFile.name,
      serializedDescriptor: Grpc_Reflection_V1_Reflection_ProtoFile.serializedDescriptor),
    File(
      name: Grpc_Reflection_V1alpha_Reflection_ProtoFile.name,
      serializedDescriptor: Grpc_Reflection_V1alpha_Reflection_ProtoFile.serializedDescriptor),
    File(
      name: Google_Protobuf_Timestamp_ProtoFile.name,
      serializedDescriptor: Google_Protobuf_Timestamp_ProtoFile.serializedDescriptor),
    File(
      name: Google_Protobuf_Duration_ProtoFile.name,
      serializedDescriptor: Google_Protobuf_Duration_ProtoFile.serializedDescriptor),
    File(
      name: Google_Protobuf_Empty_ProtoFile.name,
      serializedDescriptor: Google_Protobuf_Empty_ProtoFile.serializedDescriptor),
    File(
      name: Google_Protobuf_Wrappers_ProtoFile.name,
      serializedDescriptor: Google_Protobuf_Wrappers_ProtoFile.serializedDescriptor),
  ]

  /// Serves `files` plus ``standardFiles``; `list_services` answers the services they declare.
  /// `dependencies` are served for what imports them, but their services are not listed (a
  /// server that uses another service's messages does not serve that service).
  ///
  /// - Throws: ``InvalidFilesError`` when a descriptor does not decode or a file imports one
  ///   that is missing (a client could not build the schema).
  public init(files: [File], dependencies dependencyFiles: [File] = []) throws {
    var byName: [String: File] = [:]
    var dependencies: [String: [String]] = [:]
    var symbols: [String: String] = [:]
    var messageTypes: Set<String> = []
    var services: [String] = []
    let listed = Set((Self.standardFiles + files).map(\.name))
    for file in Self.standardFiles + files + dependencyFiles {
      guard byName[file.name] == nil else { continue }
      let descriptor: FileDescriptorProto
      do {
        descriptor = try FileDescriptorProto(serializedBytes: file.serializedDescriptor)
      } catch {
        throw InvalidFilesError(description: "the descriptor of \(file.name) does not decode: \(error)")
      }
      byName[file.name] = file
      dependencies[file.name] = descriptor.dependencies
      let prefix = descriptor.package.isEmpty ? "" : descriptor.package + "."
      func addMessage(_ message: DescriptorProto, scope: String) {
        let name = scope + message.name
        symbols[name] = file.name
        messageTypes.insert(name)
        for nested in message.nestedTypes { addMessage(nested, scope: name + ".") }
        for enumType in message.enumTypes { symbols[name + "." + enumType.name] = file.name }
      }
      for message in descriptor.messageTypes { addMessage(message, scope: prefix) }
      for enumType in descriptor.enumTypes { symbols[prefix + enumType.name] = file.name }
      for service in descriptor.services {
        let name = prefix + service.name
        symbols[name] = file.name
        for method in service.methods { symbols[name + "." + method.name] = file.name }
        if listed.contains(file.name) { services.append(name) }
      }
    }
    for (file, imports) in dependencies {
      for dependency in imports where byName[dependency] == nil {
        throw InvalidFilesError(
          description: "\(file) imports \(dependency), which is not among the files given")
      }
    }
    self.files = byName
    self.dependencies = dependencies
    self.symbols = symbols
    self.messageTypes = messageTypes
    self.services = services.sorted()
  }

  public func register(with router: inout RPCRouter) {
    router.registerBidirectionalStreaming(Grpc_Reflection_V1_ServerReflection.Method.serverReflectionInfo) {
      requests, responses, _ in try await self.serve(requests, responses)
    }
    // v1alpha's messages are wire-identical to v1's, so the same code answers both.
    router.registerBidirectionalStreaming(
      Grpc_Reflection_V1alpha_ServerReflection.Method.serverReflectionInfo
    ) {
      requests, responses, _ in try await self.serve(requests, responses)
    }
  }

  private func serve(
    _ requests: RPCAsyncSequence<Grpc_Reflection_V1_ServerReflectionRequest>,
    _ responses: RPCWriter<Grpc_Reflection_V1_ServerReflectionResponse>
  ) async throws {
    for try await request in requests {
      var response = Grpc_Reflection_V1_ServerReflectionResponse()
      response.validHost = request.host
      response.originalRequest = request
      response.messageResponse = answer(request.messageRequest)
      try await responses.write(response)
    }
  }

  /// The answer to one reflection question.
  func answer(
    _ question: Grpc_Reflection_V1_ServerReflectionRequest.MessageRequest?
  ) -> Grpc_Reflection_V1_ServerReflectionResponse.MessageResponse {
    switch question {
    case .listServices:
      return .listServicesResponse(.with { $0.service = services.map { name in .with { $0.name = name } } })
    case .fileByFilename(let name):
      guard files[name] != nil else { return notFound("no file named '\(name)'") }
      return fileResponse(name)
    case .fileContainingSymbol(let symbol):
      guard let file = symbols[symbol] else { return notFound("no symbol named '\(symbol)'") }
      return fileResponse(file)
    case .fileContainingExtension(let request):
      return notFound(
        "no extension \(request.extensionNumber) of '\(request.containingType)' (proto3 has none)")
    case .allExtensionNumbersOfType(let type):
      guard messageTypes.contains(type) else { return notFound("no message type named '\(type)'") }
      return .allExtensionNumbersResponse(.with { $0.baseTypeName = type })
    case nil:
      return .errorResponse(
        .with {
          $0.errorCode = Int32(RPCStatus.Code.invalidArgument.rawValue)
          $0.errorMessage = "the request asks nothing"
        })
    }
  }

  /// The file and everything it imports, transitively, each once, the file first.
  private func fileResponse(_ name: String) -> Grpc_Reflection_V1_ServerReflectionResponse.MessageResponse {
    var order: [String] = []
    var seen: Set<String> = []
    var pending = [name]
    while let next = pending.popLast() {
      guard seen.insert(next).inserted else { continue }
      order.append(next)
      pending += (dependencies[next] ?? []).reversed()
    }
    return .fileDescriptorResponse(
      .with { $0.fileDescriptorProto = order.compactMap { files[$0]?.serializedDescriptor } })
  }

  private func notFound(_ message: String) -> Grpc_Reflection_V1_ServerReflectionResponse.MessageResponse {
    .errorResponse(
      .with {
        $0.errorCode = Int32(RPCStatus.Code.notFound.rawValue)
        $0.errorMessage = message
      })
  }
}
