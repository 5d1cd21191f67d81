import DispatcherService
import Foundation
import PaymentsSchema
import PaymentsTestSupport
import Postgres
import Synchronization
import Testing

/// The most of `times` inside any half-open interval of `length` microseconds.
func busiestWindow(_ times: [Int64], length: Int64) -> Int {
  let sorted = times.sorted()
  var best = 0
  var start = 0
  for end in sorted.indices {
    while sorted[end] - sorted[start] >= length { start += 1 }
    best = max(best, end - start + 1)
  }
  return best
}

/// Provider calls simulated against ``RateLimitWindow`` on a clock of microseconds: workers ask for
/// grants, their calls leave some time after the grant, arrive anywhere before their answer, and
/// the answer is recorded some time after it came back; a few workers die mid-call and record
/// nothing. The provider sees the arrivals.
struct LimiterSimulation {
  struct Timing {
    /// Grant → the request leaves (the caller was slow to run).
    var departure: ClosedRange<Int64> = 0...2_000
    /// The request leaves → its answer is back (the provider's time included).
    var roundTrip: ClosedRange<Int64> = 1_000...20_000
    /// Share of calls whose answer is slow (1.5 s, inside the timeout) or never comes (the caller
    /// gives up at its 2 s timeout; the request reached the provider before that, or never will).
    var slowShare = 0.0
    var lostShare = 0.0
    /// Share of calls whose worker dies mid-call (nothing recorded; the slot frees at the timeout
    /// plus slack).
    var crashShare = 0.0
    /// The answer is back → its end is recorded.
    var recording: ClosedRange<Int64> = 500...3_000
    /// A waiting worker wakes up this much after the time it was given.
    var wakeUp: ClosedRange<Int64> = 0...1_000
  }

  var rule: RateLimitWindow
  var timing: Timing
  let timeout: Int64 = 2_000_000
  let slack: Int64 = 1_000_000

  /// Runs `workers` workers with a backlog for `duration` microseconds; returns the arrival times.
  func run(workers: Int, duration: Int64, seed: UInt64) -> [Int64] {
    var random = SplitMix(state: seed)
    var calls: [RateLimitWindow.Call] = []
    var arrivals: [Int64] = []
    // Each worker: the time of its next action, and the call it is in (to record when it ends).
    var next = [Int64](repeating: 0, count: workers)
    var inCall = [Int64?](repeating: nil, count: workers)
    var nextID: Int64 = 1
    while true {
      let worker = next.indices.min { next[$0] < next[$1] }!
      let now = next[worker]
      if now > duration { break }
      if let id = inCall[worker] {
        calls = rule.finish(calls: calls, id: id, now: now)
        inCall[worker] = nil
        continue  // and asks for the next grant at once
      }
      let id = nextID
      nextID += 1
      let (decision, kept) = rule.reserve(
        calls: calls, now: now, id: id, maximumCallDuration: .microseconds(timeout + slack))
      calls = kept
      switch decision {
      case .wait(let until):
        #expect(until > now, "a wait is never in the past")
        next[worker] = until + Int64.random(in: timing.wakeUp, using: &random)
      case .granted:
        let leaves = now + Int64.random(in: timing.departure, using: &random)
        let roll = Double.random(in: 0..<1, using: &random)
        var answer = leaves + Int64.random(in: timing.roundTrip, using: &random)
        if roll < timing.slowShare { answer = leaves + 1_500_000 }
        let lost = roll >= timing.slowShare && roll < timing.slowShare + timing.lostShare
        let crashed = !lost && Double.random(in: 0..<1, using: &random) < timing.crashShare
        // It arrives at some moment before its answer; a call that was given up on arrives before
        // the caller gave up; one whose caller died, before its timeout.
        let latest = lost || crashed ? leaves + timeout : answer
        arrivals.append(Int64.random(in: leaves...latest, using: &random))
        if crashed {
          next[worker] = leaves + timeout + slack + 2_000_000  // a new instance takes over later
        } else {
          inCall[worker] = id
          next[worker] =
            (lost ? leaves + timeout : answer) + Int64.random(in: timing.recording, using: &random)
        }
      }
    }
    return arrivals
  }
}

