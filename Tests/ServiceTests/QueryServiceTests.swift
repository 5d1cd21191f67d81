import Foundation
import Kafka
import PaymentsCore
import PaymentsProto
import PaymentsTestSupport
import Postgres
import ProtobufRuntime
import QueryService
import RPCCore
import Synchronization
import Testing

/// A domain event for `payment` in `status` at `version`, as the dispatcher publishes them.
func event(
  _ payment: Payments_V1_Payment, _ status: Payments_V1_PaymentStatus, version: Int64,
  client: String = "client-a"
) -> KafkaProducerRecord {
  var next = payment
  next.status = status
  next.version = version
  next.attempts = Int32(version - 1)
  next.updatedAt = Google_Protobuf_Timestamp(date: Date())
  if status == .succeeded { next.providerReference = "ch_\(version)" }
  let event = Payments_V1_PaymentEvent.with {
    $0.eventID = UUID().uuidString
    $0.paymentID = payment.paymentID
    $0.type = Payments_V1_PaymentEventType(rawValue: status.rawValue)
    $0.version = version
    $0.occurredAt = next.updatedAt
    $0.payment = next
    $0.clientID = client
  }
  return KafkaProducerRecord(
    topic: PaymentsTopic.events, key: payment.paymentID, value: event.serializedBytes())
}

@Suite("Query service")
struct QueryServiceTests {
  @Test("read-your-writes: GetPayment with min_version waits for the projection; lookup by key")
  func readYourWrites() async throws {
    try await withPlatform { platform in
      let token = try await platform.key()
      let command = platform.commandClient(token)
      let query = platform.queryClient(token)
      defer {
        command.close()
        query.close()
      }
      let submitted = try await command.client.submitPayment(
        validRequest(key: "ryw"), metadata: command.metadata
      )
      .payment!
      let read = try await query.client.getPayment(
        .with {
          $0.lookup = .paymentID(submitted.paymentID)
          $0.minVersion = submitted.version
        }, metadata: query.metadata, options: .init(timeout: .seconds(30)))
      #expect(read == submitted)
      let byKey = try await query.client.getPayment(
        .with { $0.lookup = .idempotencyKey("ryw") }, metadata: query.metadata)
      #expect(byKey == submitted)

      // A version that never comes: the call's deadline bounds the wait.
      let error = await rpcError {
        try await query.client.getPayment(
          .with {
            $0.lookup = .paymentID(submitted.paymentID)
            $0.minVersion = 5
          }, metadata: query.metadata, options: .init(timeout: .milliseconds(500)))
      }
      #expect(error?.code == .deadlineExceeded)

      let malformed = await rpcError {
        try await query.client.getPayment(.with { $0.lookup = .paymentID("42") }, metadata: query.metadata)
      }
      #expect(malformed?.code == .invalidArgument)
      #expect(malformed?.message.contains("payment_id") == true)
      let empty = await rpcError { try await query.client.getPayment(.init(), metadata: query.metadata) }
      #expect(empty?.code == .invalidArgument)
    }
  }

  @Test("events delivered twice and out of order end in the right state; min_version sees the change")
  func outOfOrderEvents() async throws {
    try await withPlatform { platform in
      let token = try await platform.key()
      let command = platform.commandClient(token)
      let query = platform.queryClient(token)
      defer {
        command.close()
        query.close()
      }
      let payment = try await command.client.submitPayment(validRequest(), metadata: command.metadata)
        .payment!
      let producer = try platform.producer()
      // The final state first, then older ones, each twice (as a redelivery would).
      let succeeded = event(payment, .succeeded, version: 4)
      for record in [
        succeeded, event(payment, .processing, version: 2), succeeded,
        event(payment, .retryScheduled, version: 3),
        event(payment, .processing, version: 2),
      ] {
        try await producer.send(record)
      }
      let read = try await query.client.getPayment(
        .with {
          $0.lookup = .paymentID(payment.paymentID)
          $0.minVersion = 4
        }, metadata: query.metadata, options: .init(timeout: .seconds(30)))
      #expect(read.status == .succeeded)
      #expect(read.version == 4)
      #expect(read.providerReference == "ch_4")
      // Late records (including the order itself, v1, which may arrive after the events) change
      // nothing: give them time to be applied, then read again.
      try await producer.send(event(payment, .processing, version: 2))
      try await Task.sleep(for: .milliseconds(500))
      let again = try await query.client.getPayment(
        .with { $0.lookup = .paymentID(payment.paymentID) }, metadata: query.metadata)
      #expect(again.status == .succeeded)
      #expect(again.version == 4)
      let rows = try await platform.pool.query(
        "SELECT count(*) FROM query.payments WHERE payment_id = \(payment.paymentID)")
      #expect(try rows[0].decode(Int64.self, at: 0) == 1)
      await producer.close()
    }
  }

