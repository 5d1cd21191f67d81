import Foundation
import PaymentsCore
public import PaymentsProto
import ProtobufRuntime
public import RPCCore
public import ServiceKit
import Synchronization

/// `payments.v1.PaymentQueryService`: reads the read model, for the calling client only.
///
/// A payment of another client is `NOT_FOUND`, exactly like one that does not exist, so that
/// payment IDs reveal nothing.
public struct PaymentQueryHandler: Payments_V1_PaymentQueryService.ServiceProtocol {
  public struct Configuration: Sendable {
    /// Page size when the request gives none.
    public var defaultPageSize = 50
    /// The largest page; larger requests are capped.
    public var maximumPageSize = 500
    /// How long `GetPayment` with `min_version` waits when the call has no (shorter) deadline.
    public var maximumVersionWait: Duration = .seconds(30)
    /// How long `WatchPayment` waits for a payment it does not know yet to appear (the read model
    /// may lag a submission by moments).
    public var watchNotFoundGrace: Duration = .seconds(5)
    /// How long a waiting call sleeps without a change notification before it reads anyway.
    public var safetyPollInterval: Duration = .seconds(5)
    /// `WatchPayment` streams one client may have open at once (on this instance); one more is
    /// refused with `RESOURCE_EXHAUSTED`.
    public var maximumWatchesPerClient = 100
    /// The shortest time between two reads of a `GetPayment` by idempotency key with
    /// `min_version` before the payment exists: until then any payment's change wakes it.
    public var unknownPaymentReadInterval: Duration = .milliseconds(100)
    public init() {}
  }

  private let readModel: PaymentReadModel
  private let feed: PaymentChangeFeed
  private let configuration: Configuration
  private let shutdown: ShutdownSignal
  private let tokenKey = CachedKey()
  private let watches = WatchCounter()

  /// - Parameter shutdown: when it triggers, running watches end with `UNAVAILABLE` (the client
  ///   watches again, on another instance) instead of being cut off when the server closes.
  public init(
    readModel: PaymentReadModel, feed: PaymentChangeFeed, configuration: Configuration = .init(),
    shutdown: ShutdownSignal = ShutdownSignal()
  ) {
    self.readModel = readModel
    self.feed = feed
    self.configuration = configuration
    self.shutdown = shutdown
  }