@Suite("Global rate limiter")
struct RateLimiterTests {
  @Test(
    "with a controllable clock: never more than the limit in any window at the provider, however late calls leave, travel or are answered",
    arguments: [1, 2, 5])
  func windowProperty(limit: Int) {
    var timing = LimiterSimulation.Timing()
    // An overloaded machine: calls leave up to 300 ms after their grant, answers take up to
    // 500 ms, and some are slow, lost or cut off by a crash.
    timing.departure = 0...300_000
    timing.roundTrip = 1_000...500_000
    timing.slowShare = 0.05
    timing.lostShare = 0.05
    timing.crashShare = 0.02
    timing.wakeUp = 0...200_000
    for seed in 1...20 as ClosedRange<UInt64> {
      let simulation = LimiterSimulation(rule: RateLimitWindow(limit: limit), timing: timing)
      let arrivals = simulation.run(workers: 9, duration: 120_000_000, seed: seed)
      #expect(arrivals.count > 20 * limit, "calls were made")
      #expect(busiestWindow(arrivals, length: 1_000_000) <= limit, "limit \(limit), seed \(seed)")
    }
  }

  @Test(
    "a late answer never shortens a call's count: departures delayed beyond the slack (a stalled process) with lost answers",
    arguments: [1, 2])
  func lateAnswersExtend(limit: Int) {
    var timing = LimiterSimulation.Timing()
    // Up to 1.9 s between grant and departure (the slack is 1 s), and a fifth of the answers lost
    // (the caller gives up at its 2-s timeout, counted from the departure): the give-up comes
    // after the latest arrival the grant assumed, and the call must count until then.
    timing.departure = 0...1_900_000
    timing.lostShare = 0.2
    var violations = 0
    for seed in 1...20 as ClosedRange<UInt64> {
      let simulation = LimiterSimulation(rule: RateLimitWindow(limit: limit), timing: timing)
      let arrivals = simulation.run(workers: 6, duration: 60_000_000, seed: seed)
      #expect(arrivals.count > 10 * limit)
      if busiestWindow(arrivals, length: 1_000_000) > limit { violations += 1 }
    }
    #expect(violations == 0, "limit \(limit): \(violations) of 20 runs broke the window")
  }

  @Test(
    "a cancelled grant (no request left) frees its place at once; a finished one a window after its answer")
  func cancelFreesAtOnce() {
    let rule = RateLimitWindow(limit: 1)
    let (_, held) = rule.reserve(calls: [], now: 0, id: 1, maximumCallDuration: .seconds(3))
    #expect(rule.reserve(calls: held, now: 10, id: 2, maximumCallDuration: .seconds(3)).0 != .granted)
    let cancelled = rule.cancel(calls: held, id: 1)
    #expect(cancelled.isEmpty)
    #expect(rule.reserve(calls: cancelled, now: 10, id: 2, maximumCallDuration: .seconds(3)).0 == .granted)
    // A finished call cannot be cancelled: its request left.
    let finished = rule.finish(calls: held, id: 1, now: 5)
    #expect(rule.cancel(calls: finished, id: 1) == finished)
    // An answer later than the latest arrival the grant assumed extends the count.
    let late = rule.finish(calls: held, id: 1, now: 3_500_000)
    #expect(late.first?.until == 3_500_000)
  }

  @Test("the rule is what keeps the limit: without the wait for answers, the same simulation breaks it")
  func controlBreaks() {
    // A rule that forgets calls a window after their grant (what a limiter that trusts calls to
    // arrive on time does) lets slow calls pile up at the provider.
    var timing = LimiterSimulation.Timing()
    timing.departure = 0...300_000
    timing.roundTrip = 1_000...500_000
    let simulation = LimiterSimulation(rule: RateLimitWindow(limit: 2), timing: timing)
    var random = SplitMix(state: 7)
    var grants: [Int64] = []
    var arrivals: [Int64] = []
    var now: Int64 = 0
    while grants.count < 400 {
      // Two grants per window, spaced exactly, each arriving up to 300 ms late.
      if grants.count >= 2 { now = max(now, grants[grants.count - 2] + 1_000_000) }
      grants.append(now)
      arrivals.append(now + Int64.random(in: timing.departure, using: &random))
    }
    #expect(busiestWindow(arrivals, length: 1_000_000) > 2)
    #expect(busiestWindow(simulation.run(workers: 9, duration: 200_000_000, seed: 7), length: 1_000_000) <= 2)
  }

