import PaymentsProto
public import RPCStandardServices

/// The descriptors of the `payments.v1` contract, for server reflection (the standard files are
/// added by `ReflectionService`).
public enum PaymentsDescriptors {
  public static let files: [ReflectionService.File] = [
    .init(
      name: Payments_V1_Payment_ProtoFile.name,
      serializedDescriptor: Payments_V1_Payment_ProtoFile.serializedDescriptor),
    .init(
      name: Payments_V1_CommandService_ProtoFile.name,
      serializedDescriptor: Payments_V1_CommandService_ProtoFile.serializedDescriptor),
    .init(
      name: Payments_V1_QueryService_ProtoFile.name,
      serializedDescriptor: Payments_V1_QueryService_ProtoFile.serializedDescriptor),
    .init(
      name: Payments_V1_Records_ProtoFile.name,
      serializedDescriptor: Payments_V1_Records_ProtoFile.serializedDescriptor),
  ]
}
