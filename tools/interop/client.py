"""Python grpcio calls a gRPC server (ours, in the tests) and prints what it observed as JSON:
one entry per scenario, either the observed values or {"code": ..., "details": ...}."""

import argparse
import json

import grpc
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

import peers

echo_pb2, echo_grpc, reflection_pb2, reflection_grpc = peers.load_modules()


def error(exc):
    return {"code": exc.code().name, "details": exc.details()}


def scenarios(channel):
    stub = echo_grpc.EchoStub(channel)
    yield "unary", lambda: {"text": stub.Get(echo_pb2.EchoRequest(text="hello", payload=b"\x00\x01")).text}
    yield "unary_payload", lambda: {"payload": stub.Get(echo_pb2.EchoRequest(payload=b"\x00\x01\xff")).payload.hex()}
    yield "server_streaming", lambda: {
        "indexes": [r.index for r in stub.Expand(echo_pb2.EchoRequest(text="x", repeat=5))]
    }
    yield "client_streaming", lambda: {
        "text": stub.Collect(iter([echo_pb2.EchoRequest(text=t) for t in ["a", "b", "c"]])).text
    }
    yield "bidi", lambda: {
        "texts": [r.text for r in stub.Update(iter([echo_pb2.EchoRequest(text=f"m{i}") for i in range(5)]))]
    }

    def metadata():
        _, call = stub.Get.with_call(
            echo_pb2.EchoRequest(text="x"), metadata=[("echo-text", "hello"), ("echo-data-bin", b"\x00\xff")]
        )
        initial = {k: (v.hex() if isinstance(v, bytes) else v) for k, v in call.initial_metadata()}
        trailing = {k: (v.hex() if isinstance(v, bytes) else v) for k, v in call.trailing_metadata()}
        return {"initial": initial, "trailing": trailing}

    yield "metadata", metadata
    yield "error", lambda: stub.Get(echo_pb2.EchoRequest(text="no such payment: pay_1", fail_with_code=5))
    yield "streaming_error", lambda: [r.index for r in stub.Expand(echo_pb2.EchoRequest(text="late", fail_with_code=9))]
    yield "deadline", lambda: stub.Get(echo_pb2.EchoRequest(text="slow", delay_ms=2000), timeout=0.001)
    yield "large_3mib", lambda: {"size": len(stub.Get(echo_pb2.EchoRequest(payload=b"x" * (3 << 20))).payload)}
    yield "too_large_5mib", lambda: stub.Get(echo_pb2.EchoRequest(payload=b"x" * (5 << 20)))
    yield "unknown_method", lambda: channel.unary_unary("/echo.v1.Echo/Missing")(b"")

    health = health_pb2_grpc.HealthStub(channel)
    yield "health", lambda: {"status": health_pb2.HealthCheckResponse.ServingStatus.Name(
        health.Check(health_pb2.HealthCheckRequest(service="")).status)}
    yield "health_unknown", lambda: health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"))

    def reflection_v1alpha():
        database = ProtoReflectionDescriptorDatabase(channel)
        pool = DescriptorPool(database)
        service = pool.FindServiceByName("echo.v1.Echo")
        return {
            "services": sorted(database.get_services()),
            "methods": [m.name for m in service.methods],
            "file": service.file.name,
        }

    yield "reflection_v1alpha", reflection_v1alpha

    def reflection_v1():
        reflection = reflection_grpc.ServerReflectionStub(channel)
        requests = [
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="echo.v1.Echo.Get"),
            reflection_pb2.ServerReflectionRequest(file_by_filename="no/such/file.proto"),
        ]
        answers = list(reflection.ServerReflectionInfo(iter(requests)))
        files = []
        for serialized in answers[1].file_descriptor_response.file_descriptor_proto:
            descriptor = descriptor_pb2.FileDescriptorProto()
            descriptor.ParseFromString(serialized)
            files.append(descriptor.name)
        return {
            "services": [s.name for s in answers[0].list_services_response.service],
            "files": files,
            "missing_code": answers[2].error_response.error_code,
        }

    yield "reflection_v1", reflection_v1


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--root-cert", help="use TLS, trusting this PEM certificate")
    parser.add_argument("--only", help="comma-separated scenario names")
    arguments = parser.parse_args()
    results = {}
    if arguments.root_cert:
        with open(arguments.root_cert, "rb") as file:
            credentials = grpc.ssl_channel_credentials(root_certificates=file.read())
        channel = grpc.secure_channel(f"localhost:{arguments.port}", credentials)
    else:
        channel = grpc.insecure_channel(f"127.0.0.1:{arguments.port}")
    only = set(arguments.only.split(",")) if arguments.only else None
    with channel:
        for name, scenario in scenarios(channel):
            if only is not None and name not in only:
                continue
            try:
                results[name] = scenario()
            except grpc.RpcError as exc:
                results[name] = error(exc)
    print(json.dumps(results, sort_keys=True))


if __name__ == "__main__":
    main()
