public import PaymentsProto

extension Payments_V1_PaymentStatus {
  /// `SUCCEEDED`, `FAILED` and `CANCELED`: the payment never changes again.
  public var isTerminal: Bool { self == .succeeded || self == .failed || self == .canceled }
}

extension Payments_V1_RefundStatus {
  /// `SUCCEEDED` and `FAILED`: the refund never changes again.
  public var isTerminal: Bool { self == .succeeded || self == .failed }
}

extension Payments_V1_Payment {
  /// The payment as the command service accepts it: the order's fields, status `ACCEPTED`,
  /// version 1. The query service's read model starts from the same state.
  public init(acceptedOrder order: Payments_V1_PaymentOrderRecord) {
    self.init()
    paymentID = order.paymentID
    idempotencyKey = order.idempotencyKey
    amount = order.amount
    payer = order.payer
    payee = order.payee
    description = order.description
    metadata = order.metadata
    provider = order.provider
    status = .accepted
    createdAt = order.acceptedAt
    updatedAt = order.acceptedAt
    version = 1
  }
}
