import DispatcherService
import Foundation
import PaymentsTestSupport
import Postgres
import ProviderSandbox
import Testing

/// Runs paymentsctl with `arguments` (and `environment` entries); returns its exit status and
/// its standard output and error together.
func paymentsctl(_ arguments: [String], environment: [String: String] = [:]) async throws -> (
  status: Int32, output: String
) {
  let binary = try Executables.path("paymentsctl")
  let env = environment.map { "\($0.key)=\($0.value)" }.sorted()
  return try await ChildProcess.run("/usr/bin/timeout", ["60", "/usr/bin/env"] + env + [binary] + arguments)
}

/// The JSON documents of paymentsctl's output (lines outside them are ignored).
func jsonDocuments(_ output: String) throws -> [[String: Any]] {
  var documents: [[String: Any]] = []
  var current = ""
  for line in output.split(separator: "\n", omittingEmptySubsequences: false) {
    if line == "{" { current = "" }
    current += line + "\n"
    if line == "}" {
      if let object = try JSONSerialization.jsonObject(with: Data(current.utf8)) as? [String: Any] {
        documents.append(object)
      }
      current = ""
    }
  }
  return documents
}

@Suite("paymentsctl against our servers and a Python grpcio server")
struct PaymentsCtlTests {
  @Test("list, describe, unary and server-streaming calls, errors as exit 64 + code, against our services")
  func genericAgainstOurServers() async throws {
    try await withPlatform { platform in
      let command = "127.0.0.1:\(platform.commandPort)"
      let query = "127.0.0.1:\(platform.queryPort)"
      let key = try await platform.key()

      let services = try await paymentsctl(["list", command, "--plaintext"])
      #expect(services.status == 0, "\(services.output)")
      for name in [
        "payments.v1.PaymentCommandService", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
      ] {
        #expect(services.output.contains(name))
      }
      let methods = try await paymentsctl(["list", query, "payments.v1.PaymentQueryService", "--plaintext"])
      #expect(
        methods.output.split(separator: "\n").sorted() == [
          "payments.v1.PaymentQueryService.GetPayment", "payments.v1.PaymentQueryService.GetRefund",
          "payments.v1.PaymentQueryService.ListEvents",
          "payments.v1.PaymentQueryService.ListPayments", "payments.v1.PaymentQueryService.WatchEvents",
          "payments.v1.PaymentQueryService.WatchPayment",
        ], "\(methods.output)")

      let money = try await paymentsctl(["describe", command, "payments.v1.Money", "--plaintext"])
      #expect(money.status == 0)
      #expect(money.output.contains("payments.v1.Money is a message"), "\(money.output)")
      #expect(money.output.contains("int64 amount_minor = 2;"), "\(money.output)")
      let service = try await paymentsctl([
        "describe", query, "payments.v1.PaymentQueryService", "--plaintext",
      ])
      #expect(service.output.contains("returns ( stream .payments.v1.Payment )"), "\(service.output)")

      // A unary call with JSON in and out.
      let order = """
        {"idempotencyKey": "ctl-1", "amount": {"currency": "EUR", "amountMinor": "1234"},
         "payer": {"accountId": "acct_ctl_1"}, "payee": {"accountId": "acct_ctl_2"}}
        """
      let submitted = try await paymentsctl([
        "call", command, "payments.v1.PaymentCommandService/SubmitPayment", "--plaintext",
        "-H", "authorization: Bearer \(key)", "-d", order,
      ])
      #expect(submitted.status == 0, "\(submitted.output)")
      let response = try jsonDocuments(submitted.output).first
      let payment = response?["payment"] as? [String: Any]
      let id = try #require(payment?["paymentId"] as? String)
      #expect(payment?["status"] as? String == "PAYMENT_STATUS_ACCEPTED")
      #expect((payment?["amount"] as? [String: Any])?["amountMinor"] as? String == "1234")

      // The same request from a file and from standard input: a replay.
      let file = FileManager.default.temporaryDirectory.appendingPathComponent("ctl-\(UUID()).json")
      try order.write(to: file, atomically: true, encoding: .utf8)
      defer { try? FileManager.default.removeItem(at: file) }
      let fromFile = try await paymentsctl([
        "call", command, "payments.v1.PaymentCommandService/SubmitPayment", "--plaintext",
        "-H", "authorization: Bearer \(key)", "-d", "@\(file.path)",
      ])
      #expect(try jsonDocuments(fromFile.output).first?["replayed"] as? Bool == true, "\(fromFile.output)")
      let ctl = try Executables.path("paymentsctl")
      let fromStdin = try await ChildProcess.run(
        "/bin/sh",
        [
          "-c",
          "\(ctl) call \(command) payments.v1.PaymentCommandService/SubmitPayment --plaintext -H 'authorization: Bearer \(key)' -d @- < \(file.path)",
        ])
      #expect(try jsonDocuments(fromStdin.output).first?["replayed"] as? Bool == true, "\(fromStdin.output)")
      // grpcurl habits: single-dash long flags, `-d @` for standard input, the key from
      // PAYMENTS_API_KEY instead of a -H.
      let grpcurlStyle = try await ChildProcess.run(
        "/bin/sh",
        [
          "-c",
          "PAYMENTS_API_KEY=\(key) \(ctl) call -plaintext -max-time 10 -d @ \(command) payments.v1.PaymentCommandService/SubmitPayment < \(file.path)",
        ])
      #expect(grpcurlStyle.status == 0, "\(grpcurlStyle.output)")
      #expect(
        try jsonDocuments(grpcurlStyle.output).first?["replayed"] as? Bool == true, "\(grpcurlStyle.output)")
      // grpcurl's order: flags, the address, then list / describe / the method.
      let listed = try await paymentsctl(["-plaintext", command, "list"])
      #expect(listed.output.contains("payments.v1.PaymentCommandService"), "\(listed.output)")
      let described = try await paymentsctl(["-plaintext", command, "describe", "payments.v1.Money"])
      #expect(described.output.contains("int64 amount_minor = 2;"), "\(described.output)")
      let called = try await paymentsctl(
        ["-plaintext", "-d", order, command, "payments.v1.PaymentCommandService/SubmitPayment"],
        environment: ["PAYMENTS_API_KEY": key])
      #expect(try jsonDocuments(called.output).first?["replayed"] as? Bool == true, "\(called.output)")
      // A -H authorization wins over the environment's key.
      let overridden = try await paymentsctl(
        [
          "call", command, "payments.v1.PaymentCommandService/SubmitPayment", "-plaintext",
          "-H", "authorization: Bearer pk_0000000000000000_nope", "-d", order,
        ], environment: ["PAYMENTS_API_KEY": key])
      #expect(overridden.status == 80, "UNAUTHENTICATED: \(overridden.output)")

