import ArgumentParser
import Foundation
import PaymentsClient

/// `paymentsctl load`: submits many payments and reports throughput and latency.
struct LoadCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "load",
    abstract: "Submit N payments with C at a time; show progress (on a terminal) and a summary.")

  @Option(help: "Payments to submit.") var count: Int = 100
  @Option(help: "Submissions in flight at once.") var concurrency: Int = 8
  @Option(help: "Each payment's amount.") var amount: String = "1.00"
  @Option(help: "Each payment's currency.") var currency: String = "EUR"
  @Option(help: "The payer account.") var payer: String = "acct_load_payer"
  @Option(help: "The payee account.") var payee: String = "acct_load_payee"
  @Option(
    help: "Idempotency keys are PREFIX0, PREFIX1, …; the same prefix again replays (default: a new one).")
  var keyPrefix: String?
  @OptionGroup var platform: PlatformOptions

  func validate() throws {
    guard count >= 1, concurrency >= 1 else {
      throw ValidationError("--count and --concurrency must be positive")
    }
  }

  func run() async throws {
    let money: Money
    do {
      money = try Money(amount: amount, currency: currency.uppercased())
    } catch {
      throw ValidationError("\(error.message)")
    }
    let prefix = keyPrefix ?? "load-\(UUID().uuidString.prefix(8).lowercased())-"
    let showProgress = isatty(STDOUT_FILENO) == 1
    try await platform.withClient { client in
      let tally = Tally()
      let clock = ContinuousClock()
      let start = clock.now
      let progress = showProgress ? Task { await Self.showProgress(tally, total: count, start: start) } : nil
      await withTaskGroup(of: Void.self) { group in
        for worker in 0..<min(concurrency, count) {
          group.addTask {
            var index = worker
            while index < count {
              let order = PaymentOrder(
                amount: money, payer: payer, payee: payee, idempotencyKey: "\(prefix)\(index)")
              let began = clock.now
              do {
                let submitted = try await client.submitPayment(order)
                tally.record(latency: clock.now - began, replayed: submitted.replayed, error: nil)
              } catch let error as PaymentsError {
                tally.record(latency: clock.now - began, replayed: false, error: "\(error.code)")
              } catch {
                tally.record(latency: clock.now - began, replayed: false, error: "\(error)")
              }
              index += concurrency
            }
          }
        }
      }
      progress?.cancel()
      _ = await progress?.value
      let elapsed = clock.now - start
      print(tally.summary(elapsed: elapsed))
      if tally.errorCount > 0 { throw ExitCode(1) }
    }
  }

  private static func showProgress(_ tally: Tally, total: Int, start: ContinuousClock.Instant) async {
    while !Task.isCancelled {
      let done = tally.done
      let seconds = max(0.001, (ContinuousClock.now - start).seconds)
      let width = 30
      let filled = width * done / max(total, 1)
      let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
      print(
        "\r[\(bar)] \(done)/\(total)  \(String(format: "%.0f", Double(done) / seconds)) payments/s",
        terminator: "")
      fflush(nil)
      if done >= total { break }
      try? await Task.sleep(for: .milliseconds(200))
    }
    print("")
  }
}

/// Results of a load run, recorded from many tasks.
final class Tally: @unchecked Sendable {
  private let lock = NSLock()
  private var latencies: [Duration] = []
  private var accepted = 0
  private var replayed = 0
  private var errors: [String: Int] = [:]

  func record(latency: Duration, replayed wasReplayed: Bool, error: String?) {
    lock.withLock {
      latencies.append(latency)
      if let error {
        errors[error, default: 0] += 1
      } else if wasReplayed {
        replayed += 1
      } else {
        accepted += 1
      }
    }
  }

  var done: Int { lock.withLock { latencies.count } }
  var errorCount: Int { lock.withLock { errors.values.reduce(0, +) } }

  func summary(elapsed: Duration) -> String {
    lock.withLock {
      let sorted = latencies.sorted()
      func percentile(_ p: Double) -> String {
        guard !sorted.isEmpty else { return "-" }
        let index = min(sorted.count - 1, Int((p * Double(sorted.count)).rounded(.up)) - 1)
        return String(format: "%.1f ms", sorted[max(0, index)].seconds * 1000)
      }
      let errorText =
        errors.isEmpty
        ? "0"
        : "\(errors.values.reduce(0, +)) ("
          + errors.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") + ")"
      return """
        submitted: \(latencies.count) in \(String(format: "%.2f", elapsed.seconds)) s = \(String(format: "%.1f", Double(latencies.count) / max(elapsed.seconds, 0.001))) payments/s
        accepted: \(accepted)
        replayed: \(replayed)
        errors: \(errorText)
        latency: p50 \(percentile(0.5)), p99 \(percentile(0.99))
        """
    }
  }
}

extension Duration {
  var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
