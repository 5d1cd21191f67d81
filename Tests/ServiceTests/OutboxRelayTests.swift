import Foundation
import Kafka
import PaymentsCore
import PaymentsProto
import PaymentsTestSupport
import Postgres
import ProtobufRuntime
import QueryService
import RPCCore
import ServiceKit
import Synchronization
import Testing

@Suite("Outbox relay")
struct OutboxRelayTests {
  struct Stop: Error {}

  /// SQL: how many sessions of this database hold the command outbox's advisory lock.
  static let outboxLockCount = """
    SELECT count(*) FROM pg_locks
    WHERE locktype = 'advisory' AND granted
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND objid::bigint = (hashtext('command.outbox')::bigint & 4294967295)
    """

  /// Submits `count` payments and returns their IDs.
  func submit(_ count: Int, on platform: Platform) async throws -> [String] {
    let client = platform.commandClient(try await platform.key())
    defer { client.close() }
    var ids: [String] = []
    for index in 0..<count {
      ids.append(
        try await client.client.submitPayment(validRequest(key: "relay-\(index)"), metadata: client.metadata)
          .payment!.paymentID)
    }
    return ids
  }

  func relay(
    _ platform: Platform, _ producer: KafkaProducer, batchSize: Int = 500, sweep: Duration = .seconds(30),
    afterPublish: @escaping @Sendable ([Int64]) async throws -> Void = { _ in }
  ) -> OutboxRelay {
    var configuration = OutboxRelay.Configuration(schema: "command")
    configuration.batchSize = batchSize
    configuration.sweepInterval = sweep
    return OutboxRelay(
      pool: platform.pool, producer: producer, configuration: configuration, logger: quietLogger("relay"),
      afterPublish: afterPublish)
  }

  @Test("publishes each order with key, headers and protobuf value, then marks it")
  func publishes() async throws {
    try await withPlatform(PlatformOptions(runQuery: false, runsRelay: false)) { platform in
      let ids = try await submit(5, on: platform)
      let producer = try platform.producer()
      let outcome = try await relay(platform, producer).relayBatch()
      #expect(outcome == .published(5, failed: 0))
      let records = try await readTopic(platform.cluster, PaymentsTopic.orders, atLeast: 5)
      #expect(records.count == 5)
      for record in records {
        let order = try Payments_V1_PaymentOrderRecord(serializedBytes: record.value)
        #expect(record.key == Array(order.paymentID.utf8))
        #expect(record.header("event-type") == Array("payments.v1.PaymentOrderRecord".utf8))
        #expect(record.header("content-type") == Array("application/x-protobuf".utf8))
        #expect(order.clientID == "client-a")
      }
      #expect(Set(records.map { String(decoding: $0.key ?? [], as: UTF8.self) }) == Set(ids))
      let pending = try await platform.pool.query(
        "SELECT count(*) FROM command.outbox WHERE published_at IS NULL")
      #expect(try pending[0].decode(Int64.self, at: 0) == 0)
      #expect(try await relay(platform, producer).relayBatch() == .published(0, failed: 0))
      await producer.close()
    }
  }

  @Test("no transaction is open while Kafka delivers, and the lock is free after a failed batch")
  func publishesOutsideATransaction() async throws {
    try await withPlatform(PlatformOptions(runQuery: false, runsRelay: false)) { platform in
      _ = try await submit(3, on: platform)
      let producer = try platform.producer()
      let observed = Mutex<(inTransaction: Int, lockHeld: Int)?>(nil)
      let pool = platform.pool
      let watching = relay(platform, producer) { _ in
        // Published, not yet marked: where the old relay held its transaction open.
        let rows = try await pool.query(
          PostgresQuery(
            unsafeSQL: """
              SELECT (SELECT count(*) FROM pg_stat_activity
                      WHERE datname = current_database() AND state LIKE 'idle in transaction%'),
                     (\(Self.outboxLockCount))
              """))
        let counts = (try rows[0].decode(Int.self, at: 0), try rows[0].decode(Int.self, at: 1))
        observed.withLock { $0 = counts }
        throw Stop()
      }
      await #expect(throws: Stop.self) { try await watching.relayBatch() }
      let seen = try #require(observed.withLock { $0 })
      #expect(seen.inTransaction == 0, "no transaction open while publishing")
      #expect(seen.lockHeld == 1, "the outbox lock is held while publishing")
      let locks = try await pool.query(PostgresQuery(unsafeSQL: Self.outboxLockCount))
      #expect(try locks[0].decode(Int.self, at: 0) == 0, "the failed batch gave the lock back")
      // And the next batch publishes what the failed one could not mark.
      #expect(try await relay(platform, producer).relayBatch() == .published(3, failed: 0))
      await producer.close()
    }
  }

