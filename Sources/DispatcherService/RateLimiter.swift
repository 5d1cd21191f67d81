public import Logging
import Metrics
public import Postgres
import ServiceKit
import Synchronization

/// The rule of the global rate limiter (docs/architecture.md; the design contract §7), free of I/O so that it can be tested
/// with any clock.
///
/// The provider counts calls when they *arrive*, which the dispatcher never sees; it sees when it
/// lets a call go (before the arrival) and when the call's answer came back (after it). So the
/// rule works with what is known for certain: a call counts from the moment it is granted until
/// `window` after its answer came back, or, while no answer has come, until `window` after the
/// latest moment it can still arrive (its grant plus the longest a call may take: its timeout and
/// some slack). A new call is granted only while fewer than `limit` calls count.
///
/// Why that keeps the provider's sliding window: take any `limit + 1` arrivals and the call `c` of
/// them granted last, at `t`. Each of the others was granted before `t` and arrived after
/// `arrival(c) - window >= t - window`; its answer (or its latest possible arrival) came later
/// still, so at `t` it still counted. That makes `limit` counted calls at `t`, and `c` would not
/// have been granted. Nothing here depends on how late a call leaves after its grant or how long
/// it travels: the guarantee holds on a loaded machine too. What it costs is the time from a
/// call's grant to its answer being recorded (milliseconds against a quick provider), once per
/// call: each of the `limit` places is free again a window plus that time after it was taken.
///
/// One assumption remains: a request that has not reached the provider when its caller gives up
/// waiting (its timeout, which starts when the request leaves, within the slack after its grant)
/// does not reach it later.
public struct RateLimitWindow: Sendable, Hashable {
  /// A call that may still count against the limit. Times are microseconds on one clock.
  public struct Call: Sendable, Hashable {
    public var id: Int64
    /// When its answer came back (`finished`), or the latest it can arrive (in flight).
    public var until: Int64
    public var finished: Bool

    public init(id: Int64, until: Int64, finished: Bool) {
      self.id = id
      self.until = until
      self.finished = finished
    }
  }

  public enum Decision: Sendable, Hashable {
    /// The call may go now.
    case granted
    /// Ask again at this time (nothing can change before it).
    case wait(until: Int64)
  }

  /// Calls allowed per window.
  public var limit: Int
  public var window: Duration
  /// Added to the window, for the granularity of the clocks involved.
  public var guardTime: Duration = .milliseconds(1)

  public init(limit: Int, window: Duration = .seconds(1)) {
    precondition(limit >= 1, "limit must be at least 1")
    self.limit = limit
    self.window = window
  }

  /// Whether call `id` may go at `now`, given the recorded `calls`. When it may, it is recorded as
  /// in flight until `now + maximumCallDuration`. Returns the decision and the calls to keep.
  public func reserve(calls: [Call], now: Int64, id: Int64, maximumCallDuration: Duration) -> (
    Decision, [Call]
  ) {
    let hold = (window + guardTime).microseconds
    let counted = calls.filter { $0.until + hold > now }
    guard counted.count >= limit else {
      let call = Call(id: id, until: now + maximumCallDuration.microseconds, finished: false)
      return (.granted, counted + [call])
    }
    // The earliest moment a counted call can stop counting: a finished one at its answer plus the
    // window; one in flight no earlier than now (its answer is still to come) plus the window.
    let frees = counted.map { ($0.finished ? $0.until : min($0.until, now)) + hold }.sorted()
    return (.wait(until: max(frees[counted.count - limit], now + 1)), counted)
  }

  /// Records that call `id` got its answer (or gave up waiting) at `now`: it counts until a
  /// window after `now`, also when `now` is later than the latest arrival it was given at its
  /// grant. (A request that left late, after a stall of its process, may have arrived as late as
  /// its answer; keeping the earlier bound would free its place while it could still arrive.)
  public func finish(calls: [Call], id: Int64, now: Int64) -> [Call] {
    calls.map { call in
      guard call.id == id, !call.finished else { return call }
      return Call(id: id, until: now, finished: true)
    }
  }

  /// Forgets call `id`: it was granted but never made (its worker found no payment to call for,
  /// or lost the payment before the request left), so it never counted at the provider.
  public func cancel(calls: [Call], id: Int64) -> [Call] {
    calls.filter { $0.id != id || $0.finished }
  }
}

