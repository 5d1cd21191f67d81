/// The Swift types of the `.proto` contract in `proto/`, generated at build time by the
/// ProtobufGenerator plugin (see `protobuf.json`): `Payments_V1_*` for the payments API and
/// records, `Grpc_Health_V1_*` and `Grpc_Reflection_V1_*` / `Grpc_Reflection_V1alpha_*` for the
/// standard gRPC services.
public enum PaymentsProtoModule {}
