import ProtobufCodeGen
import ProtobufRuntime

/// Builds a ``DescriptorPool``: registers every symbol of every file, then resolves every type
/// reference, failing with the name of the first one that does not resolve.
struct PoolBuilder {
  private(set) var files: [FileDescriptorProto] = []
  private(set) var messages: [String: MessageDescriptor] = [:]
  private(set) var enums: [String: EnumDescriptor] = [:]
  private(set) var services: [String: ServiceDescriptor] = [:]
  private(set) var symbolFiles: [String: Int] = [:]

  private struct PendingMessage {
    let fullName: String
    let fileIndex: Int
    let proto: DescriptorProto
    let sourcePath: [Int32]
  }

  private var pending: [PendingMessage] = []
  /// Message types by full name (for map entries and for telling messages from enums).
  private var messageProtos: [String: DescriptorProto] = [:]

  mutating func build(_ input: [FileDescriptorProto]) throws(ProtobufDynamicError) {
    var names = Set<String>()
    for file in input where names.insert(file.name).inserted { files.append(file) }
    for (fileIndex, file) in files.enumerated() {
      for (position, message) in file.messageTypes.enumerated() {
        try registerMessage(message, scope: file.package, fileIndex: fileIndex, path: [4, Int32(position)])
      }
      for (position, enumType) in file.enumTypes.enumerated() {
        try registerEnum(enumType, scope: file.package, fileIndex: fileIndex, path: [5, Int32(position)])
      }
      for service in file.services {
        try declare(Self.qualified(file.package, service.name), fileIndex: fileIndex)
      }
    }
    for message in pending { messages[message.fullName] = try resolve(message) }
    for (fileIndex, file) in files.enumerated() {
      for (position, service) in file.services.enumerated() {
        let resolved = try resolve(service, package: file.package, fileIndex: fileIndex, position: position)
        services[resolved.fullName] = resolved
        for method in resolved.methods { try declare(method.fullName, fileIndex: fileIndex) }
      }
    }
  }

  static func qualified(_ scope: String, _ name: String) -> String {
    scope.isEmpty ? name : scope + "." + name
  }

  // MARK: - Registration

  private mutating func declare(_ fullName: String, fileIndex: Int) throws(ProtobufDynamicError) {
    if let other = symbolFiles[fullName] {
      throw ProtobufDynamicError(
        .invalidDescriptor,
        "\(fullName) is defined twice (in \(files[other].name) and \(files[fileIndex].name))")
    }
    symbolFiles[fullName] = fileIndex
  }

  private mutating func registerMessage(
    _ message: DescriptorProto, scope: String, fileIndex: Int, path: [Int32]
  ) throws(ProtobufDynamicError) {
    guard !message.name.isEmpty else {
      throw ProtobufDynamicError(.invalidDescriptor, "a message in \(files[fileIndex].name) has no name")
    }
    let fullName = Self.qualified(scope, message.name)
    try declare(fullName, fileIndex: fileIndex)
    messageProtos[fullName] = message
    pending.append(PendingMessage(fullName: fullName, fileIndex: fileIndex, proto: message, sourcePath: path))
    for (position, nested) in message.nestedTypes.enumerated() {
      try registerMessage(nested, scope: fullName, fileIndex: fileIndex, path: path + [3, Int32(position)])
    }
    for (position, enumType) in message.enumTypes.enumerated() {
      try registerEnum(enumType, scope: fullName, fileIndex: fileIndex, path: path + [4, Int32(position)])
    }
  }

  private mutating func registerEnum(
    _ enumType: EnumDescriptorProto, scope: String, fileIndex: Int, path: [Int32]
  ) throws(ProtobufDynamicError) {
    guard !enumType.name.isEmpty else {
      throw ProtobufDynamicError(.invalidDescriptor, "an enum in \(files[fileIndex].name) has no name")
    }
    let fullName = Self.qualified(scope, enumType.name)
    try declare(fullName, fileIndex: fileIndex)
    let file = files[fileIndex]
    enums[fullName] = EnumDescriptor(
      fullName: fullName, fileName: file.name, proto: enumType, isClosed: Syntax(file.syntax) == .proto2,
      sourcePath: path)
  }

  // MARK: - Resolution

  /// The full name `name` refers to from inside `scope`: `.a.b.C` is absolute; `C` or `b.C` is
  /// looked up in `scope`, then in each enclosing scope.
  private func resolveTypeName(_ name: String, scope: String) -> String? {
    if name.hasPrefix(".") {
      let absolute = String(name.dropFirst())
      return messageProtos[absolute] != nil || enums[absolute] != nil ? absolute : nil
    }
    var scope = Substring(scope)
    while true {
      let candidate = scope.isEmpty ? name : scope + "." + name
      if messageProtos[candidate] != nil || enums[candidate] != nil { return candidate }
      guard !scope.isEmpty else { return nil }
      scope = scope.lastIndex(of: ".").map { scope[..<$0] } ?? ""
    }
  }

