import Foundation
import PaymentsTestSupport
import Postgres
import Testing

@Suite("PostgreSQL errors, transactions, pooling, notifications")
struct PostgresBehaviourTests {
  struct Boom: Error {}

  @Test("a failing statement inside withTransaction leaves nothing behind")
  func failingStatementRollsBack() async throws {
    let pool = try await makePool()
    try await pool.query("CREATE TABLE items (id int PRIMARY KEY)")
    await #expect(throws: PostgresError.self) {
      try await pool.withTransaction { connection in
        try await connection.query("INSERT INTO items VALUES (\(Int32(1)))")
        try await connection.query("INSERT INTO items VALUES (\(Int32(1)))")  // duplicate key
      }
    }
    await #expect(throws: Boom.self) {
      try await pool.withTransaction { connection in
        try await connection.query("INSERT INTO items VALUES (\(Int32(2)))")
        throw Boom()
      }
    }
    // Swallowing the statement error inside the body must not turn into a silent "commit".
    let swallowed = await #expect(throws: PostgresError.self) {
      try await pool.withTransaction { connection in
        try await connection.query("INSERT INTO items VALUES (\(Int32(3)))")
        _ = try? await connection.query("SELECT 1/0")
      }
    }
    #expect(swallowed?.message.contains("aborted") == true)
    let count = try await pool.query("SELECT count(*) FROM items")[0].decode(Int.self, at: 0)
    #expect(count == 0)
    // And a transaction that succeeds does commit.
    try await pool.withTransaction { try await $0.query("INSERT INTO items VALUES (\(Int32(4)))") }
    #expect(try await pool.query("SELECT count(*) FROM items")[0].decode(Int.self, at: 0) == 1)
    await pool.close()
  }

  @Test("cancelling the task rolls the transaction back and cancels the running statement")
  func cancellationRollsBack() async throws {
    let pool = try await makePool()
    try await pool.query("CREATE TABLE items (id int PRIMARY KEY)")
    let started = ContinuousClock.now
    let task = Task {
      try await pool.withTransaction { connection in
        try await connection.query("INSERT INTO items VALUES (\(Int32(1)))")
        try await connection.query("SELECT pg_sleep(30)")
      }
    }
    try await Task.sleep(for: .milliseconds(300))
    task.cancel()
    let result = await task.result
    #expect(throws: PostgresError.self) { try result.get() }
    #expect(ContinuousClock.now - started < .seconds(20), "the server-side sleep was cancelled")
    #expect(try await pool.query("SELECT count(*) FROM items")[0].decode(Int.self, at: 0) == 0)
    await pool.close()
  }

  @Test("a unique violation is its own error case, with SQLSTATE and constraint")
  func uniqueViolation() async throws {
    let pool = try await makePool()
    try await pool.query("CREATE TABLE keys (k text CONSTRAINT keys_unique UNIQUE)")
    try await pool.query("INSERT INTO keys VALUES (\("a"))")
    let error = try await #require(throws: PostgresError.self) {
      try await pool.query("INSERT INTO keys VALUES (\("a"))")
    }
    #expect(error.isUniqueViolation)
    #expect(error.code == .server)
    #expect(error.sqlState == .uniqueViolation)
    #expect(error.constraint == "keys_unique")
    #expect(!error.isTransactionRetryable)
  }

  @Test("serialization failures and syntax errors are distinguishable by SQLSTATE")
  func otherServerErrors() async throws {
    let pool = try await makePool()
    let serialization = try await #require(throws: PostgresError.self) {
      try await pool.query(
        "DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = 'serialization_failure'; END $$")
    }
    #expect(serialization.sqlState == .serializationFailure)
    #expect(serialization.isTransactionRetryable)
    let syntax = try await #require(throws: PostgresError.self) { try await pool.query("SELEC 1") }
    #expect(syntax.sqlState == .syntaxError)
    #expect(!syntax.isUniqueViolation)
  }

  @Test("a connection killed by the server surfaces as connectionLost, and the pool recovers")
  func connectionLost() async throws {
    let pool = try await makePool(maximumConnections: 1)
    let victimPID = try await pool.query("SELECT pg_backend_pid()")[0].decode(Int32.self, at: 0)
    let killer = try await makeConnection()
    // The victim lives in another database of the same cluster; terminate it from there.
    try await killer.query("SELECT pg_terminate_backend(\(victimPID))")
    await killer.close()
    try await Task.sleep(for: .milliseconds(200))
    let error = await #expect(throws: PostgresError.self) {
      try await pool.query("SELECT 1")
    }
    #expect(error?.code == .connectionLost)
    // The broken connection was discarded; the next lease gets a fresh one.
    #expect(try await pool.query("SELECT 1")[0].decode(Int.self, at: 0) == 1)
    await pool.close()
  }

  @Test("200 concurrent queries through a pool of 4 all complete, on at most 4 server connections")
  func boundedPool() async throws {
    let application = "pool-test-\(UUID().uuidString.prefix(8))"
    // What is checked is completion and the bound, not speed: 200 waiters for 4 connections may
    // wait long on a machine busy with the rest of the suite, so the acquisition timeout is 60 s.
    let pool = try await makePool(
      maximumConnections: 4, acquireTimeout: .seconds(60), applicationName: application)
    let counts = try await withThrowingTaskGroup(of: Int.self) { group in
      for _ in 0..<200 {
        group.addTask {
          try await pool.query(
            """
            SELECT count(*) FROM pg_stat_activity, pg_sleep(0.005) WHERE application_name = \(application)
            """
          )[0].decode(Int.self, at: 0)
        }
      }
      var counts: [Int] = []
      for try await count in group { counts.append(count) }
      return counts
    }
    #expect(counts.count == 200)
    #expect(counts.max()! <= 4)
    #expect(counts.max()! >= 2, "the queries did run concurrently")
    #expect(pool.openConnections <= 4)
    await pool.close()
  }

  @Test("a caller that waits longer than the acquire timeout gets poolTimeout")
  func acquireTimeout() async throws {
    let pool = try await makePool(maximumConnections: 1, acquireTimeout: .seconds(2))
    try await pool.withConnection { _ in
      let error = await #expect(throws: PostgresError.self) { try await pool.query("SELECT 1") }
      #expect(error?.code == .poolTimeout)
    }
    #expect(try await pool.query("SELECT 1").count == 1)
    await pool.close()
  }

  @Test("waiting callers are served first come, first served")
  func fairWaiting() async throws {
    let pool = try await makePool(maximumConnections: 1)
    let order = OrderRecorder()
    let (gate, open) = AsyncStream<Void>.makeStream()
    let holder = Task {
      try await pool.withConnection { _ in
        for await _ in gate { break }
      }
    }
    try await Task.sleep(for: .milliseconds(200))
    var waiters: [Task<Void, any Error>] = []
    for index in 0..<5 {
      waiters.append(Task { try await pool.withConnection { _ in await order.append(index) } })
      try await Task.sleep(for: .milliseconds(50))  // queue them in a known order
    }
    #expect(await order.values.isEmpty, "nobody ran while the only connection was leased")
    open.yield()
    open.finish()
    try await holder.value
    for waiter in waiters { try await waiter.value }
    #expect(await order.values == [0, 1, 2, 3, 4])
    await pool.close()
  }

  @Test("LISTEN receives a NOTIFY sent from another connection")
  func listenNotify() async throws {
    let pool = try await makePool()
    let receiver = try await PostgresConnection.connect(
      configuration: pool.configuration.connection, logger: quietLogger("listen-test"))
    let channel = "payments \"events\""  // needs identifier quoting
    let notifications = try await receiver.listen(channel)
    try await pool.withConnection { try await $0.notify(channel, payload: "pay_123 ✓") }
    // Notifications sent inside a transaction arrive only after it commits.
    try await pool.withTransaction { try await $0.notify(channel, payload: "second") }
    var iterator = notifications.makeAsyncIterator()
    let first = try #require(try await iterator.next())
    #expect(first.channel == channel)
    #expect(first.payload == "pay_123 ✓")
    let second = try #require(try await iterator.next())
    #expect(second.payload == "second")
    // The connection still runs statements while it listens.
    #expect(try await receiver.query("SELECT 1").count == 1)
    await receiver.close()
    await pool.close()
  }
}

