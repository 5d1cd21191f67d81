import DispatcherService
import Foundation
import PaymentsCore
import PaymentsProto
import PaymentsTestSupport
import Testing

/// ``WorkDecision`` for every combination of state and answer, without PostgreSQL: the money
/// rules (a payment that may have been charged is never charged again or failed before an
/// inquiry; FAILED only with certainty; refused credentials never fail a payment).
@Suite("Worker decisions")
struct WorkDecisionTests {
  static let now = Date(timeIntervalSince1970: 1_800_000_000)
  static let retry = RetryPolicy(base: .milliseconds(100), factor: 2, cap: .seconds(10), maximumAttempts: 3)

  static let chargeOutcomes: [ProviderOutcome] = [
    .succeeded(reference: "ch_1"), .permanentFailure(code: "card_declined", message: "no"),
    .transientFailure(reason: "503"), .configurationError(reason: "401"), .unknown(reason: "timeout"),
  ]
  static let inquiries: [ProviderInquiry] = [
    .notCharged, .charged(reference: "ch_1"), .declined(code: "card_declined", message: "no"),
    .unavailable(reason: "503"), .configurationError(reason: "403"),
  ]

  /// Every claimable state: status, attempts 0...4, outcome known or not, expiry none/past/future.
  static var claimable: [WorkItem] {
    var items: [WorkItem] = []
    for status in [Payments_V1_PaymentStatus.accepted, .processing, .retryScheduled] {
      for attempts in Int32(0)...4 {
        for unknown in [false, true] {
          for expiry in [nil, now - 1, now + 60] {
            items.append(
              WorkItem(
                paymentID: "pay_1", status: status, attempts: attempts, outcomeUnknown: unknown,
                expiresAt: expiry))
          }
        }
      }
    }
    return items
  }

  func after(_ item: WorkItem, _ result: CallResult) -> (Transition, CallRecord) {
    WorkDecision.after(item, result, retry: Self.retry, now: Self.now) { _ in 2 }
  }

  @Test("a payment whose last call may have charged is only ever asked about, never charged or settled")
  func unknownMeansInquiry() {
    for item in Self.claimable {
      let plan = WorkDecision.plan(item, now: Self.now)
      if item.status == .processing || item.outcomeUnknown {
        #expect(plan == .call(.inquiry), "\(item.status) unknown=\(item.outcomeUnknown)")
      } else if item.isExpired(at: Self.now) {
        #expect(plan == .settle(item.expiry))
        #expect(item.expiry.status == .failed && item.expiry.failure?.code == "expired")
      } else {
        #expect(plan == .call(.charge))
      }
    }
  }

  @Test("begin: PROCESSING, a charge counts an attempt, an inquiry does not and marks the outcome unknown")
  func begin() {
    for item in Self.claimable {
      for kind in [CallKind.charge, .inquiry] {
        let transition = WorkDecision.begin(item, kind)
        #expect(transition.status == .processing)
        #expect(transition.keepLease)
        #expect(transition.attempts == item.attempts + (kind == .charge ? 1 : 0))
        #expect(transition.outcomeUnknown == (kind == .inquiry))
      }
    }
  }

