import ArgumentParser

/// `paymentsctl`: a grpcurl-like client for any gRPC server with reflection, plus shortcuts
/// for the payments platform.
@main
struct PaymentsCtl: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "paymentsctl",
    abstract: "Call gRPC servers from the command line; submit and inspect payments.",
    discussion: """
      Generic commands (any gRPC server; schemas from server reflection, --proto files or the
      embedded payments contract): list, describe, call.
      Payment shortcuts (the API key from $PAYMENTS_API_KEY): submit, get, list-payments, watch, load.

      Exit status: 0 on success; 64 + the gRPC status code when a call fails (as grpcurl);
      1 for a payment that ended FAILED under --wait, and for other errors.
      """,
    subcommands: [
      ListCommand.self, DescribeCommand.self, CallCommand.self, SubmitCommand.self, GetCommand.self,
      ListPaymentsCommand.self, WatchCommand.self, LoadCommand.self,
    ])
}
