"""The bad-input suite: a hostile client against a running payments stack.

Sends the command, query and dispatcher services what no well-behaved client would, and checks
each answer against the documented contract (docs/api.md, docs/rpc.md; RFC 9113 where those
defer to HTTP/2 itself):

  numeric      every numeric field of every request message (found through the protobuf
               descriptors, nested ones included) at 0, -1, the type's minimum and maximum, plus
               the documented boundaries; enums out of range
  strings      every string field (map keys and values included) empty, with NUL, with invalid
               UTF-8 (hand-encoded wire bytes), 1 MB long, "a" + 5,000 and + 600,000 combining
               marks (one grapheme of 10 KB / 1.2 MB), and for free text emoji / RTL / ZWJ /
               combining text at exactly the limit and one past it
  submit       SubmitPayment's rules: idempotency keys, currencies, required parts, distinct
               accounts, metadata, provider, the 64 KiB order limit, several errors at once
  refund       RefundPayment's rules: idempotency keys, currencies (refused codes, another one than
               the payment's), reason text, amounts against a SUCCEEDED, a FAILED and a just-submitted
               payment, key reuse, validation before the payment lookup, the 64 KiB limit
  lookup       GetPayment / WatchPayment / CancelPayment / RefundPayment / GetRefund: malformed,
               unknown and other clients' payment and refund IDs
  page-token   ListPayments tokens forged, truncated, altered, garbage or used with other filters
  garbage      request bodies that are not protobuf (truncated varints, wrong wire types for
               every field, huge lengths, invalid wire types, 100,000 nested groups, ...)
  auth         missing, malformed, unknown, wrong-secret, revoked and wrong-scope API keys
  paths        unknown services and methods
  size         messages above the 4 MiB limit
  http2        raw HTTP/2 (frame by frame) against every port: bad preface, wrong content-type,
               4 GiB length prefix, rapid reset, too many streams, oversized headers, PING /
               SETTINGS / empty-DATA floods, endless CONTINUATION, WINDOW_UPDATE overflow, frames
               on stream 0, half a message then RST, malformed requests, bad SETTINGS, ...

Every case states the acceptable gRPC statuses (or the GOAWAY / RST_STREAM code); an error status
must carry a message, a validation error must name the field (and SubmitPayment's and
RefundPayment's must list it in the `payments-field-violations-bin` trailer), and UNKNOWN /
INTERNAL / UNAVAILABLE are never acceptable for bad input unless docs/rpc.md documents them (zero
or two messages on a unary call, a malformed grpc-timeout, a compressed message). After every case
every given service must answer grpc.health.v1.Health/Check with SERVING within 2 s on a fresh
connection.

    .venv/bin/python tools/interop/bad_input.py --command 127.0.0.1:50051 --query 127.0.0.1:50052 \\
        --dispatcher 127.0.0.1:50053 --key "$(cat .payments-dev/api-key)" [--json]

Exit status 0 only when no case failed.
"""

import argparse
import atexit
import base64
import dataclasses
import importlib
import json
import os
import select
import shutil
import socket
import struct
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections import defaultdict
from typing import Callable

import grpc
import hpack
from google.protobuf.descriptor import FieldDescriptor as FD
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_tools import protoc

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PROTO_FILES = ["payments/v1/payment.proto", "payments/v1/command_service.proto",
               "payments/v1/query_service.proto", "payments/v1/errors.proto"]
COMMAND = "/payments.v1.PaymentCommandService/"
QUERY = "/payments.v1.PaymentQueryService/"
HEALTH = "/grpc.health.v1.Health/Check"
NEVER_FOR_BAD_INPUT = {"UNKNOWN", "INTERNAL", "UNAVAILABLE"}
DEADLINE = 10.0
MiB = 1 << 20


# ----------------------------------------------------------------------------------------------
# The contract, compiled at run time from proto/
# ----------------------------------------------------------------------------------------------

def load_protos():
    out = tempfile.mkdtemp(prefix="bad-input-py-")
    atexit.register(shutil.rmtree, out, True)
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    if protoc.main(["protoc", "-I", os.path.join(REPO, "proto"), "-I", include, "--python_out", out]
                   + PROTO_FILES) != 0:
        raise SystemExit("protoc failed")
    sys.path.insert(0, out)
    names = ["payment_pb2", "command_service_pb2", "query_service_pb2", "errors_pb2"]
    return {name: importlib.import_module("payments.v1." + name) for name in names}


PB = load_protos()
METHODS = {  # method name -> (service, path, input descriptor, server streaming)
    m.name: (service, prefix + m.name, m.input_type, m.server_streaming)
    for service, prefix, module, svc in [
        ("command", COMMAND, PB["command_service_pb2"], "PaymentCommandService"),
        ("query", QUERY, PB["query_service_pb2"], "PaymentQueryService")]
    for m in module.DESCRIPTOR.services_by_name[svc].methods}
# WatchEvents never ends by itself: a valid request would wait out every case's deadline. Its
# only input is ListEvents' cursor, so it gets the dedicated cases of feed_cases instead.
WATCH_EVENTS = METHODS.pop("WatchEvents")


# ----------------------------------------------------------------------------------------------
# Protobuf wire encoding by hand (so that anything can be sent: invalid UTF-8, any varint)
# ----------------------------------------------------------------------------------------------

VARINT_TYPES = {FD.TYPE_INT32, FD.TYPE_INT64, FD.TYPE_UINT32, FD.TYPE_UINT64, FD.TYPE_ENUM, FD.TYPE_BOOL}


def varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def tag(number, wire_type):
    return varint(number << 3 | wire_type)


def ld(number, payload):
    return tag(number, 2) + varint(len(payload)) + payload


def is_map(field):
    return field.type == FD.TYPE_MESSAGE and field.message_type.GetOptions().map_entry


def encode(desc, values):
    """Encodes a dict (nested dicts for messages, lists for repeated, dicts for maps; strings may be
    bytes, taken verbatim) as `desc`, fields in the dict's order."""
    out = bytearray()
    for name, value in values.items():
        field = desc.fields_by_name[name]
        if is_map(field):
            for k, v in value.items():
                out += ld(field.number, encode(field.message_type, {"key": k, "value": v}))
        elif field.is_repeated and field.type in VARINT_TYPES:
            out += ld(field.number, b"".join(varint(v) for v in value))  # packed, as proto3 sends
        else:
            for item in (value if field.is_repeated else [value]):
                out += encode_one(field, item)
    return bytes(out)


def encode_one(field, value):
    if field.type == FD.TYPE_MESSAGE:
        return ld(field.number, encode(field.message_type, value))
    if field.type in (FD.TYPE_STRING, FD.TYPE_BYTES):
        return ld(field.number, value if isinstance(value, bytes) else value.encode())
    if field.type in VARINT_TYPES:
        return tag(field.number, 0) + varint(value)
    raise ValueError(f"no encoder for {field.full_name}")


def leaves(desc, prefix=()):
    """(dotted path, field, names, map part) of every scalar field, through nested messages."""
    for field in desc.fields:
        names = prefix + (field.name,)
        if is_map(field):
            for part in ("key", "value"):
                yield ".".join(names + (part,)), field.message_type.fields_by_name[part], names, part
        elif field.type == FD.TYPE_MESSAGE and len(names) < 5:
            yield from leaves(field.message_type, names)
        else:
            yield ".".join(names), field, names, None


def assign(values, desc, names, part, value):
    """Sets the leaf at `names` in a request dict (creating parents, clearing oneof siblings);
    returns the request."""
    root = values
    for name in names[:-1]:
        values = values.setdefault(name, {})
        desc = desc.fields_by_name[name].message_type
    field = desc.fields_by_name[names[-1]]
    if field.containing_oneof:
        for sibling in field.containing_oneof.fields:
            values.pop(sibling.name, None)
    if part == "key":
        values[field.name] = {value: "v"}
    elif part == "value":
        values[field.name] = {"k": value}
    else:
        values[field.name] = [value] if field.is_repeated else value
    return root


# ----------------------------------------------------------------------------------------------
# Expectations and cases
# ----------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Expect:
    codes: frozenset
    fields: tuple = ()        # an INVALID_ARGUMENT message must name each
    contains: tuple = ()      # an error message (of an expected code) must contain each
    violations: bool = False  # and the payments-field-violations-bin trailer must list `fields`
    timeout: float = DEADLINE


def expect(*codes, fields=(), contains=(), violations=False, timeout=DEADLINE):
    return Expect(frozenset(codes), tuple(fields), tuple(contains), violations, timeout)


OK = expect("OK")


def invalid(*fields, violations=False, contains=()):
    return expect("INVALID_ARGUMENT", fields=fields, violations=violations, contains=contains)


@dataclasses.dataclass
class Case:
    category: str
    name: str
    run: Callable[[], tuple]  # -> (observed, problems)


@dataclasses.dataclass
class Result:
    code: str
    details: str
    trailing: dict
    messages: list


def judge(result, want):
    problems = []
    if result.code not in want.codes:
        never = " (never acceptable for bad input)" if result.code in NEVER_FOR_BAD_INPUT else ""
        problems.append(f"got {result.code}, expected {'/'.join(sorted(want.codes))}{never}")
    if result.code != "OK" and not result.details.strip():
        problems.append("empty status message")
    if result.code == "OK" or result.code not in want.codes:
        return problems
    if result.code == "INVALID_ARGUMENT":
        missing = [f for f in want.fields if f not in result.details]
        if missing:
            problems.append(f"message does not name {missing}")
        if want.violations:
            problems += check_violations(result.trailing, want.fields)
    missing = [s for s in want.contains if s not in result.details]
    if missing:
        problems.append(f"message does not contain {missing}")
    return problems


def check_violations(trailing, fields):
    raw = trailing.get("payments-field-violations-bin")
    if raw is None:
        return ["no payments-field-violations-bin trailer"]
    listed = [v.field for v in PB["errors_pb2"].FieldViolations.FromString(raw).violations]
    missing = [f for f in fields if not any(x == f or x.startswith((f + ".", f + "[")) for x in listed)]
    return [f"payments-field-violations-bin lacks {missing} (has {listed})"] if missing else []


# ----------------------------------------------------------------------------------------------
# gRPC calls (grpcio, bytes in and out)
# ----------------------------------------------------------------------------------------------

class Stack:
    def __init__(self, args):
        self.addresses = {"command": args.command, "query": args.query}
        if args.dispatcher:
            self.addresses["dispatcher"] = args.dispatcher
        self.keys = {"key": args.key, "read-only": args.read_only_key, "write-only": args.write_only_key,
                     "revoked": args.revoked_key}
        self.max_amount = args.max_amount
        self.channels = {name: grpc.insecure_channel(addr) for name, addr in self.addresses.items()}
        self.fixtures = {}

    def call(self, service, path, body, metadata=None, timeout=DEADLINE, streaming=False):
        if metadata is None:
            metadata = auth(self.keys["key"])
        channel = self.channels[service]
        try:
            if streaming:
                stream = channel.unary_stream(path)(body, metadata=metadata, timeout=timeout)
                messages = list(stream)
                return Result("OK", stream.details() or "", dict(stream.trailing_metadata() or ()), messages)
            response, call = channel.unary_unary(path).with_call(body, metadata=metadata, timeout=timeout)
            return Result("OK", call.details() or "", dict(call.trailing_metadata() or ()), [response])
        except grpc.RpcError as error:
            return Result(error.code().name, error.details() or "", dict(error.trailing_metadata() or ()), [])

    def unhealthy(self):
        """Every service must say SERVING within 2 s on a fresh connection."""
        sick = []
        for name, addr in self.addresses.items():
            with grpc.insecure_channel(addr, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
                try:
                    status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2).status
                    if status != health_pb2.HealthCheckResponse.SERVING:
                        sick.append(f"{name}: {health_pb2.HealthCheckResponse.ServingStatus.Name(status)}")
                except grpc.RpcError as error:
                    sick.append(f"{name}: {error.code().name} {error.details()}")
        return sick

    def await_recovery(self, seconds=30):
        deadline = time.monotonic() + seconds
        while self.unhealthy() and time.monotonic() < deadline:
            time.sleep(0.5)


