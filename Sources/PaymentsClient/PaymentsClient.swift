import Foundation
public import Logging
import PaymentsCore
import PaymentsProto
import ProtobufRuntime
public import RPCCore
import RPCTransportHTTP2
public import ServiceLifecycle
import Synchronization
import TLS

/// The Swift client of the payments platform: submits payments to the command service and reads
/// them from the query service.
///
/// Create one per process and share it; it keeps one HTTP/2 connection to each service and
/// reconnects when a connection drops. Run it as a `Service` in a `ServiceGroup` (it closes its
/// connections at graceful shutdown), or scope it with ``withPaymentsClient(configuration:logger:_:)``.
///
/// Every method throws ``PaymentsError`` only.
public final class PaymentsClient: Service, Sendable {
  /// Where the services are, the API key, and timeouts.
  public struct Configuration: Sendable {
    /// A service's address.
    public struct Endpoint: Sendable, Hashable, CustomStringConvertible {
      public var host: String
      public var port: Int
      public init(host: String, port: Int) {
        self.host = host
        self.port = port
      }
      /// Parses `HOST:PORT`.
      public init(_ text: String) throws(PaymentsError) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
          (1...65535).contains(port), colon != text.startIndex
        else { throw PaymentsError(.invalidArgument, "'\(text)' is not an endpoint like 127.0.0.1:50051") }
        self.init(host: String(text[..<colon]), port: port)
      }
      public var description: String { "\(host):\(port)" }
    }

    /// How the connections are secured. TLS unless plaintext is asked for by name.
    public enum TransportSecurity: Sendable, Hashable {
      /// Plaintext HTTP/2 (h2c): the API key and every payment travel unencrypted. Only for a
      /// local stack such as `payments dev`; never the default.
      case plaintext
      /// TLS (the default), trusting the system's certificate authorities or the PEM file at the
      /// path.
      case tls(trustedCertificatesPath: String? = nil)
      /// TLS with a client certificate, for services that require one (mutual TLS; operators set
      /// `tls.client-ca`): the PEM chain and private key at these paths.
      case mutualTLS(
        trustedCertificatesPath: String? = nil, certificateChainPath: String, privateKeyPath: String)
    }

    /// The command service (`payments command`, port 50051 by default).
    public var command = Endpoint(host: "127.0.0.1", port: 50051)
    /// The query service (`payments query`, port 50052 by default).
    public var query = Endpoint(host: "127.0.0.1", port: 50052)
    /// The API key (`pk_…`), sent as `authorization: Bearer …`. Secret: never logged.
    public var apiKey: String
    /// TLS with the system's trust store unless set otherwise (``TransportSecurity``).
    public var transportSecurity = TransportSecurity.tls()
    /// With TLS: the name the services' certificates must carry, when it is not the endpoints'
    /// host (e.g. connecting by IP address or through a tunnel). Also sent as SNI.
    public var serverName: String? = nil
    /// The deadline of one call when the method is given none.
    public var defaultTimeout: Duration = .seconds(10)
    /// How long ``PaymentsClient/submitPayment(_:timeout:)`` keeps retrying in all, when the
    /// call is given no timeout.
    public var submitTimeout: Duration = .seconds(30)
    /// Backoff between submit retries: the first wait is up to `retryBase`, each further one
    /// up to twice the previous, at most `retryCap` (full jitter).
    public var retryBase: Duration = .milliseconds(100)
    public var retryCap: Duration = .seconds(2)
    /// How long connecting to a service may take.
    public var connectTimeout: Duration = .seconds(5)

    /// Run around every call, in order, after the SDK's own (which sets `authorization` and
    /// `x-request-id`): add metadata, log, measure, trace. They see `RPCError`s, before
    /// the SDK turns them into ``PaymentsError``s.
    public var interceptors: [any ClientInterceptor] = []
    /// How often a read (``PaymentsClient/payment(id:minimumVersion:timeout:)``, listing pages,
    /// ``PaymentsClient/refund(id:timeout:)``, ``PaymentsClient/events(after:pageSize:timeout:)``) is
    /// tried when it fails with `unavailable`, with a jittered backoff between ``retryBase`` and
    /// ``retryCap``; each try has its own `timeout`. 1 turns read retries off. Reads change
    /// nothing, so repeating them is always safe.
    public var readAttempts = 3

