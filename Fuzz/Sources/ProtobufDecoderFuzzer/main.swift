// Feeds arbitrary bytes to the protobuf decoder through a rich schema (descriptor.proto's
// FileDescriptorSet: nested and repeated messages, strings, packed varints, unknown fields) and
// the well-known types. Any crash, hang or leak is a bug; decoding errors are expected.
import ProtobufCodeGen
import ProtobufRuntime

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  let bytes = Array(UnsafeBufferPointer(start: data, count: size))
  if let set = try? FileDescriptorSet(serializedBytes: bytes) {
    // What decodes must re-encode and decode to the same value.
    let again = try? FileDescriptorSet(serializedBytes: set.serializedBytes())
    precondition(again == set, "re-encoding changed the message")
  }
  _ = try? Google_Protobuf_Timestamp(serializedBytes: bytes)
  _ = try? CodeGeneratorRequest(serializedBytes: bytes)
  return 0
}
