import Foundation
import PaymentsTestSupport
import ProtobufCodeGen
import ProtobufDynamic
import ProtobufRuntime

/// protoc's descriptor set for the contract (`proto/`) and the test-only files, and the pool
/// built from it; made once per test process.
enum Descriptors {
  /// The contract's files the tests compile.
  static let contractFiles = [
    "payments/v1/payment.proto", "payments/v1/command_service.proto", "payments/v1/query_service.proto",
    "payments/v1/records.proto", "grpc/health/v1/health.proto",
  ]

  /// The serialized `FileDescriptorSet` (imports and source info included).
  static func descriptorSet() throws -> [UInt8] { try cached.get() }

  /// The pool of ``descriptorSet()``.
  static func pool() throws -> DescriptorPool { try DescriptorPool(descriptorSet: try descriptorSet()) }

  private static let cached = Result { try compile() }

  private static func compile() throws -> [UInt8] {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dynamic-\(UUID())")
    defer { try? FileManager.default.removeItem(at: directory) }
    for (path, text) in TestProtos.files {
      let url = directory.appendingPathComponent(path)
      try FileManager.default.createDirectory(
        at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
      try text.write(to: url, atomically: true, encoding: .utf8)
    }
    let output = directory.appendingPathComponent("set.pb").path
    let result = try ChildProcess.run(
      "/usr/bin/protoc",
      [
        "-I", directory.path, "-I", PythonPeer.repository.appendingPathComponent("proto").path,
        "-I", "/usr/include", "--include_imports", "--include_source_info", "--descriptor_set_out=\(output)",
      ] + contractFiles + TestProtos.files.keys.sorted())
    guard result.status == 0 else { throw HarnessError("protoc failed: \(result.output)") }
    return try [UInt8](Data(contentsOf: URL(fileURLWithPath: output)))
  }
}

extension JSONValue {
  /// The value with object members sorted by name and numbers compared by value (`1`, `1.0`
  /// and `1e0` alike), for comparing JSON from two implementations.
  var canonical: JSONValue {
    switch self {
    case .object(let members):
      return .object(members.map { ($0.0, $0.1.canonical) }.sorted { $0.0 < $1.0 })
    case .array(let values): return .array(values.map(\.canonical))
    case .number(let text): return .number(Double(text).map { "\($0)" } ?? text)
    default: return self
    }
  }
}

/// Parses JSON text that a test expects to be valid.
func json(_ text: String) throws -> JSONValue { try JSONValue(parsing: text) }