  @Test("a row Kafka refuses for good (2 MB) is dead-lettered, and the 1,000 orders around it flow")
  func poisonRowIsDeadLettered() async throws {
    try await withPlatform(PlatformOptions(runQuery: false, runsRelay: false)) { platform in
      _ = try await submit(500, on: platform)
      // Straight into the outbox, past every validation: larger than Kafka's 1 MB record limit.
      try await platform.pool.execute(
        """
        INSERT INTO command.outbox (topic, message_key, payload, event_type)
        VALUES ('payments.orders.v1', 'poison', \([UInt8](repeating: 7, count: 2_000_000)), 'payments.v1.PaymentOrderRecord')
        """)
      let client = platform.commandClient(try await platform.key())
      for index in 500..<1000 {
        _ = try await client.client.submitPayment(
          validRequest(key: "relay-\(index)"), metadata: client.metadata)
      }
      client.close()
      let producer = try platform.producer()
      let relay = relay(platform, producer)
      var published = 0
      for _ in 0..<10 {
        guard case .published(let count, let failed) = try await relay.relayBatch(), count > 0 else { break }
        #expect(failed == 0, "the poison row is not counted as a retriable failure")
        published += count
      }
      #expect(published == 1000)
      let rows = try await platform.pool.query(
        """
        SELECT message_key, dead_letter_reason FROM command.outbox WHERE dead_lettered_at IS NOT NULL
        """)
      #expect(rows.count == 1)
      #expect(try rows.first?.decode(String.self, at: 0) == "poison")
      #expect(try rows.first?.decode(String.self, at: 1).contains("too large") == true)
      let pending = try await platform.pool.query(
        "SELECT count(*) FROM command.outbox WHERE published_at IS NULL AND dead_lettered_at IS NULL")
      #expect(try pending[0].decode(Int.self, at: 0) == 0)
      #expect(try await relay.relayBatch() == .published(0, failed: 0), "the poison row is not tried again")
      let records = try await readTopic(platform.cluster, PaymentsTopic.orders, atLeast: 1000)
      #expect(records.count == 1000)
      await producer.close()
    }
  }

  @Test("retention deletes old published rows and old idempotency records in batches, and nothing else")
  func retention() async throws {
    try await withPlatform(PlatformOptions(runQuery: false, runsRelay: false)) { platform in
      _ = try await submit(10, on: platform)
      let producer = try platform.producer()
      // Publish the first 6 rows; dead-letter the 7th by hand; 8–10 stay pending.
      #expect(try await relay(platform, producer, batchSize: 6).relayBatch() == .published(6, failed: 0))
      await producer.close()
      let pool = platform.pool
      try await pool.execute(
        """
        UPDATE command.outbox SET dead_lettered_at = now(), dead_letter_reason = 'test'
        WHERE id = (SELECT min(id) FROM command.outbox WHERE published_at IS NULL)
        """)
      // Everything is 40 days old except the last published row and the last two idempotency records.
      try await pool.execute(
        """
        UPDATE command.outbox SET created_at = now() - interval '40 days'
        WHERE id <> (SELECT max(id) FROM command.outbox WHERE published_at IS NOT NULL)
        """)
      try await pool.execute(
        """
        UPDATE command.idempotency_keys SET created_at = now() - interval '40 days'
        WHERE idempotency_key NOT IN ('relay-8', 'relay-9')
        """)
      let sweeper = RetentionSweeper(
        pool: pool,
        rules: [
          .init(
            table: "command.outbox", timeColumn: "created_at", condition: "published_at IS NOT NULL",
            retention: .seconds(7 * 86400)),
          .init(table: "command.idempotency_keys", timeColumn: "created_at", retention: .seconds(30 * 86400)),
        ], batchSize: 2, logger: quietLogger("retention"))
      let deleted = try await sweeper.sweep()
      #expect(deleted["command.outbox"] == 5, "the 5 old published rows, in batches of 2")
      #expect(deleted["command.idempotency_keys"] == 8)
      let left = try await pool.query(
        """
        SELECT count(*) FILTER (WHERE published_at IS NOT NULL), count(*) FILTER (WHERE dead_lettered_at IS NOT NULL),
               count(*) FILTER (WHERE published_at IS NULL AND dead_lettered_at IS NULL)
        FROM command.outbox
        """)
      #expect(try left[0].decode(Int.self, at: 0) == 1, "the recent published row stays")
      #expect(try left[0].decode(Int.self, at: 1) == 1, "dead letters are never deleted")
      #expect(try left[0].decode(Int.self, at: 2) == 3, "unpublished rows are never deleted")
      let keys = try await pool.query("SELECT idempotency_key FROM command.idempotency_keys ORDER BY 1")
      #expect(try keys.map { try $0.decode(String.self, at: 0) } == ["relay-8", "relay-9"])
      let payments = try await pool.query("SELECT count(*) FROM command.payments")
      #expect(try payments[0].decode(Int.self, at: 0) == 10, "payments are kept")
      #expect(try await sweeper.sweep().values.allSatisfy { $0 == 0 }, "a second pass finds nothing")
    }
  }

