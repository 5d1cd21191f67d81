import Foundation
import PaymentsTestSupport
import Testing

/// The `.proto` files in `proto/` are the public API contract (docs/design.md §4).
@Suite("proto contract")
struct ProtoContractTests {
  static let root = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
  static var protoFiles: [String] {
    let base = root.appendingPathComponent("proto").path
    let enumerator = FileManager.default.enumerator(atPath: base)
    var files: [String] = []
    while let path = enumerator?.nextObject() as? String {
      if path.hasSuffix(".proto") { files.append(path) }
    }
    return files.sorted()
  }

  @Test("every .proto file compiles with protoc, imports included")
  func compiles() throws {
    let files = Self.protoFiles
    #expect(files.count >= 7, "\(files)")
    let output = FileManager.default.temporaryDirectory.appendingPathComponent("contract-\(UUID()).pb").path
    defer { try? FileManager.default.removeItem(atPath: output) }
    let result = try ChildProcess.run(
      "/usr/bin/protoc",
      [
        "-I", Self.root.appendingPathComponent("proto").path, "-I", "/usr/include",
        "--include_imports", "--descriptor_set_out=\(output)",
      ] + files)
    #expect(result.status == 0, "\(result.output)")
  }

  @Test("every message, enum, enum value, service, RPC and field is documented")
  func everythingIsCommented() throws {
    let declaration = try Regex(
      #"^\s*(message|enum|service|rpc|oneof|repeated|map<|optional|[A-Za-z_][A-Za-z0-9_.]*\s+[a-z_][a-z0-9_]*\s*=|[A-Z][A-Z0-9_]*\s*=)"#
    )
    var undocumented: [String] = []
    for file in Self.protoFiles {
      let text = try String(
        contentsOf: Self.root.appendingPathComponent("proto").appendingPathComponent(file), encoding: .utf8)
      var previous = ""
      for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
        let trimmed = line.trimmingCharacters(in: .whitespaces)
        if trimmed.hasPrefix("syntax") || trimmed.hasPrefix("package") || trimmed.hasPrefix("import")
          || trimmed.hasPrefix("option")
        {
          previous = trimmed
          continue
        }
        if line.firstMatch(of: declaration) != nil, !previous.hasPrefix("//") {
          undocumented.append("\(file):\(number + 1): \(trimmed)")
        }
        if !trimmed.isEmpty { previous = trimmed }
      }
    }
    #expect(undocumented.isEmpty, "\(undocumented.joined(separator: "\n"))")
  }
}
