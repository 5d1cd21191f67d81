// Drives the command and query services with concurrent calls over real HTTP/2 connections and
// prints throughput and latency percentiles. Used by tools/benchmark-payments.
//
//   PaymentsLoad submit HOST:PORT KEY CONCURRENCY SECONDS [CONNECTIONS]
//   PaymentsLoad get COMMAND_HOST:PORT QUERY_HOST:PORT KEY CONCURRENCY SECONDS [CONNECTIONS]
//
//   PaymentsLoad submit-count HOST:PORT KEY COUNT
//   PaymentsLoad latency COMMAND QUERY KEY COUNT
//
// Every submission has a fresh idempotency key, so each one is a new payment (no replays).
import Foundation
import Logging
import PaymentsProto
import RPCCore
import RPCTransportHTTP2
import Synchronization

struct Failure: Error, CustomStringConvertible { let description: String }

func endpoint(_ text: String) throws -> (String, Int) {
  let parts = text.split(separator: ":")
  guard parts.count == 2, let port = Int(parts[1]) else { throw Failure(description: "bad address \(text)") }
  return (String(parts[0]), port)
}

func transports(_ address: String, count: Int) throws -> [HTTP2ClientTransport] {
  let (host, port) = try endpoint(address)
  var logger = Logger(label: "load")
  logger.logLevel = .error
  return (0..<count).map { _ in
    HTTP2ClientTransport(configuration: .init(host: host, port: port), logger: logger)
  }
}

func request(_ index: Int, run: String) -> Payments_V1_SubmitPaymentRequest {
  .with {
    $0.idempotencyKey = "load-\(run)-\(index)"
    $0.amount = .with {
      $0.currency = "EUR"
      $0.amountMinor = Int64(100 + index % 1000)
    }
    $0.payer = .with { $0.accountID = "acct_load_payer_\(index % 97)" }
    $0.payee = .with { $0.accountID = "acct_load_payee" }
    $0.description = "load test"
    $0.metadata = ["run": run]
  }
}

final class Recorder: Sendable {
  private let state = Mutex<(latencies: [Double], errors: [String: Int])>(([], [:]))
  func success(_ seconds: Double) { state.withLock { $0.latencies.append(seconds) } }
  func failure(_ error: any Error) {
    let name = (error as? RPCError).map { "\($0.code)" } ?? "\(type(of: error))"
    state.withLock { $0.errors[name, default: 0] += 1 }
  }
  func report(_ label: String, seconds: Double) {
    let (latencies, errors) = state.withLock { ($0.latencies.sorted(), $0.errors) }
    func percentile(_ p: Double) -> String {
      guard !latencies.isEmpty else { return "-" }
      let value = latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))]
      return String(format: "%.2fms", value * 1000)
    }
    let rate = Double(latencies.count) / seconds
    print(
      "\(label) ok=\(latencies.count) rps=\(Int(rate)) p50=\(percentile(0.5)) p99=\(percentile(0.99)) errors=\(errors.isEmpty ? "0" : "\(errors)")"
    )
  }
}

