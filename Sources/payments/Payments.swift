import ArgumentParser

/// `payments`: the server binary, one subcommand per role (docs/design.md §3).
@main
struct Payments: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "payments",
    abstract: "The payments platform: services, migrations and development infrastructure.",
    subcommands: [
      CommandCommand.self, DispatcherCommand.self, QueryCommand.self, ProviderSandboxCommand.self,
      KeysCommand.self, MigrateCommand.self, BrokerCommand.self, DevCommand.self, DeadLettersCommand.self,
    ])
}
