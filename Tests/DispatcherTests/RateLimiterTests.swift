import DispatcherService
import Foundation
import PaymentsSchema
import PaymentsTestSupport
import Postgres
import Synchronization
import Testing

/// The most slots inside any half-open interval of `length` microseconds.
func busiestWindow(_ slots: [Int64], length: Int64) -> Int {
  let sorted = slots.sorted()
  var best = 0
  var start = 0
  for end in sorted.indices {
    while sorted[end] - sorted[start] >= length { start += 1 }
    best = max(best, end - start + 1)
  }
  return best
}

/// Window + margin of the default configuration, in microseconds: the spacing of slots.
private let spacing: Int64 = {
  let configuration = PostgresRateLimiter.Configuration()
  let total = configuration.window + configuration.margin
  return total.components.seconds * 1_000_000 + total.components.attoseconds / 1_000_000_000_000
}()

@Suite("Global rate limiter")
struct RateLimiterTests {
  @Test("with a controllable clock: never more than the limit per window + margin, whatever the arrivals")
  func scheduleProperty() {
    for limit in [1, 2, 5] {
      let schedule = RateLimitSchedule(limit: limit)
      var generator = SystemRandomNumberGenerator()
      var recent: [Int64] = []
      var slots: [Int64] = []
      var now: Int64 = 1_700_000_000_000_000
      for _ in 0..<3000 {
        // Callers arrive in bursts and lulls; the clock only moves forward.
        now += Int64.random(in: 0...(Bool.random(using: &generator) ? 5_000 : 900_000), using: &generator)
        let (slot, kept) = schedule.reserve(recent: recent, now: now)
        #expect(slot >= now, "a slot is never in the past")
        #expect(slot >= (slots.last ?? 0), "slots never go backwards")
        recent = kept
        slots.append(slot)
      }
      #expect(busiestWindow(slots, length: spacing) <= limit, "limit \(limit)")
      #expect(busiestWindow(slots, length: 1_000_000) <= limit)
    }
  }

  @Test("with a controllable clock and a backlog: the limit per window + margin, no less")
  func scheduleUtilization() {
    let schedule = RateLimitSchedule(limit: 2)
    var recent: [Int64] = []
    var slots: [Int64] = []
    let now: Int64 = 0  // everyone asks at once: a backlog of 200 calls
    for _ in 0..<200 {
      let (slot, kept) = schedule.reserve(recent: recent, now: now)
      recent = kept
      slots.append(slot)
    }
    // 2 calls per window + margin: the 200th slot is 99 spacings after the first.
    #expect(slots.last! == 99 * spacing)
    #expect(busiestWindow(slots, length: 1_000_000) == 2)
    // A quiet period resets nothing that matters: the next slot after a pause is "now".
    let (slot, _) = schedule.reserve(recent: recent, now: slots.last! + 10_000_000)
    #expect(slot == slots.last! + 10_000_000)
  }

  @Test("three instances sharing PostgreSQL: slots on the database clock never exceed the limit per window")
  func sharedAcrossInstances() async throws {
    let url = try await TestPostgres.shared.makeDatabase()
    let setup = PostgresConnectionPool(
      connectionString: url, maximumConnections: 1, logger: quietLogger("setup"))
    try await PostgresMigrator(pool: setup, logger: quietLogger("migrate")).migrate(PaymentsMigrations.all)
    await setup.close()
    // Three "instances", each with its own pool and four workers; a limit of 5 per second so
    // the test gathers enough slots in a few seconds.
    var configuration = PostgresRateLimiter.Configuration()
    configuration.limits["sandbox"] = 5
    let pools = (0..<3).map { _ in
      PostgresConnectionPool(connectionString: url, maximumConnections: 2, logger: quietLogger("limiter"))
    }
    let limiters = pools.map {
      PostgresRateLimiter(pool: $0, configuration: configuration, logger: quietLogger("limiter"))
    }
    let slots = SlotLog()
    let other = SlotLog()
    try await withThrowingTaskGroup(of: Void.self) { group in
      for limiter in limiters {
        for _ in 0..<4 {
          group.addTask {
            for _ in 0..<5 {
              let (slot, _) = try await limiter.reserve("sandbox")
              slots.append(slot)
            }
          }
        }
        // Another provider has a limit of its own.
        group.addTask {
          for _ in 0..<4 {
            let slot = try await limiter.reserve("other").slot
            other.append(slot)
          }
        }
      }
      try await group.waitForAll()
    }
    let all = slots.all
    #expect(all.count == 60)
    #expect(busiestWindow(all, length: 1_000_000) <= 5)
    #expect(busiestWindow(all, length: spacing) <= 5)
    // 60 slots at 5 per window + margin span at least 11 spacings. (How densely they pack depends on how
    // fast the reservations arrive on a loaded machine; the packing itself is checked with a
    // controlled clock in the schedule's tests.)
    let span = all.max()! - all.min()!
    #expect(span >= 11 * spacing, "span \(span)")
    #expect(busiestWindow(other.all, length: spacing) <= 2)
    for pool in pools { await pool.close() }
  }

  @Test("acquire sleeps until the slot instead of spinning")
  func acquireWaits() async throws {
    let url = try await TestPostgres.shared.makeDatabase()
    let pool = PostgresConnectionPool(
      connectionString: url, maximumConnections: 2, logger: quietLogger("limiter"))
    try await PostgresMigrator(pool: pool, logger: quietLogger("migrate")).migrate(PaymentsMigrations.all)
    let limiter = PostgresRateLimiter(pool: pool, logger: quietLogger("limiter"))
    var grants: [PostgresRateLimiter.Grant] = []
    var returned: [ContinuousClock.Instant] = []
    for _ in 0..<4 {
      grants.append(try await limiter.acquire("sandbox"))
      returned.append(.now)
    }
    // Default limit 2: the first two go at once, the next two one window + margin later.
    #expect(grants[2].slot - grants[0].slot >= spacing)
    #expect(grants[3].slot - grants[1].slot >= spacing)
    // A grant never comes before its slot and at most the lateness allowance (10 ms) after it, so
    // the third caller was held back at least a window after the first (load only adds to it).
    #expect(returned[2] - returned[0] >= .milliseconds(1000))
    let rows = try await pool.query(
      "SELECT cardinality(recent_slots) FROM dispatcher.rate_limits WHERE provider = 'sandbox'")
    #expect(try rows[0].decode(Int.self, at: 0) == 2, "only the last `limit` slots are kept")
    await pool.close()
  }
}

final class SlotLog: Sendable {
  private let slots = Mutex<[Int64]>([])
  func append(_ slot: Int64) { slots.withLock { $0.append(slot) } }
  var all: [Int64] { slots.withLock { $0 } }
}
