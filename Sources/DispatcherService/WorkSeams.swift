public import Foundation

/// What ``PaymentWorker`` needs of the work table: ``WorkStore`` (PostgreSQL) in the service,
/// `InMemoryWorkStore` (PaymentsTestSupport) in fast tests of the worker's I/O around
/// ``WorkDecision``. The fencing contract every implementation keeps: a claim draws a fresh
/// token; ``begin(_:_:)`` and ``apply(_:to:callOutcome:)`` act only while the payment still
/// carries the item's token, and return `nil` otherwise.
public protocol PaymentWorkStore: Sendable {
  /// A payment of `providers` that expired or was cancelled and cannot have been charged, claimed.
  func claimSettleable(providers: [String]) async throws -> WorkItem?
  /// The provider of the most overdue due, unclaimed payment among `providers`.
  func dueProvider(among providers: [String]) async throws -> String?
  /// The most overdue due, unclaimed payment of `provider`, claimed with a fresh token and lease.
  func claim(provider: String) async throws -> WorkItem?
  /// The fence before a call: re-validates the token, `PROCESSING`, call recorded, lease renewed;
  /// returns the payment as begun and the store's clock in microseconds.
  func begin(_ item: WorkItem, _ kind: CallKind) async throws -> (WorkItem, now: Int64)?
  /// Applies a transition (with its event) while the token holds.
  func apply(_ transition: Transition, to item: WorkItem, callOutcome: CallRecord?) async throws -> WorkItem?
  /// How long until the next payment (or refund) of `providers` is due.
  func untilNextDue(providers: [String]) async throws -> Duration?

  /// The most overdue due work among `providers`: a payment or a refund.
  func dueWork(among providers: [String]) async throws -> DueWork?
  /// The most overdue due, unclaimed refund of `provider`, claimed with a fresh token and lease.
  func claimRefund(provider: String) async throws -> RefundItem?
  /// The fence before a refund call (as ``begin(_:_:)`` for payments).
  func beginRefund(_ item: RefundItem, _ kind: CallKind) async throws -> (RefundItem, now: Int64)?
  /// Applies a refund transition (with its event when terminal) while the token holds.
  func applyRefund(_ transition: RefundTransition, to item: RefundItem, callOutcome: CallRecord?) async throws
    -> RefundItem?
}

/// Which kind of work is due next, and for which provider.
public struct DueWork: Sendable, Hashable {
  public var provider: String
  public var isRefund: Bool

  public init(provider: String, isRefund: Bool) {
    self.provider = provider
    self.isRefund = isRefund
  }
}

extension PaymentWorkStore {
  // A store without refunds (the in-memory one of the worker's unit tests): payments only.
  public func dueWork(among providers: [String]) async throws -> DueWork? {
    try await dueProvider(among: providers).map { DueWork(provider: $0, isRefund: false) }
  }
  public func claimRefund(provider: String) async throws -> RefundItem? { nil }
  public func beginRefund(_ item: RefundItem, _ kind: CallKind) async throws -> (RefundItem, now: Int64)? {
    nil
  }
  public func applyRefund(_ transition: RefundTransition, to item: RefundItem, callOutcome: CallRecord?)
    async throws -> RefundItem?
  { nil }
}

/// What ``PaymentWorker`` needs of the global rate limiter: ``PostgresRateLimiter`` in the
/// service, `InMemoryRateLimiter` (PaymentsTestSupport) in fast tests.
public protocol ProviderRateLimiter: Sendable {
  /// A worker sends no request later than half of this after its grant.
  var callSlack: Duration { get }
  /// Waits for a grant for a call to `provider`; `nil` once `stop` is true.
  func acquire(_ provider: String, unless stop: @Sendable () -> Bool) async throws -> RateLimitGrant?
  /// The call of `grant` was made and its answer is in (or its caller gave up).
  func finish(_ grant: RateLimitGrant) async
  /// The call of `grant` was never made.
  func cancel(_ grant: RateLimitGrant) async
}

/// Permission for one provider call.
public typealias RateLimitGrant = PostgresRateLimiter.Grant

extension WorkStore: PaymentWorkStore {}

extension PostgresRateLimiter: ProviderRateLimiter {
  public var callSlack: Duration { configuration.callSlack }
}