/// The global rate limiter: every provider call first ``acquire(_:unless:)``s a grant here and
/// ``finish(_:)``es it when its answer is in, or ``cancel(_:)``s it when the call was never
/// made (``RateLimitWindow`` has the rule and why it holds).
///
/// The state is one row per *limit group* in `dispatcher.rate_limits` (the calls that still
/// count), decided in one statement that locks the row only while it runs
/// (`dispatcher.rate_limit_reserve`), so all dispatcher instances share it; "now" is PostgreSQL's
/// `clock_timestamp()`, so instance clocks do not matter. A group is a provider's name unless
/// ``Configuration/groups`` puts several providers (say, two names for one upstream account)
/// into one group, which then has one limit.
///
/// The row is the one source of truth for the limit and the window: the first instance that
/// uses a group writes its configured values into the row; an instance whose configuration
/// disagrees with the row logs it once and obeys the row (`payments rate-limit set` changes it).
///
/// Within one instance, callers of a group queue on an in-process gate, first come first served:
/// only the caller at the head asks the database, and it sleeps until the earliest moment a
/// call can stop counting (it never spins), so a thousand waiting workers cost the database no
/// more than one.
public final class PostgresRateLimiter: Sendable {
  public struct Configuration: Sendable {
    /// Calls per window for providers without an entry in ``limits``.
    public var defaultLimit = 2
    /// Calls per window by provider (or by group, for providers in ``groups``).
    public var limits: [String: Int] = [:]
    public var window: Duration = .seconds(1)
    /// Provider → limit group: providers in one group share one limit.
    public var groups: [String: String] = [:]
    /// The longest a call to a provider without an entry in ``callTimeouts`` takes (its timeout).
    public var defaultCallTimeout: Duration = .seconds(5)
    public var callTimeouts: [String: Duration] = [:]
    /// Added to a call's timeout for the latest moment it can reach the provider, when its answer
    /// never came back (its dispatcher died mid-call). A worker does not send a request later
    /// than half of this after its grant (``PaymentWorker``).
    public var callSlack: Duration = .seconds(1)
    public init() {}

    /// The limit group of `provider`.
    public func group(of provider: String) -> String { groups[provider] ?? provider }

    /// The limit this instance is configured with for `group`.
    public func limit(ofGroup group: String) -> Int { limits[group] ?? defaultLimit }

    /// The longest call to `provider` (its timeout plus slack).
    public func maximumCallDuration(_ provider: String) -> Duration {
      (callTimeouts[provider] ?? defaultCallTimeout) + callSlack
    }
  }

  /// Permission for one call: the caller makes it, then calls ``PostgresRateLimiter/finish(_:)``
  /// (or ``PostgresRateLimiter/cancel(_:)`` when it did not make it).
  public struct Grant: Sendable {
    public var provider: String
    /// The limit group the call counts in.
    public var group: String
    public var id: Int64
    /// When it was granted: microseconds since 1970 on the database clock.
    public var grantedAt: Int64
    /// How long the caller waited for it.
    public var waited: Duration

    public init(provider: String, group: String, id: Int64, grantedAt: Int64, waited: Duration) {
      self.provider = provider
      self.group = group
      self.id = id
      self.grantedAt = grantedAt
      self.waited = waited
    }
  }

  private let pool: PostgresConnectionPool
  public let configuration: Configuration
  /// When this instance's recent grants were made, per provider (for the utilization gauge).
  private let grants = Mutex<[String: [ContinuousClock.Instant]]>([:])
  /// The rule each group's row holds, as last seen.
  private let rules = Mutex<[String: RateLimitWindow]>([:])
  private let gates = Mutex<[String: AsyncGate]>([:])
  private let logger: Logger

  public init(pool: PostgresConnectionPool, configuration: Configuration = .init(), logger: Logger) {
    self.pool = pool
    self.configuration = configuration
    self.logger = logger
  }

  /// The rule this instance is configured with for `provider`'s group (the row may hold
  /// another: it wins).
  public func rule(for provider: String) -> RateLimitWindow {
    RateLimitWindow(
      limit: configuration.limit(ofGroup: configuration.group(of: provider)), window: configuration.window)
  }