  @Test("every charge outcome in every state: FAILED only on certainty, unknown keeps the payment open")
  func chargeOutcomes() {
    for claimed in Self.claimable where WorkDecision.plan(claimed, now: Self.now) == .call(.charge) {
      var item = claimed
      item.status = .processing
      item.attempts += 1
      for outcome in Self.chargeOutcomes {
        let (transition, record) = after(item, .charge(outcome))
        #expect(record.kind == .charge)
        #expect(PaymentLifecycle.allows(.processing, transition.status))
        #expect(!transition.keepLease, "the lease goes back after every call")
        switch outcome {
        case .succeeded(let reference):
          #expect(transition.status == .succeeded && transition.providerReference == reference)
        case .permanentFailure(let code, _):
          #expect(transition.status == .failed && transition.failure?.code == code)
        case .transientFailure:
          // Certain that nothing was charged: fails when out of attempts or expired, else retries.
          let expired = item.isExpired(at: Self.now)
          let exhausted = item.attempts >= Self.retry.maximumAttempts
          #expect(transition.status == (expired || exhausted ? .failed : .retryScheduled))
          #expect(!transition.outcomeUnknown)
          if expired { #expect(transition.failure?.code == "expired") }
          if !expired && exhausted { #expect(transition.failure?.code == "retries_exhausted") }
        case .configurationError:
          #expect(transition.status == .retryScheduled, "refused credentials never fail a payment")
          #expect(transition.attempts == item.attempts - 1, "and do not use up an attempt")
          #expect(!transition.outcomeUnknown)
          #expect(
            transition.nextAttemptAt == item.nextAttempt(after: 10, now: Self.now), "waits the retry cap")
        case .unknown:
          #expect(transition.status == .retryScheduled, "never FAILED after a call that may have charged")
          #expect(transition.outcomeUnknown)
          #expect(transition.attempts == item.attempts)
        }
      }
    }
  }

  @Test("every inquiry answer in every state: the money decides, not the attempts or the clock")
  func inquiryAnswers() {
    for claimed in Self.claimable where WorkDecision.plan(claimed, now: Self.now) == .call(.inquiry) {
      var item = claimed
      item.status = .processing
      item.outcomeUnknown = true
      for inquiry in Self.inquiries {
        let (transition, record) = after(item, .inquiry(inquiry))
        #expect(record.kind == .inquiry)
        #expect(PaymentLifecycle.allows(.processing, transition.status))
        #expect(transition.attempts == item.attempts)
        switch inquiry {
        case .charged(let reference):
          #expect(transition.status == .succeeded && transition.providerReference == reference)
        case .declined(let code, _):
          #expect(transition.status == .failed && transition.failure?.code == code)
        case .notCharged:
          let expired = item.isExpired(at: Self.now)
          let exhausted = item.attempts >= Self.retry.maximumAttempts
          #expect(transition.status == (expired || exhausted ? .failed : .retryScheduled))
          #expect(!transition.outcomeUnknown, "certain now: nothing was charged")
          if transition.status == .retryScheduled { #expect(transition.nextAttemptAt == Self.now) }
        case .unavailable, .configurationError:
          #expect(transition.status == .retryScheduled, "still unknown: ask again, even when expired")
          #expect(transition.outcomeUnknown)
        }
      }
    }
  }

  @Test("a call begun but not sent goes back due now, with what was known before")
  func abandon() {
    for item in Self.claimable {
      let transition = WorkDecision.abandon(item, now: Self.now)
      #expect(transition.status == .retryScheduled)
      #expect(transition.attempts == item.attempts)
      #expect(transition.outcomeUnknown == (item.outcomeUnknown || item.status == .processing))
      #expect(transition.nextAttemptAt == Self.now)
    }
  }

  /// A random walk through the decisions against a provider that charges on some calls whose
  /// answer says otherwise: the state machine never charges a payment that may already be
  /// charged, and never ends FAILED when a charge exists.
  @Test("random walks against a lying network: never charged twice, never charged-but-FAILED")
  func randomWalks() {
    var random = SystemRandomNumberGenerator()
    for _ in 0..<2_000 {
      var item = WorkItem(
        paymentID: "pay_1", status: .accepted, expiresAt: Bool.random(using: &random) ? Self.now + 30 : nil)
      var charges = 0
      var now = Self.now
      var steps = 0
      while !(item.status == .succeeded || item.status == .failed), steps < 200 {
        steps += 1
        now += Double.random(in: 0...10, using: &random)
        switch WorkDecision.plan(item, now: now) {
        case .settle(let transition):
          item.status = transition.status
        case .call(let kind):
          let begun = WorkDecision.begin(item, kind)
          item.status = begun.status
          item.attempts = begun.attempts
          item.outcomeUnknown = begun.outcomeUnknown
          let result: CallResult
          switch kind {
          case .charge:
            #expect(charges == 0, "a charge call only when nothing can have been charged")
            switch Int.random(in: 0..<6, using: &random) {
            case 0: result = .charge(.transientFailure(reason: "503"))
            case 1:
              charges += 1
              result = .charge(.unknown(reason: "502 after the charge"))
            case 2: result = .charge(.unknown(reason: "timeout, not charged"))
            case 3: result = .charge(.configurationError(reason: "401"))
            case 4: result = .charge(.permanentFailure(code: "card_declined", message: "no"))
            default:
              charges += 1
              result = .charge(.succeeded(reference: "ch"))
            }
          case .inquiry:
            if Int.random(in: 0..<3, using: &random) == 0 {
              result = .inquiry(.unavailable(reason: "503"))
            } else {
              result = .inquiry(charges > 0 ? .charged(reference: "ch") : .notCharged)
            }
          case .refund, .refundInquiry:
            Issue.record("a payment's plan names a refund call")
            result = .inquiry(.unavailable(reason: "-"))
          }
          let (transition, _) = WorkDecision.after(item, result, retry: Self.retry, now: now) { _ in 1 }
          item.status = transition.status
          item.attempts = transition.attempts
          item.outcomeUnknown = transition.outcomeUnknown
        }
      }
      #expect(charges <= 1)
      if item.status == .failed { #expect(charges == 0, "FAILED although charged") }
      if item.status == .succeeded { #expect(charges == 1) }
    }
  }

  @Test("a cancellation cancels at once only what cannot have been charged; the rest waits for an inquiry")
  func cancelDecision() {
    for status in [
      Payments_V1_PaymentStatus.accepted, .processing, .retryScheduled, .succeeded, .failed, .canceled,
    ] {
      for unknown in [false, true] {
        let decision = WorkDecision.cancel(status: status, outcomeUnknown: unknown)
        switch status {
        case .accepted, .retryScheduled:
          #expect(decision == (unknown ? .awaitInquiry : .cancelNow), "\(status) unknown=\(unknown)")
        case .processing: #expect(decision == .awaitInquiry)
        case .canceled: #expect(decision == .alreadyCanceled)
        default: #expect(decision == .refuse(status))
        }
      }
    }
  }

  @Test("a cancelled payment is never charged again: it is asked about, or cancelled without a call")
  func cancelledPlans() {
    for var item in Self.claimable {
      item.cancelRequested = true
      let plan = WorkDecision.plan(item, now: Self.now)
      if item.status == .processing || item.outcomeUnknown {
        #expect(plan == .call(.inquiry), "\(item.status) unknown=\(item.outcomeUnknown)")
      } else {
        #expect(plan == .settle(item.cancellation))
        #expect(item.cancellation.status == .canceled)
      }
    }
  }

  @Test("after a call, a cancelled payment ends CANCELED only when nothing was charged")
  func cancelledAfterCalls() {
    var item = WorkItem(paymentID: "pay_1", status: .processing, attempts: 1, cancelRequested: true)
    #expect(after(item, .charge(.succeeded(reference: "ch_1"))).0.status == .succeeded)
    #expect(after(item, .charge(.permanentFailure(code: "card_declined", message: "no"))).0.status == .failed)
    #expect(after(item, .charge(.transientFailure(reason: "503"))).0 == item.cancellation)
    #expect(after(item, .charge(.configurationError(reason: "401"))).0 == item.cancellation)
    let unknown = after(item, .charge(.unknown(reason: "timeout"))).0
    #expect(unknown.status == .retryScheduled && unknown.outcomeUnknown)
    item.outcomeUnknown = true
    #expect(after(item, .inquiry(.charged(reference: "ch_1"))).0.status == .succeeded)
    #expect(after(item, .inquiry(.notCharged)).0 == item.cancellation)
    #expect(after(item, .inquiry(.declined(code: "card_declined", message: "no"))).0.status == .failed)
    let unavailable = after(item, .inquiry(.unavailable(reason: "503"))).0
    #expect(unavailable.status == .retryScheduled && unavailable.outcomeUnknown)
  }

  @Test("random lives with a cancellation at a random step: never both charged and CANCELED")
  func cancellationRandomWalk() {
    var random = SplitMix(state: 7)
    for _ in 0..<5_000 {
      var item = WorkItem(paymentID: "pay_1", status: .accepted)
      var charges = 0
      let cancelAt = Int.random(in: 0..<12, using: &random)
      for step in 0..<40 {
        if item.status.isTerminal { break }
        if step == cancelAt {
          switch WorkDecision.cancel(status: item.status, outcomeUnknown: item.outcomeUnknown) {
          case .cancelNow:
            #expect(charges == 0, "cancelled at once although charged")
            item.status = .canceled
            continue
          case .awaitInquiry: item.cancelRequested = true
          default: break
          }
        }
        switch WorkDecision.plan(item, now: Self.now) {
        case .settle(let transition):
          item.status = transition.status
        case .call(let kind):
          let begun = WorkDecision.begin(item, kind)
          item.status = begun.status
          item.attempts = begun.attempts
          item.outcomeUnknown = begun.outcomeUnknown
          let result: CallResult
          switch kind {
          case .charge:
            #expect(!item.cancelRequested, "a charge call after the cancellation")
            switch Int.random(in: 0..<4, using: &random) {
            case 0: result = .charge(.transientFailure(reason: "503"))
            case 1:
              charges += 1
              result = .charge(.unknown(reason: "502 after the charge"))
            case 2: result = .charge(.unknown(reason: "timeout, not charged"))
            default:
              charges += 1
              result = .charge(.succeeded(reference: "ch"))
            }
          case .inquiry:
            result = .inquiry(charges > 0 ? .charged(reference: "ch") : .notCharged)
          case .refund, .refundInquiry:
            Issue.record("a payment's plan names a refund call")
            result = .inquiry(.unavailable(reason: "-"))
          }
          let (transition, _) = WorkDecision.after(item, result, retry: Self.retry, now: Self.now) { _ in 1 }
          item.status = transition.status
          item.attempts = transition.attempts
          item.outcomeUnknown = transition.outcomeUnknown
        }
      }
      #expect(item.status.isTerminal)
      if item.status == .canceled { #expect(charges == 0, "CANCELED although charged") }
      if item.status == .succeeded { #expect(charges == 1) }
    }
  }
}