      // A server-streaming call: the current state arrives, then (no dispatcher runs) the
      // deadline ends the stream: exit 64 + DEADLINE_EXCEEDED (4).
      let watched = try await paymentsctl([
        "call", query, "payments.v1.PaymentQueryService/WatchPayment", "--plaintext", "--max-time", "3",
        "-H", "authorization: Bearer \(key)", "-d", "{\"paymentId\": \"\(id)\"}",
      ])
      #expect(watched.status == 68, "\(watched.output)")
      let states = try jsonDocuments(watched.output)
      #expect(states.first?["paymentId"] as? String == id)
      #expect(states.first?["status"] as? String == "PAYMENT_STATUS_ACCEPTED")
      #expect(watched.output.contains("DEADLINE_EXCEEDED: "))

      // Errors: the server's (INVALID_ARGUMENT = 3, UNAUTHENTICATED = 16) and the tool's own.
      let invalid = try await paymentsctl([
        "call", command, "payments.v1.PaymentCommandService/SubmitPayment", "--plaintext",
        "-H", "authorization: Bearer \(key)", "-d", "{}",
      ])
      #expect(invalid.status == 67, "\(invalid.output)")
      #expect(invalid.output.contains("INVALID_ARGUMENT: invalid SubmitPaymentRequest: idempotency_key"))
      let anonymous = try await paymentsctl([
        "call", command, "payments.v1.PaymentCommandService/SubmitPayment", "--plaintext", "-d", order,
      ])
      #expect(anonymous.status == 80, "\(anonymous.output)")
      #expect(anonymous.output.contains("UNAUTHENTICATED: "))
      let badJSON = try await paymentsctl([
        "call", command, "payments.v1.PaymentCommandService/SubmitPayment", "--plaintext", "-d",
        "{\"nope\": 1}",
      ])
      #expect(badJSON.status == 1, "as grpcurl: the tool's error, nothing was sent: \(badJSON.output)")
      #expect(badJSON.output.contains("nope"), "\(badJSON.output)")
      let unknownMethod = try await paymentsctl([
        "call", command, "payments.v1.PaymentCommandService/Nope", "--plaintext",
      ])
      #expect(unknownMethod.status == 1)
      #expect(unknownMethod.output.contains("is not a method"))
      let nothing = try await paymentsctl(["list", "127.0.0.1:\(try freePort())", "--plaintext"])
      #expect(nothing.status == 1, "as grpcurl: no server is the tool's error: \(nothing.output)")