def auth(key):
    return (("authorization", "Bearer " + key),)


def rpc_case(stack, category, name, method, body, want, metadata=None):
    """A call of a payments method; `body` is a request dict, raw bytes, or a function of neither."""
    service, path, desc, streaming = METHODS[method]

    def run():
        payload = body() if callable(body) else body
        if isinstance(payload, dict):
            payload = encode(desc, payload)
        result = stack.call(service, path, payload, metadata, want.timeout, streaming)
        return observe(result), judge(result, want)
    return Case(category, f"{method}: {name}", run)


def raw_case(stack, category, name, service, path, body, want, metadata=None):
    def run():
        result = stack.call(service, path, body, metadata, want.timeout)
        return observe(result), judge(result, want)
    return Case(category, f"{service} {path}: {name}", run)


def observe(result):
    text = result.details if len(result.details) <= 300 else result.details[:300] + "..."
    return f"{result.code}: {text}" if text else result.code


# ----------------------------------------------------------------------------------------------
# Fixtures: a few real payments and a real page token
# ----------------------------------------------------------------------------------------------

def new_key(tag_="bad"):
    return f"{tag_}-{uuid.uuid4()}"


def order(key=None):
    return {"idempotency_key": key or new_key(), "amount": {"currency": "EUR", "amount_minor": 1234},
            "payer": {"account_id": "acct_bad_payer", "name": "Payer"},
            "payee": {"account_id": "acct_bad_payee", "name": "Payee"},
            "description": "bad-input suite", "metadata": {"suite": "bad-input"}}


def prepare(stack):
    submit = PB["command_service_pb2"].SubmitPaymentResponse
    keys, ids = [], []
    for _ in range(3):
        key = new_key("fixture")
        result = stack.call("command", COMMAND + "SubmitPayment", encode(METHODS["SubmitPayment"][2], order(key)))
        if result.code != "OK":
            raise SystemExit(f"setup: SubmitPayment failed: {observe(result)}")
        keys.append(key)
        ids.append(submit.FromString(result.messages[0]).payment.payment_id)
    get = METHODS["GetPayment"][2]
    for payment_id in ids:
        result = stack.call("query", QUERY + "GetPayment", encode(get, {"payment_id": payment_id, "min_version": 1}))
        if result.code != "OK":
            raise SystemExit(f"setup: GetPayment {payment_id} failed: {observe(result)}")
    listed = stack.call("query", QUERY + "ListPayments", encode(METHODS["ListPayments"][2], {"page_size": 1}))
    token = PB["query_service_pb2"].ListPaymentsResponse.FromString(listed.messages[0]).next_page_token \
        if listed.code == "OK" else ""
    if not token:
        raise SystemExit(f"setup: ListPayments gave no next_page_token: {observe(listed)}")
    stack.fixtures.update(keys=keys, ids=ids, token=token)
    prepare_refunds(stack)


UNKNOWN_PAYMENT = "pay_" + "0" * 32
UNKNOWN_REFUND = "ref_" + "0" * 32
DECLINED_AMOUNT = 402  # the provider sandbox declines this amount (its default --decline-amount)


def settle(stack, payment_id, seconds=60):
    """The payment's status name once WatchPayment has ended (after a terminal state), or None."""
    result = stack.call("query", QUERY + "WatchPayment", encode(METHODS["WatchPayment"][2], {"payment_id": payment_id}),
                        timeout=seconds, streaming=True)
    if result.code != "OK" or not result.messages:
        return None
    payment = PB["payment_pb2"].Payment.FromString(result.messages[-1])
    return PB["payment_pb2"].PaymentStatus.Name(payment.status)


def prepare_refunds(stack):
    """A charged (SUCCEEDED) payment, a declined (FAILED) one and a refund of the charged one, for
    the RefundPayment / GetRefund cases that need them. Without a charged payment (no provider
    charged it within 60 s) those cases are left out: the rest check nothing that needs one."""
    submit = PB["command_service_pb2"].SubmitPaymentResponse
    ids = {}
    for name, amount in [("charged", 1234), ("declined", DECLINED_AMOUNT)]:
        request = dict(order(new_key(f"fixture-{name}")), amount={"currency": "EUR", "amount_minor": amount})
        result = stack.call("command", COMMAND + "SubmitPayment", encode(METHODS["SubmitPayment"][2], request))
        if result.code != "OK":
            raise SystemExit(f"setup: SubmitPayment ({name}) failed: {observe(result)}")
        ids[name] = submit.FromString(result.messages[0]).payment.payment_id
    statuses = {name: settle(stack, payment_id) for name, payment_id in ids.items()}
    charged = ids["charged"] if statuses["charged"] == "PAYMENT_STATUS_SUCCEEDED" else None
    declined = ids["declined"] if statuses["declined"] == "PAYMENT_STATUS_FAILED" else None
    for name, wanted in [("charged", "SUCCEEDED"), ("declined", "FAILED")]:
        if statuses[name] != "PAYMENT_STATUS_" + wanted:
            print(f"setup: the {name} payment {ids[name]} is {statuses[name]}, not {wanted}: "
                  f"the cases that need a {wanted} payment are left out", file=sys.stderr, flush=True)
    refund = None
    if charged:
        request = {"idempotency_key": new_key("fixture-refund"), "payment_id": charged, "amount_minor": 100,
                   "reason": "bad-input fixture", "currency": "EUR"}
        result = stack.call("command", COMMAND + "RefundPayment", encode(METHODS["RefundPayment"][2], request))
        if result.code != "OK":
            raise SystemExit(f"setup: RefundPayment of the SUCCEEDED payment {charged} failed: {observe(result)}")
        refund = PB["command_service_pb2"].RefundPaymentResponse.FromString(result.messages[0]).refund.refund_id
        get = encode(METHODS["GetRefund"][2], {"refund_id": refund})
        deadline = time.monotonic() + 10  # the read model gets it with the payment's event
        while (found := stack.call("query", QUERY + "GetRefund", get)).code == "NOT_FOUND" \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        if found.code != "OK":
            raise SystemExit(f"setup: GetRefund {refund} failed: {observe(found)}")
    stack.fixtures.update(charged=charged, declined=declined, refund=refund)


def refund_request(stack, payment_id=None, **fields):
    """A valid RefundPaymentRequest with a new key: of 1 minor unit of the charged payment (OK) when
    there is one, else of a well-formed unknown payment (NOT_FOUND); see `refund_valid`."""
    target = payment_id or stack.fixtures["charged"] or UNKNOWN_PAYMENT
    return dict({"idempotency_key": new_key("refund"), "payment_id": target, "amount_minor": 1}, **fields)


def refund_valid(stack):
    """What a valid `refund_request(stack)` answers."""
    return OK if stack.fixtures["charged"] else expect("NOT_FOUND", contains=(UNKNOWN_PAYMENT,))


# ----------------------------------------------------------------------------------------------
# numeric: every numeric field at its type's extremes and its documented boundaries
# ----------------------------------------------------------------------------------------------

MIN_TIMESTAMP, MAX_TIMESTAMP = -62135596800, 253402300799  # 0001-01-01, 9999-12-31T23:59:59
EXTREMES = {FD.TYPE_INT32: (0, -1, -(1 << 31), (1 << 31) - 1), FD.TYPE_INT64: (0, -1, -(1 << 63), (1 << 63) - 1),
            FD.TYPE_UINT32: (0, -1, (1 << 32) - 1), FD.TYPE_UINT64: (0, -1, (1 << 64) - 1)}


def numeric_rules(stack):
    """(method, path) -> (base request, value -> Expect, extra boundary values), from docs/api.md."""
    top = stack.max_amount
    existing = stack.fixtures["ids"][0]

    def maybe(name):  # the docs are silent: accepted, or refused naming the field
        return expect("OK", "INVALID_ARGUMENT", fields=(name,))

    def timestamp(name, nanos):
        if nanos:
            return ({}, lambda v: OK if 0 <= v <= 999_999_999 else invalid(name), (999_999_999, 1_000_000_000))
        return ({}, lambda v: OK if MIN_TIMESTAMP <= v <= MAX_TIMESTAMP else invalid(name),
                (MIN_TIMESTAMP, MIN_TIMESTAMP - 1, MAX_TIMESTAMP, MAX_TIMESTAMP + 1))
    return {
        ("SubmitPayment", "amount.amount_minor"): (
            None, lambda v: OK if 0 < v <= top else invalid("amount.amount_minor", violations=True),
            (1, top, top + 1)),
        ("GetPayment", "min_version"): (
            {"payment_id": existing},
            lambda v: invalid("min_version") if v < 0 else OK if v <= 1 else expect("DEADLINE_EXCEEDED", timeout=2),
            (1, 1000)),
        ("ListPayments", "statuses"): ({}, lambda v: OK if 1 <= v <= 6 else maybe("statuses"), (1, 6)),
        ("ListEvents", "page_size"): ({}, lambda v: OK if v >= 0 else invalid("page_size"), (1, 1000, 1001)),
        ("ListPayments", "page_size"): ({}, lambda v: OK if v >= 0 else maybe("page_size"), (1, 500, 501)),
        ("ListPayments", "created_after.seconds"): timestamp("created_after", False),
        ("ListPayments", "created_after.nanos"): timestamp("created_after", True),
        ("ListPayments", "created_before.seconds"): timestamp("created_before", False),
        ("ListPayments", "created_before.nanos"): timestamp("created_before", True),
        # Validation comes first, then the payment lookup: on an unknown payment a positive amount
        # is NOT_FOUND (no maximum applies to refunds: the payment's amount bounds them, which is
        # the dispatcher's check, in the refund cases).
        ("RefundPayment", "amount_minor"): (
            lambda: refund_request(stack, UNKNOWN_PAYMENT),
            lambda v: expect("NOT_FOUND", contains=(UNKNOWN_PAYMENT,)) if v > 0
            else invalid("amount_minor", violations=True),
            (1, top, top + 1)),
    }


def numeric_cases(stack):
    rules = numeric_rules(stack)
    for method, (_, _, desc, _) in METHODS.items():
        for path, field, names, part in leaves(desc):
            if field.type not in VARINT_TYPES or field.type == FD.TYPE_BOOL:
                continue
            if (method, path) not in rules:
                raise SystemExit(f"no documented rule for the numeric field {method} {path}: add one")
            base, rule, extra = rules[(method, path)]
            if field.type == FD.TYPE_ENUM:
                top = max(v.number for v in field.enum_type.values)
                values = (0, -1, -(1 << 31), (1 << 31) - 1, top + 1)
            else:
                values = EXTREMES[field.type]
            for value in dict.fromkeys(values + extra):
                body = (lambda d=desc, n=names, p=part, v=value, b=base:
                        assign(order() if b is None else b() if callable(b) else dict(b), d, n, p, v))
                yield rpc_case(stack, "numeric", f"{path} = {value}", method, body, rule(value))


# ----------------------------------------------------------------------------------------------
# strings: every string field with hostile content
# ----------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class TextRule:
    name: str                  # what the status message must name
    required: bool
    limit: int = 0             # code points; free text (any Unicode) when set
    bad: tuple = ("INVALID_ARGUMENT",)


