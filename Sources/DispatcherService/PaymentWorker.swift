import Foundation
public import Logging
import Metrics
public import PaymentsCore
import PaymentsProto
public import ServiceKit
import Synchronization

/// Executes payments and refunds (docs/design.md §5–§7): one rate-limit grant per provider call,
/// one fenced claim per grant, the decisions in ``WorkDecision`` and ``RefundDecision``.
///
/// One round of a worker:
/// 1. A payment of a served provider that expired or was cancelled and cannot have been charged
///    ends at once (`FAILED` or `CANCELED`), without a call.
/// 2. Otherwise the worker looks for the provider of the most overdue due payment and waits for
///    a grant of that provider's limit — *before* it claims anything, so no payment waits in a
///    claimed state while the limiter is busy, however many workers there are.
/// 3. With the grant it claims the most overdue payment of that provider (a fresh fencing
///    token and lease). Nothing to claim: the grant is given back unused.
/// 4. ``WorkStore/begin(_:_:)`` re-validates the claim, moves the payment to `PROCESSING`,
///    records the call and renews the lease, in one transaction. If the grant is by then older
///    than half the limiter's slack, the request is not sent (the limiter's guarantee assumes a
///    request leaves within the slack); the payment goes back, due now.
/// 5. The call (a charge, or an inquiry when an earlier call's outcome is unknown), then the
///    limiter learns the answer came back, then the outcome's transition is written — only if
///    the token is still on the row.
///
/// The lease is longer than any call (checked at start-up), so nobody can take a payment over
/// while its request may still be on the way; a worker that stalls beyond its lease finds the
/// token replaced and writes nothing, and the new owner inquires before it decides.
public struct PaymentWorker: Sendable {
  private let store: any PaymentWorkStore
  private let limiter: any ProviderRateLimiter
  private let providers: ProviderRegistry
  private let defaultRetry: RetryPolicy
  private let retryByProvider: [String: RetryPolicy]
  private let health: ProviderHealth
  private let logger: Logger

  /// - Parameters:
  ///   - retry: the retry policy of providers without one in `retryByProvider`.
  ///   - health: where refused credentials are reported.
  public init(
    store: any PaymentWorkStore, limiter: any ProviderRateLimiter, providers: ProviderRegistry,
    retry: RetryPolicy,
    retryByProvider: [String: RetryPolicy] = [:], health: ProviderHealth = ProviderHealth(), logger: Logger
  ) {
    self.store = store
    self.limiter = limiter
    self.providers = providers
    self.defaultRetry = retry
    self.retryByProvider = retryByProvider
    self.health = health
    self.logger = logger
  }

  /// The providers this instance serves: it claims only their payments.
  var served: [String] { providers.names.sorted() }

  /// Works until the task is cancelled or `shutdown` triggers (then it finishes the payment in
  /// hand first): executes due payments; when there are none, sleeps until `doorbell` rings (new
  /// work) or the next payment is due.
  public func run(doorbell: Doorbell, shutdown: ShutdownSignal = ShutdownSignal()) async {
    while !Task.isCancelled, !shutdown.isTriggered {
      do {
        if try await round(shutdown: shutdown) { continue }
        let untilDue = try await store.untilNextDue(providers: served) ?? .seconds(5)
        await doorbell.wait(upTo: min(max(untilDue, .milliseconds(10)), .seconds(5)))
      } catch {
        if Task.isCancelled { return }
        logger.warning("dispatcher worker failed; retrying", metadata: ["error": "\(error)"])
        try? await Task.sleep(for: .seconds(1))
      }
    }
  }

  /// One round; `false` when there was nothing due.
  public func round(shutdown: ShutdownSignal = ShutdownSignal()) async throws -> Bool {
    if let settleable = try await store.claimSettleable(providers: served) {
      // Claimed only when waiting with no call of unknown outcome: a cancellation wins over expiry.
      let transition = settleable.cancelRequested ? settleable.cancellation : settleable.expiry
      _ = try await store.apply(transition, to: settleable, callOutcome: nil)
      return true
    }
    guard let due = try await store.dueWork(among: served) else { return false }
    guard let grant = try await limiter.acquire(due.provider, unless: { shutdown.isTriggered }) else {
      return false
    }
    let claimed: Claimed?
    do {
      claimed = try await claim(due)
    } catch {
      await limiter.cancel(grant)
      throw error
    }
    switch claimed {
    case .payment(let item): try await process(item, grant: grant)
    case .refund(let refund): try await processRefund(refund, grant: grant)
    case nil: await limiter.cancel(grant)  // another worker took what was due
    }
    return true
  }

