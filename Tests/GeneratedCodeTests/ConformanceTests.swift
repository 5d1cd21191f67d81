import Foundation
import PaymentsTestSupport
import ProtobufRuntime
import Testing

/// Our generated code against Google's implementation (Python protobuf, from tools/python-env).
@Suite("conformance with Google's protobuf")
struct ConformanceTests {
  static let root = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

  static func python(_ arguments: [String]) throws -> String {
    let python = root.appendingPathComponent(".venv/bin/python").path
    guard FileManager.default.isExecutableFile(atPath: python) else {
      throw HarnessError("\(python) is missing: run tools/python-env (tools/test does)")
    }
    let result = try ChildProcess.run(
      python, [root.appendingPathComponent("tools/conformance/vectors.py").path] + arguments)
    guard result.status == 0 else { throw HarnessError("vectors.py \(arguments): \(result.output)") }
    return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
  }

  static func hex(_ bytes: [UInt8]) -> String {
    bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }
      .joined()
  }

  static func bytes(hex: String) -> [UInt8] {
    var result: [UInt8] = []
    var index = hex.startIndex
    while index < hex.endIndex {
      let next = hex.index(index, offsetBy: 2)
      result.append(UInt8(hex[index..<next], radix: 16)!)
      index = next
    }
    return result
  }

  /// The reference message without maps (whose order the specification leaves open).
  static var referenceWithoutMaps: Conformance_V1_Everything {
    var message = GeneratedCodeTests.full()
    message.mString = [:]
    message.mNested = [:]
    message.mBool = [:]
    message.mBytes = [:]
    return message
  }

  @Test("our binary encoding is byte-identical to Google's for a message without maps")
  func byteIdentical() throws {
    let theirs = Self.bytes(hex: try Self.python(["encode"]))
    #expect(Self.hex(Self.referenceWithoutMaps.serializedBytes()) == Self.hex(theirs))
  }

  @Test("we decode Google's bytes to the expected values")
  func decodeTheirs() throws {
    let theirs = Self.bytes(hex: try Self.python(["encode"]))
    #expect(try Conformance_V1_Everything(serializedBytes: theirs) == Self.referenceWithoutMaps)
  }

  @Test("Google's implementation decodes our bytes, maps included, to the expected values")
  func theyDecodeOurs() throws {
    let ours = GeneratedCodeTests.full().serializedBytes()
    #expect(try Self.python(["decode", Self.hex(ours)]) == "ok")
  }
}
