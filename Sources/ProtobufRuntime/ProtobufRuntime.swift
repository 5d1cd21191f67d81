/// The protobuf runtime: binary wire and canonical JSON encoding for generated messages. Placeholder until the protobuf issue.
public enum ProtobufRuntimeModule {}