actor OrderRecorder {
  var values: [Int] = []
  func append(_ value: Int) { values.append(value) }
}

@Suite("PostgreSQL work-claiming")
struct PostgresWorkClaimingTests {
  @Test("concurrent FOR UPDATE SKIP LOCKED transactions claim disjoint rows")
  func skipLocked() async throws {
    let pool = try await makePool(maximumConnections: 4)
    try await pool.query("CREATE TABLE work (id int PRIMARY KEY, claimed_by int)")
    try await pool.query("INSERT INTO work SELECT g, NULL FROM generate_series(1, 40) AS g")
    let claims = try await withThrowingTaskGroup(of: [Int32].self) { group in
      for worker in 0..<4 {
        group.addTask {
          try await pool.withTransaction { connection in
            let rows = try await connection.query(
              """
              SELECT id FROM work WHERE claimed_by IS NULL ORDER BY id LIMIT 10 FOR UPDATE SKIP LOCKED
              """)
            let ids = try rows.map { try $0.decode(Int32.self, at: 0) }
            for id in ids {
              try await connection.query("UPDATE work SET claimed_by = \(Int32(worker)) WHERE id = \(id)")
            }
            try await Task.sleep(for: .milliseconds(100))  // hold the locks while others claim
            return ids
          }
        }
      }
      return try await group.reduce(into: []) { $0.append($1) }
    }
    let all = claims.flatMap { $0 }
    #expect(all.count == Set(all).count, "no row was claimed twice")
    #expect(all.count == 40, "locked rows were skipped, not waited for: every worker got a full batch")
    let unclaimed = try await pool.query("SELECT count(*) FROM work WHERE claimed_by IS NULL")
    #expect(try unclaimed[0].decode(Int.self, at: 0) == 40 - all.count)
    await pool.close()
  }
}

@Suite("PostgreSQL pool against an unreachable server")
struct PostgresUnreachableTests {
  @Test("every waiter gets the connection error promptly, none waits for the acquire timeout")
  func unreachable() async throws {
    let port = try freePort()  // nothing listens there
    let pool = PostgresConnectionPool(
      configuration: .init(
        connection: PostgresConnectionConfiguration(
          connectionString: "host=127.0.0.1 port=\(port) user=postgres dbname=postgres"),
        maximumConnections: 2, acquireTimeout: .seconds(60)),
      logger: quietLogger("unreachable"))
    let codes = await withTaskGroup(of: PostgresError.Code?.self) { group in
      for _ in 0..<5 {
        group.addTask {
          do {
            _ = try await pool.query("SELECT 1")
            return nil
          } catch let error as PostgresError {
            return error.code
          } catch {
            return nil
          }
        }
      }
      return await group.reduce(into: []) { $0.append($1) }
    }
    #expect(codes.count == 5)
    // A waiter left without a connection attempt would fail with poolTimeout, after 60 s.
    #expect(codes.allSatisfy { $0 == .connectionFailed }, "\(codes)")
    #expect(pool.openConnections == 0)
    await pool.close()
  }
}
