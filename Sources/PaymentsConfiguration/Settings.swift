import Foundation
import Yams

/// A service's configuration, resolved from four layers, each overriding the ones before:
/// the keys' defaults, a configuration file (YAML or JSON), `PAYMENTS_*` environment variables,
/// and command-line flags.
///
/// A value that does not parse stops start-up with a ``ConfigurationError`` that names the key
/// and where the value came from, never the value of a secret.
public struct Settings: Sendable {
  /// Where a value came from.
  public enum Source: Sendable, Equatable, CustomStringConvertible {
    case defaultValue, file(String), environment(String), flag(String)

    public var description: String {
      switch self {
      case .defaultValue: "default"
      case .file(let path): "file \(path)"
      case .environment(let name): "environment \(name)"
      case .flag(let flag): "flag \(flag)"
      }
    }
  }

  public let keys: [ConfigurationKey]
  private let byName: [String: ConfigurationKey]
  private let file: [String: [String]]
  private let filePath: String?
  private let environment: [String: String]

  /// - Parameters:
  ///   - file: a configuration file (`.yaml`, `.yml` or `.json`); `nil` for none.
  ///   - environment: the process environment (only `PAYMENTS_*` variables of `keys` are read).
  public init(keys: [ConfigurationKey], file: String?, environment: [String: String]) throws {
    self.keys = keys
    self.byName = Dictionary(keys.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
    self.environment = environment
    self.filePath = file
    if let file {
      let values = try Self.load(file)
      for name in values.keys where byName[name] == nil {
        throw ConfigurationError(
          "\(file): unknown configuration key '\(name)'; known keys: \(keys.map(\.name).joined(separator: ", "))"
        )
      }
      self.file = values
    } else {
      self.file = [:]
    }
  }

  // MARK: Reading

  /// The raw value of `name` and its source: the flag's if given, else the environment's, the
  /// file's or the default. Precondition: `name` is one of ``keys``.
  public func raw(_ name: String, flag: [String]? = nil) -> (values: [String], source: Source)? {
    guard let key = byName[name] else { preconditionFailure("configuration key '\(name)' is not declared") }
    if let flag, !flag.isEmpty, let flagName = key.flag { return (flag, .flag(flagName)) }
    if let value = environment[key.environmentVariable] {
      let values =
        key.kind == .list
        ? value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        : [value]
      return (values, .environment(key.environmentVariable))
    }
    if let values = file[name], let filePath {
      // A list may also be written as one comma-separated string, as in the environment.
      let split =
        key.kind == .list && values.count == 1
        ? values[0].split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter {
          !$0.isEmpty
        }
        : values
      return (split, .file(filePath))
    }
    if let value = key.defaultValue {
      return (key.kind == .list ? value.split(separator: ",").map(String.init) : [value], .defaultValue)
    }
    return nil
  }

  public func string(_ name: String, flag: String? = nil) -> String? {
    raw(name, flag: flag.map { [$0] })?.values.first
  }

  /// A value that must be set.
  public func required(_ name: String, flag: String? = nil) throws -> String {
    guard let value = string(name, flag: flag), !value.isEmpty else {
      let key = byName[name]!
      throw ConfigurationError(
        "configuration key '\(name)' is required: set \(key.environmentVariable)\(key.flag.map { ", pass \($0)" } ?? ""), or put '\(name)' in the configuration file"
      )
    }
    return value
  }

  public func list(_ name: String, flag: [String] = []) -> [String] {
    raw(name, flag: flag)?.values ?? []
  }

  public func integer(_ name: String, flag: Int? = nil, in range: ClosedRange<Int>? = nil) throws -> Int? {
    try parsed(
      name, flag: flag.map(String.init), "an integer",
      range: range.map { Double($0.lowerBound)...Double($0.upperBound) }
    ) {
      Int($0)
    }
  }

  public func number(_ name: String, flag: Double? = nil, in range: ClosedRange<Double>? = nil) throws
    -> Double?
  {
    try parsed(name, flag: flag.map { String($0) }, "a number", range: range) {
      Double($0).flatMap { $0.isFinite ? $0 : nil }
    }
  }

  public func boolean(_ name: String, flag: Bool? = nil) throws -> Bool? {
    try parsed(name, flag: flag.map { String($0) }, "true or false", range: nil) { text -> Bool? in
      switch text.lowercased() {
      case "true", "yes", "on", "1": true
      case "false", "no", "off", "0": false
      default: nil
      }
    }
  }

  private func parsed<Value>(
    _ name: String, flag: String?, _ expected: String, range: ClosedRange<Double>?,
    _ parse: (String) -> Value?
  ) throws -> Value? {
    guard let (values, source) = raw(name, flag: flag.map { [$0] }), let text = values.first else {
      return nil
    }
    guard let value = parse(text.trimmingCharacters(in: .whitespaces)) else {
      throw invalid(name, source, text, "is not \(expected)")
    }
    if let range {
      let number = (value as? Int).map(Double.init) ?? (value as? Double) ?? 0
      guard range.contains(number) else {
        throw invalid(
          name, source, text,
          "is not between \(Self.format(range.lowerBound)) and \(Self.format(range.upperBound))")
      }
    }
    return value
  }

  /// An error naming `name` and the source of its value (the value too, unless it is secret);
  /// `flag` is the flag's value, as given to the reading method.
  public func invalid(_ name: String, flag: [String]? = nil, reason: String) -> ConfigurationError {
    let (values, source) = raw(name, flag: flag) ?? ([], .defaultValue)
    return invalid(name, source, values.joined(separator: ","), reason)
  }

  private func invalid(_ name: String, _ source: Source, _ text: String, _ reason: String)
    -> ConfigurationError
  {
    let shown = byName[name]?.isSecret == true ? "the value" : "'\(text)'"
    return ConfigurationError("configuration key '\(name)' (from \(source)): \(shown) \(reason)")
  }

  private static func format(_ number: Double) -> String {
    number == number.rounded() && abs(number) < 1e15 ? String(Int64(number)) : String(number)
  }

  // MARK: Printing

  /// The `PAYMENTS_*` variables of the environment that are not keys of this service (typos,
  /// or variables meant for another service or a client); `known` are other names to accept.
  public func unknownEnvironmentVariables(known: Set<String> = []) -> [String] {
    let ours = Set(keys.map(\.environmentVariable))
    return environment.keys.filter { $0.hasPrefix("PAYMENTS_") && !ours.contains($0) && !known.contains($0) }
      .sorted()
  }

  /// Every key with its value and source, secrets as `<secret>`: for the start-up log.
  public var summary: [(key: String, value: String, source: Source)] {
    keys.compactMap { key in
      guard let (values, source) = raw(key.name) else { return nil }
      return (key.name, key.isSecret ? "<secret>" : values.joined(separator: ","), source)
    }
  }

  // MARK: Files

  /// The file's keys, flattened (`database: {url: x}` and `database.url: x` are the same key).
  static func load(_ path: String) throws -> [String: [String]] {
    let text: String
    do {
      text = try String(contentsOfFile: path, encoding: .utf8)
    } catch {
      throw ConfigurationError("cannot read the configuration file \(path): \(error.localizedDescription)")
    }
    return try parse(text, path: path)
  }

  /// Values (scalars, lists, mappings) a configuration file may hold, aliases counted each time.
  static let maximumValues = 100_000

  /// The keys of configuration file text, flattened; `path` (its name) decides the format.
  static func parse(_ text: String, path: String) throws -> [String: [String]] {
    guard text.utf8.count <= 1 << 20 else {
      throw ConfigurationError("the configuration file \(path) is larger than 1 MiB")
    }
    let document: Any?
    do {
      if path.hasSuffix(".json") {
        document = try JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
      } else if path.hasSuffix(".yaml") || path.hasSuffix(".yml") {
        // Walk the composed nodes ourselves: Yams' own constructor traps on a key that is not a
        // string (`? {a: 1}: x`), and aliases could make a small file expand without bound.
        var budget = Self.maximumValues
        document = try Yams.compose(yaml: text).map { try yamlValue($0, path: path, budget: &budget) }
      } else {
        throw ConfigurationError("the configuration file \(path) must end in .yaml, .yml or .json")
      }
    } catch let error as ConfigurationError {
      throw error
    } catch {
      throw ConfigurationError("the configuration file \(path) is not valid: \(error)")
    }
    guard let document else { return [:] }
    guard let root = document as? [String: Any] else {
      throw ConfigurationError("the configuration file \(path) must hold a mapping of keys to values")
    }
    var flat: [String: [String]] = [:]
    try flatten(root, prefix: "", into: &flat, path: path)
    return flat
  }

  /// A YAML node as the values JSON gives (String, Bool, Int, Double, NSNull, lists, mappings
  /// with string keys).
  private static func yamlValue(_ node: Node, path: String, budget: inout Int) throws -> Any {
    budget -= 1
    guard budget >= 0 else {
      throw ConfigurationError(
        "the configuration file \(path) holds more than \(maximumValues) values (aliases included)")
    }
    switch node {
    case .scalar(let scalar):
      switch Tag.Name(rawValue: node.tag.description) {
      case .null: return NSNull()
      case .bool: return Bool.construct(from: scalar) ?? scalar.string
      // Decimal only: Yams also reads YAML 1.1's sexagesimal integers ("1:20" = 80) and traps
      // when a long one overflows (found by Fuzz/ConfigurationFuzzer); such text stays a string.
      case .int: return Int(scalar.string) ?? scalar.string
      case .float: return Double.construct(from: scalar) ?? scalar.string
      default: return scalar.string
      }
    case .mapping(let mapping):
      var values: [String: Any] = [:]
      for (key, value) in mapping {
        guard case .scalar(let name) = key else {
          throw ConfigurationError("the configuration file \(path) has a key that is not a plain name")
        }
        values[name.string] = try yamlValue(value, path: path, budget: &budget)
      }
      return values
    case .sequence(let sequence):
      return try sequence.map { try yamlValue($0, path: path, budget: &budget) }
    case .alias:
      throw ConfigurationError("the configuration file \(path) uses an alias (*name); write the value out")
    }
  }

  private static func flatten(
    _ map: [String: Any], prefix: String, into flat: inout [String: [String]], path: String
  )
    throws
  {
    for (key, value) in map {
      let name = prefix.isEmpty ? key : prefix + "." + key
      switch value {
      case let nested as [String: Any]:
        try flatten(nested, prefix: name, into: &flat, path: path)
      case let array as [Any]:
        flat[name] = try array.map { try scalar($0, name, path) }
      default:
        flat[name] = [try scalar(value, name, path)]
      }
    }
  }

  private static func scalar(_ value: Any, _ name: String, _ path: String) throws -> String {
    // Exact types first: Yams gives Swift values, JSONSerialization gives NSNumbers (where a
    // boolean is a number too, told apart only by its class).
    switch value {
    case let string as String: return string
    case let bool as Bool where type(of: value) == Bool.self: return bool ? "true" : "false"
    case let int as Int where type(of: value) == Int.self: return String(int)
    case let double as Double where type(of: value) == Double.self: return String(double)
    case let number as NSNumber:
      if type(of: number) == type(of: NSNumber(value: true)) { return number.boolValue ? "true" : "false" }
      return number.stringValue
    default: throw ConfigurationError("\(path): the value of '\(name)' must be a string, number or boolean")
    }
  }
}

/// A configuration value that is missing or out of range; the message names the key.
public struct ConfigurationError: Error, CustomStringConvertible {
  public let description: String
  public init(_ description: String) { self.description = description }
}