  public func getPayment(
    _ request: Payments_V1_GetPaymentRequest, context: ServerContext
  ) async throws -> Payments_V1_Payment {
    let client = try Self.client()
    guard request.minVersion >= 0 else {
      throw RPCError(.invalidArgument, "min_version must not be negative")
    }
    let read: @Sendable () async throws -> Payments_V1_Payment?
    let subscription: String?
    let name: String
    switch request.lookup {
    case .paymentID(let id)?:
      try Self.checkPaymentID(id, field: "payment_id")
      read = { try await readModel.payment(id: id, clientID: client) }
      subscription = id
      name = "payment \(id)"
    case .idempotencyKey(let key)?:
      guard !key.isEmpty, key.utf8.count <= PaymentOrderRules.maximumIdempotencyKeyLength else {
        throw RPCError(.invalidArgument, "idempotency_key must be 1-255 characters")
      }
      // The same rule as SubmitPayment's: no stored key can be anything else (and PostgreSQL
      // text cannot hold NUL, which would otherwise surface as UNAVAILABLE, "retry later").
      guard key.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) else {
        throw RPCError(
          .invalidArgument,
          "idempotency_key must be visible ASCII characters only (no spaces or control characters)")
      }
      read = { try await readModel.payment(idempotencyKey: key, clientID: client) }
      subscription = nil
      name = "the payment with idempotency_key '\(key)'"
    case nil:
      throw RPCError(.invalidArgument, "payment_id or idempotency_key is required")
    }
    let payment: Payments_V1_Payment?
    do {
      let first = try await read()
      if request.minVersion == 0 || (first.map { $0.version >= request.minVersion } ?? false) {
        payment = first
      } else if subscription == nil, let first {
        // Found by idempotency key: from now on follow its ID, woken by its own changes only.
        let id = first.paymentID
        payment = try await waitForVersion(
          request.minVersion, of: id, name: name, context: context,
          read: { try await readModel.payment(id: id, clientID: client) })
      } else {
        payment = try await waitForVersion(
          request.minVersion, of: subscription, name: name, context: context, read: read)
      }
    } catch let error as RPCError {
      throw error
    } catch is CancellationError {
      throw CancellationError()
    } catch {
      throw RPCError(.unavailable, "the read model is unavailable; retry later", cause: error)
    }
    guard let payment else { throw RPCError(.notFound, "\(name) was not found") }
    return payment
  }

  public func listPayments(
    _ request: Payments_V1_ListPaymentsRequest, context: ServerContext
  ) async throws -> Payments_V1_ListPaymentsResponse {
    let client = try Self.client()
    var violations: [String] = []
    var filter = PaymentReadModel.ListFilter()
    // One violation for all bad values (a packed field may hold millions), naming a few.
    var statuses = Set<Int32>()
    var unrecognized = Set<Int32>()
    var unspecified = false
    for status in request.statuses {
      if case .unrecognized(let value) = status {
        unrecognized.insert(value)
      } else if status == .unspecified {
        unspecified = true
      } else {
        statuses.insert(status.rawValue)
      }
    }
    if !unrecognized.isEmpty {
      let shown = unrecognized.sorted().prefix(5).map(String.init).joined(separator: ", ")
      let more = unrecognized.count > 5 ? " and \(unrecognized.count - 5) other values" : ""
      violations.append("statuses: \(shown)\(more) are not PaymentStatus values")
    }
    if unspecified {
      violations.append("statuses: PAYMENT_STATUS_UNSPECIFIED is not a status a payment has")
    }
    filter.statuses = statuses.sorted()
    // Range-checked before any arithmetic on them.
    if let after = request.createdAfter {
      if let problem = after.rangeProblem {
        violations.append("created_after: \(problem)")
      } else {
        filter.createdAfter = after.date
      }
    }
    if let before = request.createdBefore {
      if let problem = before.rangeProblem {
        violations.append("created_before: \(problem)")
      } else {
        filter.createdBefore = before.date
      }
    }
    if request.pageSize < 0 { violations.append("page_size: must not be negative") }
    guard violations.isEmpty else {
      throw RPCError(.invalidArgument, "invalid ListPaymentsRequest: " + violations.joined(separator: "; "))
    }
    var cursor: PaymentReadModel.Cursor? = nil
    let digest = PageToken.digest(of: filter)
    let key: [UInt8]
    do {
      key = try await tokenKey.get { try await readModel.pageTokenKey() }
    } catch {
      throw RPCError(.unavailable, "the read model is unavailable; retry later", cause: error)
    }
    let now = Int64(Date().timeIntervalSince1970)
    if !request.pageToken.isEmpty {
      switch PageToken.decode(request.pageToken, key: key, now: now) {
      case .success(let token) where token.filterDigest == digest:
        cursor = token.cursor
      case .success:
        violations.append("page_token: belongs to a request with other filters")
      case .failure(.expired):
        violations.append(
          "page_token: has expired (tokens are valid for 24 hours); list from the first page again")
      case .failure(.notIssued):
        violations.append("page_token: is not a token this service issued")
      }
    }
    guard violations.isEmpty else {
      throw RPCError(.invalidArgument, "invalid ListPaymentsRequest: " + violations.joined(separator: "; "))
    }
    let pageSize =
      request.pageSize == 0
      ? configuration.defaultPageSize : min(Int(request.pageSize), configuration.maximumPageSize)
    let rows: [(payment: Payments_V1_Payment, cursor: PaymentReadModel.Cursor)]
    do {
      rows = try await readModel.list(clientID: client, filter: filter, after: cursor, limit: pageSize + 1)
    } catch {
      throw RPCError(.unavailable, "the read model is unavailable; retry later", cause: error)
    }
    // A page also ends before it outgrows a client's message limit (a payment with many refunds
    // is large): at least one payment, then as many as fit in ``maximumPageBytes``.
    let fitting = Self.fitting(rows.prefix(pageSize).map { $0.payment.serializedBytes().count })
    let page = rows.prefix(fitting)
    return .with { response in
      response.payments = page.map(\.payment)
      if rows.count > page.count, let last = page.last {
        response.nextPageToken = PageToken(cursor: last.cursor, filterDigest: digest, issuedAt: now)
          .encoded(key: key)
      }
    }
  }

  /// Reads until the payment reaches `minVersion`, woken by changes of `paymentID` (of any
  /// payment when `nil`: then at most once per `unknownPaymentReadInterval`), until the call's
  /// deadline or `maximumVersionWait`.
  private func waitForVersion(
    _ minVersion: Int64, of paymentID: String?, name: String, context: ServerContext,
    read: @Sendable () async throws -> Payments_V1_Payment?
  ) async throws -> Payments_V1_Payment? {
    let limit = ContinuousClock.now + configuration.maximumVersionWait
    let deadline = context.deadline.map { min($0, limit) } ?? limit
    let interval = paymentID == nil ? configuration.unknownPaymentReadInterval : .zero
    return try await feed.withSubscription(to: paymentID) { doorbell in
      while true {
        let readAt = ContinuousClock.now
        let current = try await read()
        if let current, current.version >= minVersion { return current }
        let now = ContinuousClock.now
        guard now < deadline else {
          guard let current else { return nil }
          throw RPCError(
            .deadlineExceeded,
            "\(name) is at version \(current.version); version \(minVersion) did not arrive in time")
        }
        await doorbell.wait(upTo: min(deadline - now, configuration.safetyPollInterval))
        try Task.checkCancellation()
        let next = readAt + interval
        if next > .now { try await Task.sleep(until: min(next, deadline)) }
      }
    }
  }

  public func watchPayment(
    _ request: Payments_V1_WatchPaymentRequest, responses: RPCWriter<Payments_V1_Payment>,
    context: ServerContext
  ) async throws {
    let client = try Self.client()
    let id = request.paymentID
    try Self.checkPaymentID(id, field: "payment_id")
    guard watches.enter(client, limit: configuration.maximumWatchesPerClient) else {
      throw RPCError(
        .resourceExhausted,
        "client '\(client)' already has \(configuration.maximumWatchesPerClient) WatchPayment streams open on this instance (the limit); end one first"
      )
    }
    defer { watches.leave(client) }
    do {
      try await feed.withSubscription(to: id) { doorbell in
        // The payment may not be projected yet right after it was submitted.
        let graceEnd = ContinuousClock.now + configuration.watchNotFoundGrace
        var current = try await readModel.payment(id: id, clientID: client)
        while current == nil, ContinuousClock.now < graceEnd {
          await doorbell.wait(upTo: min(graceEnd - ContinuousClock.now, configuration.safetyPollInterval))
          try Task.checkCancellation()
          current = try await readModel.payment(id: id, clientID: client)
        }
        guard let first = current else { throw RPCError(.notFound, "payment \(id) was not found") }
        try await responses.write(first)
        var sent = first
        while !sent.status.isTerminal {
          await doorbell.wait(upTo: configuration.safetyPollInterval)
          try Task.checkCancellation()
          if shutdown.isTriggered {
            throw RPCError(
              .unavailable,
              "the query service is shutting down; watch payment \(id) again (version \(sent.version) was the last sent)"
            )
          }
          for next in try await readModel.history(of: id, after: sent.version) {
            try await responses.write(next)
            sent = next
            if next.status.isTerminal { break }
          }
        }
      }
    } catch let error as RPCError {
      throw error
    } catch is CancellationError {
      throw CancellationError()
    } catch {
      throw RPCError(.unavailable, "the read model is unavailable; retry later", cause: error)
    }
  }

  // MARK: The event feed

  public func listEvents(
    _ request: Payments_V1_ListEventsRequest, context: ServerContext
  ) async throws -> Payments_V1_ListEventsResponse {
    let client = try Self.client()
    guard request.pageSize >= 0 else { throw RPCError(.invalidArgument, "page_size must not be negative") }
    let limit = request.pageSize == 0 ? 100 : min(Int(request.pageSize), 1000)
    let after = try await startOfFeed(request.after, client: client)
    let entries: [PaymentReadModel.FeedEntry]
    do {
      entries = try await readModel.events(clientID: client, after: after, limit: limit)
    } catch {
      throw RPCError(.unavailable, "the read model is unavailable; retry later", cause: error)
    }
    try Self.checkContinuous(entries, after: after)
    let events = entries.map(Self.feedEvent)
    let page = events.prefix(Self.fitting(events.map { $0.serializedBytes().count }))
    return .with {
      $0.events = Array(page)
      $0.nextCursor = page.last?.cursor ?? FeedCursor.text(after)
    }
  }

  public func watchEvents(
    _ request: Payments_V1_WatchEventsRequest, responses: RPCWriter<Payments_V1_FeedEvent>,
    context: ServerContext
  ) async throws {
    let client = try Self.client()
    var after = try await startOfFeed(request.after, client: client)
    guard watches.enter(client, limit: configuration.maximumWatchesPerClient) else {
      throw RPCError(
        .resourceExhausted,
        "client '\(client)' already has \(configuration.maximumWatchesPerClient) watch streams open on this instance (the limit); end one first"
      )
    }
    defer { watches.leave(client) }
    do {
      // Any change of any payment rings: the feed grows in the same statement as the read model.
      try await feed.withSubscription(to: nil) { doorbell in
        while true {
          if shutdown.isTriggered {
            throw RPCError(
              .unavailable,
              "the query service is shutting down; watch again with after = \"\(FeedCursor.text(after))\" (nothing after it was sent)"
            )
          }
          let entries = try await readModel.events(clientID: client, after: after, limit: 500)
          try Self.checkContinuous(entries, after: after)
          for entry in entries {
            try await responses.write(Self.feedEvent(entry))
            after = entry.sequence
          }
          if entries.count < 500 {
            await doorbell.wait(upTo: configuration.safetyPollInterval)
            try Task.checkCancellation()
          }
        }
      }
    } catch let error as RPCError {
      throw error
    } catch is CancellationError {
      throw CancellationError()
    } catch {
      throw RPCError(.unavailable, "the read model is unavailable; retry later", cause: error)
    }
  }

  /// The sequence after which a feed request starts: 0 for an empty cursor. A cursor this
  /// client's feed never reached is `INVALID_ARGUMENT`; one behind events already deleted by
  /// retention is `OUT_OF_RANGE` (continuing would skip them silently).
  private func startOfFeed(_ cursor: String, client: String) async throws -> Int64 {
    guard let after = FeedCursor.sequence(cursor) else {
      throw RPCError(
        .invalidArgument,
        "after '\(String(String.UnicodeScalarView(cursor.unicodeScalars.prefix(40))))' is not a cursor of the event feed (pass a FeedEvent's cursor, or nothing to start at the beginning)"
      )
    }
    guard after > 0 else { return 0 }
    let bounds: (last: Int64, first: Int64?)
    do {
      bounds = try await readModel.feedBounds(clientID: client)
    } catch {
      throw RPCError(.unavailable, "the read model is unavailable; retry later", cause: error)
    }
    guard after <= bounds.last else {
      throw RPCError(.invalidArgument, "after '\(cursor)' is not a cursor of this client's event feed")
    }
    if after < bounds.last, (bounds.first ?? Int64.max) > after + 1 {
      throw RPCError(
        .outOfRange,
        "the events after cursor '\(cursor)' are no longer kept (feed retention); start again with an empty cursor and read current states with ListPayments"
      )
    }
    return after
  }

  /// Numbers in a client's feed have no holes (each is handed out under the client's lock and
  /// used), so events read after a cursor start right behind it — unless retention deleted the
  /// ones in between after the cursor was checked: then the reader would skip them silently.
  private static func checkContinuous(_ entries: [PaymentReadModel.FeedEntry], after: Int64) throws {
    guard after > 0, let first = entries.first, first.sequence != after + 1 else { return }
    throw RPCError(
      .outOfRange,
      "the events after cursor '\(FeedCursor.text(after))' are no longer kept (feed retention); start again with an empty cursor and read current states with ListPayments"
    )
  }

  private static func feedEvent(_ entry: PaymentReadModel.FeedEntry) -> Payments_V1_FeedEvent {
    .with {
      $0.cursor = FeedCursor.text(entry.sequence)
      $0.payment = entry.payment
      $0.recordedAt = Google_Protobuf_Timestamp(date: entry.recordedAt)
    }
  }

  /// One refund, from its payment's latest state in the read model.
  public func getRefund(
    _ request: Payments_V1_GetRefundRequest, context: ServerContext
  ) async throws -> Payments_V1_Refund {
    let client = try Self.client()
    guard RefundID.isWellFormed(request.refundID) else {
      throw RPCError(
        .invalidArgument,
        request.refundID.isEmpty
          ? "refund_id is required"
          : "refund_id must be a refund ID like ref_0190…, not '\(PaymentOrderRules.quoted(request.refundID))'"
      )
    }
    let refund: Payments_V1_Refund?
    do {
      refund = try await readModel.refund(id: request.refundID, clientID: client)
    } catch {
      throw RPCError(.unavailable, "the read model is unavailable; retry later", cause: error)
    }
    guard let refund else {
      throw RPCError(
        .notFound,
        "no refund \(request.refundID) (a refund just created appears here within moments, with its payment's event)"
      )
    }
    return refund
  }

  private static func client() throws -> String { try AuthenticatedClient.required().clientID }

  /// The most bytes of payments (or events) a page holds, well below the 4 MiB a client accepts
  /// per message by default; a page has at least one whatever its size.
  static let maximumPageBytes = 1 << 20

  /// How many of the items of `sizes` (encoded bytes, in order) a page takes.
  static func fitting(_ sizes: [Int]) -> Int {
    var total = 0
    for (index, size) in sizes.enumerated() {
      total += size
      if total > maximumPageBytes { return max(index, 1) }
    }
    return sizes.count
  }

  private static func checkPaymentID(_ id: String, field: String) throws {
    if id.isEmpty { throw RPCError(.invalidArgument, "\(field) is required") }
    guard PaymentID.isWellFormed(id) else {
      throw RPCError(
        .invalidArgument,
        "\(field) '\(String(String.UnicodeScalarView(id.unicodeScalars.prefix(40))))' is not a payment ID (pay_ and 32 hex digits)"
      )
    }
  }
}

