/// The gRPC transport over HTTP/2 (nghttp2): server and client. Placeholder until the RPC issue.
public enum RPCTransportHTTP2Module {}