    public init(apiKey: String) { self.apiKey = apiKey }
  }

  public let configuration: Configuration
  private let logger: Logger
  private let commandTransport: HTTP2ClientTransport
  private let queryTransport: HTTP2ClientTransport
  private let command: Payments_V1_PaymentCommandService.Client
  private let query: Payments_V1_PaymentQueryService.Client
  private let metadata: Metadata

  /// A client; it connects on the first call.
  public init(configuration: Configuration, logger: Logger = Logger(label: "payments-client"))
    throws(PaymentsError)
  {
    self.configuration = configuration
    self.logger = logger
    var tls: TLSContext?
    do {
      switch configuration.transportSecurity {
      case .plaintext:
        tls = nil
      case .tls(let path):
        tls = try TLSContext.client(trustedCertificatesPath: path)
      case .mutualTLS(let path, let chain, let key):
        tls = try TLSContext.client(
          trustedCertificatesPath: path, certificateChainPath: chain, privateKeyPath: key)
      }
    } catch {
      throw PaymentsError(.invalidArgument, "cannot set up TLS: \(error)")
    }
    func transport(_ endpoint: Configuration.Endpoint) -> HTTP2ClientTransport {
      var settings = HTTP2ClientTransport.Configuration(host: endpoint.host, port: endpoint.port)
      settings.tls = tls
      settings.serverName = configuration.serverName
      settings.connectTimeout = configuration.connectTimeout
      settings.userAgent = "payments-swift-sdk/1"
      return HTTP2ClientTransport(configuration: settings, logger: logger)
    }
    commandTransport = transport(configuration.command)
    queryTransport = transport(configuration.query)
    let interceptors = [RequestIDInterceptor()] + configuration.interceptors
    command = Payments_V1_PaymentCommandService.Client(
      RPCClient(transport: commandTransport, interceptors: interceptors))
    query = Payments_V1_PaymentQueryService.Client(
      RPCClient(transport: queryTransport, interceptors: interceptors))
    metadata = [("authorization", "Bearer \(configuration.apiKey)")]
  }

  /// Runs until graceful shutdown (or cancellation), then closes the connections.
  public func run() async throws {
    try? await gracefulShutdown()
    close()
  }

  /// Closes the connections; calls still running fail with `unavailable`.
  public func close() {
    commandTransport.close()
    queryTransport.close()
  }

  // MARK: Commands

  /// Submits a payment order and returns the stored payment.
  ///
  /// Safe to retry, and retried for you: the order carries an idempotency key (``PaymentOrder/idempotencyKey``,
  /// or one the SDK makes), and when a call fails in a way that leaves its outcome open —
  /// `unavailable` (including a dropped connection) or `deadlineExceeded` before an answer — the
  /// same request goes again with the same key, after a jittered backoff, until `timeout`
  /// (default ``Configuration/submitTimeout``) runs out. The platform answers a repeat with the
  /// payment the first one created (``SubmittedPayment/replayed``), so retries never make a
  /// second payment. `invalidArgument`, `alreadyExists` (the key was used for another order),
  /// authentication and every other error are thrown at once.
  public func submitPayment(_ order: PaymentOrder, timeout: Duration? = nil) async throws(PaymentsError)
    -> SubmittedPayment
  {
    let key = order.idempotencyKey ?? "sdk-" + UUID().uuidString.lowercased()
    let request = order.request(key: key)
    let response = try await retryingOutcomeUnknown(
      "SubmitPayment", key: key, timeout: timeout ?? configuration.submitTimeout
    ) { options in
      try await command.submitPayment(request, metadata: metadata, options: options)
    }
    return SubmittedPayment(
      payment: Payment(response.payment ?? .init()), replayed: response.replayed, idempotencyKey: key)
  }

  /// Refunds `amount` of a succeeded payment: the platform stores a refund (``RefundStatus/pending``)
  /// and gives the money back through the payment's provider, retrying transient failures and
  /// never refunding twice. Partial refunds are allowed; the pending and succeeded refunds of a
  /// payment never add up to more than its amount.
  ///
  /// Safe to retry, and retried for you like ``submitPayment(_:timeout:)``: with the same
  /// `idempotencyKey` (yours, or one the SDK makes) a repeat returns the first refund
  /// (``SubmittedRefund/replayed``). Throws `failedPrecondition` when the payment is not
  /// succeeded, `amount` is in another currency than the payment, or exceeds what is left to
  /// refund (the message names the amounts); `notFound` for a payment this client does not own;
  /// `alreadyExists` when the key was used for a different refund.
  public func refundPayment(
    _ paymentID: String, amount: Money, reason: String = "", idempotencyKey: String? = nil,
    timeout: Duration? = nil
  ) async throws(PaymentsError) -> SubmittedRefund {
    let key = idempotencyKey ?? "sdk-" + UUID().uuidString.lowercased()
    let request = Payments_V1_RefundPaymentRequest.with {
      $0.idempotencyKey = key
      $0.paymentID = paymentID
      $0.amountMinor = amount.minorUnits
      $0.currency = amount.currency
      $0.reason = reason
    }
    let response = try await retryingOutcomeUnknown(
      "RefundPayment", key: key, timeout: timeout ?? configuration.submitTimeout
    ) { options in
      try await command.refundPayment(request, metadata: metadata, options: options)
    }
    return SubmittedRefund(
      refund: Refund(response.refund ?? .init()), replayed: response.replayed, idempotencyKey: key)
  }

  /// Runs a read, again while it fails with `unavailable` (``Configuration/readAttempts``).
  private func reading<Response: Sendable>(_ call: () async throws -> Response) async throws(PaymentsError)
    -> Response
  {
    var attempt = 0
    var generator = SystemRandomNumberGenerator()
    while true {
      attempt += 1
      do {
        return try await mappingErrors { try await call() }
      } catch {
        guard error.code == .unavailable, attempt < max(configuration.readAttempts, 1) else { throw error }
        let ceiling = min(configuration.retryCap, configuration.retryBase * Double(1 << min(attempt - 1, 20)))
        let wait = Duration.nanoseconds(Int64.random(in: 0...max(1, ceiling.nanoseconds), using: &generator))
        logger.debug(
          "retrying a read", metadata: ["attempt": "\(attempt)", "request_id": "\(error.requestID ?? "")"])
        try? await Task.sleep(for: wait)
        if Task.isCancelled { throw PaymentsError(.cancelled, "the call was cancelled") }
      }
    }
  }

  /// Runs an idempotent command (its request carries `key`) until it answers, repeating it
  /// after a jittered backoff while it fails with an open outcome (`unavailable`,
  /// `deadlineExceeded`) and `timeout` allows; every other error is thrown at once.
  private func retryingOutcomeUnknown<Response: Sendable>(
    _ method: String, key: String, timeout: Duration, _ call: (CallOptions) async throws -> Response
  ) async throws(PaymentsError) -> Response {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    var attempt = 0
    var generator = SystemRandomNumberGenerator()
    while true {
      attempt += 1
      let remaining = clock.now.duration(to: deadline)
      do {
        return try await mappingErrors {
          try await call(
            CallOptions(timeout: min(configuration.defaultTimeout, max(remaining, .milliseconds(1)))))
        }
      } catch {
        guard error.code == .unavailable || error.code == .deadlineExceeded else { throw error }
        let ceiling = min(configuration.retryCap, configuration.retryBase * Double(1 << min(attempt - 1, 20)))
        let wait = Duration.nanoseconds(Int64.random(in: 0...max(1, ceiling.nanoseconds), using: &generator))
        // An attempt needs time to connect and be answered: one that would start with only a
        // sliver of the budget left could only time out, and would hide the real failure (e.g.
        // UNAVAILABLE) behind DEADLINE_EXCEEDED.
        guard clock.now + wait + .milliseconds(250) < deadline else {
          throw PaymentsError(
            error.code, "gave up after \(attempt) attempt(s) (idempotency key \(key)): \(error.message)")
        }
        logger.debug(
          "retrying \(method) with the same idempotency key",
          metadata: ["attempt": "\(attempt)", "code": "\(error.code)", "idempotency_key": "\(key)"])
        try? await Task.sleep(for: wait)
        if Task.isCancelled { throw PaymentsError(.cancelled, "the call was cancelled") }
      }
    }
  }

  /// Cancels a payment that has not been charged and returns it in status
  /// ``PaymentStatus/canceled``; it is never charged afterwards. Cancelling a cancelled payment
  /// returns it again, so the call is safe to repeat.
  ///
  /// A payment whose provider call is in flight, or whose last call's outcome is unknown, is
  /// cancelled only once the provider confirms that nothing was charged; the platform waits for
  /// that within the call's deadline. Throws `failedPrecondition` when the payment was charged
  /// (``PaymentStatus/succeeded``), has failed, or its charge is still undecided (the message
  /// names the state; the cancellation stands and takes effect if the provider confirms no
  /// charge), and `notFound` for an ID this client does not own.
  public func cancelPayment(_ id: String, timeout: Duration? = nil) async throws(PaymentsError) -> Payment {
    let response = try await mappingErrors {
      try await command.cancelPayment(
        .with { $0.paymentID = id }, metadata: metadata,
        options: CallOptions(timeout: timeout ?? max(configuration.defaultTimeout, .seconds(15))))
    }
    return Payment(response.payment ?? .init())
  }

  // MARK: Queries

  /// The payment with this ID. With `minimumVersion`, waits (up to the call's deadline) until the
  /// read model has caught up with at least that version: read-your-writes after a submission.
  public func payment(id: String, minimumVersion: Int64 = 0, timeout: Duration? = nil)
    async throws(PaymentsError)
    -> Payment
  {
    try await get(.paymentID(id), minimumVersion: minimumVersion, timeout: timeout)
  }

  /// The refund with this ID (``Refund/id``), as the query service has it. A refund appears there
  /// within moments of being created, with its payment's event: `notFound` right after
  /// ``refundPayment(_:amount:reason:idempotencyKey:timeout:)`` can mean "not yet".
  public func refund(id: String, timeout: Duration? = nil) async throws(PaymentsError) -> Refund {
    Refund(
      try await reading {
        try await query.getRefund(
          .with { $0.refundID = id }, metadata: metadata,
          options: CallOptions(timeout: timeout ?? configuration.defaultTimeout))
      })
  }

  /// The payment submitted with this idempotency key (by this API key's client).
  public func payment(idempotencyKey: String, timeout: Duration? = nil) async throws(PaymentsError) -> Payment
  {
    try await get(.idempotencyKey(idempotencyKey), minimumVersion: 0, timeout: timeout)
  }

  private func get(
    _ lookup: Payments_V1_GetPaymentRequest.Lookup, minimumVersion: Int64, timeout: Duration?
  ) async throws(PaymentsError) -> Payment {
    let request = Payments_V1_GetPaymentRequest.with {
      $0.lookup = lookup
      $0.minVersion = minimumVersion
    }
    return Payment(
      try await reading {
        try await query.getPayment(
          request, metadata: metadata, options: CallOptions(timeout: timeout ?? configuration.defaultTimeout))
      })
  }

  /// The payments matching `filter`, newest first, fetched page by page as the sequence is read.
  /// Its errors are ``PaymentsError``s.
  public func payments(filter: PaymentFilter = PaymentFilter()) -> PaymentList {
    PaymentList(client: self, filter: filter)
  }

  func page(_ filter: PaymentFilter, token: String) async throws(PaymentsError) -> ([Payment], String) {
    let request = Payments_V1_ListPaymentsRequest.with {
      $0.statuses = filter.statuses.map(\.proto).sorted { $0.rawValue < $1.rawValue }
      if let after = filter.createdAfter { $0.createdAfter = Google_Protobuf_Timestamp(date: after) }
      if let before = filter.createdBefore { $0.createdBefore = Google_Protobuf_Timestamp(date: before) }
      $0.pageSize = Int32(clamping: filter.pageSize)
      $0.pageToken = token
    }
    let response = try await reading {
      try await query.listPayments(
        request, metadata: metadata, options: CallOptions(timeout: configuration.defaultTimeout))
    }
    return (response.payments.map(Payment.init), response.nextPageToken)
  }

  /// Every state of the payment from its current one on, ending after a terminal one
  /// (`succeeded`, `failed` or `canceled`). Without a `timeout` the watch lasts as long as the payment takes.
  /// Its errors are ``PaymentsError``s.
  public func watchPayment(id: String, timeout: Duration? = nil) -> AsyncThrowingStream<Payment, any Error> {
    let (stream, continuation) = AsyncThrowingStream<Payment, any Error>.makeStream()
    let query = query
    let metadata = metadata
    let task = Task {
      do {
        try await query.watchPayment(
          .with { $0.paymentID = id }, metadata: metadata, options: CallOptions(timeout: timeout)
        ) { updates in
          for try await update in updates { continuation.yield(Payment(update)) }
        }
        continuation.finish()
      } catch {
        continuation.finish(throwing: PaymentsError.from(error))
      }
    }
    continuation.onTermination = { _ in task.cancel() }
    return stream
  }

  /// A page of your event feed: the changes of all your payments after `cursor` (from the
  /// oldest kept when empty), oldest first, and the cursor to continue from. Store the cursor
  /// with what you did with the events, and nothing is missed or repeated.
  ///
  /// Throws `outOfRange` when the events after `cursor` are no longer kept (the feed's
  /// retention; start again with an empty cursor and re-read states) and `invalidArgument` for a
  /// cursor that is not one of yours.
  public func events(after cursor: String = "", pageSize: Int = 100, timeout: Duration? = nil)
    async throws(PaymentsError) -> (events: [PaymentEvent], nextCursor: String)
  {
    let response = try await reading {
      try await query.listEvents(
        .with {
          $0.after = cursor
          $0.pageSize = Int32(clamping: pageSize)
        }, metadata: metadata, options: CallOptions(timeout: timeout ?? configuration.defaultTimeout))
    }
    return (response.events.map(PaymentEvent.init), response.nextCursor)
  }

  /// Your event feed as it happens: the events after `cursor`, then every new one. The stream
  /// does not end by itself; a dropped connection is resumed from the last event's cursor, so
  /// the sequence has no gaps and no repeats. Cancel the task that reads it to stop. Its errors
  /// (other than `unavailable`, which it retries) are ``PaymentsError``s.
  public func watchEvents(after cursor: String = "") -> AsyncThrowingStream<PaymentEvent, any Error> {
    let (stream, continuation) = AsyncThrowingStream<PaymentEvent, any Error>.makeStream()
    let query = query
    let metadata = metadata
    let logger = logger
    let task = Task {
      let last = LastCursor(cursor)
      while !Task.isCancelled {
        do {
          try await query.watchEvents(
            .with { $0.after = last.value.withLock { $0 } }, metadata: metadata, options: CallOptions()
          ) { events in
            for try await event in events {
              continuation.yield(PaymentEvent(event))
              last.value.withLock { $0 = event.cursor }
            }
          }
        } catch {
          let error = PaymentsError.from(error)
          guard error.code == .unavailable, !Task.isCancelled else {
            continuation.finish(throwing: error)
            return
          }
          logger.debug(
            "event feed interrupted; resuming",
            metadata: ["cursor": "\(last.value.withLock { $0 })", "error": "\(error)"])
          try? await Task.sleep(for: .milliseconds(500))
        }
      }
      continuation.finish()
    }
    continuation.onTermination = { _ in task.cancel() }
    return stream
  }

  /// Waits until the payment is terminal and returns that state. Throws `deadlineExceeded` (with
  /// the last status seen) when `timeout` runs out first; a dropped watch is resumed.
  public func waitForCompletion(id: String, timeout: Duration) async throws(PaymentsError) -> Payment {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    var last: Payment?
    while true {
      let remaining = clock.now.duration(to: deadline)
      guard remaining > .zero else { break }
      do {
        for try await update in watchPayment(id: id, timeout: remaining) {
          last = update
          if update.status.isTerminal { return update }
        }
      } catch {
        let error = PaymentsError.from(error)
        guard error.code == .unavailable else {
          if error.code == .deadlineExceeded { break }
          throw error
        }
        try? await Task.sleep(for: .milliseconds(200))
      }
    }
    throw PaymentsError(
      .deadlineExceeded,
      "payment \(id) is not terminal after \(timeout)"
        + (last.map { "; its last status was \($0.status.rawValue)" } ?? ""))
  }
}

