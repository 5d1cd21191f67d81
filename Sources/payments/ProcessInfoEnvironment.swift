import Glibc

/// Reads environment variables without Foundation.
enum ProcessInfoEnvironment {
  static func value(_ name: String) -> String? {
    guard let pointer = getenv(name) else { return nil }
    return String(cString: pointer)
  }
}
