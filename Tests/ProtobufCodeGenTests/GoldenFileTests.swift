import Foundation
import PaymentsTestSupport
import Testing

/// The generator's output for the every-feature `.proto`, compared with checked-in files so that
/// any change in generated code shows up in review. To accept a change, run the tests with
/// `UPDATE_GOLDEN_FILES=1` and commit the new `Golden/*.swift.golden` files.
@Suite("generator golden files")
struct GoldenFileTests {
  static let testsDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
  static let protoRoot = testsDirectory.deletingLastPathComponent().appendingPathComponent(
    "GeneratedCodeTests/proto")

  @Test(
    "generated Swift matches the golden file",
    arguments: ["conformance/v1/everything.proto", "other/v1/other.proto", "echo/v1/echo.proto"])
  func golden(protoFile: String) throws {
    let output = FileManager.default.temporaryDirectory.appendingPathComponent("golden-\(UUID())")
    try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: output) }
    let result = try ChildProcess.run(
      "/usr/bin/protoc",
      [
        "--plugin=protoc-gen-swift-payments=\(try Executables.path("protoc-gen-swift-payments"))",
        "--swift-payments_out=\(output.path)", "--swift-payments_opt=Visibility=internal",
        "-I", Self.protoRoot.path, "-I", "/usr/include", protoFile,
      ])
    #expect(result.status == 0, "\(result.output)")
    let name = String(protoFile.dropLast(6).map { $0 == "/" ? "_" : $0 }) + ".pb.swift"
    let generated = try String(contentsOf: output.appendingPathComponent(name), encoding: .utf8)
    let goldenURL = Self.testsDirectory.appendingPathComponent("Golden/\(name).golden")
    if ProcessInfo.processInfo.environment["UPDATE_GOLDEN_FILES"] == "1" {
      try generated.write(to: goldenURL, atomically: true, encoding: .utf8)
    }
    let golden = try String(contentsOf: goldenURL, encoding: .utf8)
    #expect(generated == golden, "generated code for \(protoFile) changed; see the test's doc comment")
  }
}