/// Runs `concurrency` loops of `call` for `seconds`; each loop's calls are sequential.
func drive(
  concurrency: Int, seconds: Double, recorder: Recorder,
  _ call: @escaping @Sendable (Int, Int) async throws -> Void
) async {
  let end = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
  await withTaskGroup(of: Void.self) { group in
    for worker in 0..<concurrency {
      group.addTask {
        var index = 0
        while ContinuousClock.now < end {
          let start = ContinuousClock.now
          do {
            try await call(worker, index)
            let elapsed = ContinuousClock.now - start
            recorder.success(
              Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
          } catch {
            recorder.failure(error)
          }
          index += 1
        }
      }
    }
  }
}

let arguments = CommandLine.arguments
guard arguments.count >= 5 else {
  print("usage: PaymentsLoad submit HOST:PORT KEY CONCURRENCY SECONDS [CONNECTIONS]")
  print("       PaymentsLoad get COMMAND QUERY KEY CONCURRENCY SECONDS [CONNECTIONS]")
  print("       PaymentsLoad submit-count HOST:PORT KEY COUNT")
  print("       PaymentsLoad latency COMMAND QUERY KEY COUNT")
  exit(64)
}
let run = String(UUID().uuidString.prefix(8))
switch arguments[1] {
case "submit":
  let key = arguments[3]
  let concurrency = Int(arguments[4])!
  let seconds = Double(arguments[5])!
  let connections = arguments.count > 6 ? Int(arguments[6])! : max(1, concurrency / 16)
  let clients = try transports(arguments[2], count: connections).map {
    Payments_V1_PaymentCommandService.Client(RPCClient(transport: $0))
  }
  let metadata: Metadata = [("authorization", "Bearer \(key)")]
  let recorder = Recorder()
  await drive(concurrency: concurrency, seconds: seconds, recorder: recorder) { worker, index in
    let response = try await clients[worker % clients.count].submitPayment(
      request(worker * 1_000_000 + index, run: run), metadata: metadata)
    guard !response.replayed, response.payment?.status == .accepted else {
      throw Failure(description: "unexpected response")
    }
  }
  recorder.report("submit concurrency=\(concurrency) connections=\(connections)", seconds: seconds)
case "get":
  let key = arguments[4]
  let concurrency = Int(arguments[5])!
  let seconds = Double(arguments[6])!
  let connections = arguments.count > 7 ? Int(arguments[7])! : max(1, concurrency / 16)
  let metadata: Metadata = [("authorization", "Bearer \(key)")]
  let command = Payments_V1_PaymentCommandService.Client(
    RPCClient(transport: try transports(arguments[2], count: 1)[0]))
  let queryClients = try transports(arguments[3], count: connections).map {
    Payments_V1_PaymentQueryService.Client(RPCClient(transport: $0))
  }
  // 200 payments to read, each projected before the clock starts.
  var ids: [String] = []
  for index in 0..<200 {
    ids.append(
      try await command.submitPayment(request(index, run: run + "-get"), metadata: metadata).payment!
        .paymentID)
  }
  for id in ids {
    _ = try await queryClients[0].getPayment(
      .with {
        $0.lookup = .paymentID(id)
        $0.minVersion = 1
      }, metadata: metadata, options: .init(timeout: .seconds(30)))
  }
  let recorder = Recorder()
  let targets = ids
  await drive(concurrency: concurrency, seconds: seconds, recorder: recorder) { worker, index in
    let id = targets[(worker * 31 + index) % targets.count]
    let payment = try await queryClients[worker % queryClients.count].getPayment(
      .with { $0.lookup = .paymentID(id) }, metadata: metadata)
    guard payment.paymentID == id else { throw Failure(description: "wrong payment") }
  }
  recorder.report("get concurrency=\(concurrency) connections=\(connections)", seconds: seconds)
case "submit-count":
  // PaymentsLoad submit-count HOST:PORT KEY COUNT: a backlog of COUNT payments, 8 at a time.
  let key = arguments[3]
  let count = Int(arguments[4])!
  let client = Payments_V1_PaymentCommandService.Client(
    RPCClient(transport: try transports(arguments[2], count: 1)[0]))
  let metadata: Metadata = [("authorization", "Bearer \(key)")]
  try await withThrowingTaskGroup(of: Void.self) { group in
    for worker in 0..<8 {
      group.addTask {
        for index in stride(from: worker, to: count, by: 8) {
          _ = try await client.submitPayment(request(index, run: run), metadata: metadata)
        }
      }
    }
    try await group.waitForAll()
  }
  print("submitted \(count)")
case "latency":
  // PaymentsLoad latency COMMAND QUERY KEY COUNT: one payment at a time on an idle system, from
  // SubmitPayment to the SUCCEEDED state seen through WatchPayment.
  let key = arguments[4]
  let count = Int(arguments[5])!
  let metadata: Metadata = [("authorization", "Bearer \(key)")]
  let command = Payments_V1_PaymentCommandService.Client(
    RPCClient(transport: try transports(arguments[2], count: 1)[0]))
  let query = Payments_V1_PaymentQueryService.Client(
    RPCClient(transport: try transports(arguments[3], count: 1)[0]))
  let recorder = Recorder()
  let start = ContinuousClock.now
  for index in 0..<count {
    let begin = ContinuousClock.now
    let payment = try await command.submitPayment(request(index, run: run + "-latency"), metadata: metadata)
      .payment!
    let status = try await query.watchPayment(
      .with { $0.paymentID = payment.paymentID }, metadata: metadata, options: .init(timeout: .seconds(60))
    ) { stream in
      var last = Payments_V1_PaymentStatus.unspecified
      for try await update in stream { last = update.status }
      return last
    }
    let elapsed = ContinuousClock.now - begin
    if status == .succeeded {
      recorder.success(Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
    } else {
      recorder.failure(Failure(description: "ended \(status)"))
    }
    // Idle between payments, so the rate limiter never makes one wait for another.
    try await Task.sleep(for: .seconds(1))
  }
  let total = ContinuousClock.now - start
  recorder.report("submit-to-succeeded", seconds: Double(total.components.seconds))
default:
  print("unknown mode \(arguments[1])")
  exit(64)
}
