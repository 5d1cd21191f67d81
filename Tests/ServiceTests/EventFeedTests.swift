import DispatcherService
import Foundation
import PaymentsCore
import PaymentsProto
import PaymentsSchema
import PaymentsTestSupport
import Postgres
import ProtobufRuntime
import ProviderSandbox
import QueryService
import RPCCore
import Synchronization
import Testing

/// The event feed (`ListEvents`, `WatchEvents`): every change of a client's payments, numbered in
/// commit order, resumable from a cursor without gaps.
@Suite("Event feed")
struct EventFeedTests {
  /// A payment of `client` at `version`.
  static func state(_ id: String, version: Int64, client: String = "client-a") -> PaymentReadModel.State {
    PaymentReadModel.State(
      payment: .with {
        $0.paymentID = id
        $0.idempotencyKey = "k-" + id
        $0.status = version == 1 ? .accepted : .processing
        $0.version = version
        $0.createdAt = Google_Protobuf_Timestamp(date: Date())
      }, clientID: client)
  }

  @Test(
    "8 writers and a reader racing on one client's feed: numbers are handed out in commit order, so a reader following its cursor misses nothing"
  )
  func commitOrder() async throws {
    let url = try await TestPostgres.shared.makeDatabase()
    let pool = PostgresConnectionPool(
      connectionString: url, maximumConnections: 12, logger: quietLogger("pool"))
    try await PostgresMigrator(pool: pool, logger: quietLogger("migrate")).migrate(PaymentsMigrations.all)
    let model = PaymentReadModel(pool: pool)
    let writers = 8
    let perWriter = 60
    let seen = try await withThrowingTaskGroup(of: [Int64].self) { group in
      for writer in 0..<writers {
        group.addTask {
          for index in 0..<perWriter {
            // Batches of one to three payments, each with two versions.
            let ids = (0...(index % 3)).map { "pay_w\(writer)_\(index)_\($0)" }
            try await model.apply(ids.flatMap { [Self.state($0, version: 1), Self.state($0, version: 2)] })
          }
          return []
        }
      }
      group.addTask {
        // The reader: always continues after the last number it saw, as a client does.
        var after: Int64 = 0
        var sequences: [Int64] = []
        let total = Int64(writers * (0..<perWriter).map { ($0 % 3 + 1) * 2 }.reduce(0, +))
        let deadline = ContinuousClock.now + .seconds(60)
        while after < total, ContinuousClock.now < deadline {
          let page = try await model.events(clientID: "client-a", after: after, limit: 50)
          sequences += page.map(\.sequence)
          after = page.last?.sequence ?? after
        }
        return sequences
      }
      return try await group.reduce(into: []) { $0 += $1 }
    }
    let total = writers * (0..<perWriter).map { ($0 % 3 + 1) * 2 }.reduce(0, +)
    #expect(seen.count == total, "the reader saw \(seen.count) of \(total) events")
    #expect(seen == Array(1...Int64(total)), "numbers seen in order, none skipped")
    // Redelivered and late states add nothing; several versions in one batch go in version order.
    try await model.apply([Self.state("pay_w0_0_0", version: 2), Self.state("pay_w0_0_0", version: 1)])
    try await model.apply([Self.state("pay_x", version: 3), Self.state("pay_x", version: 2)])
    try await model.apply([Self.state("pay_x", version: 2)])
    let tail = try await model.events(clientID: "client-a", after: Int64(total), limit: 10)
    #expect(tail.map(\.payment.paymentID) == ["pay_x", "pay_x"])
    #expect(tail.map(\.payment.version) == [2, 3])
    // Another client's feed is its own, numbered from 1.
    try await model.apply([Self.state("pay_b", version: 1, client: "client-b")])
    #expect(try await model.events(clientID: "client-b", after: 0, limit: 10).map(\.sequence) == [1])
    await pool.close()
  }

