"""Shared setup of the Python gRPC peers: compiles the test protos with grpcio-tools into a
temporary directory and imports them, so that the peers use Google's implementation end to end."""

import importlib
import os
import shutil
import sys
import tempfile

from grpc_tools import protoc

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ECHO_ROOT = os.path.join(REPO, "Tests", "GeneratedCodeTests", "proto")
REFLECTION_V1 = os.path.join(REPO, "proto", "grpc", "reflection", "v1", "reflection.proto")


def load_modules():
    """Returns (echo_pb2, echo_pb2_grpc, reflection_v1_pb2, reflection_v1_pb2_grpc)."""
    out = tempfile.mkdtemp(prefix="interop-py-")
    source = os.path.join(out, "src")
    # grpc.reflection.v1 would collide with the installed `grpc` package, so it is compiled
    # under another directory name (the package inside the file stays grpc.reflection.v1).
    os.makedirs(os.path.join(source, "reflectionv1"))
    shutil.copy(REFLECTION_V1, os.path.join(source, "reflectionv1", "reflection.proto"))
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    for root, name in [(ECHO_ROOT, "echo/v1/echo.proto"), (source, "reflectionv1/reflection.proto")]:
        status = protoc.main(["protoc", "-I", root, "-I", include, "--python_out", out, "--grpc_python_out", out, name])
        if status != 0:
            raise SystemExit(f"protoc failed for {name}")
    sys.path.insert(0, out)
    return (
        importlib.import_module("echo.v1.echo_pb2"),
        importlib.import_module("echo.v1.echo_pb2_grpc"),
        importlib.import_module("reflectionv1.reflection_pb2"),
        importlib.import_module("reflectionv1.reflection_pb2_grpc"),
    )