  private enum Claimed {
    case payment(WorkItem)
    case refund(RefundItem)
  }

  /// Claims work of `due.provider`: the kind found most overdue first, the other if another
  /// worker took it meanwhile.
  private func claim(_ due: DueWork) async throws -> Claimed? {
    if due.isRefund, let refund = try await store.claimRefund(provider: due.provider) {
      return .refund(refund)
    }
    if let item = try await store.claim(provider: due.provider) { return .payment(item) }
    if !due.isRefund, let refund = try await store.claimRefund(provider: due.provider) {
      return .refund(refund)
    }
    return nil
  }

  /// Takes one claimed refund as far as one call goes (as ``process(_:grant:)`` does a payment):
  /// the fence, the grant's age, the call, then the answer's transition while the token holds.
  func processRefund(_ claimed: RefundItem, grant: RateLimitGrant) async throws {
    var logger = self.logger
    logger[metadataKey: "refund_id"] = "\(claimed.refundID)"
    logger[metadataKey: "payment_id"] = "\(claimed.paymentID)"
    logger[metadataKey: "provider"] = "\(claimed.provider)"
    guard let provider = providers.provider(named: claimed.provider) else {
      await limiter.cancel(grant)
      return
    }
    let kind = RefundDecision.plan(claimed)
    let begun: (item: RefundItem, now: Int64)?
    do {
      begun = try await store.beginRefund(claimed, kind)
    } catch {
      await limiter.cancel(grant)
      throw error
    }
    guard let (item, beganAt) = begun else {
      await limiter.cancel(grant)
      logger.warning("lost the refund's claim before the call; another worker has it")
      return
    }
    guard beganAt - grant.grantedAt <= limiter.callSlack.microseconds / 2 else {
      await limiter.cancel(grant)
      logger.warning(
        "the rate-limit grant is too old to send the refund request safely; the refund goes back",
        metadata: ["grant_age_ms": "\((beganAt - grant.grantedAt) / 1000)"])
      _ = try await store.applyRefund(
        RefundDecision.abandon(claimed, now: Date()), to: item,
        callOutcome: CallRecord(kind: kind, outcome: "not_sent", detail: "grant too old"))
      return
    }
    let result: CallResult
    switch kind {
    case .refund:
      result = .charge(
        await provider.refund(
          ProviderRefundRequest(
            idempotencyKey: item.providerKey, chargeReference: item.chargeReference,
            chargeKey: item.chargeKey,
            amountMinor: item.amountMinor, currency: item.currency, reason: item.reason)))
    default:
      result = .inquiry(await provider.inquireRefund(idempotencyKey: item.providerKey))
    }
    await limiter.finish(grant)
    logger.debug("provider refund call", metadata: ["kind": "\(kind)", "result": "\(result)"])
    health.record(result, provider: item.provider, logger: logger)
    let retry = retryByProvider[item.provider] ?? defaultRetry
    var random = SystemRandomNumberGenerator()
    let (transition, record) = RefundDecision.after(item, result, retry: retry, now: Date()) { attempts in
      (retry.delay(afterAttempt: Int(attempts), using: &random) ?? retry.cap).seconds
    }
    if try await store.applyRefund(transition, to: item, callOutcome: record) == nil {
      logger.warning(
        "lost the refund's claim during the call; the new owner asks the provider before deciding",
        metadata: ["result": "\(result)"])
    }
  }

