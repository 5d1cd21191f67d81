import PaymentsCore
import RPCCore

/// An amount of money: whole minor units of one ISO 4217 currency, never a floating-point number.
///
/// The currency's exponent decides what a minor unit is: `Money("12.34 EUR")` is 1234 cents,
/// `Money("1500 JPY")` is 1500 yen, `Money("1.250 BHD")` is 1250 fils.
///
/// ```swift
/// let price = try Money("12.34 EUR")
/// price.minorUnits   // 1234
/// price.description  // "12.34 EUR"
/// ```
public struct Money: Sendable, Hashable, CustomStringConvertible {
  /// The ISO 4217 alphabetic code, e.g. `EUR`.
  public let currency: String
  /// The amount in the currency's minor units.
  public let minorUnits: Int64

  /// An amount already in minor units.
  public init(minorUnits: Int64, currency: String) {
    self.minorUnits = minorUnits
    self.currency = currency
  }

  /// Parses `"12.34 EUR"`: a decimal amount, a space, the currency code.
  public init(_ text: String) throws(PaymentsError) {
    let parts = text.split(separator: " ", omittingEmptySubsequences: true)
    guard parts.count == 2 else {
      throw PaymentsError(.invalidArgument, "'\(text)' is not an amount like '12.34 EUR'")
    }
    try self.init(amount: String(parts[0]), currency: String(parts[1]))
  }

  /// Parses a decimal `amount` such as `"12.34"` in `currency`. The amount may have at most as
  /// many fraction digits as the currency has (`"12.345 EUR"` is an error, not a rounding).
  public init(amount: String, currency: String) throws(PaymentsError) {
    guard let known = Currency.named(currency) else {
      throw PaymentsError(.invalidArgument, "'\(currency)' is not a known ISO 4217 currency code")
    }
    let pieces = amount.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
    let whole = pieces[0]
    let fraction = pieces.count == 2 ? pieces[1] : ""
    guard !whole.isEmpty, whole.allSatisfy(\.isASCIIDigit), fraction.allSatisfy(\.isASCIIDigit),
      pieces.count == 1 || !fraction.isEmpty
    else {
      throw PaymentsError(.invalidArgument, "'\(amount)' is not a decimal amount like 12.34")
    }
    guard fraction.count <= known.exponent else {
      throw PaymentsError(
        .invalidArgument,
        "'\(amount)' has \(fraction.count) decimal places; \(known.code) has \(known.exponent)")
    }
    let digits = whole + fraction + String(repeating: "0", count: known.exponent - fraction.count)
    guard let minor = Int64(digits) else {
      throw PaymentsError(.invalidArgument, "'\(amount) \(known.code)' is too large")
    }
    self.init(minorUnits: minor, currency: known.code)
  }

  /// The amount as a decimal string with the currency's number of places, e.g. `"12.34"`.
  public var decimalAmount: String {
    let exponent = Currency.named(currency)?.exponent ?? 0
    let magnitude = minorUnits.magnitude
    let digits = String(magnitude)
    let sign = minorUnits < 0 ? "-" : ""
    guard exponent > 0 else { return sign + digits }
    let padded = String(repeating: "0", count: max(0, exponent + 1 - digits.count)) + digits
    return sign + padded.dropLast(exponent) + "." + padded.suffix(exponent)
  }

  /// `"12.34 EUR"`.
  public var description: String { "\(decimalAmount) \(currency)" }
}

extension Character {
  fileprivate var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}
