/// The `payments.v1` contract's files, as embedded descriptors (for server reflection and for
/// tools that need the schema without a server).
public enum PaymentsProtoFiles {
  /// Each file's name and serialized `google.protobuf.FileDescriptorProto`, dependencies first.
  public static let all: [(name: String, serializedDescriptor: [UInt8])] = [
    (Payments_V1_Payment_ProtoFile.name, Payments_V1_Payment_ProtoFile.serializedDescriptor),
    (Payments_V1_CommandService_ProtoFile.name, Payments_V1_CommandService_ProtoFile.serializedDescriptor),
    (Payments_V1_QueryService_ProtoFile.name, Payments_V1_QueryService_ProtoFile.serializedDescriptor),
    (Payments_V1_Records_ProtoFile.name, Payments_V1_Records_ProtoFile.serializedDescriptor),
    (Payments_V1_Errors_ProtoFile.name, Payments_V1_Errors_ProtoFile.serializedDescriptor),
    (
      Payments_V1_DispatcherService_ProtoFile.name,
      Payments_V1_DispatcherService_ProtoFile.serializedDescriptor
    ),
  ]
}
