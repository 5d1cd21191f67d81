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

  /// Records that call `id` got its answer (or gave up waiting) at `now`.
  public func finish(calls: [Call], id: Int64, now: Int64) -> [Call] {
    calls.map { call in
      guard call.id == id, !call.finished else { return call }
      return Call(id: id, until: min(call.until, now), finished: true)
    }
  }
}

/// The global rate limiter: every provider call first ``acquire(_:)``s a grant here and
/// ``finish(_:)``es it when its answer is in (``RateLimitWindow`` has the rule and why it holds).
///
/// The state is one row per provider in `dispatcher.rate_limits` (the calls that still count),
/// locked for each decision, so all dispatcher instances share it; "now" is PostgreSQL's
/// `clock_timestamp()`, so instance clocks do not matter. A caller that must wait sleeps until the
/// earliest moment a call can stop counting, then asks again (it never spins).
public final class PostgresRateLimiter: Sendable {
  public struct Configuration: Sendable {
    /// Calls per window for providers without an entry in ``limits``.
    public var defaultLimit = 2
    /// Calls per window by provider.
    public var limits: [String: Int] = [:]
    public var window: Duration = .seconds(1)
    /// The longest a call to a provider without an entry in ``callTimeouts`` takes (its timeout).
    public var defaultCallTimeout: Duration = .seconds(5)
    public var callTimeouts: [String: Duration] = [:]
    /// Added to a call's timeout for the latest moment it can reach the provider, when its answer
    /// never came back (its dispatcher died mid-call).
    public var callSlack: Duration = .seconds(1)
    public init() {}
  }

  /// Permission for one call: the caller makes it, then calls ``PostgresRateLimiter/finish(_:)``.
  public struct Grant: Sendable {
    public var provider: String
    public var id: Int64
    /// When it was granted: microseconds since 1970 on the database clock.
    public var grantedAt: Int64
    /// How long the caller waited for it.
    public var waited: Duration
  }

  private let pool: PostgresConnectionPool
  private let configuration: Configuration
  /// When this instance's recent grants were made, per provider (for the utilization gauge).
  private let grants = Mutex<[String: [ContinuousClock.Instant]]>([:])
  /// Providers whose `dispatcher.rate_limits` row is known to exist.
  private let knownProviders = Mutex<Set<String>>([])
  private let logger: Logger

  public init(pool: PostgresConnectionPool, configuration: Configuration = .init(), logger: Logger) {
    self.pool = pool
    self.configuration = configuration
    self.logger = logger
  }

  public func rule(for provider: String) -> RateLimitWindow {
    RateLimitWindow(
      limit: configuration.limits[provider] ?? configuration.defaultLimit, window: configuration.window)
  }

  /// Waits until a call to `provider` may go.
  public func acquire(_ provider: String) async throws -> Grant {
    let clock = ContinuousClock()
    let start = clock.now
    let id = Int64.random(in: 1...Int64.max)
    while true {
      let (decision, now) = try await decide(provider, id: id)
      let received = clock.now
      switch decision {
      case .granted:
        Metrics.Timer(label: "rate_limiter_wait_seconds", dimensions: [("provider", provider)])
          .recordInterval(since: start)
        grants.withLock { grants in grants[provider, default: []].append(received) }
        return Grant(provider: provider, id: id, grantedAt: now, waited: received - start)
      case .wait(let until):
        try await Task.sleep(until: received + .microseconds(until - now), clock: clock)
      }
    }
  }

  /// Records that the call of `grant` got its answer, or gave up waiting for one: from now on
  /// it counts only for one more window. Must follow every granted call; when it cannot be
  /// recorded (the database is away), the call counts until its timeout plus slack, which is
  /// safe and only slower.
  public func finish(_ grant: Grant) async {
    do {
      try await pool.execute(
        """
        UPDATE dispatcher.rate_limits
        SET call_until[array_position(call_ids, \(grant.id))] =
              LEAST(call_until[array_position(call_ids, \(grant.id))],
                    (extract(epoch FROM clock_timestamp()) * 1000000)::bigint),
            call_finished[array_position(call_ids, \(grant.id))] = true
        WHERE provider = \(grant.provider) AND array_position(call_ids, \(grant.id)) IS NOT NULL
        """)
    } catch {
      logger.warning(
        "could not record the end of a provider call; it counts against the limit until its timeout",
        metadata: ["provider": "\(grant.provider)", "error": "\(error)"])
    }
  }

  /// Decides on call `id` to `provider` in one transaction; returns the decision and the
  /// database's "now" (microseconds).
  func decide(_ provider: String, id: Int64) async throws -> (RateLimitWindow.Decision, now: Int64) {
    let rule = rule(for: provider)
    let timeout = configuration.callTimeouts[provider] ?? configuration.defaultCallTimeout
    if !knownProviders.withLock({ $0.contains(provider) }) {
      // The provider's row, once per process (rows are never deleted).
      try await pool.execute(
        "INSERT INTO dispatcher.rate_limits (provider) VALUES (\(provider)) ON CONFLICT DO NOTHING")
      knownProviders.withLock { _ = $0.insert(provider) }
    }
    return try await pool.withTransaction { connection in
      let rows = try await connection.query(
        """
        SELECT array_to_string(call_ids, ','), array_to_string(call_until, ','), array_to_string(call_finished, ','),
               (extract(epoch FROM clock_timestamp()) * 1000000)::bigint
        FROM dispatcher.rate_limits WHERE provider = \(provider) FOR UPDATE
        """)
      let ids = try rows[0].decode(String.self, at: 0).split(separator: ",").compactMap { Int64($0) }
      let untils = try rows[0].decode(String.self, at: 1).split(separator: ",").compactMap { Int64($0) }
      let finished = try rows[0].decode(String.self, at: 2).split(separator: ",").map {
        $0 == "t" || $0 == "true"
      }
      // The clock is read with the row locked: no decision on this provider can come between.
      let now = try rows[0].decode(Int64.self, at: 3)
      guard ids.count == untils.count, ids.count == finished.count else {
        throw PostgresRateLimiterError("dispatcher.rate_limits row of \(provider) is inconsistent")
      }
      let calls = (0..<ids.count).map {
        RateLimitWindow.Call(id: ids[$0], until: untils[$0], finished: finished[$0])
      }
      let (decision, kept) = rule.reserve(
        calls: calls, now: now, id: id, maximumCallDuration: timeout + configuration.callSlack)
      if kept != calls {
        try await connection.execute(
          """
          UPDATE dispatcher.rate_limits
          SET call_ids = \(PostgresArray(kept.map(\.id)))::bigint[],
              call_until = \(PostgresArray(kept.map(\.until)))::bigint[],
              call_finished = \(PostgresArray(kept.map(\.finished)))::boolean[]
          WHERE provider = \(provider)
          """)
      }
      return (decision, now)
    }
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
      let limit = configuration.limits[provider] ?? configuration.defaultLimit
      let allowance = Double(limit) * (window / configuration.window)
      Gauge(label: "rate_limiter_slot_utilization", dimensions: [("provider", provider)])
        .record(Double(count) / allowance)
    }
  }
}

struct PostgresRateLimiterError: Error, CustomStringConvertible {
  let description: String
  init(_ description: String) { self.description = description }
}

extension Duration {
  var microseconds: Int64 { components.seconds * 1_000_000 + components.attoseconds / 1_000_000_000_000 }
}
