// Renders each `service` of a file: method descriptors, the protocol a server implements and a
// typed client, all standing on RPCCore.

extension FileRenderer {
  struct MethodPlan {
    let protoName: String
    let swiftName: String
    let kind: String
    let input: String
    let output: String
    let comment: String
    let clientStreaming: Bool
    let serverStreaming: Bool
  }

  func methodPlans(_ service: ServiceDescriptorProto, serviceIndex: Int) throws -> [MethodPlan] {
    try service.methods.enumerated().map { index, method in
      let kind =
        switch (method.clientStreaming, method.serverStreaming) {
        case (false, false): "unary"
        case (false, true): "serverStreaming"
        case (true, false): "clientStreaming"
        case (true, true): "bidirectionalStreaming"
        }
      return MethodPlan(
        protoName: method.name, swiftName: SwiftNaming.escape(SwiftNaming.lowerCamel(method.name)),
        kind: kind,
        input: try symbols.symbol(method.inputType).swiftName,
        output: try symbols.symbol(method.outputType).swiftName,
        comment: comment([6, Int32(serviceIndex), 2, Int32(index)], indent: "    "),
        clientStreaming: method.clientStreaming, serverStreaming: method.serverStreaming)
    }
  }

  mutating func renderService(_ service: ServiceDescriptorProto, index: Int) throws {
    let fullName = (file.package.isEmpty ? "" : file.package + ".") + service.name
    let typeName = prefix + SwiftNaming.upperCamel(service.name)
    let methods = try methodPlans(service, serviceIndex: index)
    let v = visibility
    output += comment([6, Int32(index)], indent: "")
    line("///")
    line("/// The service `\(fullName)`: its method descriptors, the protocol a server implements")
    line("/// (``ServiceProtocol``) and a typed ``Client``.")
    line("\(v) enum \(typeName) {")
    line("  /// The fully qualified service name.")
    line("  \(v) static let serviceName = \(SwiftNaming.stringLiteral(fullName))")
    line()
    line("  /// The service's methods.")
    line("  \(v) enum Method {")
    for method in methods {
      output += method.comment
      line(
        "    \(v) static let \(method.swiftName) = MethodDescriptor(service: serviceName, method: \(SwiftNaming.stringLiteral(method.protoName)), kind: .\(method.kind))"
      )
    }
    line("  }")
    line()
    line("  /// Every method, in declaration order.")
    line(
      "  \(v) static let methods: [MethodDescriptor] = [\(methods.map { "Method.\($0.swiftName)" }.joined(separator: ", "))]"
    )
    line()
    line("  /// What a server of `\(fullName)` implements; conforming types are ``RPCService``s.")
    line("  \(v) protocol ServiceProtocol: RPCService {")
    for method in methods {
      output += method.comment
      line(
        "    func \(method.swiftName)(\(serverParameters(method))) async throws\(method.serverStreaming ? "" : " -> \(method.output)")"
      )
    }
    line("  }")
    line()
    line("  /// A typed client of `\(fullName)`.")
    line("  \(v) struct Client: Sendable {")
    line("    /// The client calls go through.")
    line("    \(v) let rpcClient: RPCClient")
    line()
    line("    \(v) init(_ rpcClient: RPCClient) { self.rpcClient = rpcClient }")
    for method in methods {
      line()
      output += method.comment
      renderClientMethod(method)
    }
    line("  }")
    line("}")
    line()
    line("extension \(typeName).ServiceProtocol {")
    line("  /// Registers every method of `\(fullName)`.")
    line("  \(v) func register(with router: inout RPCRouter) {")
    for method in methods {
      let register = "router.register\(method.kind.prefix(1).uppercased() + method.kind.dropFirst())"
      let call =
        switch (method.clientStreaming, method.serverStreaming) {
        case (false, false), (true, false): "try await self.\(method.swiftName)($0, context: $1)"
        case (false, true), (true, true): "try await self.\(method.swiftName)($0, responses: $1, context: $2)"
        }
      line("    \(register)(\(typeName).Method.\(method.swiftName)) { \(call) }")
    }
    line("  }")
    line("}")
  }

  func serverParameters(_ method: MethodPlan) -> String {
    let requests =
      method.clientStreaming ? "_ requests: RPCAsyncSequence<\(method.input)>" : "_ request: \(method.input)"
    let responses = method.serverStreaming ? ", responses: RPCWriter<\(method.output)>" : ""
    return requests + responses + ", context: ServerContext"
  }

  mutating func renderClientMethod(_ method: MethodPlan) {
    let v = visibility
    let common = "metadata: Metadata = [], options: CallOptions = .defaults"
    let requestWriter = "requests: @escaping @Sendable (RPCWriter<\(method.input)>) async throws -> Void"
    let handler =
      "handle: @escaping @Sendable (ClientResponseStream<\(method.output)>) async throws -> Result"
    let descriptor = "Method.\(method.swiftName)"
    switch (method.clientStreaming, method.serverStreaming) {
    case (false, false):
      line(
        "    \(v) func \(method.swiftName)(_ request: \(method.input), \(common)) async throws -> \(method.output) {"
      )
      line(
        "      try await rpcClient.unary(\(descriptor), request: request, metadata: metadata, options: options).message"
      )
    case (false, true):
      line("    \(v) func \(method.swiftName)<Result: Sendable>(")
      line("      _ request: \(method.input), \(common),")
      line("      \(handler)")
      line("    ) async throws -> Result {")
      line(
        "      try await rpcClient.serverStreaming(\(descriptor), request: request, metadata: metadata, options: options, handle: handle)"
      )
    case (true, false):
      line("    \(v) func \(method.swiftName)(")
      line("      \(common),")
      line("      \(requestWriter)")
      line("    ) async throws -> \(method.output) {")
      line(
        "      try await rpcClient.clientStreaming(\(descriptor), metadata: metadata, options: options, requests: requests).message"
      )
    case (true, true):
      line("    \(v) func \(method.swiftName)<Result: Sendable>(")
      line("      \(common),")
      line("      \(requestWriter),")
      line("      \(handler)")
      line("    ) async throws -> Result {")
      line(
        "      try await rpcClient.bidirectionalStreaming(\(descriptor), metadata: metadata, options: options, requests: requests, handle: handle)"
      )
    }
    line("    }")
  }
}