      // Offline schemas: the embedded contract and .proto files through protoc.
      let embedded = try await paymentsctl(["describe", "--embedded", "payments.v1.PaymentStatus"])
      #expect(embedded.output.contains("PAYMENT_STATUS_SUCCEEDED = 4;"), "\(embedded.output)")
      let proto = try await paymentsctl([
        "list", "--proto", "payments/v1/command_service.proto", "--import-path",
        PythonPeer.repository.appendingPathComponent("proto").path,
      ])
      #expect(proto.output.contains("payments.v1.PaymentCommandService"), "\(proto.output)")
    }
  }

  @Test("list, describe, unary, server-streaming and an error exit against Python grpcio with reflection")
  func genericAgainstPython() async throws {
    let server = try await PythonPeer.startServer("interop/server.py", arguments: ["--reflection"])
    defer { server.stop() }
    let address = "127.0.0.1:\(server.port)"
    let services = try await paymentsctl(["list", address, "--plaintext"])
    #expect(services.status == 0, "\(services.output)")
    #expect(services.output.contains("echo.v1.Echo"))
    let described = try await paymentsctl(["describe", address, "echo.v1.EchoRequest", "--plaintext"])
    #expect(described.output.contains("int32 fail_with_code = 4;"), "\(described.output)")
    let unary = try await paymentsctl([
      "call", address, "echo.v1.Echo/Get", "--plaintext", "-d", "{\"text\": \"hi\", \"payload\": \"AAE=\"}",
    ])
    #expect(unary.status == 0, "\(unary.output)")
    #expect(try jsonDocuments(unary.output).first?["text"] as? String == "hi")
    #expect(try jsonDocuments(unary.output).first?["payload"] as? String == "AAE=")
    let streamed = try await paymentsctl([
      "call", address, "echo.v1.Echo/Expand", "--plaintext", "--emit-defaults", "-d",
      "{\"text\": \"x\", \"repeat\": 3}",
    ])
    #expect(streamed.status == 0, "\(streamed.output)")
    #expect(try jsonDocuments(streamed.output).map { $0["index"] as? Int } == [0, 1, 2])
    let collected = try await paymentsctl([
      "call", address, "echo.v1.Echo/Collect", "--plaintext", "-d", "{\"text\": \"a\"} {\"text\": \"b\"}",
    ])
    #expect(try jsonDocuments(collected.output).first?["text"] as? String == "a b", "\(collected.output)")
    let failed = try await paymentsctl([
      "call", address, "echo.v1.Echo/Get", "--plaintext", "-d",
      "{\"text\": \"no such thing\", \"failWithCode\": 5}",
    ])
    #expect(failed.status == 69, "\(failed.output)")
    #expect(failed.output.contains("NOT_FOUND: no such thing"))
  }

  @Test("payment shortcuts: submit --wait, get, list-payments, watch, load, cancel, refund, events")
  func shortcuts() async throws {
    try await withDispatcherStack(
      sandbox: { $0.rateLimit = 50 }, dispatcher: { $0.rateLimiter.defaultLimit = 50 }
    ) {
      platform, _, _, _ in
      let environment = ["PAYMENTS_API_KEY": try await platform.key()]
      let endpoints = [
        "--plaintext", "--command", "127.0.0.1:\(platform.commandPort)", "--query",
        "127.0.0.1:\(platform.queryPort)",
      ]
      let submitted = try await paymentsctl(
        [
          "submit", "--amount", "12.34", "--currency", "EUR", "--payer", "acct_1", "--payee", "acct_2",
          "--wait",
        ]
          + endpoints, environment: environment)
      #expect(submitted.status == 0, "\(submitted.output)")
      #expect(submitted.output.contains("amount: 12.34 EUR"))
      #expect(submitted.output.contains("status: ACCEPTED"))
      #expect(submitted.output.contains("status: SUCCEEDED"))
      let id = try #require(
        submitted.output.split(separator: "\n").first { $0.hasPrefix("payment_id: ") }?.dropFirst(12))

      let shown = try await paymentsctl(["get", String(id)] + endpoints, environment: environment)
      #expect(shown.output.contains("status: SUCCEEDED"), "\(shown.output)")
      let watched = try await paymentsctl(["watch", String(id)] + endpoints, environment: environment)
      #expect(watched.status == 0)
      #expect(watched.output.contains("SUCCEEDED"))

      let declined = try await paymentsctl(
        [
          "submit", "--amount", "4.02", "--currency", "EUR", "--payer", "acct_1", "--payee", "acct_2",
          "--wait",
        ]
          + endpoints, environment: environment)
      #expect(declined.status == 1, "a payment that FAILED: \(declined.output)")
      #expect(declined.output.contains("failure: card_declined"))

      let load = try await paymentsctl(
        ["load", "--count", "20", "--concurrency", "4", "--key-prefix", "ctl-load-"] + endpoints,
        environment: environment)
      #expect(load.status == 0, "\(load.output)")
      #expect(load.output.contains("accepted: 20"))
      #expect(!load.output.contains("["), "no progress bar when stdout is not a terminal")
      let again = try await paymentsctl(
        ["load", "--count", "20", "--concurrency", "4", "--key-prefix", "ctl-load-"] + endpoints,
        environment: environment)
      #expect(again.output.contains("replayed: 20"), "\(again.output)")

      let listed = try await paymentsctl(
        ["list-payments", "--limit", "100"] + endpoints, environment: environment)
      #expect(listed.output.split(separator: "\n").count == 22, "\(listed.output)")
      let failedOnly = try await paymentsctl(
        ["list-payments", "--status", "FAILED"] + endpoints, environment: environment)
      #expect(failedOnly.output.split(separator: "\n").count == 1)
      #expect(failedOnly.output.contains("4.02 EUR"))

      let invalid = try await paymentsctl(
        ["submit", "--amount", "1.00", "--currency", "EUR", "--payer", "acct_1", "--payee", "acct_1"]
          + endpoints,
        environment: environment)
      #expect(invalid.status == 67, "\(invalid.output)")
      #expect(invalid.output.contains("payee.account_id: must differ"))
      // cancel: a charged payment cannot be; events: the feed, one line per change, resumable.
      let refused = try await paymentsctl(["cancel", String(id)] + endpoints, environment: environment)
      #expect(refused.status == 64 + 9, "\(refused.output)")
      #expect(refused.output.contains("is SUCCEEDED: it was charged"))
      // refund: partial, waited for; too much is refused with the amounts; --get shows it.
      let refunded = try await paymentsctl(
        ["refund", String(id), "--amount", "2.00", "--currency", "EUR", "--reason", "returned", "--wait"]
          + endpoints, environment: environment)
      #expect(refunded.status == 0, "\(refunded.output)")
      #expect(refunded.output.contains("status: PENDING") && refunded.output.contains("status: SUCCEEDED"))
      #expect(refunded.output.contains("amount: 2.00 EUR") && refunded.output.contains("reason: returned"))
      let refundID = try #require(
        refunded.output.split(separator: "\n").first { $0.hasPrefix("refund_id: ") }?.dropFirst(11))
      let tooMuch = try await paymentsctl(
        ["refund", String(id), "--amount", "10.35", "--currency", "EUR"] + endpoints, environment: environment
      )
      #expect(tooMuch.status == 64 + 9, "\(tooMuch.output)")
      #expect(tooMuch.output.contains("1034 of 1234 EUR"), "\(tooMuch.output)")
      let gotRefund = try await paymentsctl(
        ["refund", "--get", String(refundID)] + endpoints, environment: environment)
      #expect(gotRefund.output.contains("status: SUCCEEDED"), "\(gotRefund.output)")
      let withRefund = try await paymentsctl(["get", String(id)] + endpoints, environment: environment)
      #expect(withRefund.output.contains("refunded: 2.00 EUR"), "\(withRefund.output)")
      #expect(withRefund.output.contains("refund: \(refundID) SUCCEEDED 2.00 EUR"), "\(withRefund.output)")
      let events = try await paymentsctl(["events", "--limit", "5"] + endpoints, environment: environment)
      let lines = events.output.split(separator: "\n")
      #expect(events.status == 0 && lines.count == 5, "\(events.output)")
      // The first change the read model saw of the first payment (its ACCEPTED, unless the
      // dispatcher's PROCESSING overtook it on the other topic: the feed never goes back a version).
      #expect(
        lines.first?.hasPrefix("c1  ") == true && lines.first?.contains("\(id)  v") == true,
        "\(events.output)")
      let rest = try await paymentsctl(
        ["events", "--after", String(lines.last!.prefix { $0 != " " })] + endpoints, environment: environment)
      #expect(rest.output.split(separator: "\n").first?.hasPrefix("c6  ") == true, "\(rest.output)")

      let noKey = try await paymentsctl(["get", String(id)] + endpoints)
      #expect(noKey.status == 1)
      #expect(noKey.output.contains("PAYMENTS_API_KEY"))
    }
  }
}
