/// The payment domain: currencies, payment identifiers, the payment lifecycle, validation. It
/// knows no transport and no database; the services build on it.
public enum PaymentsCoreModule {}

/// The Kafka topics of the platform (docs/design.md §1).
public enum PaymentsTopic {
  /// Accepted payment orders, published by the command service's outbox relay; key = payment ID.
  public static let orders = "payments.orders.v1"
  /// Domain events (`PaymentEvent`), published by the dispatcher's outbox relay; key = payment ID.
  public static let events = "payments.events.v1"
  /// The default partition count for the development broker.
  public static let defaultPartitions = 6
}
