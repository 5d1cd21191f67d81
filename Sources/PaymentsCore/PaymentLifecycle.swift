public import PaymentsProto

/// The payment lifecycle of docs/design.md §5 as a state machine: which status may follow
/// which.
///
/// ```
/// ACCEPTED ──▶ PROCESSING ──▶ SUCCEEDED
///                  │  ▲  └───▶ FAILED
///                  ▼  │
///            RETRY_SCHEDULED
/// ```
/// Besides the arrows of the diagram, a payment that expires before its next attempt goes from
/// `ACCEPTED` or `RETRY_SCHEDULED` straight to `FAILED`, and a cancelled payment goes to
/// `CANCELED` from any non-terminal status — from `PROCESSING` only once the provider said
/// nothing was charged (the dispatcher decides that, docs/design.md §5). `SUCCEEDED`, `FAILED`
/// and `CANCELED` are terminal.
public enum PaymentLifecycle {
  /// Whether a payment in `from` may move to `to`.
  public static func allows(_ from: Payments_V1_PaymentStatus, _ to: Payments_V1_PaymentStatus) -> Bool {
    switch (from, to) {
    case (.accepted, .processing), (.accepted, .failed), (.accepted, .canceled): true
    case (.processing, .succeeded), (.processing, .failed), (.processing, .retryScheduled),
      (.processing, .canceled):
      true
    case (.retryScheduled, .processing), (.retryScheduled, .failed), (.retryScheduled, .canceled): true
    default: false
    }
  }

  /// A transition the lifecycle forbids.
  public struct ForbiddenTransition: Error, Sendable, Hashable, CustomStringConvertible {
    public let from: Payments_V1_PaymentStatus
    public let to: Payments_V1_PaymentStatus
    public var description: String { "a payment cannot go from \(from) to \(to)" }
  }

  /// Checks a transition; throws ``ForbiddenTransition`` when it is not allowed.
  public static func check(_ from: Payments_V1_PaymentStatus, _ to: Payments_V1_PaymentStatus)
    throws(ForbiddenTransition)
  {
    guard allows(from, to) else { throw ForbiddenTransition(from: from, to: to) }
  }
}
