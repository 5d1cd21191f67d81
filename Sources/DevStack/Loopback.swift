import Glibc

/// TCP probes of 127.0.0.1, for the local stack and its tests.
public enum Loopback {
  /// True when something accepts TCP connections on 127.0.0.1:`port`.
  public static func canConnect(port: Int) -> Bool {
    probe(port) { connect($0, $1, $2) == 0 }
  }

  /// True when nothing holds 127.0.0.1:`port` (a listener could bind it now).
  public static func canBind(port: Int) -> Bool {
    probe(port) { bind($0, $1, $2) == 0 }
  }

  // The probe's socket is close-on-exec: a child process started by another thread meanwhile
  // must not inherit it (it would hold the connection open, and a single-threaded listener then
  // waits on it forever).
  private static func probe(
    _ port: Int, _ operation: (Int32, UnsafePointer<sockaddr>, socklen_t) -> Bool
  ) -> Bool {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard descriptor >= 0 else { return false }
    defer { close(descriptor) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    return withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        operation(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
      }
    }
  }
}
