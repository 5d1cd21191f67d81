public import PaymentsProto
import ProtobufRuntime

/// One problem with one field of a request: `field` is the proto field path
/// (`amount.currency`), `problem` says what is wrong in words a client developer can act on.
public struct FieldViolation: Sendable, Hashable, CustomStringConvertible {
  public var field: String
  public var problem: String

  public init(field: String, problem: String) {
    self.field = field
    self.problem = problem
  }

  public var description: String { "\(field): \(problem)" }
}

/// The rules a payment order must satisfy before it is stored (docs/design.md §4).
public struct PaymentOrderRules: Sendable {
  /// The largest accepted `amount.amount_minor`.
  public var maximumAmountMinor: Int64
  /// The providers a request may name in `provider` (empty: any name is refused).
  public var knownProviders: Set<String>

  // Text limits count Unicode scalar values (code points), at most 4 UTF-8 bytes each, not
  // grapheme clusters: one "character" can be arbitrarily many bytes ("a" and 600,000 combining
  // marks), and what must fit is the encoded order (a Kafka record of at most 1 MB). With every
  // field at its limit an order is about 48 KB (``maximumEncodedOrderBytes`` is checked too).
  public static let maximumIdempotencyKeyLength = 255
  public static let maximumAccountIDLength = 64
  public static let maximumNameLength = 200
  public static let maximumDescriptionLength = 500
  public static let maximumMetadataEntries = 20
  public static let maximumMetadataKeyLength = 40
  public static let maximumMetadataValueLength = 500
  public static let maximumProviderLength = 64
  /// A refund's reason: shorter than a description, because every event of a payment carries
  /// all its refunds.
  public static let maximumRefundReasonLength = 200
  /// The most bytes a whole encoded request may have (far below Kafka's 1 MB record limit).
  public static let maximumEncodedOrderBytes = 64 * 1024

  /// Rules with a maximum amount of 10^12 minor units (10 billion in a 2-decimal currency).
  public init(maximumAmountMinor: Int64 = 1_000_000_000_000, knownProviders: Set<String> = []) {
    self.maximumAmountMinor = maximumAmountMinor
    self.knownProviders = knownProviders
  }

  /// Every problem with `request`, in field order; empty when it is valid.
  public func violations(of request: Payments_V1_SubmitPaymentRequest) -> [FieldViolation] {
    var violations: [FieldViolation] = []
    func add(_ field: String, _ problem: String) {
      violations.append(FieldViolation(field: field, problem: problem))
    }

    if let problem = Self.idempotencyKeyProblem(request.idempotencyKey) { add("idempotency_key", problem) }

    if let amount = request.amount {
      if amount.currency.isEmpty {
        add("amount.currency", "is required")
      } else if Currency.named(amount.currency) == nil {
        add("amount.currency", "'\(Self.quoted(amount.currency))' is not a supported ISO 4217 currency code")
      }
      if amount.amountMinor <= 0 {
        add("amount.amount_minor", "must be greater than 0")
      } else if amount.amountMinor > maximumAmountMinor {
        add("amount.amount_minor", "must be at most \(maximumAmountMinor)")
      }
    } else {
      add("amount", "is required")
    }

    checkParty(request.payer, "payer", add)
    checkParty(request.payee, "payee", add)
    if let payer = request.payer, let payee = request.payee, !payer.accountID.isEmpty,
      payer.accountID == payee.accountID
    {
      add("payee.account_id", "must differ from payer.account_id")
    }

    if request.description.unicodeScalars.count > Self.maximumDescriptionLength {
      add("description", "must be at most \(Self.maximumDescriptionLength) characters (Unicode code points)")
    }
    if request.description.utf8.contains(0) { add("description", "must not contain NUL characters") }

    if request.metadata.count > Self.maximumMetadataEntries {
      add("metadata", "must have at most \(Self.maximumMetadataEntries) entries")
    }
    for (entryKey, value) in request.metadata.sorted(by: { $0.key < $1.key }) {
      if entryKey.isEmpty || entryKey.unicodeScalars.count > Self.maximumMetadataKeyLength
        || entryKey.utf8.contains(0)
      {
        add(
          "metadata",
          "key '\(Self.quoted(entryKey))' must be 1-\(Self.maximumMetadataKeyLength) characters (Unicode code points), without NUL"
        )
      }
      if value.unicodeScalars.count > Self.maximumMetadataValueLength || value.utf8.contains(0) {
        add(
          "metadata[\(Self.quoted(entryKey))]",
          "value must be at most \(Self.maximumMetadataValueLength) characters (Unicode code points), without NUL"
        )
      }
    }

    if request.provider.utf8.count > Self.maximumProviderLength {
      add("provider", "must be at most \(Self.maximumProviderLength) bytes")
    } else if !request.provider.isEmpty, !knownProviders.contains(request.provider) {
      let known = knownProviders.sorted().joined(separator: ", ")
      add("provider", "'\(Self.quoted(request.provider))' is not a known provider (known: \(known))")
    }
    // Unknown fields are kept (and relayed): the whole message must fit, too.
    let encoded = request.serializedBytes().count
    if encoded > Self.maximumEncodedOrderBytes {
      add("(request)", "is \(encoded) bytes encoded; at most \(Self.maximumEncodedOrderBytes) are accepted")
    }
    return violations
  }