  @Test(
    "with a controllable clock and a backlog: at least 98 % of the allowance when answers take milliseconds")
  func utilization() {
    for limit in [2, 5] {
      let simulation = LimiterSimulation(rule: RateLimitWindow(limit: limit), timing: .init())
      let arrivals = simulation.run(workers: 9, duration: 60_000_000, seed: 3)
      let allowance = Double(limit) * 60
      #expect(Double(arrivals.count) >= 0.98 * allowance, "\(arrivals.count) calls of \(allowance)")
      #expect(Double(arrivals.count) <= allowance + Double(limit))
    }
  }

  @Test("a call whose answer never comes counts until its timeout plus slack, then no longer")
  func lostCallExpires() {
    let rule = RateLimitWindow(limit: 1)
    let (first, calls) = rule.reserve(calls: [], now: 0, id: 1, maximumCallDuration: .seconds(3))
    #expect(first == .granted)
    // Still in flight: the next call waits at least a window, and is refused until the timeout.
    guard
      case (.wait(let until), _) = rule.reserve(
        calls: calls, now: 10, id: 2, maximumCallDuration: .seconds(3))
    else {
      Issue.record("a second call was granted while the first is in flight")
      return
    }
    #expect(until >= 10 + 1_000_000)
    #expect(rule.reserve(calls: calls, now: 3_900_000, id: 2, maximumCallDuration: .seconds(3)).0 != .granted)
    #expect(rule.reserve(calls: calls, now: 4_001_001, id: 2, maximumCallDuration: .seconds(3)).0 == .granted)
    // Answered at 5 ms: free a window (and the guard) later.
    let finished = rule.finish(calls: calls, id: 1, now: 5_000)
    #expect(
      rule.reserve(calls: finished, now: 1_005_000, id: 2, maximumCallDuration: .seconds(3)).0 != .granted)
    #expect(
      rule.reserve(calls: finished, now: 1_006_001, id: 2, maximumCallDuration: .seconds(3)).0 == .granted)
  }

  @Test(
    "three instances sharing PostgreSQL: calls granted on the database clock never exceed the limit per window"
  )
  func sharedAcrossInstances() async throws {
    let url = try await TestPostgres.shared.makeDatabase()
    let setup = PostgresConnectionPool(
      connectionString: url, maximumConnections: 1, logger: quietLogger("setup"))
    try await PostgresMigrator(pool: setup, logger: quietLogger("migrate")).migrate(PaymentsMigrations.all)
    // Three "instances", each with its own pool and four workers; a limit of 5 per second so
    // the test gathers enough calls in a few seconds.
    var configuration = PostgresRateLimiter.Configuration()
    configuration.limits["sandbox"] = 5
    let pools = (0..<3).map { _ in
      PostgresConnectionPool(connectionString: url, maximumConnections: 2, logger: quietLogger("limiter"))
    }
    let limiters = pools.map {
      PostgresRateLimiter(pool: $0, configuration: configuration, logger: quietLogger("limiter"))
    }
    // Each call: granted, then "made" (a random 0–30 ms), then finished. Its arrival lies
    // between its grant and the database clock read just before it finished.
    let calls = CallLog()
    try await withThrowingTaskGroup(of: Void.self) { group in
      for (limiter, pool) in zip(limiters, pools) {
        for _ in 0..<4 {
          group.addTask {
            for _ in 0..<5 {
              let grant = try await limiter.acquire("sandbox")
              try await Task.sleep(for: .milliseconds(Int.random(in: 0...30)))
              let answered = try await pool.query(
                "SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint")[0].decode(
                  Int64.self, at: 0)
              await limiter.finish(grant)
              calls.append(granted: grant.grantedAt, answered: answered)
            }
          }
        }
        // Another provider has a limit of its own.
        group.addTask {
          for _ in 0..<4 {
            let grant = try await limiter.acquire("other")
            await limiter.finish(grant)
          }
        }
      }
      try await group.waitForAll()
    }
    let all = calls.all.sorted { $0.granted < $1.granted }
    #expect(all.count == 60)
    #expect(busiestWindow(all.map(\.granted), length: 1_000_000) <= 5)
    // When a call was granted, at most 4 earlier ones could still arrive within the window before
    // it (their answers were not yet a window old): the provider never sees 6 in one window.
    for (index, call) in all.enumerated() {
      let recent = all[..<index].filter { $0.answered > call.granted - 1_000_000 }.count
      #expect(recent <= 4, "call \(index): \(recent) earlier calls may arrive in its window")
    }
    for pool in pools { await pool.close() }
    await setup.close()
  }

  @Test(
    "acquire waits until a call stops counting: the third call goes a window after the first one's answer")
  func acquireWaits() async throws {
    let url = try await TestPostgres.shared.makeDatabase()
    let pool = PostgresConnectionPool(
      connectionString: url, maximumConnections: 2, logger: quietLogger("limiter"))
    try await PostgresMigrator(pool: pool, logger: quietLogger("migrate")).migrate(PaymentsMigrations.all)
    let limiter = PostgresRateLimiter(pool: pool, logger: quietLogger("limiter"))
    let now = { () async throws -> Int64 in
      try await pool.query("SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint")[0].decode(
        Int64.self, at: 0)
    }
    var grants: [PostgresRateLimiter.Grant] = []
    var answered: [Int64] = []
    for _ in 0..<4 {
      let grant = try await limiter.acquire("sandbox")
      grants.append(grant)
      answered.append(try await now())  // the call's answer is in before finish records it
      await limiter.finish(grant)
    }
    // Default limit 2: the third call goes only when the first stopped counting, a window after
    // its answer; the fourth a window after the second's.
    #expect(grants[2].grantedAt - answered[0] >= 1_000_000)
    #expect(grants[3].grantedAt - answered[1] >= 1_000_000)
    let rows = try await pool.query(
      "SELECT cardinality(call_ids), call_finished FROM dispatcher.rate_limits WHERE provider = 'sandbox'")
    #expect(try rows[0].decode(Int.self, at: 0) <= 2, "only the calls that may still count are kept")
    await pool.close()
  }
}

