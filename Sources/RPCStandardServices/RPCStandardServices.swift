/// The standard services every server of the platform serves: ``HealthService``
/// (`grpc.health.v1.Health`) and ``ReflectionService`` (`grpc.reflection.v1` and `v1alpha`).
/// Their message types (`Grpc_Health_V1_*`, `Grpc_Reflection_V1_*`, `Grpc_Reflection_V1alpha_*`)
/// are generated at build time from `proto/grpc`.
public enum RPCStandardServicesModule {}
