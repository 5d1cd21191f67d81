import Foundation
import HTTP2
import RPCCore

/// The header conventions of gRPC over HTTP/2 (grpc/grpc `doc/PROTOCOL-HTTP2.md`).
enum GRPCHeaders {
  /// Headers that are part of the protocol, never custom metadata.
  static let reserved: Set<String> = [
    "content-type", "te", "user-agent", "grpc-timeout", "grpc-encoding", "grpc-accept-encoding",
    "grpc-status",
    "grpc-message", "grpc-status-details-bin", "content-length", "accept-encoding", "host", "connection",
  ]

  /// Custom metadata from received headers: pseudo and reserved headers dropped, `-bin` values
  /// base64-decoded (padded or not; undecodable values dropped).
  static func metadata(from fields: [HTTP2Header]) -> Metadata {
    var metadata = Metadata()
    for field in fields where !field.name.hasPrefix(":") && !reserved.contains(field.name) {
      if field.name.hasSuffix("-bin") {
        // A comma separates several values of one key (HTTP field folding).
        for part in field.value.split(separator: ",") {
          if let bytes = decodeBase64(part.trimmingCharacters(in: .whitespaces)) {
            metadata.addBinary(bytes, forKey: field.name)
          }
        }
      } else {
        metadata.addString(field.value, forKey: field.name)
      }
    }
    return metadata
  }

  /// Header fields for custom metadata (invalid keys and non-printable string values are left
  /// out rather than breaking the call).
  static func fields(from metadata: Metadata) -> [HTTP2Header] {
    var fields: [HTTP2Header] = []
    for entry in metadata where Metadata.isValidCustomKey(entry.key) {
      switch entry.value {
      case .string(let value):
        guard !entry.key.hasSuffix("-bin"), value.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) else {
          continue
        }
        fields.append(HTTP2Header(entry.key, value))
      case .binary(let bytes):
        fields.append(HTTP2Header(entry.key, Data(bytes).base64EncodedString()))
      }
    }
    return fields
  }

  static func decodeBase64(_ text: String) -> [UInt8]? {
    var padded = text
    while padded.utf8.count % 4 != 0 { padded += "=" }
    return Data(base64Encoded: padded).map { [UInt8]($0) }
  }

  /// The most bytes of `grpc-message` sent (percent-encoded); a longer message is cut, at a code
  /// point, and ends in "…".
  static let maximumMessageBytes = 2048
  /// The most bytes (as HTTP/2 counts header lists: name + value + 32 per field) of a trailer
  /// block: well under the 8 KiB that grpcio and others accept by default, so that the status
  /// always arrives. Trailers that would go beyond it are left out.
  static let maximumTrailerBytes = 7 << 10

  /// `grpc-status`, `grpc-message` (cut to ``maximumMessageBytes``) and as many of `others` as
  /// fit within ``maximumTrailerBytes``.
  static func boundedTrailers(status: RPCStatus, _ others: [HTTP2Header]) -> [HTTP2Header] {
    var fields = [HTTP2Header("grpc-status", "\(status.code.rawValue)")]
    if !status.message.isEmpty {
      var encoded = percentEncode(status.message)
      if encoded.utf8.count > maximumMessageBytes {
        var scalars = String.UnicodeScalarView()
        var length = 0
        for scalar in status.message.unicodeScalars {
          let size = percentEncode(String(scalar)).utf8.count
          guard length + size <= maximumMessageBytes - 9 else { break }
          scalars.append(scalar)
          length += size
        }
        encoded = percentEncode(String(scalars) + "…")
      }
      fields.append(HTTP2Header("grpc-message", encoded))
    }
    var total = fields.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count + 32 }
    for field in others {
      let size = field.name.utf8.count + field.value.utf8.count + 32
      guard total + size <= maximumTrailerBytes else { continue }
      fields.append(field)
      total += size
    }
    return fields
  }

  /// `grpc-message` encoding: percent-encode everything outside printable ASCII, and `%`.
  static func percentEncode(_ message: String) -> String {
    var encoded = ""
    for byte in message.utf8 {
      if byte >= 0x20 && byte <= 0x7E && byte != 0x25 {
        encoded.unicodeScalars.append(Unicode.Scalar(byte))
      } else {
        encoded += "%" + String(byte, radix: 16, uppercase: true).leftPadded(2)
      }
    }
    return encoded
  }

  /// Decodes `grpc-message`; malformed escapes are kept as they are (never an error).
  static func percentDecode(_ encoded: String) -> String {
    let bytes = Array(encoded.utf8)
    var decoded: [UInt8] = []
    var index = 0
    while index < bytes.count {
      if bytes[index] == 0x25, index + 2 < bytes.count,
        let value = UInt8(String(decoding: bytes[index + 1...index + 2], as: UTF8.self), radix: 16)
      {
        decoded.append(value)
        index += 3
      } else {
        decoded.append(bytes[index])
        index += 1
      }
    }
    return String(decoding: decoded, as: UTF8.self)
  }

  /// Parses `grpc-timeout` (1–8 digits and a unit H, M, S, m, u, n).
  static func parseTimeout(_ value: String) -> Duration? {
    guard let unit = value.last, value.count >= 2, value.count <= 9,
      let amount = Int64(value.dropLast()), amount >= 0
    else { return nil }
    switch unit {
    case "H": return .seconds(amount * 3600)
    case "M": return .seconds(amount * 60)
    case "S": return .seconds(amount)
    case "m": return .milliseconds(amount)
    case "u": return .microseconds(amount)
    case "n": return .nanoseconds(amount)
    default: return nil
    }
  }

  /// Formats a timeout in the finest unit that fits in 8 digits (rounding up, so a client never
  /// announces less time than it has).
  static func formatTimeout(_ duration: Duration) -> String {
    let nanoseconds = max(
      0, duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000)
    let units: [(Int64, String)] = [
      (1, "n"), (1000, "u"), (1_000_000, "m"), (1_000_000_000, "S"), (60_000_000_000, "M"),
      (3_600_000_000_000, "H"),
    ]
    for (size, unit) in units {
      let amount = (nanoseconds + size - 1) / size
      if amount < 100_000_000 { return "\(amount)\(unit)" }
    }
    return "99999999H"
  }

  /// The gRPC status for an HTTP status other than 200 (the spec's mapping).
  static func status(forHTTPStatus status: Int) -> RPCStatus.Code {
    switch status {
    case 400: .internal
    case 401: .unauthenticated
    case 403: .permissionDenied
    case 404: .unimplemented
    case 429, 502, 503, 504: .unavailable
    default: .unknown
    }
  }

  /// Reads `grpc-status` and `grpc-message` from trailers (or a Trailers-Only response).
  static func status(from fields: [HTTP2Header]) -> RPCStatus? {
    guard let code = fields.first(where: { $0.name == "grpc-status" }).flatMap({ Int($0.value) }) else {
      return nil
    }
    let message = fields.first(where: { $0.name == "grpc-message" }).map { percentDecode($0.value) } ?? ""
    return RPCStatus(code: RPCStatus.Code(rawValue: code), message: message)
  }
}

extension String {
  fileprivate func leftPadded(_ width: Int) -> String {
    count >= width ? self : String(repeating: "0", count: width - count) + self
  }
}