@Suite("Global rate limiter: the row is the one source of truth")
struct RateLimiterRowTests {
  @Test(
    "dispatcher.rate_limit_reserve (one statement) decides exactly as RateLimitWindow, on 400 random states")
  func sqlFunctionMatchesTheRule() async throws {
    let url = try await TestPostgres.shared.makeDatabase()
    let pool = PostgresConnectionPool(
      connectionString: url, maximumConnections: 1, logger: quietLogger("limiter"))
    try await PostgresMigrator(pool: pool, logger: quietLogger("migrate")).migrate(PaymentsMigrations.all)
    var random = SplitMix(state: 2026)
    var grants = 0
    for round in 0..<400 {
      let limit = Int.random(in: 1...4, using: &random)
      let window = Int64.random(in: 1...3, using: &random) * 500_000
      let now = Int64.random(in: 10_000_000...20_000_000, using: &random)
      let calls = (0..<Int.random(in: 0...6, using: &random)).map { index in
        RateLimitWindow.Call(
          id: Int64(index + 1), until: now + Int64.random(in: -4_000_000...4_000_000, using: &random),
          finished: Bool.random(using: &random))
      }
      let maximum = Duration.microseconds(Int64.random(in: 100_000...6_000_000, using: &random))
      let group = "g\(round)"
      try await pool.execute(
        """
        INSERT INTO dispatcher.rate_limits (provider, call_limit, window_us, call_ids, call_until, call_finished)
        VALUES (\(group), \(limit), \(window), \(PostgresArray(calls.map(\.id)))::bigint[],
                \(PostgresArray(calls.map(\.until)))::bigint[], \(PostgresArray(calls.map(\.finished)))::boolean[])
        """)
      let rows = try await pool.query(
        """
        SELECT granted, wait_until FROM dispatcher.rate_limit_reserve(\(group), 99, \(maximum.microsecondsValue), 1, 1, \(now))
        """)
      let rule = RateLimitWindow(limit: limit, window: .microseconds(window))
      let (expected, kept) = rule.reserve(calls: calls, now: now, id: 99, maximumCallDuration: maximum)
      let granted = try rows[0].decode(Bool.self, at: 0)
      switch expected {
      case .granted:
        #expect(granted, "round \(round)")
        grants += 1
      case .wait(let until):
        #expect(!granted, "round \(round)")
        #expect(try rows[0].decode(Int64?.self, at: 1) == until, "round \(round)")
      }
      let stored = try await pool.query(
        """
        SELECT array_to_string(call_ids, ','), array_to_string(call_until, ','), array_to_string(call_finished, ',')
        FROM dispatcher.rate_limits WHERE provider = \(group)
        """)
      #expect(try stored[0].decode(String.self, at: 0) == kept.map { String($0.id) }.joined(separator: ","))
      #expect(
        try stored[0].decode(String.self, at: 1) == kept.map { String($0.until) }.joined(separator: ","))
      #expect(
        try stored[0].decode(String.self, at: 2)
          == kept.map { $0.finished ? "t" : "f" }.joined(separator: ","))
    }
    #expect(grants > 50 && grants < 350, "both outcomes were exercised (\(grants) grants)")
    await pool.close()
  }

  @Test(
    "the first instance's limit is stored; an instance configured otherwise obeys the row; grouped providers share one limit; a cancelled grant frees its place"
  )
  func rowAndGroups() async throws {
    let url = try await TestPostgres.shared.makeDatabase()
    let pool = PostgresConnectionPool(
      connectionString: url, maximumConnections: 3, logger: quietLogger("limiter"))
    try await PostgresMigrator(pool: pool, logger: quietLogger("migrate")).migrate(PaymentsMigrations.all)
    var first = PostgresRateLimiter.Configuration()
    first.defaultLimit = 1
    first.groups = ["alpha": "upstream", "beta": "upstream"]
    var second = first
    second.defaultLimit = 50  // disagrees with the row the first one writes
    let limiterA = PostgresRateLimiter(pool: pool, configuration: first, logger: quietLogger("limiter"))
    let limiterB = PostgresRateLimiter(pool: pool, configuration: second, logger: quietLogger("limiter"))
    let grant = try await limiterA.acquire("alpha")
    #expect(grant.group == "upstream")
    let row = try await pool.query(
      "SELECT call_limit, window_us FROM dispatcher.rate_limits WHERE provider = 'upstream'")
    #expect(try row[0].decode(Int.self, at: 0) == 1)
    #expect(try row[0].decode(Int64.self, at: 1) == 1_000_000)
    // B (limit 50 in its flags) asks for "beta", in the same group: the row's limit of 1 applies,
    // so it must wait while A's call is in flight.
    let stop = Mutex(false)
    let waited = Task { try await limiterB.acquire("beta", unless: { stop.withLock { $0 } }) }
    try await Task.sleep(for: .milliseconds(300))
    stop.withLock { $0 = true }
    #expect(try await waited.value == nil, "the stored limit of 1 held B back")
    #expect(limiterB.storedRule(for: "beta")?.limit == 1)
    // A gives its grant back unused: the place is free at once.
    await limiterA.cancel(grant)
    let left = try await pool.query(
      "SELECT cardinality(call_ids) FROM dispatcher.rate_limits WHERE provider = 'upstream'")
    #expect(try left[0].decode(Int.self, at: 0) == 0, "nothing counts after the cancel")
    let next = try await limiterB.acquire("beta")
    await limiterB.finish(next)
    let calls = try await pool.query(
      "SELECT cardinality(call_ids) FROM dispatcher.rate_limits WHERE provider = 'upstream'")
    #expect(try calls[0].decode(Int.self, at: 0) == 1, "the cancelled grant is gone, the finished one counts")
    await pool.close()
  }
}

final class CallLog: Sendable {
  struct Call: Sendable {
    var granted: Int64
    var answered: Int64
  }
  private let calls = Mutex<[Call]>([])
  func append(granted: Int64, answered: Int64) {
    calls.withLock { $0.append(Call(granted: granted, answered: answered)) }
  }
  var all: [Call] { calls.withLock { $0 } }
}

extension Duration {
  fileprivate var microsecondsValue: Int64 {
    components.seconds * 1_000_000 + components.attoseconds / 1_000_000_000_000
  }
}