  /// Takes one claimed payment as far as one call goes; gives `grant` back when no call is made
  /// and finishes it when one was.
  func process(_ claimed: WorkItem, grant: RateLimitGrant) async throws {
    var logger = self.logger
    logger[metadataKey: "payment_id"] = "\(claimed.paymentID)"
    logger[metadataKey: "provider"] = "\(claimed.provider)"
    guard let provider = providers.provider(named: claimed.provider) else {
      // Claims are only made for served providers; nothing to do here.
      await limiter.cancel(grant)
      return
    }
    let kind: CallKind
    switch WorkDecision.plan(claimed, now: Date()) {
    case .settle(let transition):
      await limiter.cancel(grant)
      _ = try await store.apply(transition, to: claimed, callOutcome: nil)
      return
    case .call(let planned):
      kind = planned
    }
    let begun: (item: WorkItem, now: Int64)?
    do {
      begun = try await store.begin(claimed, kind)
    } catch {
      // Whether or not the begin committed, no request left: the grant is unused. (If it did
      // commit, the payment is PROCESSING and its next owner inquires.)
      await limiter.cancel(grant)
      throw error
    }
    guard let (item, beganAt) = begun else {
      await limiter.cancel(grant)
      logger.warning("lost the claim before the call; another worker has the payment")
      return
    }
    let slack = limiter.callSlack.microseconds
    guard beganAt - grant.grantedAt <= slack / 2 else {
      await limiter.cancel(grant)
      logger.warning(
        "the rate-limit grant is too old to send the request safely; the payment goes back",
        metadata: ["grant_age_ms": "\((beganAt - grant.grantedAt) / 1000)"])
      _ = try await store.apply(
        WorkDecision.abandon(claimed, now: Date()), to: item,
        callOutcome: CallRecord(kind: kind, outcome: "not_sent", detail: "grant too old"))
      return
    }
    logger[metadataKey: "attempt"] = "\(item.attempts)"
    let result: CallResult
    switch kind {
    case .charge:
      let request = ProviderChargeRequest(
        idempotencyKey: item.providerKey, amountMinor: item.order.amount?.amountMinor ?? 0,
        currency: item.order.amount?.currency ?? "", payerAccount: item.order.payer?.accountID ?? "",
        payeeAccount: item.order.payee?.accountID ?? "", description: item.order.description)
      result = .charge(await provider.charge(request))
    case .inquiry, .refund, .refundInquiry:  // a payment's plan is a charge or an inquiry
      result = .inquiry(await provider.inquire(idempotencyKey: item.providerKey))
    }
    await limiter.finish(grant)
    logger.debug("provider call", metadata: ["kind": "\(kind)", "result": "\(result)"])
    health.record(result, provider: item.provider, logger: logger)
    let retry = retryByProvider[item.provider] ?? defaultRetry
    var random = SystemRandomNumberGenerator()
    let (transition, record) = WorkDecision.after(item, result, retry: retry, now: Date()) { attempts in
      let delay = retry.delay(afterAttempt: Int(attempts), using: &random) ?? retry.cap
      return Double(delay.components.seconds) + Double(delay.components.attoseconds) / 1e18
    }
    if try await store.apply(transition, to: item, callOutcome: record) == nil {
      logger.warning(
        "lost the claim during the call; the new owner asks the provider before deciding",
        metadata: ["result": "\(result)"])
    }
  }
}

/// Which providers refuse the platform's credentials right now (401, 403, a bad signature): such
/// a provider turns this instance's health `NOT_SERVING` and `provider_misconfigured{provider}`
/// to 1 until one of its calls is accepted again. Its payments wait; none fails for it.
public final class ProviderHealth: Sendable {
  private let refused = Mutex<Set<String>>([])
  private let changes = Mutex<[@Sendable (Bool) -> Void]>([])

  public init() {}

  /// Whether every provider accepts the platform's credentials.
  public var isHealthy: Bool { refused.withLock { $0.isEmpty } }

  /// The providers that refuse the credentials.
  public var misconfigured: Set<String> { refused.withLock { $0 } }

  /// Calls `observer` with ``isHealthy`` whenever it changes.
  public func onChange(_ observer: @escaping @Sendable (Bool) -> Void) {
    changes.withLock { $0.append(observer) }
  }

  func record(_ result: CallResult, provider: String, logger: Logger) {
    let refusedNow: Bool
    switch result {
    case .charge(.configurationError(let reason)), .inquiry(.configurationError(let reason)):
      logger.error(
        "the provider refuses the platform's credentials; its payments and refunds wait until this is fixed",
        metadata: ["reason": "\(reason)"])
      refusedNow = true
    case .charge(.unknown), .charge(.transientFailure), .inquiry(.unavailable):
      return  // says nothing about the credentials
    default:
      refusedNow = false
    }
    let (before, after) = refused.withLock { refused in
      let before = refused.isEmpty
      if refusedNow { refused.insert(provider) } else { refused.remove(provider) }
      return (before, refused.isEmpty)
    }
    Gauge(label: "provider_misconfigured", dimensions: [("provider", provider)]).record(refusedNow ? 1 : 0)
    if before != after {
      for observer in changes.withLock({ $0 }) { observer(after) }
    }
  }
}