  @Test(
    "a follower disconnected 20 times at random sees every change of its payments in order, exactly once; another client sees none of them; bad cursors are named"
  )
  func followerReconnects() async throws {
    try await withDispatcherStack(
      sandbox: {
        $0.unavailableRate = 0.2  // retries: more versions per payment
        $0.seed = 3
      },
      dispatcher: {
        $0.rateLimiter.defaultLimit = 50
        $0.retry = RetryPolicy(
          base: .milliseconds(20), factor: 2, cap: .milliseconds(200), maximumAttempts: 8)
      }
    ) { platform, base, command, query in
      try await warmUp(command, query)
      let start = try await query.client.listEvents(.with { $0.pageSize = 1000 }, metadata: query.metadata)
      var submitted: [Payments_V1_Payment] = []
      let follower = Task {
        // Follows from the feed's current end, reconnecting after 20 random cuts.
        let received = FeedCollector()
        var generator = SplitMix(state: 11)
        for _ in 0..<20 {
          let cut = Duration.milliseconds(Int.random(in: 20...300, using: &generator))
          let cursor = received.events.withLock { $0.last?.cursor } ?? start.nextCursor
          do {
            try await query.client.watchEvents(
              .with { $0.after = cursor }, metadata: query.metadata, options: .init(timeout: cut)
            ) { stream in
              for try await event in stream { received.events.withLock { $0.append(event) } }
            }
          } catch let error as RPCError where error.code == .deadlineExceeded || error.code == .cancelled {}
        }
        let events = received.events.withLock { $0 }
        return (events, events.last?.cursor ?? start.nextCursor)
      }
      for index in 0..<30 {
        submitted.append(
          try await command.client.submitPayment(
            validRequest(key: "feed-\(index)"), metadata: command.metadata
          ).payment!)
      }
      var final: [String: Payments_V1_Payment] = [:]
      for payment in submitted {
        final[payment.paymentID] = try await finalState(
          payment.paymentID, query, deadline: .now + .seconds(60))
      }
      var (received, cursor) = try await follower.value
      // What came after the last cut: the rest of the feed, page by page.
      while true {
        let page = try await query.client.listEvents(
          .with {
            $0.after = cursor
            $0.pageSize = 7
          }, metadata: query.metadata)
        received += page.events
        guard !page.events.isEmpty else { break }
        #expect(page.nextCursor == page.events.last?.cursor)
        cursor = page.nextCursor
      }
      let ours = received.filter { final[$0.payment?.paymentID ?? ""] != nil }
      #expect(Set(received.map(\.cursor)).count == received.count, "each event once")
      for (id, last) in final {
        let versions = ours.filter { $0.payment?.paymentID == id }.map { $0.payment?.version ?? 0 }
        #expect(last.status.isTerminal)
        #expect(versions == Array(1...last.version), "\(id): versions \(versions), final \(last.version)")
      }
      #expect(ours.count > submitted.count * 3, "retries made several versions per payment")

      // Another client's feed holds none of them.
      let other = platform.queryClient(try await platform.key(client: "client-b"))
      defer { other.close() }
      let theirs = try await other.client.listEvents(.with { $0.pageSize = 1000 }, metadata: other.metadata)
      #expect(theirs.events.isEmpty && theirs.nextCursor.isEmpty)

      // Cursors this client's feed never issued, or behind deleted events, are named.
      for bad in ["garbage", "c0", "c-1", "c12345678901234567890", "c999999"] {
        let error = await rpcError {
          try await query.client.listEvents(.with { $0.after = bad }, metadata: query.metadata)
        }
        #expect(error?.code == .invalidArgument, "\(bad): \(String(describing: error))")
      }
      try await platform.pool.execute(
        "DELETE FROM query.events WHERE client_id = 'client-a' AND sequence <= 5")
      let expired = await rpcError {
        try await query.client.listEvents(.with { $0.after = "c2" }, metadata: query.metadata)
      }
      #expect(expired?.code == .outOfRange)
      #expect(
        try await query.client.listEvents(.with { $0.after = "c5" }, metadata: query.metadata).events.first?
          .cursor
          == "c6", "the cursor right before the oldest kept event still works")
    }
  }
}

/// Events received by a follower, across its reconnections.
final class FeedCollector: Sendable {
  let events = Mutex<[Payments_V1_FeedEvent]>([])
}
