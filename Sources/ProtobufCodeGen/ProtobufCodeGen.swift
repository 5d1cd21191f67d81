/// Turns protoc's descriptors into Swift source for messages and services. Placeholder until the protobuf issue.
public enum ProtobufCodeGenModule {}
