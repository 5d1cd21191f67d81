/// One setting of a `payments` service: its name in a configuration file, and the environment
/// variable and command-line flag that set it too.
///
/// A name is lower-case words joined by `-`, in sections joined by `.` (`retry.base`).
/// The environment variable is `PAYMENTS_` and the name in upper case with `_` for `.` and `-`
/// (`PAYMENTS_RETRY_BASE`); the flag is the name with `-` for `.`
/// (`--retry-base`), unless the key names another.
public struct ConfigurationKey: Sendable, Hashable, CustomStringConvertible {
  public enum Kind: String, Sendable {
    case string, integer, number, boolean, list
  }

  public let name: String
  public let kind: Kind
  /// The value when nothing sets it, as written in docs (`nil`: no default).
  public let defaultValue: String?
  public let help: String
  /// A secret is never printed or logged, and has no flag unless the key names one (command
  /// lines are visible to every user of the machine).
  public let isSecret: Bool
  private let customFlag: String?

  public init(
    _ name: String, _ kind: Kind, default defaultValue: String? = nil, flag: String? = nil,
    secret: Bool = false, _ help: String
  ) {
    precondition(
      !name.isEmpty
        && name.utf8.allSatisfy {
          (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) || $0 == 0x2D || $0 == 0x2E
        },
      "configuration key names are lower-case words joined by - and .")
    self.name = name
    self.kind = kind
    self.defaultValue = defaultValue
    self.help = help
    self.isSecret = secret
    self.customFlag = flag
  }

  public var environmentVariable: String {
    "PAYMENTS_" + String(name.uppercased().map { $0 == "." || $0 == "-" ? "_" : $0 })
  }

  /// The command-line flag; `nil` for a secret that names none.
  public var flag: String? {
    if let customFlag { return "--" + customFlag }
    return isSecret ? nil : "--" + String(name.map { $0 == "." ? "-" : $0 })
  }

  public var description: String { name }
}
