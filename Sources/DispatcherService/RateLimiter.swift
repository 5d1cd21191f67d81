public import Logging
import Metrics
public import Postgres
import ServiceKit
import Synchronization

/// The slot arithmetic of the global rate limiter, free of I/O so it can be tested with any clock.
///
/// Calls are given start *slots*. Each new slot is at least `window + margin` after the slot
/// `limit` reservations before it, and never before the previous slot. So no `limit + 1` slots
/// ever fall inside one `window + margin`: a provider that counts calls in a sliding `window`
/// sees at most `limit` of them, even when each call reaches it up to `margin` later than its
/// slot. With a backlog, the limiter hands out `limit` slots per `window + margin`
/// (2 per 1.1 s = 90.9 % of the allowance with the defaults).
public struct RateLimitSchedule: Sendable, Hashable {
  /// Calls allowed per window.
  public var limit: Int
  public var window: Duration
  /// Slack for the time between a slot and the call's arrival at the provider.
  public var margin: Duration

  public init(limit: Int, window: Duration = .seconds(1), margin: Duration = .milliseconds(100)) {
    precondition(limit >= 1, "limit must be at least 1")
    self.limit = limit
    self.window = window
    self.margin = margin
  }

  /// Reserves the next slot at or after `now`, given the recent slots (oldest first). All times
  /// are microseconds on one clock. Returns the slot and the recent slots to keep.
  public func reserve(recent: [Int64], now: Int64) -> (slot: Int64, recent: [Int64]) {
    var slot = max(now, recent.last ?? now)
    if recent.count >= limit {
      let spacing = (window + margin).microseconds
      slot = max(slot, recent[recent.count - limit] + spacing)
    }
    return (slot, Array((recent + [slot]).suffix(limit)))
  }
}

/// The global rate limiter of ARCHITECTURE.md §7: every provider call first takes a slot here.
///
/// The state is one row per provider in `dispatcher.rate_limits`, locked for each reservation, so
/// all dispatcher instances share it; "now" is PostgreSQL's `clock_timestamp()`, so instance
/// clocks do not matter. A caller sleeps until its slot (it never spins). If it wakes up so late
/// that the call might reach the provider after the schedule's margin, it gives the slot up and
/// reserves another: a wasted slot lowers utilization, a late call could break the limit.
public final class PostgresRateLimiter: Sendable {
  public struct Configuration: Sendable {
    /// Calls per window for providers without an entry in ``limits``.
    public var defaultLimit = 2
    /// Calls per window by provider.
    public var limits: [String: Int] = [:]
    public var window: Duration = .seconds(1)
    public var margin: Duration = .milliseconds(100)
    /// How late after its slot a call may still start; the rest of the margin is left for the
    /// request to reach the provider.
    public var lateness: Duration = .milliseconds(15)
    public init() {}
  }

  /// A slot taken: the call may start now.
  public struct Grant: Sendable {
    /// The slot, microseconds since 1970 on the database clock.
    public var slot: Int64
    /// How long the caller waited for it.
    public var waited: Duration
  }

  private let pool: PostgresConnectionPool
  private let configuration: Configuration
  /// When this instance's recent grants were made, per provider (for the utilization gauge).
  private let grants = Mutex<[String: [ContinuousClock.Instant]]>([:])
  private let logger: Logger

  public init(pool: PostgresConnectionPool, configuration: Configuration = .init(), logger: Logger) {
    self.pool = pool
    self.configuration = configuration
    self.logger = logger
  }

  public func schedule(for provider: String) -> RateLimitSchedule {
    RateLimitSchedule(
      limit: configuration.limits[provider] ?? configuration.defaultLimit, window: configuration.window,
      margin: configuration.margin)
  }

  /// Waits for a slot for one call to `provider`.
  public func acquire(_ provider: String) async throws -> Grant {
    let clock = ContinuousClock()
    let start = clock.now
    while true {
      let requested = clock.now
      let (slot, now) = try await reserve(provider)
      let received = clock.now
      // Anchored at the reply, the local target is never before the slot; the round trip counts
      // against the lateness allowance.
      let target = received + .microseconds(max(0, slot - now))
      try await Task.sleep(until: target, clock: clock)
      let late = (clock.now - target) + (received - requested)
      if late <= configuration.lateness {
        Metrics.Timer(label: "rate_limiter_wait_seconds", dimensions: [("provider", provider)])
          .recordInterval(since: start)
        grants.withLock { grants in
          grants[provider, default: []].append(clock.now)
        }
        return Grant(slot: slot, waited: clock.now - start)
      }
      logger.debug(
        "woke too late for a rate-limit slot; reserving another",
        metadata: ["provider": "\(provider)", "late": "\(late)"])
    }
  }

  /// Records `rate_limiter_slot_utilization{provider}`: the share of the provider's allowance
  /// this instance used in the last 10 s (0...1; the sum over instances is the global share).
  public func recordUtilization() {
    let window = Duration.seconds(10)
    let now = ContinuousClock.now
    let counts = grants.withLock { grants in
      var counts: [String: Int] = [:]
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

  /// Reserves a slot: returns it and the database's "now" (microseconds).
  public func reserve(_ provider: String) async throws -> (slot: Int64, now: Int64) {
    let schedule = schedule(for: provider)
    return try await pool.withTransaction { connection in
      try await connection.execute(
        "INSERT INTO dispatcher.rate_limits (provider) VALUES (\(provider)) ON CONFLICT DO NOTHING")
      let rows = try await connection.query(
        "SELECT array_to_string(recent_slots, ',') FROM dispatcher.rate_limits WHERE provider = \(provider) FOR UPDATE"
      )
      let recent = try rows[0].decode(String.self, at: 0).split(separator: ",").compactMap { Int64($0) }
      // Read the clock only once the row is ours.
      let clock = try await connection.query(
        "SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint")
      let now = try clock[0].decode(Int64.self, at: 0)
      let (slot, kept) = schedule.reserve(recent: recent, now: now)
      try await connection.execute(
        "UPDATE dispatcher.rate_limits SET recent_slots = \(PostgresArray(kept))::bigint[] WHERE provider = \(provider)"
      )
      return (slot, now)
    }
  }
}

extension Duration {
  var microseconds: Int64 { components.seconds * 1_000_000 + components.attoseconds / 1_000_000_000_000 }
}
