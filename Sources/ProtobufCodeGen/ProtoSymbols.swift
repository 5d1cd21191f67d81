/// Every message and enum of a request, by fully qualified name (`.payments.v1.Money`), with its
/// Swift name, so that fields can refer to types of other files and packages.
struct ProtoSymbols {
  enum Kind { case message(DescriptorProto), enumeration(EnumDescriptorProto) }

  struct Symbol {
    let fullName: String
    let swiftName: String
    let kind: Kind
    let file: String
  }

  private(set) var symbols: [String: Symbol] = [:]

  init(files: [FileDescriptorProto]) {
    for file in files {
      let prefix = SwiftNaming.typePrefix(package: file.package)
      let scope = file.package.isEmpty ? "" : "." + file.package
      for message in file.messageTypes {
        addMessage(
          message, scope: scope, swiftName: prefix + SwiftNaming.upperCamel(message.name), file: file.name)
      }
      for enumType in file.enumTypes {
        add(
          Symbol(
            fullName: scope + "." + enumType.name, swiftName: prefix + SwiftNaming.upperCamel(enumType.name),
            kind: .enumeration(enumType), file: file.name))
      }
    }
  }

  private mutating func add(_ symbol: Symbol) { symbols[symbol.fullName] = symbol }

  private mutating func addMessage(_ message: DescriptorProto, scope: String, swiftName: String, file: String)
  {
    let fullName = scope + "." + message.name
    add(Symbol(fullName: fullName, swiftName: swiftName, kind: .message(message), file: file))
    for nested in message.nestedTypes {
      addMessage(
        nested, scope: fullName, swiftName: swiftName + "." + SwiftNaming.upperCamel(nested.name), file: file)
    }
    for enumType in message.enumTypes {
      add(
        Symbol(
          fullName: fullName + "." + enumType.name,
          swiftName: swiftName + "." + SwiftNaming.upperCamel(enumType.name),
          kind: .enumeration(enumType), file: file))
    }
  }

  func symbol(_ fullName: String) throws -> Symbol {
    guard let symbol = symbols[fullName] else { throw GeneratorError("unknown type \(fullName)") }
    return symbol
  }

  func message(_ fullName: String) throws -> DescriptorProto {
    guard case .message(let message) = try symbol(fullName).kind else {
      throw GeneratorError("\(fullName) is not a message")
    }
    return message
  }

  /// Fully qualified names of the messages that can reach themselves through singular message
  /// fields (including oneof members); their such fields need indirection.
  func recursiveMessages() -> Set<String> {
    var edges: [String: [String]] = [:]
    for (name, symbol) in symbols {
      guard case .message(let message) = symbol.kind else { continue }
      edges[name] = message.fields.filter { $0.type == .message && $0.label != .repeated }.map(\.typeName)
    }
    var result = Set<String>()
    for start in edges.keys {
      var stack = edges[start] ?? []
      var seen = Set<String>()
      while let next = stack.popLast() {
        if next == start {
          result.insert(start)
          break
        }
        if seen.insert(next).inserted { stack += edges[next] ?? [] }
      }
    }
    return result
  }
}

/// A problem in the input that stops generation; protoc prints it.
public struct GeneratorError: Error, CustomStringConvertible {
  public let description: String
  public init(_ description: String) { self.description = description }
}
