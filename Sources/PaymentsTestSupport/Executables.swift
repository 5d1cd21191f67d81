import Glibc

/// Locates the package's executables (built next to the test bundle by `swift build`).
public enum Executables {
  /// The build directory that holds the test binary, e.g. `.build/debug`.
  public static var buildDirectory: String {
    var buffer = [CChar](repeating: 0, count: 4096)
    let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    let path =
      length > 0 ? String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
    return String(path[..<(path.lastIndex(of: "/") ?? path.endIndex)])
  }

  /// The path of executable `name`, e.g. `payments`.
  public static func path(_ name: String) throws -> String {
    let candidate = buildDirectory + "/" + name
    guard access(candidate, X_OK) == 0 else {
      throw HarnessError("\(candidate) is missing: run `swift build` before the tests (tools/test does)")
    }
    return candidate
  }
}
