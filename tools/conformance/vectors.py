#!/usr/bin/env python3
"""Conformance vectors from Google's protobuf implementation (Python, upb backend).

  vectors.py encode          prints the reference message, hex-encoded binary, on one line
  vectors.py encode-json     prints the reference message as canonical proto3 JSON
  vectors.py decode HEX      decodes HEX (our encoding) and checks it equals the reference
                             message with maps; prints "ok" or the difference, exit 1 on mismatch
  vectors.py decode-json J   the same for our JSON text J

The reference message mirrors GeneratedCodeTests' `ConformanceVectors.reference` in Swift.
"""
import os
import subprocess
import sys
import tempfile

import grpc_tools
from google.protobuf import json_format

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROTO = os.path.join(ROOT, "Tests", "GeneratedCodeTests", "proto")


def load_modules():
    out = tempfile.mkdtemp(prefix="conformance-py-")
    include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I", PROTO, "-I", include, "--python_out=" + out,
         "conformance/v1/everything.proto", "other/v1/other.proto"],
        check=True)
    sys.path.insert(0, out)
    from conformance.v1 import everything_pb2  # noqa: E402
    return everything_pb2


def reference(pb, with_maps):
    m = pb.Everything()
    m.f_double = -2.5
    m.f_float = 1.25
    m.f_int64 = -(2 ** 63)
    m.f_uint64 = 2 ** 64 - 1
    m.f_int32 = -7
    m.f_fixed64 = 0x0102030405060708
    m.f_fixed32 = 0xDEADBEEF
    m.f_bool = True
    m.f_string = "héllo ✓"
    m.f_bytes = bytes([0, 1, 255])
    m.f_uint32 = 2 ** 32 - 1
    m.f_sfixed32 = -(2 ** 31)
    m.f_sfixed64 = -1
    m.f_sint32 = -123456
    m.f_sint64 = -(2 ** 63)
    m.color = pb.COLOR_GREEN
    m.mood = pb.Everything.ANGRY
    m.nested.value = 42
    m.other.name = "from another package"
    m.child.f_string = "child"
    m.opt_int32 = 0
    m.opt_string = ""
    m.opt_color = pb.COLOR_UNSPECIFIED
    m.r_int32.extend([1, -1, 2 ** 31 - 1])
    m.r_sint64.extend([-1, 0, 1])
    m.r_double.extend([0.5, -0.0])
    m.r_fixed32.extend([1, 2])
    m.r_bool.extend([True, False, True])
    m.r_color.extend([pb.COLOR_RED, pb.COLOR_NEGATIVE, 99])
    m.r_string.extend(["a", "", "c"])
    m.r_bytes.extend([bytes([1]), b""])
    n = m.r_nested.add()
    n.value = 42
    m.r_nested.add()
    if with_maps:
        m.m_string["a"] = "1"
        m.m_string["b"] = "2"
        m.m_string[""] = ""
        m.m_nested[3].value = 42
        m.m_nested[-1].SetInParent()
        m.m_bool[True] = pb.COLOR_RED
        m.m_bool[False] = pb.COLOR_GREEN
        m.m_bytes[-(2 ** 63)] = bytes([9])
        m.m_bytes[0] = b""
    m.choice_nested.value = 42
    m.timestamp.seconds = 1700000000
    m.timestamp.nanos = 5
    m.duration.SetInParent()
    m.empty.SetInParent()
    m.wrapped_int64.SetInParent()
    setattr(m, "default", "keyword")
    setattr(m, "protocol", 7)
    m.payment_id = "pay_1"
    m.big_field_number = 1
    return m


def main():
    pb = load_modules()
    command = sys.argv[1]
    if command == "encode":
        print(reference(pb, with_maps=False).SerializeToString().hex())
    elif command == "encode-json":
        print(json_format.MessageToJson(reference(pb, with_maps=True), indent=None))
    elif command == "decode":
        received = pb.Everything()
        received.ParseFromString(bytes.fromhex(sys.argv[2]))
        expected = reference(pb, with_maps=True)
        if received == expected:
            print("ok")
        else:
            print("mismatch:\nreceived:\n%s\nexpected:\n%s" % (received, expected))
            sys.exit(1)
    elif command == "decode-json":
        received = json_format.Parse(sys.argv[2], pb.Everything())
        expected = reference(pb, with_maps=True)
        if received == expected:
            print("ok")
        else:
            print("mismatch:\nreceived:\n%s\nexpected:\n%s" % (received, expected))
            sys.exit(1)
    else:
        sys.exit("unknown command " + command)


if __name__ == "__main__":
    main()
