import CNGHTTP2

/// The HTTP/2 wrapper over libnghttp2. The gRPC transport (issue "RPC") builds its session
/// state machines here; so far it only reports the linked library.
public enum NGHTTP2 {
  /// The version of the linked libnghttp2, for example `1.52.0`.
  public static var version: String {
    guard let info = nghttp2_version(0), let string = info.pointee.version_str else { return "unknown" }
    return String(cString: string)
  }
}
