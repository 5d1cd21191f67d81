// Submits one payment and waits until it is terminal.
//
//   PAYMENTS_API_KEY=pk_... swift run payments-example [AMOUNT CURRENCY]
//
// The services' addresses come from PAYMENTS_COMMAND_ADDRESS and PAYMENTS_QUERY_ADDRESS
// (default 127.0.0.1:50051 and 127.0.0.1:50052, plaintext).
import Foundation
import PaymentsClient

let environment = ProcessInfo.processInfo.environment
guard let apiKey = environment["PAYMENTS_API_KEY"] else {
  print("set PAYMENTS_API_KEY (payments keys create --client example)")
  exit(2)
}
let arguments = CommandLine.arguments.dropFirst()
let amount = arguments.count == 2 ? arguments.joined(separator: " ") : "12.34 EUR"

var configuration = PaymentsClient.Configuration(apiKey: apiKey)
configuration.command = try .init(environment["PAYMENTS_COMMAND_ADDRESS"] ?? "127.0.0.1:50051")
configuration.query = try .init(environment["PAYMENTS_QUERY_ADDRESS"] ?? "127.0.0.1:50052")
// `payments dev` speaks plaintext; anything else: TLS (the SDK's default), with PAYMENTS_CA as the
// trusted authority if set.
if let ca = environment["PAYMENTS_CA"] {
  configuration.transportSecurity = .tls(trustedCertificatesPath: ca)
} else if environment["PAYMENTS_TLS"] != "1" {
  configuration.transportSecurity = .plaintext
}

do {
  try await withPaymentsClient(configuration: configuration) { client in
    let submitted = try await client.submitPayment(
      PaymentOrder(amount: try Money(amount), payer: "acct_example_payer", payee: "acct_example_payee"))
    print("submitted \(submitted.payment.id) (\(submitted.payment.amount)), key \(submitted.idempotencyKey)")
    let final = try await client.waitForCompletion(id: submitted.payment.id, timeout: .seconds(120))
    print("\(final.id): \(final.status.rawValue)", final.failure.map { "(\($0.code): \($0.message))" } ?? "")
  }
} catch let error as PaymentsError {
  print(error)
  for violation in error.fieldViolations { print("  \(violation.field): \(violation.description)") }
  exit(1)
}
