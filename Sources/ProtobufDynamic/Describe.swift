import ProtobufCodeGen

extension DescriptorPool {
  /// A `.proto`-like rendering of a service, method, message or enum, after a line that says
  /// what the symbol is — as `grpcurl describe` prints it:
  ///
  /// ```
  /// payments.v1.PaymentCommandService is a service:
  /// // Accepts payment orders. ...
  /// service PaymentCommandService {
  ///   rpc SubmitPayment ( .payments.v1.SubmitPaymentRequest ) returns ( .payments.v1.SubmitPaymentResponse );
  /// }
  /// ```
  ///
  /// Comments are included when the files carry source info (`protoc --include_source_info`,
  /// or server reflection that kept it). Messages show labels, types (`.`-qualified), numbers,
  /// oneofs, `map<K, V>` fields and their nested types.
  ///
  /// - Parameter symbol: A fully qualified name; methods as `package.Service.Method` or
  ///   `package.Service/Method`.
  /// - Throws: ``ProtobufDynamicError`` (``ProtobufDynamicError/Code/unknownSymbol``).
  public func describe(_ symbol: String) throws(ProtobufDynamicError) -> String {
    let name = Self.withoutLeadingDot(symbol)
    var writer = ProtoSourceWriter(pool: self)
    if let service = service(name) {
      writer.lines.append("\(service.fullName) is a service:")
      writer.write(service)
    } else if let message = message(name) {
      writer.lines.append("\(message.fullName) is a message:")
      writer.write(message, indent: "")
    } else if let enumType = enumType(name) {
      writer.lines.append("\(enumType.fullName) is an enum:")
      writer.write(enumType, indent: "")
    } else if let method = method(name) {
      writer.lines.append("\(method.fullName) is a method:")
      writer.comments(fileName: service(method.serviceName)?.fileName, method.sourcePath, indent: "")
      writer.lines.append(ProtoSourceWriter.rpc(method))
    } else {
      throw ProtobufDynamicError(.unknownSymbol, "symbol \"\(symbol)\" is not in the descriptor pool")
    }
    return writer.lines.joined(separator: "\n") + "\n"
  }
}

/// Renders descriptors as `.proto` source.
struct ProtoSourceWriter {
  let pool: DescriptorPool
  var lines: [String] = []

  init(pool: DescriptorPool) { self.pool = pool }

  /// The leading comment of the element at `path` of file `fileName`, as `//` lines.
  mutating func comments(fileName: String?, _ path: [Int32], indent: String) {
    guard let fileName, let info = pool.file(named: fileName)?.sourceCodeInfo,
      var comment = info.comment(at: path)
    else { return }
    while comment.hasSuffix("\n") { comment.removeLast() }
    for line in comment.split(separator: "\n", omittingEmptySubsequences: false) {
      lines.append(indent + "//" + line)
    }
  }

  static func rpc(_ method: MethodDescriptor) -> String {
    let input = (method.isClientStreaming ? "stream ." : ".") + method.inputType
    let output = (method.isServerStreaming ? "stream ." : ".") + method.outputType
    return "rpc \(method.name) ( \(input) ) returns ( \(output) );"
  }

  mutating func write(_ service: ServiceDescriptor) {
    comments(fileName: service.fileName, service.sourcePath, indent: "")
    lines.append("service \(service.name) {")
    for method in service.methods {
      comments(fileName: service.fileName, method.sourcePath, indent: "  ")
      lines.append("  " + Self.rpc(method))
    }
    lines.append("}")
  }

  mutating func write(_ message: MessageDescriptor, indent: String) {
    comments(fileName: message.fileName, message.sourcePath, indent: indent)
    lines.append("\(indent)message \(message.name) {")
    var writtenOneofs = Set<Int>()
    for (position, field) in message.fields.enumerated() {
      guard let oneofIndex = field.oneofIndex, !message.oneofs[oneofIndex].isSynthetic else {
        write(field, at: position, of: message, indent: indent + "  ", inOneof: false)
        continue
      }
      guard writtenOneofs.insert(oneofIndex).inserted else { continue }
      comments(
        fileName: message.fileName, message.sourcePath + [8, Int32(oneofIndex)], indent: indent + "  ")
      lines.append("\(indent)  oneof \(message.oneofs[oneofIndex].name) {")
      for (memberPosition, member) in message.fields.enumerated() where member.oneofIndex == oneofIndex {
        write(member, at: memberPosition, of: message, indent: indent + "    ", inOneof: true)
      }
      lines.append("\(indent)  }")
    }
    for nested in message.proto.nestedTypes where !nested.isMapEntry {
      if let nestedType = pool.message(message.fullName + "." + nested.name) {
        write(nestedType, indent: indent + "  ")
      }
    }
    for nested in message.proto.enumTypes {
      if let nestedType = pool.enumType(message.fullName + "." + nested.name) {
        write(nestedType, indent: indent + "  ")
      }
    }
    lines.append("\(indent)}")
  }

  private mutating func write(
    _ field: FieldDescriptor, at position: Int, of message: MessageDescriptor, indent: String, inOneof: Bool
  ) {
    comments(fileName: message.fileName, message.sourcePath + [2, Int32(position)], indent: indent)
    let label: String
    if field.isMap || inOneof {
      label = ""
    } else if field.isRepeated {
      label = "repeated "
    } else if field.isRequired {
      label = "required "
    } else if field.isProto3Optional || message.syntax == .proto2 {
      label = "optional "
    } else {
      label = ""
    }
    var options: [String] = []
    if let packed = field.explicitPacked { options.append("packed = \(packed)") }
    if field.jsonName != defaultJSONName(field.name) { options.append("json_name = \"\(field.jsonName)\"") }
    let suffix = options.isEmpty ? "" : " [\(options.joined(separator: ", "))]"
    lines.append("\(indent)\(label)\(typeText(field)) \(field.name) = \(field.number)\(suffix);")
  }

  private func typeText(_ field: FieldDescriptor) -> String {
    if field.isMap, let entry = pool.message(field.typeName ?? ""), let key = entry.field(number: 1),
      let value = entry.field(number: 2)
    {
      return "map<\(typeText(key)), \(typeText(value))>"
    }
    if let keyword = field.type.keyword { return keyword }
    return "." + (field.typeName ?? "")
  }

  mutating func write(_ enumType: EnumDescriptor, indent: String) {
    comments(fileName: enumType.fileName, enumType.sourcePath, indent: indent)
    lines.append("\(indent)enum \(enumType.name) {")
    for (position, value) in enumType.values.enumerated() {
      comments(
        fileName: enumType.fileName, enumType.sourcePath + [2, Int32(position)], indent: indent + "  ")
      lines.append("\(indent)  \(value.name) = \(value.number);")
    }
    lines.append("\(indent)}")
  }
}