  /// Waits until a call to `provider` may go.
  public func acquire(_ provider: String) async throws -> Grant {
    guard let grant = try await acquire(provider, unless: { false }) else { throw CancellationError() }
    return grant
  }

  /// Waits until a call to `provider` may go; returns `nil` as soon as `stop` is true (checked
  /// before each decision, so at least once a window).
  public func acquire(_ provider: String, unless stop: @Sendable () -> Bool) async throws -> Grant? {
    let clock = ContinuousClock()
    let start = clock.now
    let group = configuration.group(of: provider)
    let id = Int64.random(in: 1...Int64.max)
    let gate = gates.withLock { gates in
      if let gate = gates[group] { return gate }
      let gate = AsyncGate()
      gates[group] = gate
      return gate
    }
    try await gate.acquire()
    defer { gate.release() }
    while !stop() {
      let (decision, now) = try await decide(
        group, id: id, maximumCallDuration: configuration.maximumCallDuration(provider))
      let received = clock.now
      switch decision {
      case .granted:
        Metrics.Timer(label: "rate_limiter_wait_seconds", dimensions: [("provider", provider)])
          .recordInterval(since: start)
        grants.withLock { grants in grants[provider, default: []].append(received) }
        return Grant(provider: provider, group: group, id: id, grantedAt: now, waited: received - start)
      case .wait(let until):
        // At most a window at a time, so that `stop` is seen.
        let wait = min(Duration.microseconds(until - now), configuration.window)
        try await Task.sleep(until: received + wait, clock: clock)
      }
    }
    return nil
  }

  /// Records that the call of `grant` got its answer, or gave up waiting for one: from now on
  /// it counts only for one more window. Must follow every call that was made; when it cannot
  /// be recorded (the database is away), the call counts until its timeout plus slack.
  public func finish(_ grant: Grant) async {
    await record(
      grant,
      ifFailing: "could not record the end of a provider call; it counts against the limit until its timeout",
      """
      UPDATE dispatcher.rate_limits
      SET call_until[array_position(call_ids, \(grant.id))] = (extract(epoch FROM clock_timestamp()) * 1000000)::bigint,
          call_finished[array_position(call_ids, \(grant.id))] = true
      WHERE provider = \(grant.group) AND array_position(call_ids, \(grant.id)) IS NOT NULL
        AND NOT call_finished[array_position(call_ids, \(grant.id))]
      """)
  }

  /// Gives back a grant whose call was never made (no request left): its place is free at once.
  /// When that cannot be recorded, the grant counts until its timeout plus slack (safe, slower).
  public func cancel(_ grant: Grant) async {
    await record(
      grant, ifFailing: "could not give back an unused rate-limit grant; it counts until its timeout",
      """
      UPDATE dispatcher.rate_limits
      SET call_until = call_until[:array_position(call_ids, \(grant.id)) - 1]
                       || call_until[array_position(call_ids, \(grant.id)) + 1:],
          call_finished = call_finished[:array_position(call_ids, \(grant.id)) - 1]
                       || call_finished[array_position(call_ids, \(grant.id)) + 1:],
          call_ids = array_remove(call_ids, \(grant.id))
      WHERE provider = \(grant.group) AND array_position(call_ids, \(grant.id)) IS NOT NULL
        AND NOT call_finished[array_position(call_ids, \(grant.id))]
      """)
  }

  /// Runs `update` on the grant's row; a failure is logged, not thrown (the grant then counts
  /// until its timeout plus slack, which is safe).
  private func record(_ grant: Grant, ifFailing warning: Logger.Message, _ update: PostgresQuery) async {
    do {
      try await pool.execute(update)
    } catch {
      logger.warning(warning, metadata: ["provider": "\(grant.provider)", "error": "\(error)"])
    }
  }