/// Open `WatchPayment` streams by client.
final class WatchCounter: Sendable {
  private let counts = Mutex<[String: Int]>([:])

  /// Counts one more watch of `client`, unless it has `limit` already.
  func enter(_ client: String, limit: Int) -> Bool {
    counts.withLock { counts in
      guard counts[client, default: 0] < limit else { return false }
      counts[client, default: 0] += 1
      return true
    }
  }

  func leave(_ client: String) {
    counts.withLock { counts in
      let remaining = counts[client, default: 1] - 1
      counts[client] = remaining > 0 ? remaining : nil
    }
  }
}

/// A value loaded once, on first use (a failed load is retried by the next caller).
final class CachedKey: Sendable {
  private let value = Mutex<[UInt8]?>(nil)

  func get(_ load: () async throws -> [UInt8]) async throws -> [UInt8] {
    if let value = value.withLock({ $0 }) { return value }
    let loaded = try await load()
    value.withLock { $0 = loaded }
    return loaded
  }
}

/// Feed cursors: `c` and the event's number in the client's feed. Numbers are per client and
/// say nothing about other clients, so they need no signature; the format is still the
/// service's to change (clients treat cursors as opaque).
enum FeedCursor {
  static func text(_ sequence: Int64) -> String { sequence == 0 ? "" : "c\(sequence)" }

  /// The sequence of `text` (0 for empty), or `nil` when it is not a cursor.
  static func sequence(_ text: String) -> Int64? {
    if text.isEmpty { return 0 }
    let digits = text.utf8.dropFirst()
    guard text.utf8.first == UInt8(ascii: "c"), (1...18).contains(digits.count),
      digits.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }),
      digits.first != UInt8(ascii: "0"), let value = Int64(String(decoding: digits, as: UTF8.self))
    else { return nil }
    return value
  }
}