TEXT_RULES = {  # (method, path) -> rule, from docs/api.md
    ("SubmitPayment", "idempotency_key"): TextRule("idempotency_key", True),
    ("SubmitPayment", "amount.currency"): TextRule("amount.currency", True),
    ("SubmitPayment", "payer.account_id"): TextRule("payer.account_id", True, 64),
    ("SubmitPayment", "payer.name"): TextRule("payer.name", False, 200),
    ("SubmitPayment", "payee.account_id"): TextRule("payee.account_id", True, 64),
    ("SubmitPayment", "payee.name"): TextRule("payee.name", False, 200),
    ("SubmitPayment", "description"): TextRule("description", False, 500),
    ("SubmitPayment", "metadata.key"): TextRule("metadata", True, 40),
    ("SubmitPayment", "metadata.value"): TextRule("metadata", False, 500),
    ("SubmitPayment", "provider"): TextRule("provider", False),
    ("CancelPayment", "payment_id"): TextRule("payment_id", True),
    ("RefundPayment", "idempotency_key"): TextRule("idempotency_key", True),
    ("RefundPayment", "payment_id"): TextRule("payment_id", True),
    ("RefundPayment", "reason"): TextRule("reason", False, 200),
    ("RefundPayment", "currency"): TextRule("currency", False),
    ("GetRefund", "refund_id"): TextRule("refund_id", True),
    ("GetPayment", "payment_id"): TextRule("payment_id", True),
    ("GetPayment", "idempotency_key"): TextRule("idempotency_key", True),
    ("ListPayments", "page_token"): TextRule("page_token", False),
    ("ListEvents", "after"): TextRule("after", False),
    # docs/api.md gives WatchPayment no validation rule: a bad ID may also be NOT_FOUND.
    ("WatchPayment", "payment_id"): TextRule("payment_id", True, bad=("INVALID_ARGUMENT", "NOT_FOUND")),
}

HOSTILE = [  # (name, value, decodes): values that break every rule
    ("NUL inside", "a\x00b", True),
    ("invalid UTF-8 0xFF 0xFE", b"a\xff\xfeb", False),
    ("overlong UTF-8 C0 AF", b"a\xc0\xafb", False),
    ("UTF-8 surrogate ED A0 80", b"a\xed\xa0\x80b", False),
    ("truncated UTF-8 E2 82", b"a\xe2\x82", False),
    ("'a' + 5,000 combining marks (10 KB, under the order limit)", "a" + "\u0301" * 5000, True),
    ("1 MB of 'a'", lambda: "a" * MiB, True),
    ("'a' + 600,000 combining marks (1.2 MB)", lambda: "a" + "\u0301" * 600_000, True),
]

AT_LIMIT = [  # (name, code-point source): free text that must pass at exactly the limit
    ("emoji", "\U0001F600"),
    ("RTL Hebrew/Arabic", "\u05e9\u05dc\u05d5\u05dd\u0645\u0631\u062d\u0628\u0627"),
    ("ZWJ family sequences", "\U0001F468\u200d\U0001F469\u200d\U0001F467\u200d\U0001F466"),
    ("'a' + combining marks", "a" + "\u0301" * 7),
]


def text_cases(stack):
    # The other fields of the request each string is put in, and what the request answers when
    # the string is valid (RefundPayment: a refund of 1 of the charged payment, or NOT_FOUND).
    bases = {"SubmitPayment": (order, OK), "RefundPayment": (lambda: refund_request(stack), refund_valid(stack))}
    for method, (_, _, desc, _) in METHODS.items():
        base, valid = bases.get(method, (dict, OK))
        for path, field, names, part in leaves(desc):
            if field.type != FD.TYPE_STRING:
                continue
            if (method, path) not in TEXT_RULES:
                raise SystemExit(f"no documented rule for the string field {method} {path}: add one")
            rule = TEXT_RULES[(method, path)]
            for name, value, want in text_variants(rule, method in TRAILER_METHODS, valid):
                body = (lambda b=base, d=desc, n=names, p=part, v=value:
                        assign(b(), d, n, p, v() if callable(v) else v))
                yield rpc_case(stack, "strings", f"{path} {name}", method, body, want)


TRAILER_METHODS = {"SubmitPayment", "RefundPayment"}  # their INVALID_ARGUMENT lists fields in a trailer


def text_variants(rule, trailer, valid=OK):
    """(name, value, Expect): a value that breaks a rule must be refused naming the field (for
    SubmitPayment and RefundPayment also in the violations trailer); one that is not valid UTF-8
    does not decode, and the decoding error names the field. A valid value answers `valid`."""
    broken = expect(*rule.bad, fields=(rule.name,), violations=trailer)
    undecodable = expect(*rule.bad, fields=(rule.name.split(".")[-1],))
    yield "empty", "", broken if rule.required else valid
    for name, value, decodes in HOSTILE:
        yield name, value, broken if decodes else undecodable
    if rule.limit:
        for name, unit in AT_LIMIT:
            yield f"{name} at exactly {rule.limit} code points", (unit * rule.limit)[:rule.limit], valid
        yield f"emoji at {rule.limit + 1} code points", "\U0001F600" * (rule.limit + 1), broken
        families = rule.limit // 7 + 1
        yield (f"{families} ZWJ families ({families * 7} code points, {families} graphemes)",
               "\U0001F468\u200d\U0001F469\u200d\U0001F467\u200d\U0001F466" * families, broken)


# ----------------------------------------------------------------------------------------------
# submit: SubmitPayment's documented rules
# ----------------------------------------------------------------------------------------------

REFUSED_CURRENCIES = ["XXX", "XTS", "XAU", "XAG", "XPD", "XPT", "XBA", "XBB", "XBC", "XBD", "XDR", "XSU",
                      "XUA", "BOV", "CHE", "CHW", "CLF", "COU", "MXV", "USN", "UYI", "UYW", "HRK", "SLL",
                      "ZWL", "CUC", "eur", "Eur", "EU", "EURO", "E1R", "ABC", " EUR"]


def submit_cases(stack):
    def case(name, mutate, want):
        def body():
            request = order()
            mutate(request)
            return request
        return rpc_case(stack, "submit", name, "SubmitPayment", body, want)

    def field(name, **kw):
        return invalid(name, violations=True, **kw)

    def set_(path, value):
        def mutate(request):
            target = request
            for name in path[:-1]:
                target = target[name]
            target[path[-1]] = value
        return mutate

    visible = "".join(chr(c) for c in range(0x21, 0x7F))
    yield case("idempotency_key of 255 visible ASCII characters",
               lambda r: r.update(idempotency_key=(uuid.uuid4().hex + visible * 3)[:255]), OK)
    yield case("idempotency_key of 256 characters", set_(["idempotency_key"], "k" * 256), field("idempotency_key"))
    for name, key in [("a space", "has space"), ("a tab", "has\ttab"), ("DEL", "del\x7f"), ("'é'", "caf\u00e9"),
                      ("an emoji", "key\U0001F600"), ("a newline", "line\nbreak")]:
        yield case(f"idempotency_key with {name}", set_(["idempotency_key"], key + uuid.uuid4().hex),
                   field("idempotency_key"))
    for code in REFUSED_CURRENCIES:
        yield case(f"currency {code!r}", set_(["amount", "currency"], code), field("amount.currency"))
    for code in ["JPY", "BHD", "USD", "CHF"]:
        yield case(f"currency {code}", set_(["amount", "currency"], code), OK)
    for part in ["amount", "payer", "payee"]:
        yield case(f"no {part}", lambda r, p=part: r.pop(p), field(part))
    yield case("payer.account_id == payee.account_id", set_(["payee", "account_id"], "acct_bad_payer"),
               field("payee.account_id"))
    for name, char in [("\\x01", "\x01"), ("newline", "\n"), ("DEL", "\x7f"), ("NEL U+0085", "\u0085"),
                       ("ESC", "\x1b")]:
        yield case(f"payer.account_id with control character {name}", set_(["payer", "account_id"], f"acct{char}x"),
                   field("payer.account_id"))
    yield case("20 metadata entries", set_(["metadata"], {f"k{i}": "v" for i in range(20)}), OK)
    yield case("21 metadata entries", set_(["metadata"], {f"k{i}": "v" for i in range(21)}), field("metadata"))
    yield case("provider 'sandbox'", set_(["provider"], "sandbox"), OK)
    yield case("unknown provider", set_(["provider"], "no-such-provider"), field("provider"))
    yield case("provider of 65 bytes", set_(["provider"], "p" * 65), field("provider"))
    three = [set_(["amount", "currency"], "ABC"), set_(["payee", "account_id"], "acct_bad_payer"),
             set_(["description"], "d" * 501)]
    yield case("three bad fields at once", lambda r: [mutate(r) for mutate in three],
               invalid("amount.currency", "payee.account_id", "description", violations=True))
    yield rpc_case(stack, "submit", "empty request", "SubmitPayment", b"",
                   invalid("idempotency_key", "amount", "payer", "payee", violations=True))
    yield from size_limit_cases(stack)
    yield from idempotency_cases(stack)


def with_unknown(request, size, method="SubmitPayment"):
    return encode(METHODS[method][2], request) + ld(1000, b"u" * size)


def size_limit_cases(stack, method="SubmitPayment", category="submit", make=order, valid=OK):
    """The 64 KiB limit on the encoded request (unknown fields count) and the 4 MiB transport limit."""
    what = "order" if method == "SubmitPayment" else "request"
    yield rpc_case(stack, category, f"{what} + 60 KB unknown field (under 64 KiB)", method,
                   lambda: with_unknown(make(), 60_000, method), valid)
    yield rpc_case(stack, category, f"{what} + 70 KB unknown field (over 64 KiB)", method,
                   lambda: with_unknown(make(), 70_000, method), expect("INVALID_ARGUMENT"))
    yield rpc_case(stack, category, f"{what} + unknown varint and group fields", method,
                   lambda: encode(METHODS[method][2], make()) + tag(900, 0) + varint(7)
                   + tag(901, 3) + tag(1, 0) + b"\x01" + tag(901, 4), valid)

    def exactly(size):
        request = make()
        for pad in range(size - 200, size):
            body = with_unknown(request, pad, method)
            if len(body) == size:
                return body
        raise AssertionError(size)
    yield rpc_case(stack, category, f"{what} padded to exactly 4 MiB (under the transport limit)", method,
                   lambda: exactly(4 * MiB), expect("INVALID_ARGUMENT"))
    yield rpc_case(stack, "size", f"{what} padded to 4 MiB + 1", method, lambda: exactly(4 * MiB + 1),
                   expect("RESOURCE_EXHAUSTED", contains=(str(4 * MiB + 1),)))


def idempotency_cases(stack):
    key = new_key("conflict")
    first = dict(order(key), metadata={"a": "1", "b": "2"})
    reordered = dict(first, metadata={"b": "2", "a": "1"})
    changed = dict(first, amount={"currency": "EUR", "amount_minor": 999})
    yield rpc_case(stack, "submit", "first use of a key", "SubmitPayment", first, OK)
    yield rpc_case(stack, "submit", "same key, same request (replay)", "SubmitPayment", first, OK)
    yield rpc_case(stack, "submit", "same key, metadata entries in another order (replay)", "SubmitPayment",
                   reordered, OK)
    yield rpc_case(stack, "submit", "same key, different amount", "SubmitPayment", changed,
                   expect("ALREADY_EXISTS", contains=(key,)))


# ----------------------------------------------------------------------------------------------
# refund: RefundPayment's documented rules (docs/api.md, RefundPayment)
# ----------------------------------------------------------------------------------------------

