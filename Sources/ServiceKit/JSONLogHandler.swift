import Foundation
public import Logging

/// A swift-log handler that writes one JSON object per line (`log.format: json`), for log
/// pipelines that parse fields: `time` (RFC 3339, milliseconds, UTC), `level`, `label`,
/// `message`, `source`, then every metadata entry as a field of its own (`payment_id`,
/// `provider`, `attempt`, `rpc.method`, …; a nested value keeps its structure). A metadata key
/// that collides with one of the fixed fields is written with a `meta.` prefix.
///
/// Each line goes to the stream in one `write` call, so lines of concurrent loggers never
/// interleave.
public struct JSONLogHandler: LogHandler {
  public var metadata: Logger.Metadata = [:]
  public var metadataProvider: Logger.MetadataProvider?
  public var logLevel: Logger.Level = .info
  private let label: String
  private let write: @Sendable (String) -> Void

  /// A handler writing to standard error.
  public static func standardError(label: String, metadataProvider: Logger.MetadataProvider?)
    -> JSONLogHandler
  {
    JSONLogHandler(label: label, metadataProvider: metadataProvider) { line in
      var line = line
      line.withUTF8 { bytes in
        var offset = 0
        while offset < bytes.count {
          let written = Foundation.write(2, bytes.baseAddress! + offset, bytes.count - offset)
          if written < 0, errno == EINTR || errno == EAGAIN { continue }
          if written <= 0 { return }
          offset += written
        }
      }
    }
  }

  /// A handler passing each line (with its newline) to `write`.
  public init(
    label: String, metadataProvider: Logger.MetadataProvider? = nil,
    write: @escaping @Sendable (String) -> Void
  ) {
    self.label = label
    self.metadataProvider = metadataProvider
    self.write = write
  }

  public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
    get { metadata[key] }
    set { metadata[key] = newValue }
  }

  public func log(event: LogEvent) {
    var fields = metadata
    if let provided = metadataProvider?.get() { fields.merge(provided) { _, new in new } }
    if let extra = event.metadata { fields.merge(extra) { _, new in new } }
    var line = "{\"time\":"
    Self.append(string: Self.timestamp(Date()), to: &line)
    line += ",\"level\":"
    Self.append(string: event.level.rawValue, to: &line)
    line += ",\"label\":"
    Self.append(string: label, to: &line)
    line += ",\"message\":"
    Self.append(string: event.message.description, to: &line)
    line += ",\"source\":"
    Self.append(string: event.source, to: &line)
    for key in fields.keys.sorted() {
      line += ","
      Self.append(string: Self.fixed.contains(key) ? "meta." + key : key, to: &line)
      line += ":"
      Self.append(value: fields[key]!, to: &line)
    }
    line += "}\n"
    write(line)
  }

  private static let fixed: Set<String> = ["time", "level", "label", "message", "source"]

  private static func timestamp(_ date: Date) -> String {
    date.formatted(
      Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: TimeZone(identifier: "UTC")!))
  }

  private static func append(value: Logger.Metadata.Value, to line: inout String) {
    switch value {
    case .string(let text): append(string: text, to: &line)
    case .stringConvertible(let convertible): append(string: convertible.description, to: &line)
    case .array(let values):
      line += "["
      for (index, value) in values.enumerated() {
        if index > 0 { line += "," }
        append(value: value, to: &line)
      }
      line += "]"
    case .dictionary(let entries):
      line += "{"
      for (index, key) in entries.keys.sorted().enumerated() {
        if index > 0 { line += "," }
        append(string: key, to: &line)
        line += ":"
        append(value: entries[key]!, to: &line)
      }
      line += "}"
    }
  }

  /// `text` as a JSON string (RFC 8259 escapes; everything else as UTF-8).
  static func append(string text: String, to line: inout String) {
    line += "\""
    for scalar in text.unicodeScalars {
      switch scalar {
      case "\"": line += "\\\""
      case "\\": line += "\\\\"
      case "\n": line += "\\n"
      case "\r": line += "\\r"
      case "\t": line += "\\t"
      case _ where scalar.value < 0x20 || scalar.value == 0x7F || (0x2028...0x2029).contains(scalar.value):
        line += String(format: "\\u%04x", scalar.value)
      default: line.unicodeScalars.append(scalar)
      }
    }
    line += "\""
  }
}
