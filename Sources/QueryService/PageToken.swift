import Foundation
import PaymentsCore
import TLS

/// `ListPayments` page tokens: opaque to clients, they carry the position after the last payment
/// of a page and a digest of the filter, so a token used with another filter is refused instead
/// of silently returning the wrong rows.
struct PageToken: Equatable {
  var cursor: PaymentReadModel.Cursor
  var filterDigest: String

  static func digest(of filter: PaymentReadModel.ListFilter) -> String {
    let text = [
      filter.statuses.sorted().map(String.init).joined(separator: ","),
      filter.createdAfter.map { String(PaymentClock.microseconds($0)) } ?? "",
      filter.createdBefore.map { String(PaymentClock.microseconds($0)) } ?? "",
    ].joined(separator: "|")
    return SHA256.hash(text).prefix(8).map { String($0, radix: 16).leftPadded(2) }.joined()
  }

  var encoded: String {
    let text = "v1.\(PaymentClock.microseconds(cursor.createdAt)).\(cursor.paymentID).\(filterDigest)"
    return Data(text.utf8).base64EncodedString()
      .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
      .replacingOccurrences(of: "=", with: "")
  }

  init(cursor: PaymentReadModel.Cursor, filterDigest: String) {
    self.cursor = cursor
    self.filterDigest = filterDigest
  }

  /// Parses a token; `nil` when it was not made by ``encoded``.
  init?(_ token: String) {
    guard token.utf8.count <= 200 else { return nil }
    var base64 = token.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
    base64 += String(repeating: "=", count: (4 - base64.utf8.count % 4) % 4)
    guard let data = Data(base64Encoded: base64), let text = String(data: data, encoding: .utf8) else {
      return nil
    }
    let parts = text.split(separator: ".", omittingEmptySubsequences: false)
    guard parts.count == 4, parts[0] == "v1", let micros = Int64(parts[1]), !parts[2].isEmpty,
      parts[3].utf8.count == 16
    else { return nil }
    self.cursor = .init(
      createdAt: Date(timeIntervalSince1970: Double(micros) / 1_000_000), paymentID: String(parts[2]))
    self.filterDigest = String(parts[3])
  }
}

extension String {
  fileprivate func leftPadded(_ width: Int) -> String {
    String(repeating: "0", count: max(0, width - count)) + self
  }
}