/// The cursor of the last event a watch delivered.
private final class LastCursor: Sendable {
  let value: Mutex<String>
  init(_ cursor: String) { value = Mutex(cursor) }
}

/// Payments of a filter, page by page (see ``PaymentsClient/payments(filter:)``).
public struct PaymentList: AsyncSequence, Sendable {
  public typealias Element = Payment
  let client: PaymentsClient
  let filter: PaymentFilter

  public func makeAsyncIterator() -> Iterator { Iterator(client: client, filter: filter) }

  public struct Iterator: AsyncIteratorProtocol {
    let client: PaymentsClient
    let filter: PaymentFilter
    var buffer: [Payment] = []
    var index = 0
    var token = ""
    var finished = false

    init(client: PaymentsClient, filter: PaymentFilter) {
      self.client = client
      self.filter = filter
    }

    public mutating func next() async throws -> Payment? {
      while index == buffer.count {
        guard !finished else { return nil }
        (buffer, token) = try await client.page(filter, token: token)
        index = 0
        finished = token.isEmpty
      }
      defer { index += 1 }
      return buffer[index]
    }
  }
}

/// Runs `body` with a client that is closed when `body` returns.
public func withPaymentsClient<Result>(
  configuration: PaymentsClient.Configuration, logger: Logger = Logger(label: "payments-client"),
  _ body: (PaymentsClient) async throws -> Result
) async throws -> Result {
  let client = try PaymentsClient(configuration: configuration, logger: logger)
  defer { client.close() }
  return try await body(client)
}

extension Duration {
  fileprivate var nanoseconds: Int64 {
    components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000
  }
}
