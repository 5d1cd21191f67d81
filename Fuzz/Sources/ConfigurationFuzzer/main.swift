// Feeds arbitrary text to the configuration-file parser as YAML and as JSON (the first byte
// picks): nested mappings, lists, scalars of every kind. Any crash or hang is a bug (an operator's
// typo must give a clear error, not a dead service); ConfigurationError is expected.
@testable import PaymentsConfiguration

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  guard size > 0 else { return 0 }
  let path = data[0] & 1 == 0 ? "fuzz.yaml" : "fuzz.json"
  let text = String(decoding: UnsafeBufferPointer(start: data + 1, count: size - 1), as: UTF8.self)
  _ = try? Settings.parse(text, path: path)
  return 0
}
