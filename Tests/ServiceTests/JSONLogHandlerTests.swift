import Foundation
import Logging
import ServiceKit
import Synchronization
import Testing

/// Lines a handler wrote.
final class LineSink: Sendable {
  let lines = Mutex<[String]>([])
}

@Suite("JSON logs")
struct JSONLogHandlerTests {
  @Test("one JSON object per line: fixed fields, every metadata entry as a field, hostile text escaped")
  func jsonLines() throws {
    let sink = LineSink()
    var logger = Logger(label: "payments.test") { label in
      JSONLogHandler(label: label) { line in sink.lines.withLock { $0.append(line) } }
    }
    logger[metadataKey: "payment_id"] = "pay_1"
    logger.info(
      "a \"quoted\"\nline\twith \u{1} control, \u{2028} separator, ünïcödé and 😀",
      metadata: [
        "attempt": "2", "level": "not the level", "nested": ["list": ["a", "b"], "n": "1"],
      ])
    logger.debug("below the level: not written")
    let lines = sink.lines.withLock { $0 }
    #expect(lines.count == 1)
    let line = try #require(lines.first)
    #expect(line.hasSuffix("}\n") && line.dropLast().allSatisfy { $0 != "\n" }, "one line: \(line)")
    let object = try #require(
      try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "valid JSON: \(line)")
    #expect(object["level"] as? String == "info")
    #expect(object["label"] as? String == "payments.test")
    #expect(
      object["message"] as? String
        == "a \"quoted\"\nline\twith \u{1} control, \u{2028} separator, ünïcödé and 😀")
    #expect(object["payment_id"] as? String == "pay_1")
    #expect(object["attempt"] as? String == "2")
    #expect(object["meta.level"] as? String == "not the level", "a colliding key keeps its value")
    let nested = try #require(object["nested"] as? [String: Any])
    #expect(nested["list"] as? [String] == ["a", "b"])
    let time = try #require(object["time"] as? String)
    #expect(time.hasSuffix("Z") && time.contains("."), "UTC with fractional seconds: \(time)")
    #expect(line.hasPrefix("{\"time\":"), "the fixed fields first")
  }
}