  private func resolve(_ message: PendingMessage) throws(ProtobufDynamicError) -> MessageDescriptor {
    let syntax = Syntax(files[message.fileIndex].syntax)
    var fields: [FieldDescriptor] = []
    var numbers = Set<Int>()
    for field in message.proto.fields {
      let location = message.fullName + "." + field.name
      func fail(_ text: String) -> ProtobufDynamicError {
        ProtobufDynamicError(.invalidDescriptor, path: location, text)
      }
      let number = Int(field.number)
      guard !field.name.isEmpty else { throw fail("a field has no name") }
      guard (1...ProtobufLimits.maximumFieldNumber).contains(number) else {
        throw fail("field number \(number) is out of range")
      }
      guard numbers.insert(number).inserted else { throw fail("field number \(number) is used twice") }
      var type = field.type
      var typeName: String? = nil
      if !field.typeName.isEmpty {
        guard let resolved = resolveTypeName(field.typeName, scope: message.fullName) else {
          throw fail("type \"\(field.typeName)\" is not defined (is its file missing from the set?)")
        }
        let isMessage = messageProtos[resolved] != nil
        switch type {
        case .message, .group:
          guard isMessage else { throw fail("\(resolved) is an enum, not a message") }
        case .enum:
          guard !isMessage else { throw fail("\(resolved) is a message, not an enum") }
        default:
          type = isMessage ? .message : .enum
        }
        typeName = resolved
      } else if type == .message || type == .group || type == .enum {
        throw fail("a \(type) field without a type name")
      }
      var oneofIndex: Int? = nil
      if let index = field.oneofIndex {
        guard index >= 0, Int(index) < message.proto.oneofs.count else {
          throw fail("oneof index \(index) is out of range")
        }
        oneofIndex = Int(index)
      }
      let isRepeated = field.label == .repeated
      let isMap = isRepeated && type == .message && typeName.flatMap { messageProtos[$0] }?.isMapEntry == true
      let packedOption = Self.packedOption(field)
      fields.append(
        FieldDescriptor(
          name: field.name, jsonName: field.jsonName.isEmpty ? defaultJSONName(field.name) : field.jsonName,
          number: number, type: type, typeName: typeName, isRepeated: isRepeated,
          isRequired: field.label == .required, isMap: isMap, oneofIndex: oneofIndex,
          isProto3Optional: field.isProto3Optional,
          hasPresence: !isRepeated
            && (type == .message || type == .group || oneofIndex != nil || syntax != .proto3),
          isPacked: isRepeated && type.isPackable && (packedOption ?? (syntax != .proto2)), proto: field,
          explicitPacked: packedOption))
    }
    let oneofs = message.proto.oneofs.enumerated().map { index, oneof in
      let members = fields.filter { $0.oneofIndex == index }
      return OneofDescriptor(
        name: oneof.name, fieldNumbers: members.map(\.number),
        isSynthetic: members.count == 1 && members[0].isProto3Optional)
    }
    if message.proto.isMapEntry {
      let key = fields.first { $0.number == 1 }
      guard let key, fields.contains(where: { $0.number == 2 }), !key.isRepeated, key.type.isValidMapKey
      else {
        throw ProtobufDynamicError(
          .invalidDescriptor, path: message.fullName, "a map entry needs a scalar key = 1 and a value = 2")
      }
    }
    return MessageDescriptor(
      fullName: message.fullName, fileName: files[message.fileIndex].name, fields: fields, oneofs: oneofs,
      proto: message.proto, syntax: syntax, sourcePath: message.sourcePath)
  }

  private func resolve(_ service: ServiceDescriptorProto, package: String, fileIndex: Int, position: Int)
    throws(ProtobufDynamicError) -> ServiceDescriptor
  {
    let fullName = Self.qualified(package, service.name)
    var methods: [MethodDescriptor] = []
    for (index, method) in service.methods.enumerated() {
      let location = fullName + "." + method.name
      var types: [String] = []
      for (role, name) in [("input", method.inputType), ("output", method.outputType)] {
        guard let resolved = resolveTypeName(name, scope: fullName), messageProtos[resolved] != nil else {
          throw ProtobufDynamicError(
            .invalidDescriptor, path: location,
            "\(role) type \"\(name)\" is not a defined message (is its file missing from the set?)")
        }
        types.append(resolved)
      }
      methods.append(
        MethodDescriptor(
          name: method.name, serviceName: fullName, inputType: types[0], outputType: types[1],
          isClientStreaming: method.clientStreaming, isServerStreaming: method.serverStreaming, proto: method,
          sourcePath: [6, Int32(position), 2, Int32(index)]))
    }
    return ServiceDescriptor(
      fullName: fullName, fileName: files[fileIndex].name, methods: methods, proto: service,
      sourcePath: [6, Int32(position)])
  }

  /// The `packed` option (`FieldOptions` field 2 in `FieldDescriptorProto` field 8, which the
  /// bootstrap descriptor types keep among their unknown fields).
  private static func packedOption(_ field: FieldDescriptorProto) -> Bool? {
    var packed: Bool? = nil
    var decoder = ProtobufDecoder(bytes: field.unknownFields.data)
    do {
      while let (number, wireType) = try decoder.nextTag() {
        guard number == 8, wireType == .lengthDelimited else {
          try decoder.skipValue(number, wireType)
          continue
        }
        var options = ProtobufDecoder(bytes: try decoder.readBytes())
        while let (option, optionType) = try options.nextTag() {
          if option == 2, optionType == .varint {
            packed = try options.readBool()
          } else {
            try options.skipValue(option, optionType)
          }
        }
      }
    } catch {
      return packed
    }
    return packed
  }
}