def refund_cases(stack):
    """Validation comes first (every bad field named, also in the trailer), then the command
    service's lookup of the caller's payment (NOT_FOUND), then the dispatcher's decision on the
    stored payment (FAILED_PRECONDITION, ALREADY_EXISTS). A valid request refunds 1 minor unit of
    the charged payment (OK), or, without one, names an unknown payment (NOT_FOUND)."""
    charged, declined, ids, keys = (stack.fixtures[k] for k in ("charged", "declined", "ids", "keys"))
    valid = refund_valid(stack)

    def case(name, want, payment_id=None, metadata=None, **fields):
        return rpc_case(stack, "refund", name, "RefundPayment", lambda: refund_request(stack, payment_id, **fields),
                        want, metadata)

    def field(*names, **kw):
        return invalid(*names, violations=True, **kw)

    visible = "".join(chr(c) for c in range(0x21, 0x7F))
    yield case("idempotency_key of 255 visible ASCII characters", valid,
               idempotency_key=(uuid.uuid4().hex + visible * 3)[:255])
    yield case("idempotency_key of 256 characters", field("idempotency_key"), idempotency_key="k" * 256)
    for name, key in [("a space", "has space"), ("a tab", "has\ttab"), ("DEL", "del\x7f"), ("'é'", "caf\u00e9"),
                      ("an emoji", "key\U0001F600"), ("a newline", "line\nbreak"), ("\\x01", "ctl\x01")]:
        yield case(f"idempotency_key with {name}", field("idempotency_key"), idempotency_key=key + uuid.uuid4().hex)
    yield case("idempotency_key of a payment (refund keys are separate)", valid, idempotency_key=keys[0])
    for code in REFUSED_CURRENCIES + ["E\x00R", "EUR\n"]:
        yield case(f"currency {code!r}", field("currency"), currency=code)
    yield case("currency EUR (the payment's)", valid, currency="EUR")
    yield case("reason with control characters other than NUL (allowed)", valid,
               reason="tab\there, new\nline, \x01\x1b\x7f\u0085\u202e")
    yield case("reason of 201 ASCII characters", field("reason"), reason="r" * 201)
    yield case("five bad fields at once", field("idempotency_key", "payment_id", "amount_minor", "reason", "currency"),
               idempotency_key="has space", payment_id="pay_x", amount_minor=0, reason="r" * 201, currency="ABC")
    yield rpc_case(stack, "refund", "empty request", "RefundPayment", b"",
                   field("idempotency_key", "payment_id", "amount_minor"))
    yield case("only payment_id (no key, no amount)", field("idempotency_key", "amount_minor"),
               idempotency_key="", amount_minor=0)
    # A bad field is refused before the payment is looked up: nothing about it leaks.
    yield case("bad currency of a well-formed unknown payment", field("currency"), UNKNOWN_PAYMENT, currency="ABC")
    yield case("negative amount of a well-formed unknown payment", field("amount_minor"), UNKNOWN_PAYMENT,
               amount_minor=-5)
    if charged:
        for code in ["USD", "JPY", "BHD"]:
            yield case(f"currency {code}, the payment's is EUR", expect("FAILED_PRECONDITION", contains=("EUR", code)),
                       currency=code)
        yield case("amount_minor 1234, the whole payment (100 of it is already refunded)",
                   expect("FAILED_PRECONDITION", contains=("exceeds", charged)), amount_minor=1234)
        yield case(f"amount_minor {stack.max_amount} (the maximum, far more than the payment)",
                   expect("FAILED_PRECONDITION", contains=("exceeds",)), amount_minor=stack.max_amount)
        # No maximum applies to a refund (a lowered one must not block a full refund): the
        # payment's amount bounds it.
        yield case(f"amount_minor {stack.max_amount + 1} (over SubmitPayment's maximum)",
                   expect("FAILED_PRECONDITION", contains=("exceeds",)), amount_minor=stack.max_amount + 1)
        yield case("amount_minor 2^63-1", expect("FAILED_PRECONDITION", contains=("exceeds",)),
                   amount_minor=(1 << 63) - 1)
        yield from refund_idempotency_cases(stack, charged, ids[1])
    if declined:
        yield case("a FAILED (declined) payment", expect("FAILED_PRECONDITION", contains=("FAILED",)), declined)
        yield case("a FAILED payment, with another currency", expect("FAILED_PRECONDITION"), declined, currency="USD")
        yield case("a FAILED payment, with a bad currency", field("currency"), declined, currency="ABC")

    def just_submitted():
        result = stack.call("command", COMMAND + "SubmitPayment", encode(METHODS["SubmitPayment"][2], order()))
        if result.code != "OK":
            raise RuntimeError(f"SubmitPayment failed: {observe(result)}")
        payment = PB["command_service_pb2"].SubmitPaymentResponse.FromString(result.messages[0]).payment
        return refund_request(stack, payment.payment_id)
    # Racing the charge: not charged yet (FAILED_PRECONDITION), or charged already (OK).
    yield rpc_case(stack, "refund", "a payment submitted a moment ago", "RefundPayment", just_submitted,
                   expect("FAILED_PRECONDITION", "OK"))
    yield from size_limit_cases(stack, "RefundPayment", "refund", lambda: refund_request(stack), valid)


def refund_idempotency_cases(stack, charged, other_payment):
    service, path, desc, _ = METHODS["RefundPayment"]
    # At most 40 characters: the ALREADY_EXISTS message quotes a key's first 40 only (docs/api.md
    # shows it as '…'), so a longer one would not appear whole.
    key = new_key("rc")
    first = {"idempotency_key": key, "payment_id": charged, "amount_minor": 2, "reason": "first",
             "currency": "EUR"}
    seen = {}

    def replay_case(name, request, replayed):
        def run():
            result = stack.call(service, path, encode(desc, request))
            problems = judge(result, OK)
            if result.code == "OK":
                refund = PB["command_service_pb2"].RefundPaymentResponse.FromString(result.messages[0])
                if refund.replayed != replayed:
                    problems.append(f"replayed = {refund.replayed}, expected {replayed}")
                if refund.refund.amount.amount_minor != 2 or refund.refund.payment_id != charged:
                    problems.append(f"the refund is {refund.refund.amount.amount_minor} of {refund.refund.payment_id}")
                refund_id = seen.setdefault("refund_id", refund.refund.refund_id)
                if refund.refund.refund_id != refund_id:
                    problems.append(f"refund {refund.refund.refund_id}, the first call made {refund_id}")
            return observe(result), problems
        return Case("refund", f"RefundPayment: {name}", run)
    # Named alike, so that --only "same key" keeps the first use the others depend on.
    yield replay_case("same key, first use", first, False)
    yield replay_case("same key, same request (replay)", first, True)
    reused = expect("ALREADY_EXISTS", contains=(key, "(refund ref_"))
    for name, change in [("a different amount", {"amount_minor": 3}), ("a different reason", {"reason": "second"}),
                         ("currency left out", {"currency": ""}), ("another payment of the caller",
                                                                   {"payment_id": other_payment})]:
        yield rpc_case(stack, "refund", f"same key, {name}", "RefundPayment", dict(first, **change), reused)
    # The command service looks the payment up before the dispatcher sees the key.
    yield rpc_case(stack, "refund", "same key, a well-formed unknown payment", "RefundPayment",
                   dict(first, payment_id=UNKNOWN_PAYMENT), expect("NOT_FOUND"))


# ----------------------------------------------------------------------------------------------
# lookup: GetPayment, WatchPayment, CancelPayment, RefundPayment and GetRefund by bad, unknown
# and foreign IDs
# ----------------------------------------------------------------------------------------------

def lookup_cases(stack):
    ids, keys = stack.fixtures["ids"], stack.fixtures["keys"]
    unknown = "pay_" + "0" * 32
    yield rpc_case(stack, "lookup", "existing payment_id", "GetPayment", {"payment_id": ids[0]}, OK)
    yield rpc_case(stack, "lookup", "existing idempotency_key", "GetPayment", {"idempotency_key": keys[0]}, OK)
    yield rpc_case(stack, "lookup", "well-formed unknown payment_id", "GetPayment", {"payment_id": unknown},
                   expect("NOT_FOUND"))
    yield rpc_case(stack, "lookup", "unknown idempotency_key", "GetPayment", {"idempotency_key": new_key()},
                   expect("NOT_FOUND"))
    hex32 = ids[0][4:]
    for name, value in [("no pay_ prefix", hex32), ("'PAY_' prefix", "PAY_" + hex32), ("31 hex digits", "pay_" + hex32[:31]),
                        ("33 hex digits", "pay_" + hex32 + "0"), ("a non-hex digit", "pay_" + hex32[:31] + "g"),
                        ("a UUID with dashes", "pay_" + str(uuid.UUID(hex32))), ("SQL", "pay_' OR '1'='1"),
                        ("path traversal", "../../etc/passwd"), ("a trailing newline", ids[0] + "\n")]:
        yield rpc_case(stack, "lookup", f"payment_id with {name}", "GetPayment", {"payment_id": value},
                       invalid("payment_id"))
        yield rpc_case(stack, "lookup", f"payment_id with {name}", "CancelPayment", {"payment_id": value},
                       invalid("payment_id"))
    yield rpc_case(stack, "lookup", "well-formed unknown payment_id", "CancelPayment", {"payment_id": unknown},
                   expect("NOT_FOUND"))
    yield rpc_case(stack, "lookup", "idempotency_key with a space", "GetPayment", {"idempotency_key": "a b"},
                   invalid("idempotency_key"))
    yield rpc_case(stack, "lookup", "idempotency_key of 256 characters", "GetPayment", {"idempotency_key": "k" * 256},
                   invalid("idempotency_key"))
    yield rpc_case(stack, "lookup", "neither payment_id nor idempotency_key", "GetPayment", b"",
                   expect("INVALID_ARGUMENT"))
    yield rpc_case(stack, "lookup", "both oneof members on the wire (the last wins: a valid key)", "GetPayment",
                   ld(1, b"garbage") + ld(2, keys[0].encode()), OK)
    yield rpc_case(stack, "lookup", "well-formed unknown payment (waits 5 s)", "WatchPayment", {"payment_id": unknown},
                   expect("NOT_FOUND"))
    if stack.keys["read-only"]:
        other = auth(stack.keys["read-only"])
        yield rpc_case(stack, "lookup", "another client's payment_id", "GetPayment", {"payment_id": ids[0]},
                       expect("NOT_FOUND"), other)
        yield rpc_case(stack, "lookup", "another client's idempotency_key", "GetPayment", {"idempotency_key": keys[0]},
                       expect("NOT_FOUND"), other)
    yield from refund_lookup_cases(stack)


BAD_ID_SHAPES = [  # (name, prefix + 32 hex digits -> a malformed ID)
    ("no prefix", lambda p, h: h), ("an upper-case prefix", lambda p, h: p.upper() + h),
    ("31 hex digits", lambda p, h: p + h[:31]), ("33 hex digits", lambda p, h: p + h + "0"),
    ("a non-hex digit", lambda p, h: p + h[:31] + "g"), ("upper-case hex digits", lambda p, h: p + "ABCDEF01" * 4),
    ("a UUID with dashes", lambda p, h: p + str(uuid.UUID(h))), ("SQL", lambda p, h: p + "' OR '1'='1"),
    ("path traversal", lambda p, h: "../../etc/passwd"), ("a trailing newline", lambda p, h: p + h + "\n"),
    ("a leading space", lambda p, h: " " + p + h), ("a NUL after it", lambda p, h: p + h + "\x00"),
]


def refund_lookup_cases(stack):
    ids, refund = stack.fixtures["ids"], stack.fixtures["refund"]
    payment_hex, refund_hex = ids[0][4:], (refund or "ref_" + uuid.uuid4().hex)[4:]
    for name, shape in BAD_ID_SHAPES + [("a refund's prefix", lambda p, h: "ref_" + h)]:
        yield rpc_case(stack, "lookup", f"payment_id with {name}", "RefundPayment",
                       lambda v=shape("pay_", payment_hex): refund_request(stack, v),
                       invalid("payment_id", violations=True))
    for name, shape in BAD_ID_SHAPES + [("a payment's prefix", lambda p, h: "pay_" + h)]:
        yield rpc_case(stack, "lookup", f"refund_id with {name}", "GetRefund", {"refund_id": shape("ref_", refund_hex)},
                       invalid("refund_id"))
    yield rpc_case(stack, "lookup", "well-formed unknown payment_id", "RefundPayment",
                   lambda: refund_request(stack, UNKNOWN_PAYMENT), expect("NOT_FOUND", contains=(UNKNOWN_PAYMENT,)))
    yield rpc_case(stack, "lookup", "well-formed unknown refund_id", "GetRefund", {"refund_id": UNKNOWN_REFUND},
                   expect("NOT_FOUND", contains=(UNKNOWN_REFUND,)))
    yield rpc_case(stack, "lookup", "no refund_id", "GetRefund", b"", invalid("refund_id"))
    if refund:
        yield rpc_case(stack, "lookup", "existing refund_id", "GetRefund", {"refund_id": refund}, OK)
        yield rpc_case(stack, "lookup", "well-formed refund_id of a payment's hex digits (no such refund)", "GetRefund",
                       {"refund_id": "ref_" + stack.fixtures["charged"][4:]}, expect("NOT_FOUND"))
    if stack.keys["read-only"] and refund:
        yield rpc_case(stack, "lookup", "another client's refund_id", "GetRefund", {"refund_id": refund},
                       expect("NOT_FOUND"), auth(stack.keys["read-only"]))
    if stack.keys["write-only"]:  # another client, allowed to write: the dev client's payments are not its own
        other = auth(stack.keys["write-only"])
        for name, payment_id in [("a payment", ids[0]), ("a charged payment", stack.fixtures["charged"])]:
            if payment_id:
                yield rpc_case(stack, "lookup", f"another client's payment_id ({name})", "RefundPayment",
                               lambda p=payment_id: refund_request(stack, p), expect("NOT_FOUND"), other)
        yield rpc_case(stack, "lookup", "another client's payment_id with amount_minor 0 (validation first)",
                       "RefundPayment", lambda: refund_request(stack, ids[0], amount_minor=0),
                       invalid("amount_minor", violations=True), other)


