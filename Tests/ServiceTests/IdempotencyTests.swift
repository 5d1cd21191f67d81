import Foundation
import PaymentsProto
import PaymentsTestSupport
import Postgres
import ProtobufRuntime
import QueryService
import RPCCore
import Testing

@Suite("Idempotency and durability")
struct IdempotencyTests {
  @Test("ACCEPTED means committed: payment, idempotency record and outbox row are stored")
  func acceptedIsStored() async throws {
    try await withPlatform(PlatformOptions(runQuery: false, runsRelay: false)) { platform in
      let client = platform.commandClient(try await platform.key())
      defer { client.close() }
      let response = try await client.client.submitPayment(
        validRequest(key: "k-1"), metadata: client.metadata)
      let payment = try #require(response.payment)
      #expect(payment.status == .accepted)
      #expect(payment.version == 1)
      #expect(payment.paymentID.hasPrefix("pay_"))
      #expect(response.replayed == false)
      // Read on another connection: visible, so committed.
      let rows = try await platform.pool.query(
        """
        SELECT p.client_id, p.amount_minor, k.idempotency_key, o.topic, o.message_key, o.event_type
        FROM command.payments p JOIN command.idempotency_keys k USING (payment_id)
        JOIN command.outbox o ON o.message_key = p.payment_id
        WHERE p.payment_id = \(payment.paymentID)
        """)
      let row = try #require(try rows.singleRow())
      #expect(try row.decode(String.self, at: 0) == "client-a")
      #expect(try row.decode(Int64.self, at: 1) == 1234)
      #expect(try row.decode(String.self, at: 2) == "k-1")
      #expect(try row.decode(String.self, at: 3) == "payments.orders.v1")
      #expect(try row.decode(String.self, at: 5) == "payments.v1.PaymentOrderRecord")
    }
  }

  @Test("same key and request: the stored payment, replayed; a changed request: ALREADY_EXISTS")
  func replayAndReuse() async throws {
    try await withPlatform(PlatformOptions(runQuery: false, runsRelay: false)) { platform in
      let client = platform.commandClient(try await platform.key())
      defer { client.close() }
      let request = validRequest(key: "invoice-7")
      let first = try await client.client.submitPayment(request, metadata: client.metadata)
      // Metadata built in another order is the same request.
      var again = validRequest(key: "invoice-7")
      again.metadata = [:]
      again.metadata["channel"] = "web"
      again.metadata["order"] = "42"
      let replay = try await client.client.submitPayment(again, metadata: client.metadata)
      #expect(replay.replayed)
      #expect(replay.payment == first.payment)

      var changed = request
      changed.amount?.amountMinor = 9999
      let error = await rpcError { try await client.client.submitPayment(changed, metadata: client.metadata) }
      #expect(error?.code == .alreadyExists)
      #expect(error?.message.contains("invoice-7") == true)
      #expect(error?.message.contains(first.payment!.paymentID) == true)

      // The key is scoped to the client: another client may use it for its own payment.
      let other = platform.commandClient(try await platform.key(client: "client-b"))
      defer { other.close() }
      let theirs = try await other.client.submitPayment(changed, metadata: other.metadata)
      #expect(theirs.replayed == false)
      #expect(theirs.payment?.paymentID != first.payment?.paymentID)

      let count = try await platform.pool.query("SELECT count(*) FROM command.payments")
      #expect(try count[0].decode(Int64.self, at: 0) == 2)
    }
  }

  @Test("50 concurrent identical submissions: one payment, 49 replays")
  func concurrentSubmissions() async throws {
    try await withPlatform(PlatformOptions(runQuery: false, runsRelay: false)) { platform in
      let token = try await platform.key()
      // Several connections, so the submissions really race on the server.
      let clients = (0..<5).map { _ in platform.commandClient(token) }
      defer { clients.forEach { $0.close() } }
      let request = validRequest(key: "race")
      let responses = try await withThrowingTaskGroup(of: Payments_V1_SubmitPaymentResponse.self) { group in
        for index in 0..<50 {
          let client = clients[index % clients.count]
          group.addTask { try await client.client.submitPayment(request, metadata: client.metadata) }
        }
        return try await group.reduce(into: []) { $0.append($1) }
      }
      #expect(responses.count == 50)
      #expect(responses.filter { !$0.replayed }.count == 1)
      #expect(Set(responses.map { $0.payment!.paymentID }).count == 1)
      let counts = try await platform.pool.query(
        """
        SELECT (SELECT count(*) FROM command.payments), (SELECT count(*) FROM command.idempotency_keys),
               (SELECT count(*) FROM command.outbox)
        """)
      #expect(try counts[0].decode(Int64.self, at: 0) == 1)
      #expect(try counts[0].decode(Int64.self, at: 1) == 1)
      #expect(try counts[0].decode(Int64.self, at: 2) == 1)
    }
  }

  @Test("many different submissions at once are all stored exactly once (group commit)")
  func groupCommit() async throws {
    try await withPlatform(PlatformOptions(runQuery: false, runsRelay: false)) { platform in
      let token = try await platform.key()
      let clients = (0..<4).map { _ in platform.commandClient(token) }
      defer { clients.forEach { $0.close() } }
      let ids = try await withThrowingTaskGroup(of: String.self) { group in
        for index in 0..<400 {
          let client = clients[index % clients.count]
          // Every 4th request repeats the previous key: replays mixed into the batches.
          let key = "bulk-\(index - (index % 4 == 3 ? 1 : 0))"
          group.addTask {
            try await client.client.submitPayment(validRequest(key: key), metadata: client.metadata).payment!
              .paymentID
          }
        }
        return try await group.reduce(into: [String]()) { $0.append($1) }
      }
      #expect(Set(ids).count == 300)
      let counts = try await platform.pool.query(
        "SELECT (SELECT count(*) FROM command.payments), (SELECT count(*) FROM command.outbox)")
      #expect(try counts[0].decode(Int64.self, at: 0) == 300)
      #expect(try counts[0].decode(Int64.self, at: 1) == 300)
    }
  }
}
