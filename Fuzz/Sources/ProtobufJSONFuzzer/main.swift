// Feeds arbitrary text to the protobuf JSON decoder (ProtoJSON, what paymentsctl reads from its
// users) through the payments messages (generated code: nested messages, enums by name, oneofs,
// 64-bit integers as strings, repeated fields, maps) and the well-known types with their special
// JSON forms (Timestamp, Duration, wrappers). Any crash, hang or leak is a bug;
// decoding errors are expected. What decodes must re-encode to JSON that decodes to the same value.
import PaymentsProto
import ProtobufRuntime

func roundTrips<Message: ProtobufJSONMessage>(_ type: Message.Type, _ text: String) {
  guard let message = try? Message(jsonString: text) else { return }
  let encoded = message.jsonString()
  let again: Message
  do {
    again = try Message(jsonString: encoded)
  } catch {
    fatalError("\(Message.self): its own JSON \(encoded) does not decode: \(error)")
  }
  // (NaN is not equal to itself: then the binary encodings must agree.)
  precondition(
    again == message || again.serializedBytes() == message.serializedBytes(),
    "\(Message.self): re-encoding as JSON changed the message: \(encoded)")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
  roundTrips(Payments_V1_SubmitPaymentRequest.self, text)
  roundTrips(Payments_V1_Payment.self, text)
  roundTrips(Payments_V1_ListPaymentsRequest.self, text)
  roundTrips(Payments_V1_GetPaymentRequest.self, text)
  roundTrips(Google_Protobuf_Timestamp.self, text)
  roundTrips(Google_Protobuf_Duration.self, text)
  roundTrips(Google_Protobuf_Int64Value.self, text)
  roundTrips(Google_Protobuf_BytesValue.self, text)
  roundTrips(Google_Protobuf_DoubleValue.self, text)
  return 0
}