# ----------------------------------------------------------------------------------------------
# page-token: ListPayments tokens that this service did not issue for these filters
# ----------------------------------------------------------------------------------------------

def page_token_cases(stack):
    token = stack.fixtures["token"]
    bad = invalid("page_token")
    yield rpc_case(stack, "page-token", "the issued token, same filters", "ListPayments",
                   {"page_size": 1, "page_token": token}, OK)
    yield rpc_case(stack, "page-token", "the issued token with a statuses filter", "ListPayments",
                   {"statuses": [4], "page_size": 1, "page_token": token}, bad)
    yield rpc_case(stack, "page-token", "the issued token with created_after", "ListPayments",
                   {"created_after": {"seconds": 1}, "page_size": 1, "page_token": token}, bad)

    def alter(i):
        return token[:i] + ("B" if token[i] == "A" else "A") + token[i + 1:]
    variants = {f"character {i} altered": alter(i % len(token)) for i in (0, 1, len(token) // 2, -2, -1)}
    variants.update({
        "last character dropped": token[:-1], "first character dropped": token[1:], "half": token[:len(token) // 2],
        "'A' appended": token + "A", "'=' appended": token + "=", "'==' appended": token + "==",
        "case swapped": token.swapcase(), "twice": token + token, "with a NUL": token + "\x00",
        "'AAAA'": "AAAA", "'////'": "////", "not base64 '%%%'": "%%%", "base64 of {}": "e30=",
        "base64url of a forged offset": base64.urlsafe_b64encode(b'{"offset":0,"id":"pay_x"}').decode(),
        "4 KB of base64": base64.b64encode(os.urandom(3072)).decode(), "a single '-'": "-", "'null'": "null",
    })
    for name, value in variants.items():
        if value != token:
            yield rpc_case(stack, "page-token", name, "ListPayments", {"page_size": 1, "page_token": value}, bad)


# ----------------------------------------------------------------------------------------------
# garbage: bodies that are not the method's message
# ----------------------------------------------------------------------------------------------

def nested_groups(depth):
    return tag(99, 3) * depth + tag(99, 4) * depth


GARBAGE = [  # (name, bytes, skippable: a conforming parser may accept it as unknown fields)
    ("truncated tag varint", b"\x80", False),
    ("tag without a length", b"\x0a", False),
    ("length past the end", b"\x0a\x05ab", False),
    ("unknown field claiming 4 GiB", tag(99, 2) + varint(1 << 32) + b"xyz", False),
    ("unknown field claiming 2^62 bytes", tag(99, 2) + varint(1 << 62), False),
    ("unknown field claiming 2^64-1 bytes", tag(99, 2) + b"\xff" * 9 + b"\x01", False),
    ("11-byte varint", tag(99, 0) + b"\xff" * 10 + b"\x01", False),
    ("wire type 6", tag(99, 6) + b"\x00", False),
    ("wire type 7", tag(99, 7) + b"\x00", False),
    ("field number 0", b"\x00\x00", False),
    ("field number 2^29 (too big)", varint((1 << 29) << 3) + b"\x00", False),
    ("1000 zero bytes", b"\x00" * 1000, False),
    ("END_GROUP without START_GROUP", tag(99, 4), False),
    ("START_GROUP never ended", tag(99, 3) + tag(1, 0) + b"\x01", False),
    ("mismatched END_GROUP", tag(99, 3) + tag(98, 4), False),
    ("truncated fixed64", tag(99, 1) + b"\x01\x02", False),
    ("100,000 nested groups", nested_groups(100_000), True),
    ("100,000 nested groups, unbalanced", tag(99, 3) * 100_000, False),
    ("text instead of protobuf", b'{"idempotency_key": "k"}', False),
]


def wrong_wire_type(field):
    """The field's number with a wire type its type can never use (and a well-formed value of
    that wire type): conforming parsers keep it as an unknown field, strict ones refuse it."""
    if field.type in (FD.TYPE_STRING, FD.TYPE_BYTES, FD.TYPE_MESSAGE):
        return tag(field.number, 0) + varint(1)
    return tag(field.number, 5) + b"\x01\x02\x03\x04"


# What an empty request answers (docs/api.md): a skippable garbage body may answer the same.
EMPTY_REQUEST = {"SubmitPayment": ("INVALID_ARGUMENT",), "CancelPayment": ("INVALID_ARGUMENT",),
                 "GetPayment": ("INVALID_ARGUMENT",), "ListPayments": ("OK",), "ListEvents": ("OK",),
                 "WatchPayment": ("INVALID_ARGUMENT", "NOT_FOUND"), "RefundPayment": ("INVALID_ARGUMENT",),
                 "GetRefund": ("INVALID_ARGUMENT",), "Check": ("OK",)}


def garbage_body_cases(stack, method, run_case, message, desc):
    for name, body, skippable in GARBAGE:
        codes = set(EMPTY_REQUEST[method]) | {"INVALID_ARGUMENT"} if skippable else {"INVALID_ARGUMENT"}
        yield run_case(name, body, expect(*codes, contains=(message,)))
    skipped = set(EMPTY_REQUEST[method]) | {"INVALID_ARGUMENT"}
    for field in desc.fields:  # every field, with a wire type it cannot have
        yield run_case(f"{field.name} with a wrong wire type", wrong_wire_type(field), expect(*skipped))
        yield run_case(f"{field.name} with a wrong wire type, then garbage", wrong_wire_type(field) + b"\x80",
                       expect("INVALID_ARGUMENT", contains=(message,)))
        if field.type == FD.TYPE_MESSAGE or (field.is_repeated and field.type in VARINT_TYPES):
            yield run_case(f"{field.name} holding a truncated varint", ld(field.number, b"\x80"),
                           expect("INVALID_ARGUMENT", contains=(message,)))
    yield run_case("empty body (an empty message)", b"", expect(*EMPTY_REQUEST[method]))


def garbage_cases(stack):
    for method, (_, _, desc, _) in METHODS.items():
        def run_case(name, body, want, method=method):
            return rpc_case(stack, "garbage", name, method, body, want)
        yield from garbage_body_cases(stack, method, run_case, desc.name, desc)
    check = health_pb2.HealthCheckRequest.DESCRIPTOR
    for service in stack.addresses:
        def run_case(name, body, want, service=service):
            return raw_case(stack, "garbage", name, service, HEALTH, body, want)
        yield from garbage_body_cases(stack, "Check", run_case, check.name, check)
        yield run_case("service name with invalid UTF-8", ld(1, b"\xff\xfe"), expect("INVALID_ARGUMENT", fields=("service",)))


# ----------------------------------------------------------------------------------------------
# auth: keys that are missing, malformed, unknown, revoked or lack the scope
# ----------------------------------------------------------------------------------------------

def auth_cases(stack):
    key = stack.keys["key"]
    prefix, key_id, secret = key.split("_", 2)
    wrong_secret = f"{prefix}_{key_id}_{secret[:-1]}{'B' if secret[-1] == 'A' else 'A'}"
    variants = [("no authorization header", ()), ("'Bearer' alone", (("authorization", "Bearer"),)),
                ("'Bearer x'", (("authorization", "Bearer x"),)),
                ("Basic credentials", (("authorization", "Basic " + base64.b64encode(b"user:pass").decode()),)),
                ("the key without 'Bearer '", (("authorization", key),)),
                ("'Token <key>'", (("authorization", "Token " + key),)),
                ("well-formed unknown key", auth("pk_f00dfeedf00dfeed_" + "A" * 43)),
                ("right key ID, wrong secret", auth(wrong_secret)),
                ("key ID only", auth(f"{prefix}_{key_id}")),
                ("key missing its last character", auth(key[:-1])),
                ("key with an extra character", auth(key + "x")),
                ("non-hex key ID", auth("pk_zzzzzzzzzzzzzzzz_" + secret)),
                ("8 KB key", auth("pk_" + "f" * 8000)),
                ("SQL in the key", auth("pk_' OR '1'='1_" + secret))]
    if stack.keys["revoked"]:
        variants.append(("revoked key", auth(stack.keys["revoked"])))
    requests = request_per_method(stack)
    # The scope cases first: once an address has failed 20 times, keys the services have not
    # verified before are refused without a lookup (RESOURCE_EXHAUSTED) until its budget refills.
    if stack.keys["read-only"]:
        for method in ["SubmitPayment", "RefundPayment"]:
            yield rpc_case(stack, "auth", "read-only key", method, requests[method],
                           expect("PERMISSION_DENIED"), auth(stack.keys["read-only"]))
    if stack.keys["write-only"]:
        for method in ["GetPayment", "ListPayments", "WatchPayment", "GetRefund"]:
            yield rpc_case(stack, "auth", "write-only key", method, requests[method],
                           expect("PERMISSION_DENIED", timeout=3), auth(stack.keys["write-only"]))
    for name, metadata in variants:
        for method, body in requests.items():
            timeout = 3 if method == "WatchPayment" else DEADLINE
            # After 20 failures from one address the services stop looking keys up and answer
            # RESOURCE_EXHAUSTED (docs/api.md, Authentication); either is right for a bad key.
            yield rpc_case(stack, "auth", name, method, body,
                           expect("UNAUTHENTICATED", "RESOURCE_EXHAUSTED", timeout=timeout), metadata)
    for service in stack.addresses:  # health needs no key, and a bad one does not matter
        yield raw_case(stack, "auth", "health with a bogus key", service, HEALTH, b"", OK, auth("nonsense"))


def request_per_method(stack):
    return {"SubmitPayment": order, "CancelPayment": {"payment_id": "pay_" + "0" * 32},
            "GetPayment": {"payment_id": stack.fixtures["ids"][0]},
            "ListPayments": {"page_size": 1}, "ListEvents": {"page_size": 1},
            "WatchPayment": {"payment_id": stack.fixtures["ids"][0]},
            "RefundPayment": lambda: refund_request(stack),
            "GetRefund": {"refund_id": stack.fixtures["refund"] or UNKNOWN_REFUND}}


# ----------------------------------------------------------------------------------------------
# paths: unknown services and methods
# ----------------------------------------------------------------------------------------------

WRONG_PATHS = {
    "command": [QUERY + "GetPayment", COMMAND + "GetPayment", COMMAND + "submitPayment", COMMAND + "GetRefund",
                QUERY + "GetRefund", COMMAND + "refundPayment",
                "/payments.v2.PaymentCommandService/SubmitPayment", "/PaymentCommandService/SubmitPayment",
                COMMAND + "SubmitPayment/", COMMAND.rstrip("/"), "/grpc.health.v1.Health/Nope", "/x/y/z"],
    "query": [COMMAND + "SubmitPayment", QUERY + "DeletePayment", QUERY + "getpayment", QUERY + "GetPayment%00",
              COMMAND + "RefundPayment", QUERY + "RefundPayment", QUERY + "getRefund"],
    "dispatcher": [COMMAND + "SubmitPayment", QUERY + "ListPayments", COMMAND + "RefundPayment", QUERY + "GetRefund"],
}


def path_cases(stack):
    for service, paths in WRONG_PATHS.items():
        if service not in stack.addresses:
            continue
        for path in paths:
            yield raw_case(stack, "paths", "unknown method", service, path, b"",
                           expect("UNIMPLEMENTED", contains=(path.lstrip("/"),)))
        yield raw_case(stack, "paths", "health of an unknown service name", service, HEALTH,
                       ld(1, b"nope.v1.Nope"), expect("NOT_FOUND"))


def size_cases(stack):
    """Each method's request above the 4 MiB limit."""
    bases = {"SubmitPayment": order, "RefundPayment": lambda: refund_request(stack)}
    for method, field in [("GetPayment", "payment_id"), ("ListPayments", "page_token"),
                          ("WatchPayment", "payment_id"), ("SubmitPayment", "description"),
                          ("RefundPayment", "reason"), ("GetRefund", "refund_id")]:
        request = dict(bases.get(method, dict)(), **{field: "x" * (5 * MiB)})
        body = encode(METHODS[method][2], request)
        yield rpc_case(stack, "size", f"5 MiB {field}", method, body,
                       expect("RESOURCE_EXHAUSTED", contains=(str(len(body)),)))


# ----------------------------------------------------------------------------------------------
# Raw HTTP/2
# ----------------------------------------------------------------------------------------------

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM = ACK = 0x1
END_HEADERS, PADDED = 0x4, 0x8
ERRORS = ["NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR", "SETTINGS_TIMEOUT", "STREAM_CLOSED",
          "FRAME_SIZE_ERROR", "REFUSED_STREAM", "CANCEL", "COMPRESSION_ERROR", "CONNECT_ERROR", "ENHANCE_YOUR_CALM",
          "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED"]
E = {name: code for code, name in enumerate(ERRORS)}
MAX_CONCURRENT_STREAMS, MAX_FRAME_SIZE = 3, 5


def base_headers(path, method="POST", content_type="application/grpc"):
    return [(":method", method), (":scheme", "http"), (":path", path), (":authority", "127.0.0.1"),
            ("content-type", content_type)]


def frame(kind, flags, stream, payload=b""):
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def gmsg(body, compressed=False):
    return bytes([compressed]) + struct.pack(">I", len(body)) + body


def error_name(code):
    return ERRORS[code] if code < len(ERRORS) else hex(code)


class Peer:
    """One raw HTTP/2 client connection: sends frames verbatim, parses what the server sends."""

    def __init__(self, port, preface=True, auto_ack=True, rcvbuf=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(DEADLINE)
        self.sock.connect(("127.0.0.1", port))
        self.encoder, self.decoder = hpack.Encoder(), hpack.Decoder()
        self.decoder.max_header_list_size = 1 << 24
        self.auto_ack, self.inbox, self.block = auto_ack, b"", None
        self.closed, self.goaway, self.resets = False, None, {}
        self.headers, self.ended = defaultdict(dict), set()
        self.settings, self.settings_frames, self.settings_acks, self.ping_acks = {}, 0, 0, 0
        if preface:
            self.send(PREFACE + frame(SETTINGS, 0, 0))

    def close(self):
        self.sock.close()

    def send(self, data):
        try:
            self.sock.sendall(data)
        except OSError:
            self.closed = True

    def send_headers(self, stream, headers, end_stream=False, end_headers=True):
        block = self.encoder.encode(headers)
        chunks = [block[i:i + 16384] for i in range(0, len(block), 16384)] or [b""]
        out = b""
        for index, chunk in enumerate(chunks):
            last = index == len(chunks) - 1
            flags = (END_HEADERS if last and end_headers else 0)
            if index == 0:
                out += frame(HEADERS, flags | (END_STREAM if end_stream else 0), stream, chunk)
            else:
                out += frame(CONTINUATION, flags, stream, chunk)
        self.send(out)

    def request(self, stream, path, extra=(), body=b"", end=True, method="POST", content_type="application/grpc"):
        headers = base_headers(path, method, content_type) + [("te", "trailers")] + list(extra)
        self.send_headers(stream, headers, end_stream=end and body is None)
        if body is not None:  # in frames of at most 16 KiB (the initial SETTINGS_MAX_FRAME_SIZE)
            chunks = [body[i:i + 16384] for i in range(0, len(body), 16384)] or [b""]
            self.send(b"".join(frame(DATA, END_STREAM if end and i == len(chunks) - 1 else 0, stream, chunk)
                               for i, chunk in enumerate(chunks)))

    def pump(self, until=lambda peer: False, timeout=5.0):
        deadline = time.monotonic() + timeout
        while not self.closed and not until(self):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(1 << 16)
            except socket.timeout:
                break
            except OSError:
                chunk = b""
            if not chunk:
                self.closed = True
                break
            self.inbox += chunk
            self.parse()
        return self

    def parse(self):
        while len(self.inbox) >= 9:
            length = int.from_bytes(self.inbox[:3], "big")
            if len(self.inbox) < 9 + length:
                return
            kind, flags = self.inbox[3], self.inbox[4]
            stream = int.from_bytes(self.inbox[5:9], "big") & 0x7FFFFFFF
            payload, self.inbox = self.inbox[9:9 + length], self.inbox[9 + length:]
            self.on_frame(kind, flags, stream, payload)

    def on_frame(self, kind, flags, stream, payload):
        if kind == SETTINGS and flags & ACK:
            self.settings_acks += 1
        elif kind == SETTINGS:
            self.settings.update(struct.unpack(">HI", payload[i:i + 6]) for i in range(0, len(payload) - 5, 6))
            self.settings_frames += 1
            if self.auto_ack:
                self.send(frame(SETTINGS, ACK, 0))
        elif kind == PING:
            if flags & ACK:
                self.ping_acks += 1
            else:
                self.send(frame(PING, ACK, 0, payload))
        elif kind == GOAWAY:
            last, code = struct.unpack(">II", payload[:8])
            self.goaway = (last & 0x7FFFFFFF, code, payload[8:].decode(errors="replace"))
        elif kind == RST_STREAM:
            self.resets[stream] = struct.unpack(">I", payload[:4])[0]
        elif kind in (HEADERS, CONTINUATION):
            self.on_header_fragment(kind, flags, stream, payload)
        elif kind == DATA:
            if flags & END_STREAM:
                self.ended.add(stream)
            if payload:
                credit = struct.pack(">I", len(payload))
                self.send(frame(WINDOW_UPDATE, 0, 0, credit) + frame(WINDOW_UPDATE, 0, stream, credit))

    def on_header_fragment(self, kind, flags, stream, payload):
        if kind == HEADERS:
            if flags & PADDED:
                payload = payload[1:len(payload) - payload[0]]
            if flags & 0x20:
                payload = payload[5:]
            self.block = [stream, payload, flags & END_STREAM]
        elif self.block:
            self.block[1] += payload
        if flags & END_HEADERS and self.block:
            stream, block, end = self.block
            self.headers[stream].update((k.lower(), v) for k, v in self.decoder.decode(block))
            if end:
                self.ended.add(stream)
            self.block = None

    def finished(self, stream):
        return lambda peer: stream in peer.ended or stream in peer.resets or peer.goaway is not None

    def describe(self):
        parts = []
        if self.goaway:
            parts.append(f"GOAWAY {error_name(self.goaway[1])}" + (f" ({self.goaway[2][:120]})" if self.goaway[2] else ""))
        parts += [f"RST_STREAM {s} {error_name(c)}" for s, c in sorted(self.resets.items())[:3]]
        if len(self.resets) > 3:
            parts.append(f"... {len(self.resets)} RST_STREAMs")
        for stream, headers in sorted(self.headers.items())[:3]:
            shown = {k: headers[k] for k in (":status", "grpc-status", "grpc-message") if k in headers}
            if "grpc-message" in shown:
                shown["grpc-message"] = urllib.parse.unquote(shown["grpc-message"])[:160]
            parts.append(f"stream {stream} {shown}")
        if self.closed:
            parts.append("connection closed")
        return "; ".join(parts) or "no reaction"


@dataclasses.dataclass
class Target:
    service: str
    port: int
    path: str      # a real method of the service
    body: bytes    # a small request for it (answered quickly, stores nothing)
    extra: tuple   # authorization


def targets(stack):
    unknown = "pay_" + "0" * 32
    calls = {"command": (COMMAND + "SubmitPayment", ld(1, b"x")),
             "query": (QUERY + "GetPayment", ld(1, unknown.encode())),
             "dispatcher": (HEALTH, b"")}
    for service, address in stack.addresses.items():
        path, body = calls[service]
        extra = (("authorization", "Bearer " + stack.keys["key"]),) if service != "dispatcher" else ()
        yield Target(service, int(address.rsplit(":", 1)[1]), path, body, extra)


def handshake(t, **options):
    peer = Peer(t.port, **options)
    return peer.pump(lambda p: p.settings_frames > 0, 3)


# Each scenario takes a Target and returns problems (the Peer's description is the observation).

def want_goaway(peer, *codes, timeout=5):
    peer.pump(lambda p: p.goaway is not None, timeout)
    if peer.goaway is None:
        return [f"no GOAWAY ({'connection closed' if peer.closed else 'connection open'}), expected "
                f"{'/'.join(error_name(c) for c in codes)}"]
    if peer.goaway[1] not in codes:
        return [f"GOAWAY {error_name(peer.goaway[1])}, expected {'/'.join(error_name(c) for c in codes)}"]
    return []


def want_status(peer, stream, status, contains=(), http=None):
    peer.pump(peer.finished(stream))
    headers = peer.headers.get(stream, {})
    got, message = headers.get("grpc-status"), urllib.parse.unquote(headers.get("grpc-message", ""))
    problems = []
    if http and headers.get(":status") != http:
        problems.append(f"HTTP status {headers.get(':status')}, expected {http}")
    if status is None:
        if got is None:
            problems.append("no grpc-status")
    elif callable(status):
        if got is None or not status(int(got)):
            problems.append(f"grpc-status {got} is not acceptable")
    elif got != str(status):
        problems.append(f"grpc-status {got}, expected {status}")
    if got not in (None, "0") and not message.strip():
        problems.append("empty grpc-message")
    problems += [f"grpc-message lacks {s!r}" for s in contains if s not in message]
    return problems


def want_alive(peer, stream):
    """The connection still serves a call (Health/Check) on a new stream."""
    if peer.goaway or peer.closed:
        return [f"connection no longer usable ({peer.describe()})"]
    peer.request(stream, HEALTH, body=gmsg(b""))
    peer.pump(peer.finished(stream))
    got = peer.headers.get(stream, {}).get("grpc-status")
    return [] if got == "0" else [f"a health call on the same connection got grpc-status {got}"]


def want_reset(peer, stream, *codes):
    peer.pump(peer.finished(stream))
    if stream not in peer.resets:
        return [f"stream {stream} not reset"]
    if codes and peer.resets[stream] not in codes:
        return [f"RST_STREAM {error_name(peer.resets[stream])}, expected {'/'.join(error_name(c) for c in codes)}"]
    return []


def want_flood_answer(peer, answered, settle):
    """A flood ends with GOAWAY ENHANCE_YOUR_CALM or a closed connection (docs/rpc.md), or is absorbed."""
    peer.pump(lambda p: p.goaway is not None or answered(p), settle)
    if peer.goaway:
        return [] if peer.goaway[1] == E["ENHANCE_YOUR_CALM"] else \
            [f"GOAWAY {error_name(peer.goaway[1])}, expected ENHANCE_YOUR_CALM"]
    if peer.closed:
        return []
    return want_alive(peer, 99)


def flood(t, unit, count, opener=None, answers=None, settle=5):
    """Sends `count` copies of a frame without reading (a tiny receive buffer), for at most 2 s;
    `answers(peer, frames_sent)` says whether every answer arrived."""
    peer = handshake(t, rcvbuf=4096)
    if opener:
        opener(peer)
    blob, sent = unit * count, 0
    peer.sock.setblocking(False)
    deadline = time.monotonic() + 2
    while sent < len(blob) and time.monotonic() < deadline:
        try:
            sent += peer.sock.send(blob[sent:sent + 65536])
        except BlockingIOError:
            time.sleep(0.005)
        except OSError:
            peer.closed = True
            break
    peer.sock.setblocking(True)
    frames = sent // len(unit)
    return peer, want_flood_answer(peer, lambda p: answers is not None and answers(p, frames), settle)


RAW = []


def scenario(name):
    def register(function):
        RAW.append((name, function))
        return function
    return register


@scenario("garbage instead of the preface: closed")
def _(t):
    peer = Peer(t.port, preface=False)
    peer.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n" + bytes(range(256)))
    peer.pump(timeout=11)
    return peer, [] if peer.closed else ["connection still open after 11 s"]


@scenario("preface then PING instead of SETTINGS: GOAWAY PROTOCOL_ERROR")
def _(t):
    peer = Peer(t.port, preface=False)
    peer.send(PREFACE + frame(PING, 0, 0, b"\x00" * 8))
    return peer, want_goaway(peer, E["PROTOCOL_ERROR"])


@scenario("content-type text/plain: HTTP 415 with grpc-status")
def _(t):
    peer = handshake(t)
    peer.request(1, t.path, t.extra, gmsg(t.body), content_type="text/plain")
    return peer, want_status(peer, 1, None, ("content-type",), http="415")


@scenario("content-type application/grpc+json: HTTP 415 with grpc-status")
def _(t):
    peer = handshake(t)
    peer.request(1, t.path, t.extra, gmsg(t.body), content_type="application/grpc+json")
    return peer, want_status(peer, 1, None, ("content-type",), http="415")


@scenario("GET instead of POST: HTTP 405 with grpc-status")
def _(t):
    peer = handshake(t)
    peer.request(1, t.path, t.extra, None, method="GET")
    return peer, want_status(peer, 1, None, http="405")


@scenario("grpc-encoding gzip: UNIMPLEMENTED with grpc-accept-encoding identity")
def _(t):
    peer = handshake(t)
    peer.request(1, t.path, t.extra + (("grpc-encoding", "gzip"),), gmsg(b"\x1f\x8b\x08\x00", compressed=True))
    problems = want_status(peer, 1, 12)
    if "identity" not in peer.headers.get(1, {}).get("grpc-accept-encoding", ""):
        problems.append("no grpc-accept-encoding: identity")
    return peer, problems


@scenario("compressed flag without an encoding: INTERNAL (docs/rpc.md)")
def _(t):
    peer = handshake(t)
    peer.request(1, t.path, t.extra, gmsg(t.body, compressed=True))
    return peer, want_status(peer, 1, 13)


for _value in ["soon", "123456789S", "-1S", "1X", ""]:
    @scenario(f"grpc-timeout {_value!r}: INTERNAL naming the value (docs/rpc.md)")
    def _(t, value=_value):
        peer = handshake(t)
        peer.request(1, t.path, t.extra + (("grpc-timeout", value),), gmsg(t.body))
        return peer, want_status(peer, 1, 13, (value,) if value else ())


@scenario("a 10 KB :path: UNIMPLEMENTED")
def _(t):
    peer = handshake(t)
    peer.request(1, "/" + "p" * 10_000 + "/M", t.extra, gmsg(b""))
    return peer, want_status(peer, 1, 12)


@scenario("unary call with no request message: INTERNAL (docs/rpc.md)")
def _(t):
    peer = handshake(t)
    peer.request(1, t.path, t.extra, None)
    return peer, want_status(peer, 1, 13)


@scenario("unary call with two request messages: INTERNAL (docs/rpc.md)")
def _(t):
    peer = handshake(t)
    peer.request(1, t.path, t.extra, gmsg(t.body) + gmsg(t.body))
    return peer, want_status(peer, 1, 13)


@scenario("half a message, then END_STREAM: INTERNAL naming it (docs/rpc.md; grpc-go and grpc-java agree)")
def _(t):
    peer = handshake(t)
    peer.request(1, t.path, t.extra, b"\x00" + struct.pack(">I", 100) + b"x" * 50)
    return peer, want_status(peer, 1, 13, ("middle of a message",))


@scenario("half a message, then RST_STREAM: the connection still serves")
def _(t):
    peer = handshake(t)
    peer.request(1, t.path, t.extra, b"\x00" + struct.pack(">I", 100) + b"x" * 50, end=False)
    peer.send(frame(RST_STREAM, 0, 1, struct.pack(">I", E["CANCEL"])))
    return peer, want_alive(peer, 3)


@scenario("length prefix of 4 GiB - 1: RESOURCE_EXHAUSTED naming the size")
def _(t):
    peer = handshake(t)
    peer.request(1, t.path, t.extra, b"\x00" + struct.pack(">I", 0xFFFFFFFF) + b"abc", end=False)
    return peer, want_status(peer, 1, 8, ("4294967295",))


@scenario("length prefix of 5 MiB, body never sent: RESOURCE_EXHAUSTED from the prefix")
def _(t):
    peer = handshake(t)
    peer.request(1, t.path, t.extra, b"\x00" + struct.pack(">I", 5 * MiB) + b"abc", end=False)
    return peer, want_status(peer, 1, 8, (str(5 * MiB),))


@scenario("1,000 streams opened and reset at once: GOAWAY ENHANCE_YOUR_CALM")
def _(t):
    peer = handshake(t)
    burst = b""
    for index in range(1000):
        stream = 1 + 2 * index
        block = peer.encoder.encode(base_headers(t.path) + list(t.extra))
        burst += frame(HEADERS, END_HEADERS, stream, block) + frame(DATA, 0, stream, gmsg(t.body))
        burst += frame(RST_STREAM, 0, stream, struct.pack(">I", E["CANCEL"]))
    peer.send(burst)
    return peer, want_goaway(peer, E["ENHANCE_YOUR_CALM"])


def open_streams(peer, t, count):
    for index in range(count):
        peer.request(1 + 2 * index, t.path, t.extra, None, end=False)


@scenario("one stream more than SETTINGS_MAX_CONCURRENT_STREAMS after the ACK: GOAWAY PROTOCOL_ERROR")
def _(t):
    peer = handshake(t)
    limit = peer.settings.get(MAX_CONCURRENT_STREAMS)
    if limit is None:
        return peer, ["the server announced no SETTINGS_MAX_CONCURRENT_STREAMS"]
    open_streams(peer, t, limit + 1)
    return peer, want_goaway(peer, E["PROTOCOL_ERROR"])


@scenario("one stream more than SETTINGS_MAX_CONCURRENT_STREAMS before the ACK: REFUSED_STREAM")
def _(t):
    peer = handshake(t, auto_ack=False)
    limit = peer.settings.get(MAX_CONCURRENT_STREAMS)
    if limit is None:
        return peer, ["the server announced no SETTINGS_MAX_CONCURRENT_STREAMS"]
    open_streams(peer, t, limit + 1)
    last = 1 + 2 * limit
    problems = want_reset(peer, last, E["REFUSED_STREAM"])
    if peer.goaway and peer.goaway[1] != E["NO_ERROR"]:
        problems.append(f"GOAWAY {error_name(peer.goaway[1])}")
    return peer, problems


@scenario("a 20 KB header (over the 16 KiB list): the stream is refused, the connection lives")
def _(t):
    peer = handshake(t)
    peer.request(1, t.path, t.extra + (("x-padding", "p" * 20_000),), None)
    return peer, want_reset(peer, 1) + want_alive(peer, 3)


@scenario("2,000 small headers: the stream is refused, the connection lives")
def _(t):
    peer = handshake(t)
    peer.request(1, t.path, t.extra + tuple((f"x-h{i}", "v" * 20) for i in range(2000)), None)
    return peer, want_reset(peer, 1) + want_alive(peer, 3)


@scenario("HEADERS + 200 CONTINUATION frames, never END_HEADERS: the server stops it")
def _(t):
    peer = handshake(t)
    block = peer.encoder.encode(base_headers(t.path))
    filler = hpack.Encoder().encode([("x-c", "c" * 4000)])
    peer.send(frame(HEADERS, 0, 1, block) + b"".join(frame(CONTINUATION, 0, 1, filler) for _ in range(200)))
    peer.pump(lambda p: p.goaway is not None or 1 in p.resets, 5)
    stopped = peer.closed or 1 in peer.resets or (peer.goaway and peer.goaway[1] != E["NO_ERROR"])
    return peer, [] if stopped else ["no GOAWAY, RST_STREAM or close after an endless header block"]


@scenario("HEADERS without END_HEADERS, then DATA: GOAWAY PROTOCOL_ERROR")
def _(t):
    peer = handshake(t)
    block = peer.encoder.encode([(":method", "POST"), (":path", t.path)])
    peer.send(frame(HEADERS, 0, 1, block) + frame(DATA, 0, 1, gmsg(b"")))
    return peer, want_goaway(peer, E["PROTOCOL_ERROR"])


@scenario("CONTINUATION without HEADERS: GOAWAY PROTOCOL_ERROR")
def _(t):
    peer = handshake(t)
    peer.send(frame(CONTINUATION, END_HEADERS, 1, peer.encoder.encode([(":method", "POST")])))
    return peer, want_goaway(peer, E["PROTOCOL_ERROR"])


@scenario("connection WINDOW_UPDATE past 2^31-1: GOAWAY FLOW_CONTROL_ERROR")
def _(t):
    peer = handshake(t)
    peer.send(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0x7FFFFFFF)) * 2)
    return peer, want_goaway(peer, E["FLOW_CONTROL_ERROR"])


@scenario("stream WINDOW_UPDATE past 2^31-1: RST_STREAM FLOW_CONTROL_ERROR, the connection lives")
def _(t):
    peer = handshake(t)
    peer.request(1, t.path, t.extra, None, end=False)
    peer.send(frame(WINDOW_UPDATE, 0, 1, struct.pack(">I", 0x7FFFFFFF)) * 2)
    return peer, want_reset(peer, 1, E["FLOW_CONTROL_ERROR"]) + want_alive(peer, 3)


@scenario("WINDOW_UPDATE of 0 on the connection: GOAWAY PROTOCOL_ERROR")
def _(t):
    peer = handshake(t)
    peer.send(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0)))
    return peer, want_goaway(peer, E["PROTOCOL_ERROR"])


