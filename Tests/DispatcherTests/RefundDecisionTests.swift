import DispatcherService
import Foundation
import PaymentsCore
import PaymentsProto
import PaymentsTestSupport
import Testing

/// ``RefundDecision`` for every input: a refund is never sent again while an earlier call may
/// have refunded, and never FAILED while it may have refunded.
@Suite("Refund decisions")
struct RefundDecisionTests {
  static let now = Date(timeIntervalSince1970: 1_800_000_000)
  static let retry = RetryPolicy(base: .milliseconds(100), factor: 2, cap: .seconds(30), maximumAttempts: 3)

  static let outcomes: [ProviderOutcome] = [
    .succeeded(reference: "re_1"), .permanentFailure(code: "amount_exceeds_charge", message: "no"),
    .transientFailure(reason: "503"), .configurationError(reason: "401"), .unknown(reason: "timeout"),
  ]
  static let inquiries: [ProviderInquiry] = [
    .charged(reference: "re_1"), .notCharged, .declined(code: "charge_not_found", message: "no"),
    .unavailable(reason: "503"), .configurationError(reason: "401"),
  ]

  @Test("plan: a refund whose last call may have refunded is asked about; otherwise it is sent")
  func plan() {
    #expect(RefundDecision.plan(RefundItem(refundID: "ref_a")) == .refund)
    #expect(RefundDecision.plan(RefundItem(refundID: "ref_a", outcomeUnknown: true)) == .refundInquiry)
  }

  @Test(
    "begin: a refund call counts an attempt, an inquiry does not; both leave the outcome unknown until applied"
  )
  func begin() {
    for attempts in Int32(0)...3 {
      let item = RefundItem(refundID: "ref_a", attempts: attempts)
      let sending = RefundDecision.begin(item, .refund)
      #expect(sending.attempts == attempts + 1 && sending.outcomeUnknown && sending.status == .pending)
      let asking = RefundDecision.begin(item, .refundInquiry)
      #expect(asking.attempts == attempts && asking.outcomeUnknown && asking.status == .pending)
    }
  }