  @Test("WatchPayment streams the current state and each change, and ends at the terminal one")
  func watch() async throws {
    try await withPlatform { platform in
      let token = try await platform.key()
      let command = platform.commandClient(token)
      let query = platform.queryClient(token)
      defer {
        command.close()
        query.close()
      }
      let payment = try await command.client.submitPayment(validRequest(), metadata: command.metadata)
        .payment!
      // The projection's consumer joins its group first (seconds on a loaded machine).
      _ = try await query.client.getPayment(
        .with {
          $0.lookup = .paymentID(payment.paymentID)
          $0.minVersion = 1
        }, metadata: query.metadata, options: .init(timeout: .seconds(30)))
      let producer = try platform.producer()
      let seen = Mutex<[Int64]>([])
      let statuses = try await query.client.watchPayment(
        .with { $0.paymentID = payment.paymentID }, metadata: query.metadata,
        options: .init(timeout: .seconds(30))
      ) { stream in
        var statuses: [Payments_V1_PaymentStatus] = []
        for try await update in stream {
          statuses.append(update.status)
          seen.withLock { $0.append(update.version) }
          // Each change is produced only after the previous one was seen: a stream that polled
          // or ended early would fail here.
          switch update.version {
          case 1: try await producer.send(event(payment, .processing, version: 2))
          case 2: try await producer.send(event(payment, .retryScheduled, version: 3))
          case 3:
            try await producer.send(event(payment, .processing, version: 4))
            try await producer.send(event(payment, .failed, version: 5))
          default: break
          }
        }
        return statuses
      }
      #expect(statuses.first == .accepted)
      #expect(statuses.last == .failed)
      let versions = seen.withLock { $0 }
      #expect(versions == versions.sorted() && Set(versions).count == versions.count)
      #expect(versions.first == 1 && versions.last == 5)
      #expect(versions.count >= 4)
      await producer.close()
    }
  }

  @Test("a client may hold only so many WatchPayment streams; another client and a freed slot still work")
  func watchLimit() async throws {
    var options = PlatformOptions()
    options.query.maximumWatchesPerClient = 2
    try await withPlatform(options) { platform in
      let token = try await platform.key()
      let command = platform.commandClient(token)
      let query = platform.queryClient(token)
      let other = platform.queryClient(try await platform.key(client: "client-b"))
      defer {
        command.close()
        query.close()
        other.close()
      }
      let payment = try await command.client.submitPayment(validRequest(), metadata: command.metadata)
        .payment!
      _ = try await query.client.getPayment(
        .with {
          $0.lookup = .paymentID(payment.paymentID)
          $0.minVersion = 1
        }, metadata: query.metadata, options: .init(timeout: .seconds(30)))
      let watch = { @Sendable (client: AuthorizedClient<Payments_V1_PaymentQueryService.Client>) in
        try await client.client.watchPayment(
          .with { $0.paymentID = payment.paymentID }, metadata: client.metadata,
          options: .init(timeout: .seconds(60))
        ) { stream in
          for try await _ in stream { return true }
          return false
        }
      }
      // Two watches that stay open: each has its first update and keeps its stream.
      let (opened, openedSink) = AsyncStream<Void>.makeStream()
      let holders = Task {
        try await withThrowingTaskGroup(of: Void.self) { group in
          for _ in 0..<2 {
            group.addTask {
              try await query.client.watchPayment(
                .with { $0.paymentID = payment.paymentID }, metadata: query.metadata,
                options: .init(timeout: .seconds(60))
              ) { stream in
                for try await _ in stream {
                  openedSink.yield()
                  try await Task.sleep(for: .seconds(60))
                }
              }
            }
          }
          try await group.waitForAll()
        }
      }
      var count = 0
      for await _ in opened {
        count += 1
        if count == 2 { break }
      }
      let error = await rpcError { _ = try await watch(query) }
      #expect(error?.code == .resourceExhausted, "\(String(describing: error))")
      #expect(error?.message.contains("WatchPayment") == true)
      // Another client is not affected (its own payment is NOT_FOUND, but it got past the limit).
      let otherError = await rpcError { _ = try await watch(other) }
      #expect(otherError?.code == .notFound, "\(String(describing: otherError))")
      holders.cancel()
      _ = await holders.result
      // The freed slots admit new watches (the server notices the cancelled streams at once).
      var reopened = false
      for _ in 0..<50 where !reopened {
        reopened = (try? await watch(query)) == true
        if !reopened { try await Task.sleep(for: .milliseconds(100)) }
      }
      #expect(reopened)
    }
  }

