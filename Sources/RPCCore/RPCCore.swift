/// The transport-independent gRPC core: method descriptors, metadata, status, interceptors, handlers. Placeholder until the RPC issue.
public enum RPCCoreModule {}
