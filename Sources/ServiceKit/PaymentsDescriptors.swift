import PaymentsProto
public import RPCStandardServices

/// The descriptors of the `payments.v1` contract, for server reflection (the standard files are
/// added by `ReflectionService`).
public enum PaymentsDescriptors {
  /// The client API: what the command and query services describe.
  public static let files: [ReflectionService.File] = PaymentsProtoFiles.all.filter {
    $0.name != dispatcherService
  }.map { ReflectionService.File(name: $0.name, serializedDescriptor: $0.serializedDescriptor) }

  /// The dispatcher's internal service and the files it imports.
  public static let dispatcherFiles: [ReflectionService.File] = PaymentsProtoFiles.all.filter {
    ["payments/v1/payment.proto", dispatcherService].contains($0.name)
  }.map { ReflectionService.File(name: $0.name, serializedDescriptor: $0.serializedDescriptor) }

  /// What the dispatcher's service imports without serving it (the refund messages of the
  /// client API): its descriptors are served, its service is not listed.
  public static let dispatcherDependencies: [ReflectionService.File] = PaymentsProtoFiles.all.filter {
    $0.name == "payments/v1/command_service.proto"
  }.map { ReflectionService.File(name: $0.name, serializedDescriptor: $0.serializedDescriptor) }

  private static let dispatcherService = "payments/v1/dispatcher_service.proto"
}
