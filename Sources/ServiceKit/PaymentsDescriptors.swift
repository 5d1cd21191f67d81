import PaymentsProto
public import RPCStandardServices

/// The descriptors of the `payments.v1` contract, for server reflection (the standard files are
/// added by `ReflectionService`).
public enum PaymentsDescriptors {
  public static let files: [ReflectionService.File] = PaymentsProtoFiles.all.map {
    ReflectionService.File(name: $0.name, serializedDescriptor: $0.serializedDescriptor)
  }
}
