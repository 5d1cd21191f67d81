/// The Swift types of the payments contract in `proto/payments/v1`, generated at build time by
/// the ProtobufGenerator plugin (see `protobuf.json`): messages and enums as `Payments_V1_*`,
/// and per service its method descriptors, server protocol and typed client.
public enum PaymentsProtoModule {}