  @Test("GetPayment by idempotency key with min_version waits for that payment's change")
  func minVersionByKey() async throws {
    try await withPlatform { platform in
      let token = try await platform.key()
      let command = platform.commandClient(token)
      let query = platform.queryClient(token)
      defer {
        command.close()
        query.close()
      }
      let payment = try await command.client.submitPayment(
        validRequest(key: "by-key-v2"), metadata: command.metadata
      ).payment!
      let producer = try platform.producer()
      async let read = query.client.getPayment(
        .with {
          $0.lookup = .idempotencyKey("by-key-v2")
          $0.minVersion = 2
        }, metadata: query.metadata, options: .init(timeout: .seconds(30)))
      // Once the order is projected (v1), the change to v2 follows.
      _ = try await query.client.getPayment(
        .with {
          $0.lookup = .paymentID(payment.paymentID)
          $0.minVersion = 1
        }, metadata: query.metadata, options: .init(timeout: .seconds(30)))
      try await producer.send(event(payment, .processing, version: 2))
      let result = try await read
      #expect(result.version == 2)
      #expect(result.status == .processing)
      await producer.close()
    }
  }

  @Test("ListPayments: newest first, keyset pages with opaque tokens, status and time filters")
  func list() async throws {
    try await withPlatform { platform in
      let token = try await platform.key()
      let command = platform.commandClient(token)
      let query = platform.queryClient(token)
      defer {
        command.close()
        query.close()
      }
      var submitted: [Payments_V1_Payment] = []
      for index in 0..<7 {
        submitted.append(
          try await command.client.submitPayment(
            validRequest(key: "list-\(index)"), metadata: command.metadata
          ).payment!)
      }
      // Wait until all are projected.
      _ = try await query.client.getPayment(
        .with {
          $0.lookup = .paymentID(submitted.last!.paymentID)
          $0.minVersion = 1
        }, metadata: query.metadata, options: .init(timeout: .seconds(30)))
      try await eventually {
        try await query.client.listPayments(.with { $0.pageSize = 100 }, metadata: query.metadata).payments
          .count == 7
      }
      var pages: [[String]] = []
      var pageToken = ""
      repeat {
        let page = try await query.client.listPayments(
          .with {
            $0.pageSize = 3
            $0.pageToken = pageToken
          }, metadata: query.metadata)
        pages.append(page.payments.map(\.paymentID))
        pageToken = page.nextPageToken
      } while !pageToken.isEmpty
      #expect(pages.map(\.count) == [3, 3, 1])
      #expect(pages.flatMap { $0 } == submitted.reversed().map(\.paymentID))

      // Status filter: one payment succeeds.
      let producer = try platform.producer()
      try await producer.send(event(submitted[2], .succeeded, version: 2))
      _ = try await query.client.getPayment(
        .with {
          $0.lookup = .paymentID(submitted[2].paymentID)
          $0.minVersion = 2
        }, metadata: query.metadata, options: .init(timeout: .seconds(30)))
      let succeeded = try await query.client.listPayments(
        .with { $0.statuses = [.succeeded] }, metadata: query.metadata)
      #expect(succeeded.payments.map(\.paymentID) == [submitted[2].paymentID])
      let accepted = try await query.client.listPayments(
        .with { $0.statuses = [.accepted] }, metadata: query.metadata)
      #expect(accepted.payments.count == 6)

      // Time filter: strictly after the 5th payment's creation.
      let after = try await query.client.listPayments(
        .with { $0.createdAfter = submitted[4].createdAt }, metadata: query.metadata)
      #expect(after.payments.map(\.paymentID) == [submitted[6].paymentID, submitted[5].paymentID])
      let before = try await query.client.listPayments(
        .with { $0.createdBefore = submitted[1].createdAt }, metadata: query.metadata)
      #expect(before.payments.map(\.paymentID) == [submitted[0].paymentID])

      // Tokens are checked.
      let first = try await query.client.listPayments(.with { $0.pageSize = 2 }, metadata: query.metadata)
      let otherFilter = await rpcError {
        try await query.client.listPayments(
          .with {
            $0.pageToken = first.nextPageToken
            $0.statuses = [.failed]
          }, metadata: query.metadata)
      }
      #expect(otherFilter?.code == .invalidArgument)
      #expect(otherFilter?.message.contains("page_token") == true)
      let garbage = await rpcError {
        try await query.client.listPayments(.with { $0.pageToken = "bm9wZQ" }, metadata: query.metadata)
      }
      #expect(garbage?.code == .invalidArgument)
      // A token altered in any one character is refused (it is signed).
      let issued = Array(first.nextPageToken)
      for index in stride(from: 0, to: issued.count, by: max(1, issued.count / 12)) {
        var altered = issued
        altered[index] = altered[index] == "A" ? "B" : "A"
        let error = await rpcError {
          try await query.client.listPayments(
            .with {
              $0.pageSize = 2
              $0.pageToken = String(altered)
            }, metadata: query.metadata)
        }
        #expect(error?.code == .invalidArgument, "character \(index) altered")
        #expect(error?.message.contains("page_token") == true)
      }
      // So is one with base64 padding added (found by tools/interop/bad_input.py).
      for padding in ["=", "=="] {
        let error = await rpcError {
          try await query.client.listPayments(
            .with {
              $0.pageSize = 2
              $0.pageToken = first.nextPageToken + padding
            }, metadata: query.metadata)
        }
        #expect(error?.code == .invalidArgument, "padding \(padding)")
      }
      // A forged token with the old unsigned format and a cursor at Int64.max (it trapped).
      let forged = Data("v1.9223372036854775807.pay_00000000000000000000000000000000.0123456789abcdef".utf8)
        .base64EncodedString()
      let forgedError = await rpcError {
        try await query.client.listPayments(.with { $0.pageToken = forged }, metadata: query.metadata)
      }
      #expect(forgedError?.code == .invalidArgument)
      // Timestamps outside 0001-01-01…9999-12-31 or with bad nanos name their field (they trapped).
      for (seconds, nanos) in [
        (Int64(1) << 62, Int32(0)), (-(Int64(1) << 62), 0), (Int64.max, 0), (Int64.min, 0), (0, -1),
        (0, 1_000_000_000), (253_402_300_800, 0), (-62_135_596_801, 0),
      ] {
        for field in ["created_after", "created_before"] {
          let error = await rpcError {
            try await query.client.listPayments(
              .with {
                let time = Google_Protobuf_Timestamp.with {
                  $0.seconds = seconds
                  $0.nanos = nanos
                }
                if field == "created_after" { $0.createdAfter = time } else { $0.createdBefore = time }
              }, metadata: query.metadata)
          }
          #expect(error?.code == .invalidArgument, "\(field) \(seconds).\(nanos)")
          #expect(error?.message.contains(field) == true, "\(error?.message ?? "")")
        }
      }
      // The extremes themselves are valid.
      let extremes = try await query.client.listPayments(
        .with {
          $0.createdAfter = .with { $0.seconds = -62_135_596_800 }
          $0.createdBefore = .with {
            $0.seconds = 253_402_300_799
            $0.nanos = 999_999_999
          }
        }, metadata: query.metadata)
      #expect(extremes.payments.count == 7)
      // An idempotency key no payment can have (NUL, control characters) is INVALID_ARGUMENT, not
      // UNAVAILABLE ("retry later").
      for key in ["a\u{0}b", "a\u{7}b", "with space", "заказ"] {
        let error = await rpcError {
          try await query.client.getPayment(
            .with { $0.lookup = .idempotencyKey(key) }, metadata: query.metadata)
        }
        #expect(error?.code == .invalidArgument, "\(key.debugDescription)")
        #expect(error?.message.contains("idempotency_key") == true)
      }
      let negative = await rpcError {
        try await query.client.listPayments(.with { $0.pageSize = -1 }, metadata: query.metadata)
      }
      #expect(negative?.message.contains("page_size") == true)
      let unspecified = await rpcError {
        try await query.client.listPayments(.with { $0.statuses = [.unspecified] }, metadata: query.metadata)
      }
      #expect(unspecified?.message.contains("statuses") == true)
      // 500,000 bad values in the packed field: one short violation naming a few of them, not one
      // line each; the same number of repeats of one good status is simply that status.
      let many = await rpcError {
        try await query.client.listPayments(
          .with { $0.statuses = (0..<500_000).map { .unrecognized(Int32(100 + $0 % 1000)) } },
          metadata: query.metadata)
      }
      #expect(many?.code == .invalidArgument)
      #expect(many?.message.contains("statuses: 100, 101, 102, 103, 104 and 995 other values") == true)
      #expect((many?.message.utf8.count ?? .max) < 300, "\(many?.message.utf8.count ?? 0) bytes")
      let repeated = try await query.client.listPayments(
        .with { $0.statuses = Array(repeating: .accepted, count: 500_000) }, metadata: query.metadata)
      #expect(repeated.payments.count <= 7)
      // Page size is capped, not refused.
      let huge = try await query.client.listPayments(
        .with { $0.pageSize = 1_000_000 }, metadata: query.metadata)
      #expect(huge.payments.count == 7)
      await producer.close()
    }
  }
}