  @Test("a relay stopped after publishing and before marking: after restart every order is there")
  func crashBetweenPublishAndMark() async throws {
    try await withPlatform(PlatformOptions(runQuery: false, runsRelay: false)) { platform in
      let ids = try await submit(12, on: platform)
      let producer = try platform.producer()
      // The first relay publishes a batch of 5 and dies before it can mark them.
      let published = Mutex<[Int64]>([])
      let crashing = relay(platform, producer, batchSize: 5) { batch in
        published.withLock { $0 = batch }
        throw Stop()
      }
      await #expect(throws: Stop.self) { try await crashing.relayBatch() }
      #expect(published.withLock { $0.count } == 5)
      let pending = try await platform.pool.query(
        "SELECT count(*) FROM command.outbox WHERE published_at IS NULL")
      #expect(try pending[0].decode(Int64.self, at: 0) == 12)

      // A new relay (the restarted process) runs until the outbox is empty.
      let restarted = relay(platform, producer, batchSize: 5)
      while case .published(let count, _) = try await restarted.relayBatch(), count > 0 {}

      let records = try await readTopic(platform.cluster, PaymentsTopic.orders, atLeast: 17)
      let keys = records.map { String(decoding: $0.key ?? [], as: UTF8.self) }
      #expect(Set(keys) == Set(ids), "every order is on the topic")
      #expect(records.count == 17, "the 5 unmarked orders were published twice, the rest once")
      let remaining = try await platform.pool.query(
        "SELECT count(*) FROM command.outbox WHERE published_at IS NULL")
      #expect(try remaining[0].decode(Int64.self, at: 0) == 0)
      await producer.close()
    }
  }

  @Test("two relays on one outbox: one publishes at a time, per-key order holds")
  func twoRelays() async throws {
    try await withPlatform(PlatformOptions(runQuery: false, runsRelay: false)) { platform in
      // Rows of the same key, in order: as a dispatcher writes a payment's events.
      for sequence in 0..<60 {
        try await platform.pool.execute(
          """
          INSERT INTO command.outbox (topic, message_key, payload, event_type)
          VALUES ('payments.orders.v1', \("key-\(sequence % 3)"), \(Array(String(sequence).utf8)), 'test')
          """)
      }
      let producer = try platform.producer()
      let first = relay(platform, producer, batchSize: 7)
      let second = relay(platform, producer, batchSize: 7)
      try await withThrowingTaskGroup(of: Void.self) { group in
        for relay in [first, second] {
          group.addTask {
            while true {
              let outcome = try await relay.relayBatch()
              if outcome == .published(0, failed: 0) { return }
            }
          }
        }
        try await group.waitForAll()
      }
      let records = try await readTopic(platform.cluster, PaymentsTopic.orders, atLeast: 60)
      #expect(records.count == 60, "no row published twice without a crash")
      for key in ["key-0", "key-1", "key-2"] {
        let values = records.filter { $0.key == Array(key.utf8) }.sorted { $0.offset < $1.offset }
          .map { Int(String(decoding: $0.value, as: UTF8.self))! }
        #expect(values == values.sorted(), "\(key) in order")
        #expect(values.count == 20)
      }
      await producer.close()
    }
  }

  @Test("the running relay wakes on NOTIFY, not on its sweep timer")
  func wakesOnNotify() async throws {
    try await withPlatform(PlatformOptions(runQuery: false, runsRelay: false)) { platform in
      let producer = try platform.producer()
      // A sweep of an hour: only the notification can wake it.
      let relay = relay(platform, producer, sweep: .seconds(3600))
      try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await relay.run() }
        try await Task.sleep(for: .milliseconds(500))  // it has swept the empty outbox and sleeps
        let ids = try await submit(3, on: platform)
        let records = try await readTopic(
          platform.cluster, PaymentsTopic.orders, atLeast: 3, timeout: .seconds(10))
        #expect(Set(records.map { String(decoding: $0.key ?? [], as: UTF8.self) }) == Set(ids))
        group.cancelAll()
      }
      await producer.close()
    }
  }
}