  @Test("every refund outcome at every attempt count: FAILED only on certainty, unknown asks next")
  func refundOutcomes() {
    for attempts in Int32(1)...4 {
      for outcome in Self.outcomes {
        let item = RefundItem(refundID: "ref_a", attempts: attempts, outcomeUnknown: true)
        let (transition, record) = RefundDecision.after(
          item, .charge(outcome), retry: Self.retry, now: Self.now
        ) { _ in 2 }
        #expect(record.kind == .refund)
        switch outcome {
        case .succeeded:
          #expect(transition.status == .succeeded && transition.providerReference == "re_1")
        case .permanentFailure:
          #expect(transition.status == .failed && transition.failureCode == "amount_exceeds_charge")
        case .transientFailure:
          if attempts >= Self.retry.maximumAttempts {
            #expect(transition.status == .failed && transition.failureCode == "retries_exhausted")
          } else {
            #expect(transition.status == .pending && !transition.outcomeUnknown)
            #expect(transition.nextAttemptAt == Self.now + 2)
          }
        case .configurationError:
          #expect(transition.status == .pending && !transition.outcomeUnknown)
          #expect(transition.attempts == attempts - 1, "the platform's fault does not use up an attempt")
          #expect(transition.nextAttemptAt == Self.now + 30)
        case .unknown:
          #expect(
            transition.status == .pending && transition.outcomeUnknown,
            "asked about next, never resent blindly")
          #expect(transition.nextAttemptAt == Self.now + 2)
        }
      }
    }
  }

  @Test("every inquiry answer at every attempt count: the money decides")
  func inquiryAnswers() {
    for attempts in Int32(0)...4 {
      for answer in Self.inquiries {
        let item = RefundItem(refundID: "ref_a", attempts: attempts, outcomeUnknown: true)
        let (transition, record) = RefundDecision.after(
          item, .inquiry(answer), retry: Self.retry, now: Self.now
        ) { _ in 2 }
        #expect(record.kind == .refundInquiry)
        #expect(transition.attempts == attempts)
        switch answer {
        case .charged:
          #expect(transition.status == .succeeded && transition.providerReference == "re_1")
        case .declined:
          #expect(transition.status == .failed && transition.failureCode == "charge_not_found")
        case .notCharged:
          if attempts >= Self.retry.maximumAttempts {
            #expect(transition.status == .failed && transition.failureCode == "retries_exhausted")
          } else {
            #expect(
              transition.status == .pending && !transition.outcomeUnknown
                && transition.nextAttemptAt == Self.now)
          }
        case .unavailable, .configurationError:
          #expect(transition.status == .pending && transition.outcomeUnknown, "still unknown: ask again")
        }
      }
    }
  }

  @Test("a refund call begun but not sent goes back due now, knowing what was known before")
  func abandon() {
    for unknown in [false, true] {
      let claimed = RefundItem(refundID: "ref_a", attempts: 2, outcomeUnknown: unknown)
      let transition = RefundDecision.abandon(claimed, now: Self.now)
      #expect(transition.status == .pending && transition.attempts == 2)
      #expect(transition.outcomeUnknown == unknown && transition.nextAttemptAt == Self.now)
    }
  }

  @Test(
    "random lives against a provider that refunds every request it receives: never refunded twice, never refunded-but-FAILED"
  )
  func randomWalks() {
    var random = SplitMix(state: 7)
    for _ in 0..<5_000 {
      var item = RefundItem(refundID: "ref_a")
      var refunds = 0
      var steps = 0
      while !item.status.isTerminal, steps < 50 {
        steps += 1
        let kind = RefundDecision.plan(item)
        let begun = RefundDecision.begin(item, kind)
        item.attempts = begun.attempts
        item.outcomeUnknown = begun.outcomeUnknown
        if Int.random(in: 0..<8, using: &random) == 0 {
          // The worker vanished mid-call; its refund request may have arrived.
          if kind == .refund, Bool.random(using: &random) { refunds += 1 }
          continue
        }
        let result: CallResult
        switch kind {
        case .refund:
          #expect(refunds == 0, "a refund call only when nothing can have been refunded")
          switch Int.random(in: 0..<6, using: &random) {
          case 0: result = .charge(.transientFailure(reason: "503"))
          case 1:
            refunds += 1
            result = .charge(.unknown(reason: "502 after the refund"))
          case 2: result = .charge(.unknown(reason: "timeout before it arrived"))
          case 3: result = .charge(.configurationError(reason: "401"))
          case 4: result = .charge(.permanentFailure(code: "amount_exceeds_charge", message: "no"))
          default:
            refunds += 1
            result = .charge(.succeeded(reference: "re"))
          }
        default:
          result =
            Int.random(in: 0..<3, using: &random) == 0
            ? .inquiry(.unavailable(reason: "503"))
            : .inquiry(refunds > 0 ? .charged(reference: "re") : .notCharged)
        }
        let (transition, _) = RefundDecision.after(item, result, retry: Self.retry, now: Self.now) { _ in 1 }
        item.status = transition.status
        item.attempts = transition.attempts
        item.outcomeUnknown = transition.outcomeUnknown
      }
      #expect(refunds <= 1, "refunded twice")
      if item.status == .failed { #expect(refunds == 0, "FAILED although refunded") }
      if item.status == .succeeded { #expect(refunds == 1, "SUCCEEDED without a refund") }
    }
  }

  @Test("fits: pending and succeeded refunds plus the new one never exceed the captured amount")
  func fits() {
    #expect(RefundDecision.fits(100, captured: 100, committed: 0))
    #expect(RefundDecision.fits(40, captured: 100, committed: 60))
    #expect(!RefundDecision.fits(41, captured: 100, committed: 60))
    #expect(!RefundDecision.fits(0, captured: 100, committed: 0))
    #expect(!RefundDecision.fits(-5, captured: 100, committed: 0))
    #expect(!RefundDecision.fits(1, captured: 100, committed: 100))
    #expect(!RefundDecision.fits(Int64.max, captured: 100, committed: 0))
  }
}
