import Foundation
import PaymentsConfiguration
import Testing
import Yams

/// The files operators read and run stay true to the keys the code reads.
@Suite("Configuration reference and docker_compose")
struct DeploymentFilesTests {
  static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

  static func read(_ path: String) throws -> String {
    try String(contentsOf: root.appendingPathComponent(path), encoding: .utf8)
  }

  /// The keys of a `payments` subcommand; `migrate` and `keys` read only the database.
  static func keys(of subcommand: String) -> [ConfigurationKey]? {
    if let service = ServiceConfigurationKeys.all.first(where: { $0.command == subcommand }) {
      return service.keys
    }
    if subcommand == "migrate" || subcommand == "keys" {
      return ServiceConfigurationKeys.command.filter { $0.name == "database.url" }
    }
    return nil
  }

  @Test("docs/configuration.md lists every key of every service with its variable and default")
  func reference() throws {
    let text = try Self.read("docs/configuration.md")
    for (command, keys) in ServiceConfigurationKeys.all {
      let heading = "## payments \(command)\n"
      guard let start = text.range(of: heading) else {
        Issue.record("no section '\(heading.dropLast())'")
        continue
      }
      let rest = text[start.upperBound...]
      let section = rest[..<(rest.range(of: "\n## ")?.lowerBound ?? rest.endIndex)]
      for key in keys {
        guard let row = section.split(separator: "\n").first(where: { $0.contains("| `\(key.name)` |") })
        else {
          Issue.record("\(command): key '\(key.name)' is not in its table")
          continue
        }
        #expect(row.contains("`\(key.environmentVariable)`"), "\(command) \(key.name): \(row)")
        if let flag = key.flag { #expect(row.contains("`\(flag)`"), "\(command) \(key.name): \(row)") }
        if let value = key.defaultValue {
          #expect(row.contains(value), "\(command) \(key.name) default: \(row)")
        }
        if key.isSecret { #expect(row.contains("secret"), "\(command) \(key.name) is secret: \(row)") }
      }
    }
  }

  @Test("docker_compose: every PAYMENTS_ variable of a service is a key its subcommand reads")
  func compose() throws {
    let document = try Yams.load(yaml: try Self.read("docker_compose/compose.yaml"))
    let services = try #require((document as? [String: Any])?["services"] as? [String: Any])
    // PostgreSQL is ready only when it answers over TCP (during its first start-up the image runs
    // a server on the socket alone), and migrate waits for it anyway.
    let postgres = try #require(services["postgres"] as? [String: Any])
    let check = "\((postgres["healthcheck"] as? [String: Any])?["test"] ?? "")"
    #expect(check.contains("pg_isready -h 127.0.0.1"), "\(check)")
    let migrate = try #require(services["migrate"] as? [String: Any])
    #expect((migrate["command"] as? [Any])?.map { "\($0)" } == ["migrate", "--wait", "120"])
    var paymentsServices = 0
    var dispatchers = 0
    for (name, value) in services {
      let service = try #require(value as? [String: Any], "\(name)")
      let environment: [String: String]
      switch service["environment"] {
      case let map as [String: Any]: environment = map.mapValues { "\($0)" }
      case let list as [String]:
        environment = Dictionary(
          list.map { entry in
            let parts = entry.split(separator: "=", maxSplits: 1)
            return (String(parts[0]), parts.count == 2 ? String(parts[1]) : "")
          }, uniquingKeysWith: { $1 })
      case nil: environment = [:]
      default:
        Issue.record("\(name): environment is neither a map nor a list")
        continue
      }
      let ours = environment.filter { $0.key.hasPrefix("PAYMENTS_") }
      let command: [String]
      switch service["command"] {
      case let list as [Any]: command = list.map { "\($0)" }
      case let string as String: command = string.split(separator: " ").map(String.init)
      default: command = []
      }
      guard let subcommand = command.first, let keys = Self.keys(of: subcommand) else {
        #expect(ours.isEmpty, "\(name) is not a payments service but sets \(ours.keys.sorted())")
        continue
      }
      paymentsServices += 1
      if subcommand == "dispatcher" { dispatchers += 1 }
      let known = Dictionary(
        keys.map { ($0.environmentVariable, $0) }, uniquingKeysWith: { first, _ in first })
      for (variable, value) in ours {
        guard let key = known[variable] else {
          Issue.record("\(name) (payments \(subcommand)) sets \(variable), which it does not read")
          continue
        }
        // The value parses as the key's kind.
        switch key.kind {
        case .integer: #expect(Int(value) != nil, "\(name): \(variable)=\(value) is not an integer")
        case .number: #expect(Double(value) != nil, "\(name): \(variable)=\(value) is not a number")
        default: break
        }
      }
      // What a service cannot start without is set.
      for required in ["database.url", "kafka.brokers"] where keys.contains(where: { $0.name == required }) {
        let variable = known.first { $0.value.name == required }!.key
        #expect(ours[variable] != nil, "\(name) does not set \(variable)")
      }
    }
    #expect(paymentsServices >= 6, "migrate, sandbox, command, query and two dispatchers")
    #expect(dispatchers == 2)
    let kafkaBrokers = services.keys.filter { $0.hasPrefix("kafka-") && $0 != "kafka-topics" }
    #expect(kafkaBrokers.count == 3, "a three-broker KRaft cluster: \(services.keys.sorted())")
  }
}
