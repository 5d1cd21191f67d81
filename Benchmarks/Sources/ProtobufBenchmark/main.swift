// Encode and decode of a realistic SubmitPaymentRequest and Payment: our runtime against
// apple/swift-protobuf on the same messages (swift-protobuf's generated code, for the same .proto
// files, is in SwiftProtobufGenerated/, made by ../generate-swift-protobuf.sh). Rounds of the
// two implementations alternate, and medians are reported, because this machine is noisy.
import Foundation
import PaymentsProto
import ProtobufRuntime
import SwiftProtobuf

let rounds = Int(ProcessInfo.processInfo.environment["BENCH_ROUNDS"] ?? "") ?? 9
let iterations = Int(ProcessInfo.processInfo.environment["BENCH_ITERATIONS"] ?? "") ?? 100_000

func ours() -> (PaymentsProto.Payments_V1_SubmitPaymentRequest, PaymentsProto.Payments_V1_Payment) {
  var request = PaymentsProto.Payments_V1_SubmitPaymentRequest()
  request.idempotencyKey = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
  var money = PaymentsProto.Payments_V1_Money()
  money.currency = "EUR"
  money.amountMinor = 1234
  request.amount = money
  var payer = PaymentsProto.Payments_V1_Party()
  payer.accountID = "acct_1MqDcVKZf5BQnJgL"
  payer.name = "Zoë Müller"
  request.payer = payer
  var payee = PaymentsProto.Payments_V1_Party()
  payee.accountID = "acct_9XbYtRqPmNnLkJhG"
  payee.name = "Acme Widgets GmbH"
  request.payee = payee
  request.description = "Invoice 2026-11-0042, widgets and shipping"
  request.metadata = ["order_id": "ord_5551212", "channel": "web", "customer_tier": "gold"]
  request.provider = "sandbox"

  var payment = PaymentsProto.Payments_V1_Payment()
  payment.paymentID = "pay_01936f0a-5c7e-7b3a-9c1d-2e4f6a8b0c1d"
  payment.idempotencyKey = request.idempotencyKey
  payment.amount = money
  payment.payer = payer
  payment.payee = payee
  payment.description = request.description
  payment.metadata = request.metadata
  payment.status = .succeeded
  payment.provider = "sandbox"
  payment.providerReference = "ch_3OaBcDeFgHiJkLmN"
  payment.attempts = 2
  var created = ProtobufRuntime.Google_Protobuf_Timestamp()
  created.seconds = 1_795_000_000
  created.nanos = 123_000_000
  payment.createdAt = created
  created.seconds += 3
  payment.updatedAt = created
  payment.version = 4
  return (request, payment)
}

func theirs() -> (Payments_V1_SubmitPaymentRequest, Payments_V1_Payment) {
  var request = Payments_V1_SubmitPaymentRequest()
  request.idempotencyKey = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
  request.amount.currency = "EUR"
  request.amount.amountMinor = 1234
  request.payer.accountID = "acct_1MqDcVKZf5BQnJgL"
  request.payer.name = "Zoë Müller"
  request.payee.accountID = "acct_9XbYtRqPmNnLkJhG"
  request.payee.name = "Acme Widgets GmbH"
  request.description_p = "Invoice 2026-11-0042, widgets and shipping"
  request.metadata = ["order_id": "ord_5551212", "channel": "web", "customer_tier": "gold"]
  request.provider = "sandbox"

  var payment = Payments_V1_Payment()
  payment.paymentID = "pay_01936f0a-5c7e-7b3a-9c1d-2e4f6a8b0c1d"
  payment.idempotencyKey = request.idempotencyKey
  payment.amount = request.amount
  payment.payer = request.payer
  payment.payee = request.payee
  payment.description_p = request.description_p
  payment.metadata = request.metadata
  payment.status = .succeeded
  payment.provider = "sandbox"
  payment.providerReference = "ch_3OaBcDeFgHiJkLmN"
  payment.attempts = 2
  payment.createdAt = SwiftProtobuf.Google_Protobuf_Timestamp(seconds: 1_795_000_000, nanos: 123_000_000)
  payment.updatedAt = SwiftProtobuf.Google_Protobuf_Timestamp(seconds: 1_795_000_003, nanos: 123_000_000)
  payment.version = 4
  return (request, payment)
}