@scenario("WINDOW_UPDATE of 3 bytes: GOAWAY FRAME_SIZE_ERROR")
def _(t):
    peer = handshake(t)
    peer.send(frame(WINDOW_UPDATE, 0, 0, b"\x00\x00\x01"))
    return peer, want_goaway(peer, E["FRAME_SIZE_ERROR"])


for _kind, _name in [(DATA, "DATA"), (HEADERS, "HEADERS"), (RST_STREAM, "RST_STREAM")]:
    @scenario(f"{_name} on stream 0: GOAWAY PROTOCOL_ERROR")
    def _(t, kind=_kind):
        peer = handshake(t)
        payload = struct.pack(">I", E["CANCEL"]) if kind == RST_STREAM else \
            peer.encoder.encode([(":method", "POST")]) if kind == HEADERS else gmsg(b"")
        peer.send(frame(kind, END_HEADERS if kind == HEADERS else 0, 0, payload))
        return peer, want_goaway(peer, E["PROTOCOL_ERROR"])


for _kind, _name in [(SETTINGS, "SETTINGS"), (PING, "PING")]:
    @scenario(f"{_name} on stream 1: GOAWAY PROTOCOL_ERROR")
    def _(t, kind=_kind):
        peer = handshake(t)
        peer.send(frame(kind, 0, 1, b"\x00" * (8 if kind == PING else 0)))
        return peer, want_goaway(peer, E["PROTOCOL_ERROR"])


