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
      Payment shortcuts (the API key from $PAYMENTS_API_KEY): submit, get, cancel, refund,
      list-payments, watch, events, load.

      Exit status: 0 on success; 64 + the gRPC status code when a call fails (as grpcurl);
      1 for a payment that ended FAILED or CANCELED under --wait, and for other errors.
      """,
    subcommands: [
      ListCommand.self, DescribeCommand.self, CallCommand.self, SubmitCommand.self, GetCommand.self,
      CancelCommand.self, RefundCommand.self, ListPaymentsCommand.self, WatchCommand.self, EventsCommand.self,
      LoadCommand.self,
    ])

  /// Runs with grpcurl's single-dash long flags (`-plaintext`, `-max-time 5`) read as ours
  /// (`--plaintext`, `--max-time 5`).
  static func main() async {
    commandStart = .now
    await main(addressFirst(grpcurlStyle(CommandLine.arguments.dropFirst())))
  }

  /// Options of the generic commands that take a value (so that their values are not mistaken
  /// for the address or the method).
  static let valueOptions: Set<String> = [
    "-d", "--data", "-H", "--header", "--rpc-header", "--reflect-header", "--max-time", "--connect-timeout",
    "--cacert", "--cert", "--key", "--servername", "--authority", "--max-msg-sz", "--keepalive-time",
    "--proto",
    "--import-path", "--protoset", "--protoset-out", "--format",
  ]

  /// grpcurl's order, `[flags] ADDR [list|describe] [SYMBOL]` and `[flags] ADDR METHOD`, as ours:
  /// `list|describe|call ADDR …`. Arguments that start with a subcommand are left as they are.
  static func addressFirst(_ arguments: [String]) -> [String] {
    var positions: [Int] = []
    var index = 0
    while index < arguments.count {
      let argument = arguments[index]
      if argument == "--" { break }
      if argument.hasPrefix("-") {
        if valueOptions.contains(argument) { index += 1 }
      } else {
        positions.append(index)
      }
      index += 1
    }
    guard let first = positions.first else { return arguments }
    let address = arguments[first]
    let subcommands: Set = [
      "list", "describe", "call", "submit", "get", "cancel", "list-payments", "watch", "events", "load",
      "help",
    ]
    guard !subcommands.contains(address), (try? parseAddress(address)) != nil else { return arguments }
    var rest = arguments
    if positions.count > 1, ["list", "describe"].contains(arguments[positions[1]]) {
      let verb = rest.remove(at: positions[1])
      return [verb] + rest
    }
    return ["call"] + rest
  }

  /// `-word` or `-word=value` (a name of two or more letters, digits or dashes, starting with a
  /// letter) becomes `--word`…; single letters (`-d`, `-H`, `-v`), negative numbers and everything
  /// after `--` stay as they are. (So a value that itself looks like `-word` must be written
  /// `--option=-word`.)
  static func grpcurlStyle(_ arguments: some Sequence<String>) -> [String] {
    var rewritten: [String] = []
    var afterTerminator = false
    for argument in arguments {
      if argument == "--" { afterTerminator = true }
      let name = argument.dropFirst().prefix { $0 != "=" }
      if !afterTerminator, argument.hasPrefix("-"), !argument.hasPrefix("--"), name.count >= 2,
        name.first?.isLetter == true, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" })
      {
        rewritten.append("-" + argument)
      } else {
        rewritten.append(argument)
      }
    }
    return rewritten
  }
}