  private func checkParty(
    _ party: Payments_V1_Party?, _ field: String, _ add: (String, String) -> Void
  ) {
    guard let party else { return add(field, "is required") }
    let id = party.accountID
    if id.isEmpty {
      add("\(field).account_id", "is required")
    } else if id.unicodeScalars.count > Self.maximumAccountIDLength {
      add(
        "\(field).account_id",
        "must be at most \(Self.maximumAccountIDLength) characters (Unicode code points)")
    } else if id.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
      add("\(field).account_id", "must not contain control characters")
    }
    if party.name.unicodeScalars.count > Self.maximumNameLength || party.name.utf8.contains(0) {
      add(
        "\(field).name",
        "must be at most \(Self.maximumNameLength) characters (Unicode code points), without NUL")
    }
  }

  /// What is wrong with an idempotency key, or `nil`.
  static func idempotencyKeyProblem(_ key: String) -> String? {
    if key.isEmpty { return "is required" }
    if key.utf8.count > maximumIdempotencyKeyLength {
      return "must be at most \(maximumIdempotencyKeyLength) bytes"
    }
    if !key.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) {
      return "must be visible ASCII characters only (no spaces or control characters)"
    }
    return nil
  }

  /// Every problem with a refund request, in field order; empty when it is valid. Whether the
  /// payment can be refunded by that much is the dispatcher's decision, on the stored payment.
  public func violations(of request: Payments_V1_RefundPaymentRequest) -> [FieldViolation] {
    var violations: [FieldViolation] = []
    if let problem = Self.idempotencyKeyProblem(request.idempotencyKey) {
      violations.append(FieldViolation(field: "idempotency_key", problem: problem))
    }
    if request.paymentID.isEmpty {
      violations.append(FieldViolation(field: "payment_id", problem: "is required"))
    } else if !PaymentID.isWellFormed(request.paymentID) {
      violations.append(
        FieldViolation(
          field: "payment_id",
          problem: "must be a payment ID like pay_0190…, not '\(Self.quoted(request.paymentID))'"))
    }
    // No maximum here: the payment's amount bounds a refund (a maximum lowered since the payment
    // was accepted must not make its full refund impossible).
    if request.amountMinor <= 0 {
      violations.append(FieldViolation(field: "amount_minor", problem: "must be greater than 0"))
    }
    if request.reason.unicodeScalars.count > Self.maximumRefundReasonLength || request.reason.utf8.contains(0)
    {
      violations.append(
        FieldViolation(
          field: "reason",
          problem:
            "must be at most \(Self.maximumRefundReasonLength) characters (Unicode code points), without NUL")
      )
    }
    if !request.currency.isEmpty, Currency.named(request.currency) == nil {
      violations.append(
        FieldViolation(
          field: "currency",
          problem: "'\(Self.quoted(request.currency))' is not a supported ISO 4217 currency code"))
    }
    let encoded = request.serializedBytes().count
    if encoded > Self.maximumEncodedOrderBytes {
      violations.append(
        FieldViolation(
          field: "(request)",
          problem: "is \(encoded) bytes encoded; at most \(Self.maximumEncodedOrderBytes) are accepted"))
    }
    return violations
  }

  /// `text` shortened and stripped of control characters, for quoting client input in a message.
  public static func quoted(_ text: String) -> String {
    let cleaned = String(
      String.UnicodeScalarView(text.unicodeScalars.filter { $0.properties.generalCategory != .control }))
    // Counted in code points: one grapheme cluster ("a" and 600,000 combining marks) can be
    // megabytes, and the quote ends up in the status message and trailers.
    let scalars = cleaned.unicodeScalars
    return scalars.count > 40 ? String(String.UnicodeScalarView(scalars.prefix(40))) + "…" : cleaned
  }
}

/// Where the services put structured field violations: a trailing-metadata key whose value is a
/// binary `payments.v1.FieldViolations` (see `proto/payments/v1/errors.proto`).
public enum FieldViolationsTrailer {
  public static let key = "payments-field-violations-bin"
}