@scenario("HEADERS on an even (server) stream ID: GOAWAY PROTOCOL_ERROR")
def _(t):
    peer = handshake(t)
    peer.request(2, t.path, t.extra, gmsg(t.body))
    return peer, want_goaway(peer, E["PROTOCOL_ERROR"])


@scenario("stream IDs going backwards (5, then 3): GOAWAY PROTOCOL_ERROR, or 3 ignored")
def _(t):
    # RFC 9113 5.1.1 asks for PROTOCOL_ERROR; nghttp2 ignores HEADERS on a lower (implicitly
    # closed) stream ID, since it cannot remember every closed stream. Either way 3 is not served.
    peer = handshake(t)
    peer.request(5, t.path, t.extra, gmsg(t.body))
    peer.request(3, t.path, t.extra, gmsg(t.body))
    peer.pump(lambda p: p.goaway is not None, 2)
    if peer.goaway:
        return peer, want_goaway(peer, E["PROTOCOL_ERROR"])
    problems = ["stream 3 was served"] if 3 in peer.headers else []
    return peer, problems + want_alive(peer, 7)


@scenario("RST_STREAM on an idle stream: GOAWAY PROTOCOL_ERROR")
def _(t):
    peer = handshake(t)
    peer.send(frame(RST_STREAM, 0, 9, struct.pack(">I", E["CANCEL"])))
    return peer, want_goaway(peer, E["PROTOCOL_ERROR"])