  /// Decides on call `id` in `group` in one statement (`dispatcher.rate_limit_reserve`, the
  /// same rule as ``RateLimitWindow/reserve(calls:now:id:maximumCallDuration:)``; the row is
  /// locked only inside it); returns the decision and the database's "now" (microseconds).
  func decide(_ group: String, id: Int64, maximumCallDuration: Duration) async throws -> (
    RateLimitWindow.Decision, now: Int64
  ) {
    let configured = RateLimitWindow(limit: configuration.limit(ofGroup: group), window: configuration.window)
    let rows = try await pool.query(
      """
      SELECT granted, wait_until, now_us, call_limit, window_us
      FROM dispatcher.rate_limit_reserve(\(group), \(id), \(maximumCallDuration.microseconds),
                                         \(configured.limit)::integer, \(configured.window.microseconds))
      """)
    guard let row = try rows.singleRow() else {
      throw PostgresRateLimiterError("dispatcher.rate_limit_reserve returned nothing for \(group)")
    }
    let now = try row.decode(Int64.self, at: 2)
    let decision: RateLimitWindow.Decision =
      try row.decode(Bool.self, at: 0) ? .granted : .wait(until: try row.decode(Int64.self, at: 1))
    let rule = RateLimitWindow(
      limit: try row.decode(Int.self, at: 3), window: .microseconds(try row.decode(Int64.self, at: 4)))
    let previous = rules.withLock { rules in
      defer { rules[group] = rule }
      return rules[group]
    }
    if previous != rule, rule != configured {
      logger.warning(
        "the rate limit stored for this group differs from this instance's configuration; the stored one applies",
        metadata: [
          "group": "\(group)", "stored": "\(rule.limit) per \(rule.window)",
          "configured": "\(configured.limit) per \(configured.window)",
        ])
    }
    return (decision, now)
  }

  /// The rule the database holds for `provider`'s group, once this instance has used it.
  public func storedRule(for provider: String) -> RateLimitWindow? {
    rules.withLock { $0[configuration.group(of: provider)] }
  }

  /// Records `rate_limiter_slot_utilization{provider}` for each of `providers` (and any other
  /// provider called): the share of the provider's allowance this instance used in the last
  /// 10 s (0 when it made no call; the sum over instances is roughly the global share).
  public func recordUtilization(providers: [String]) {
    let window = Duration.seconds(10)
    let now = ContinuousClock.now
    let counts = grants.withLock { grants in
      var counts = Dictionary(providers.map { ($0, 0) }, uniquingKeysWith: { first, _ in first })
      for (provider, times) in grants {
        let recent = times.filter { now - $0 <= window }
        grants[provider] = recent
        counts[provider] = recent.count
      }
      return counts
    }
    for (provider, count) in counts {
      let rule = storedRule(for: provider) ?? self.rule(for: provider)
      let allowance = Double(rule.limit) * (window / rule.window)
      Gauge(label: "rate_limiter_slot_utilization", dimensions: [("provider", provider)])
        .record(Double(count) / allowance)
    }
  }
}

/// A first-come-first-served lock for async callers; a waiter whose task is cancelled leaves the
/// queue with `CancellationError`.
final class AsyncGate: Sendable {
  private struct State {
    var held = false
    var waiters: [(id: UInt64, continuation: CheckedContinuation<Void, any Error>)] = []
    var nextID: UInt64 = 0
  }
  private let state = Mutex(State())

  func acquire() async throws {
    let id = state.withLock { state in
      state.nextID += 1
      return state.nextID
    }
    try await withTaskCancellationHandler {
      try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
        enum Start { case now, queued, cancelled }
        let start = state.withLock { state -> Start in
          if !state.held {
            state.held = true
            return .now
          }
          // Checked under the lock: a cancellation handler that already ran found nothing to remove.
          if Task.isCancelled { return .cancelled }
          state.waiters.append((id, continuation))
          return .queued
        }
        switch start {
        case .now: continuation.resume()
        case .cancelled: continuation.resume(throwing: CancellationError())
        case .queued: break
        }
      }
    } onCancel: {
      let waiter = state.withLock { state in
        state.waiters.firstIndex { $0.id == id }.map { state.waiters.remove(at: $0).continuation }
      }
      waiter?.resume(throwing: CancellationError())
    }
  }

  func release() {
    let next = state.withLock { state -> CheckedContinuation<Void, any Error>? in
      guard !state.waiters.isEmpty else {
        state.held = false
        return nil
      }
      return state.waiters.removeFirst().continuation
    }
    next?.resume()
  }
}

struct PostgresRateLimiterError: Error, CustomStringConvertible {
  let description: String
  init(_ description: String) { self.description = description }
}

extension Duration {
  var microseconds: Int64 { components.seconds * 1_000_000 + components.attoseconds / 1_000_000_000_000 }
}
