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
  /// How long until the next payment of `providers` is due.
  func untilNextDue(providers: [String]) async throws -> Duration?
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