/// Runs `body` `iterations` times and returns nanoseconds per iteration.
@inline(never)
func measure(_ body: () throws -> Int) rethrows -> Double {
  var sink = 0
  let start = DispatchTime.now().uptimeNanoseconds
  for _ in 0..<iterations { sink &+= try body() }
  let elapsed = DispatchTime.now().uptimeNanoseconds - start
  if sink == 42 { print("") }  // keeps the work observable
  return Double(elapsed) / Double(iterations)
}

func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

let (ourRequest, ourPayment) = ours()
let (theirRequest, theirPayment) = theirs()
let ourRequestBytes = ourRequest.serializedBytes()
let ourPaymentBytes = ourPayment.serializedBytes()
let theirRequestBytes: [UInt8] = try theirRequest.serializedBytes()
let theirPaymentBytes: [UInt8] = try theirPayment.serializedBytes()
precondition(ourRequestBytes.count == theirRequestBytes.count, "the two encodings differ in size")
precondition(ourPaymentBytes.count == theirPaymentBytes.count, "the two encodings differ in size")

struct Case {
  let name: String
  let bytes: Int
  let ours: () throws -> Int
  let theirs: () throws -> Int
}

// Ours always writes map entries in key order; swift-protobuf does so only when asked. The
// "deterministic" rows compare like with like.
var deterministic = BinaryEncodingOptions()
deterministic.useDeterministicOrdering = true
let deterministicOptions = deterministic

let cases = [
  Case(
    name: "SubmitPaymentRequest encode (deterministic)", bytes: ourRequestBytes.count,
    ours: { ourRequest.serializedBytes().count },
    theirs: {
      let bytes: [UInt8] = try theirRequest.serializedBytes(options: deterministicOptions); return bytes.count
    }),
  Case(
    name: "Payment encode (deterministic)", bytes: ourPaymentBytes.count,
    ours: { ourPayment.serializedBytes().count },
    theirs: {
      let bytes: [UInt8] = try theirPayment.serializedBytes(options: deterministicOptions); return bytes.count
    }),
  Case(
    name: "SubmitPaymentRequest encode", bytes: ourRequestBytes.count,
    ours: { ourRequest.serializedBytes().count },
    theirs: {
      let bytes: [UInt8] = try theirRequest.serializedBytes(); return bytes.count
    }),
  Case(
    name: "SubmitPaymentRequest decode", bytes: ourRequestBytes.count,
    ours: {
      try PaymentsProto.Payments_V1_SubmitPaymentRequest(serializedBytes: ourRequestBytes).metadata.count
    },
    theirs: { try Payments_V1_SubmitPaymentRequest(serializedBytes: theirRequestBytes).metadata.count }),
  Case(
    name: "Payment encode", bytes: ourPaymentBytes.count,
    ours: { ourPayment.serializedBytes().count },
    theirs: {
      let bytes: [UInt8] = try theirPayment.serializedBytes(); return bytes.count
    }),
  Case(
    name: "Payment decode", bytes: ourPaymentBytes.count,
    ours: { Int(try PaymentsProto.Payments_V1_Payment(serializedBytes: ourPaymentBytes).version) },
    theirs: { Int(try Payments_V1_Payment(serializedBytes: theirPaymentBytes).version) }),
]

print("\(iterations) iterations x \(rounds) alternating rounds; medians")
print("| case | bytes | ours ns/msg | ours MB/s | swift-protobuf ns/msg | swift-protobuf MB/s | speed-up |")
print("|---|---|---|---|---|---|---|")
let filter = ProcessInfo.processInfo.environment["BENCH_FILTER"]
for benchmark in cases where filter.map({ benchmark.name.contains($0) }) ?? true {
  _ = try measure(benchmark.ours)
  _ = try measure(benchmark.theirs)
  var ourTimes: [Double] = []
  var theirTimes: [Double] = []
  for _ in 0..<rounds {
    ourTimes.append(try measure(benchmark.ours))
    theirTimes.append(try measure(benchmark.theirs))
  }
  let ourNs = median(ourTimes)
  let theirNs = median(theirTimes)
  func megabytes(_ ns: Double) -> Double { Double(benchmark.bytes) / ns * 1000 }
  print(
    "| \(benchmark.name) | \(benchmark.bytes) | \(String(format: "%.0f", ourNs)) | \(String(format: "%.0f", megabytes(ourNs))) | "
      + "\(String(format: "%.0f", theirNs)) | \(String(format: "%.0f", megabytes(theirNs))) | "
      + "\(String(format: "%.2f", theirNs / ourNs))x |")
}
