import Foundation
import PaymentsCore
import ProtobufRuntime
import TLS

/// `ListPayments` page tokens: opaque to clients and signed, so that a token the service did not
/// issue (forged, altered in one character, or made for another filter) is refused with
/// `INVALID_ARGUMENT` instead of moving the cursor anywhere.
///
/// The text `v2.<issued, seconds>.<cursor time, µs>.<cursor payment ID>.<filter digest>` is
/// followed by `.` and the first 16 bytes (hex) of its HMAC-SHA256 under the key the query
/// service keeps in `query.page_token_keys` (one key for every instance); the whole is
/// base64url. A token is valid for ``maximumAge`` after it was issued.
struct PageToken: Equatable {
  var cursor: PaymentReadModel.Cursor
  var filterDigest: String
  /// When it was issued, seconds since 1970.
  var issuedAt: Int64

  /// How long a token may be used after it was issued.
  static let maximumAge: Int64 = 24 * 3600

  static func digest(of filter: PaymentReadModel.ListFilter) -> String {
    let text = [
      filter.statuses.sorted().map(String.init).joined(separator: ","),
      filter.createdAfter.map { String(PaymentClock.microseconds($0)) } ?? "",
      filter.createdBefore.map { String(PaymentClock.microseconds($0)) } ?? "",
    ].joined(separator: "|")
    return SHA256.hash(text).prefix(8).map { String($0, radix: 16).leftPadded(2) }.joined()
  }

  init(cursor: PaymentReadModel.Cursor, filterDigest: String, issuedAt: Int64) {
    self.cursor = cursor
    self.filterDigest = filterDigest
    self.issuedAt = issuedAt
  }

  private var text: String {
    "v2.\(issuedAt).\(PaymentClock.microseconds(cursor.createdAt)).\(cursor.paymentID).\(filterDigest)"
  }

  static func mac(_ text: String, key: [UInt8]) -> String {
    hmacSHA256(key: key, message: Array(text.utf8)).prefix(16).map { String($0, radix: 16).leftPadded(2) }
      .joined()
  }

  /// The token as sent to the client, signed with `key`.
  func encoded(key: [UInt8]) -> String {
    let signed = text + "." + Self.mac(text, key: key)
    return Data(signed.utf8).base64EncodedString()
      .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
      .replacingOccurrences(of: "=", with: "")
  }

  /// Why a token is refused.
  enum Problem: Error, Equatable {
    /// Not a token this service issued (malformed, altered, or signed with another key).
    case notIssued
    /// Issued more than ``PageToken/maximumAge`` ago.
    case expired
  }

  /// Parses and verifies a token at `now` (seconds since 1970).
  static func decode(_ token: String, key: [UInt8], now: Int64) -> Result<PageToken, Problem> {
    // Issued tokens are unpadded base64url: padding or any other extra character is an alteration.
    guard token.utf8.count <= 300, !token.contains("=") else { return .failure(.notIssued) }
    var base64 = token.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
    base64 += String(repeating: "=", count: (4 - base64.utf8.count % 4) % 4)
    guard let data = Data(base64Encoded: base64), let text = String(data: data, encoding: .utf8) else {
      return .failure(.notIssued)
    }
    let parts = text.split(separator: ".", omittingEmptySubsequences: false)
    guard parts.count == 6, parts[0] == "v2" else { return .failure(.notIssued) }
    let signedText = parts[0..<5].joined(separator: ".")
    guard constantTimeEquals(Array(mac(signedText, key: key).utf8), Array(parts[5].utf8)) else {
      return .failure(.notIssued)
    }
    // Signed by us; still checked, so that nothing from a token can trap or reach SQL unchecked.
    let earliest = Google_Protobuf_Timestamp.minimumSeconds * 1_000_000
    let latest = Google_Protobuf_Timestamp.maximumSeconds * 1_000_000
    guard let issuedAt = Int64(parts[1]), let micros = Int64(parts[2]), (earliest...latest).contains(micros),
      PaymentID.isWellFormed(String(parts[3])), parts[4].utf8.count == 16
    else { return .failure(.notIssued) }
    guard issuedAt <= now + 300, issuedAt >= now - maximumAge else { return .failure(.expired) }
    return .success(
      PageToken(
        cursor: .init(
          createdAt: Date(timeIntervalSince1970: Double(micros) / 1_000_000), paymentID: String(parts[3])),
        filterDigest: String(parts[4]), issuedAt: issuedAt))
  }
}

extension String {
  fileprivate func leftPadded(_ width: Int) -> String {
    String(repeating: "0", count: max(0, width - count)) + self
  }
}