@scenario("PUSH_PROMISE from the client: GOAWAY PROTOCOL_ERROR")
def _(t):
    peer = handshake(t)
    peer.request(1, t.path, t.extra, None, end=False)
    peer.send(frame(PUSH_PROMISE, END_HEADERS, 1, struct.pack(">I", 2) + peer.encoder.encode([(":method", "GET")])))
    return peer, want_goaway(peer, E["PROTOCOL_ERROR"])


@scenario("100,000 PINGs, never read: GOAWAY ENHANCE_YOUR_CALM, a close, or all absorbed")
def _(t):
    return flood(t, frame(PING, 0, 0, b"floodpin"), 100_000, answers=lambda p, n: p.ping_acks >= n)


@scenario("100,000 SETTINGS, never read: GOAWAY ENHANCE_YOUR_CALM, a close, or all absorbed")
def _(t):
    return flood(t, frame(SETTINGS, 0, 0), 100_000, answers=lambda p, n: p.settings_acks >= n + 1)


@scenario("100,000 empty DATA frames on one stream: GOAWAY ENHANCE_YOUR_CALM, a close, or absorbed")
def _(t):
    return flood(t, frame(DATA, 0, 1), 100_000, opener=lambda p: p.request(1, HEALTH, body=None, end=False),
                 answers=lambda p, n: False, settle=1)


@scenario("PING of 7 bytes: GOAWAY FRAME_SIZE_ERROR")
def _(t):
    peer = handshake(t)
    peer.send(frame(PING, 0, 0, b"\x00" * 7))
    return peer, want_goaway(peer, E["FRAME_SIZE_ERROR"])


for _name, _payload, _code in [
        ("ENABLE_PUSH = 2", struct.pack(">HI", 2, 2), "PROTOCOL_ERROR"),
        ("INITIAL_WINDOW_SIZE = 2^31", struct.pack(">HI", 4, 1 << 31), "FLOW_CONTROL_ERROR"),
        ("MAX_FRAME_SIZE = 16383", struct.pack(">HI", 5, 16383), "PROTOCOL_ERROR"),
        ("MAX_FRAME_SIZE = 2^24", struct.pack(">HI", 5, 1 << 24), "PROTOCOL_ERROR"),
        ("of 5 bytes", b"\x00\x03\x00\x00\x00", "FRAME_SIZE_ERROR")]:
    @scenario(f"SETTINGS {_name}: GOAWAY {_code}")
    def _(t, payload=_payload, code=_code):
        peer = handshake(t)
        peer.send(frame(SETTINGS, 0, 0, payload))
        return peer, want_goaway(peer, E[code])


@scenario("SETTINGS ACK with a payload: GOAWAY FRAME_SIZE_ERROR")
def _(t):
    peer = handshake(t)
    peer.send(frame(SETTINGS, ACK, 0, struct.pack(">HI", 3, 10)))
    return peer, want_goaway(peer, E["FRAME_SIZE_ERROR"])


@scenario("a DATA frame above SETTINGS_MAX_FRAME_SIZE: GOAWAY FRAME_SIZE_ERROR")
def _(t):
    peer = handshake(t)
    peer.request(1, t.path, t.extra, None, end=False)
    peer.send(frame(DATA, 0, 1, b"\x00" * (peer.settings.get(MAX_FRAME_SIZE, 16384) + 1)))
    return peer, want_goaway(peer, E["FRAME_SIZE_ERROR"])


@scenario("an HPACK block that overflows its integer: GOAWAY COMPRESSION_ERROR")
def _(t):
    peer = handshake(t)
    peer.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\xff" * 12 + b"\x7f"))
    return peer, want_goaway(peer, E["COMPRESSION_ERROR"])


@scenario("HEADERS with padding longer than the frame: GOAWAY PROTOCOL_ERROR")
def _(t):
    peer = handshake(t)
    peer.send(frame(HEADERS, END_HEADERS | PADDED, 1, bytes([200]) + peer.encoder.encode([(":method", "POST")])))
    return peer, want_goaway(peer, E["PROTOCOL_ERROR"])


@scenario("an unknown frame type is ignored: the connection serves")
def _(t):
    peer = handshake(t)
    peer.send(frame(0xEE, 0xFF, 0, b"unknown frame"))
    return peer, want_alive(peer, 1)


@scenario("DATA after END_STREAM: STREAM_CLOSED (RST_STREAM or GOAWAY)")
def _(t):
    peer = handshake(t)
    peer.request(1, t.path, t.extra, gmsg(t.body))
    peer.send(frame(DATA, 0, 1, gmsg(t.body)))
    peer.pump(lambda p: 1 in p.resets or p.goaway is not None, 3)
    codes = [peer.resets.get(1), peer.goaway[1] if peer.goaway else None]
    return peer, [] if E["STREAM_CLOSED"] in codes else ["no STREAM_CLOSED"]


def malformed(name, headers):
    @scenario(f"malformed request ({name}): RST_STREAM PROTOCOL_ERROR or a 4xx, the connection lives")
    def _(t):
        peer = handshake(t)
        peer.send_headers(1, headers(t), end_stream=True)
        peer.pump(peer.finished(1))
        status = peer.headers.get(1, {}).get(":status", "")
        refused = peer.resets.get(1) == E["PROTOCOL_ERROR"] or status.startswith("4")
        return peer, ([] if refused else ["not refused as malformed"]) + want_alive(peer, 3)


malformed("no :path", lambda t: [h for h in base_headers(t.path) if h[0] != ":path"])
malformed("no :method", lambda t: [h for h in base_headers(t.path) if h[0] != ":method"])
malformed("an upper-case header name", lambda t: base_headers(t.path) + [("X-Upper", "v")])
malformed("a connection header", lambda t: base_headers(t.path) + [("connection", "keep-alive")])
malformed("NUL in a header value", lambda t: base_headers(t.path) + [("x-nul", "a\x00b")])
malformed("a pseudo-header after a regular one", lambda t: base_headers(t.path)[1:] + base_headers(t.path)[:1])
malformed("an unknown pseudo-header", lambda t: base_headers(t.path) + [(":evil", "1")])
malformed("two :path headers", lambda t: base_headers(t.path) + [(":path", "/a/b")])


def http2_cases(stack):
    for t in targets(stack):
        for name, function in RAW:
            yield Case("http2", f"{t.service}: {name}", lambda f=function, t=t: peer_outcome(*f(t)))
    yield Case("http2", "all ports: a partial preface, then silence, is closed by the handshake timeout",
               lambda: partial_preface(stack))


def peer_outcome(peer, problems):
    observed = peer.describe()
    peer.close()
    return observed, problems


def partial_preface(stack):
    socks = {}
    for t in targets(stack):
        sock = socket.create_connection(("127.0.0.1", t.port), timeout=DEADLINE)
        sock.sendall(PREFACE[:10])
        socks[sock] = t.service
    open_ = set(socks)
    deadline = time.monotonic() + 12
    while open_ and time.monotonic() < deadline:
        readable, _, _ = select.select(list(open_), [], [], max(0.0, deadline - time.monotonic()))
        for sock in readable:
            try:
                if sock.recv(65536):
                    continue
            except OSError:
                pass
            open_.discard(sock)
    still = sorted(socks[s] for s in open_)
    for sock in socks:
        sock.close()
    return (f"still open after 12 s: {still}" if still else "all closed"), \
        ([f"{s}: not closed within the 10 s handshake timeout" for s in still])


# ----------------------------------------------------------------------------------------------
# Running
# ----------------------------------------------------------------------------------------------

def feed_cases(stack):
    """WatchEvents: the cursor rules of ListEvents, authentication, and a valid stream that stays
    open (it ends only at the caller's deadline)."""
    service, path, desc, _ = WATCH_EVENTS

    def case(name, after, want, metadata=None):
        def run():
            value = after() if callable(after) else after
            result = stack.call(service, path, encode(desc, {"after": value}), metadata, want.timeout, True)
            return observe(result), judge(result, want)
        return Case("feed", f"WatchEvents: {name}", run)
    for name, value, decodes in HOSTILE + [("not a cursor", "garbage", True), ("c0", "c0", True),
                                           ("a cursor never issued", "c999999999", True)]:
        yield case(f"after {name}", value, invalid("after"))
    yield case("bogus key", "", expect("UNAUTHENTICATED", "RESOURCE_EXHAUSTED", timeout=3), auth("nonsense"))
    yield case("a valid cursor: open until the deadline", "", expect("DEADLINE_EXCEEDED", timeout=2))


GENERATORS = [numeric_cases, text_cases, submit_cases, refund_cases, lookup_cases, page_token_cases, garbage_cases,
              auth_cases, path_cases, size_cases, http2_cases, feed_cases]


def run(stack, cases, verbose):
    failures, by_category = [], defaultdict(lambda: {"cases": 0, "failures": 0, "seconds": 0.0})
    for case in cases:
        started = time.monotonic()
        try:
            observed, problems = case.run()
        except Exception as error:  # the harness could not even finish the case
            observed, problems = f"{type(error).__name__}: {error}", [f"case raised {type(error).__name__}: {error}"]
        sick = stack.unhealthy()
        if sick:
            problems = problems + [f"unhealthy after the case: {s}" for s in sick]
            stack.await_recovery()
        stats = by_category[case.category]
        stats["cases"] += 1
        stats["seconds"] += time.monotonic() - started
        label = f"{case.category} / {case.name}"
        if problems:
            stats["failures"] += 1
            failures.append({"case": label, "observed": observed, "problems": problems})
            print(f"FAIL {label}\n     observed: {observed}\n     " + "\n     ".join(problems), flush=True)
        elif verbose:
            print(f"ok   {label}: {observed}", flush=True)
    for stats in by_category.values():
        stats["seconds"] = round(stats["seconds"], 1)
    return failures, dict(by_category)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--command", required=True, help="HOST:PORT of the command service")
    parser.add_argument("--query", required=True, help="HOST:PORT of the query service")
    parser.add_argument("--dispatcher", help="HOST:PORT of a dispatcher's gRPC (health) port")
    parser.add_argument("--key", required=True, help="an API key with payments.write and payments.read")
    parser.add_argument("--read-only-key", help="a key of another client with payments.read only")
    parser.add_argument("--write-only-key", help="a key with payments.write only")
    parser.add_argument("--revoked-key", help="a revoked key")
    parser.add_argument("--max-amount", type=int, default=10 ** 12, help="the command service's maximum amount_minor")
    parser.add_argument("--only", help="run only cases whose 'category / name' contains this")
    parser.add_argument("--verbose", action="store_true", help="print every case, not only failures")
    parser.add_argument("--json", action="store_true", help="print a JSON summary line at the end")
    args = parser.parse_args()

    stack = Stack(args)
    sick = stack.unhealthy()
    if sick:
        raise SystemExit(f"the stack is not healthy before the suite: {sick}")
    prepare(stack)
    cases = [case for generator in GENERATORS for case in generator(stack)]
    if args.only:
        cases = [c for c in cases if args.only in f"{c.category} / {c.name}"]
    started = time.monotonic()
    failures, by_category = run(stack, cases, args.verbose)
    seconds = time.monotonic() - started
    print(f"{len(cases)} cases, {len(failures)} failed, {seconds:.1f} s", file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps({"cases": len(cases), "failures": failures, "by_category": by_category,
                          "seconds": round(seconds, 1)}))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
