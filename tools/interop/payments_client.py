"""A payments client written only from the .proto files in proto/, with Google's grpcio and
protobuf: proves that any stock gRPC stack can use the platform.

Prints one line per step; the Swift test checks them."""

import argparse
import importlib
import os
import sys
import tempfile
import time
import uuid

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_tools import protoc

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PROTO_ROOT = os.path.join(REPO, "proto")
FILES = ["payments/v1/payment.proto", "payments/v1/command_service.proto", "payments/v1/query_service.proto"]


def load():
    out = tempfile.mkdtemp(prefix="payments-py-")
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    status = protoc.main(["protoc", "-I", PROTO_ROOT, "-I", include, "--python_out", out, "--grpc_python_out", out] + FILES)
    if status != 0:
        raise SystemExit("protoc failed")
    sys.path.insert(0, out)
    return {name: importlib.import_module(name) for name in [
        "payments.v1.payment_pb2", "payments.v1.command_service_pb2", "payments.v1.command_service_pb2_grpc",
        "payments.v1.query_service_pb2", "payments.v1.query_service_pb2_grpc"]}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--command", required=True)
    parser.add_argument("--query")
    parser.add_argument("--key")
    parser.add_argument("--only", choices=["health", "all"], default="all")
    args = parser.parse_args()

    command_channel = grpc.insecure_channel(args.command)
    health = health_pb2_grpc.HealthStub(command_channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    print("health", health_pb2.HealthCheckResponse.ServingStatus.Name(health.status))
    if args.only == "health":
        return

    m = load()
    payment_pb2 = m["payments.v1.payment_pb2"]
    command_pb2 = m["payments.v1.command_service_pb2"]
    query_pb2 = m["payments.v1.query_service_pb2"]
    auth = [("authorization", "Bearer " + args.key)]
    commands = m["payments.v1.command_service_pb2_grpc"].PaymentCommandServiceStub(command_channel)

    key = "py-" + str(uuid.uuid4())
    request = command_pb2.SubmitPaymentRequest(
        idempotency_key=key,
        amount=payment_pb2.Money(currency="BHD", amount_minor=12345),
        payer=payment_pb2.Party(account_id="acct_py_payer", name="Python Payer"),
        payee=payment_pb2.Party(account_id="acct_py_payee"),
        description="from grpcio",
        metadata={"lang": "python"},
        provider="parked",  # a provider no dispatcher of the test serves: the payment waits, ACCEPTED
    )
    response = commands.SubmitPayment(request, metadata=auth, timeout=10)
    print("submitted", response.payment.payment_id, payment_pb2.PaymentStatus.Name(response.payment.status),
          response.replayed)
    replay = commands.SubmitPayment(request, metadata=auth, timeout=10)
    print("replayed", replay.payment.payment_id, replay.replayed)

    bad = command_pb2.SubmitPaymentRequest()
    bad.CopyFrom(request)
    bad.idempotency_key = "py-bad-" + str(uuid.uuid4())
    bad.amount.currency = "XXX"
    try:
        commands.SubmitPayment(bad, metadata=auth, timeout=10)
        print("invalid accepted?!")
    except grpc.RpcError as error:
        print("invalid", error.code().name, error.details())

    queries = m["payments.v1.query_service_pb2_grpc"].PaymentQueryServiceStub(grpc.insecure_channel(args.query))
    got = queries.GetPayment(
        query_pb2.GetPaymentRequest(payment_id=response.payment.payment_id, min_version=1), metadata=auth, timeout=20)
    print("got", got.payment_id, payment_pb2.PaymentStatus.Name(got.status), got.amount.currency,
          got.amount.amount_minor, got.metadata["lang"])
    by_key = queries.GetPayment(query_pb2.GetPaymentRequest(idempotency_key=key), metadata=auth, timeout=10)
    print("by-key", by_key.payment_id)
    listed = queries.ListPayments(query_pb2.ListPaymentsRequest(page_size=10), metadata=auth, timeout=10)
    print("listed", len(listed.payments), listed.payments[0].payment_id if listed.payments else "-")

    # CancelPayment of the waiting payment, twice, and of a malformed ID.
    payment_id = response.payment.payment_id
    cancel = command_pb2.CancelPaymentRequest(payment_id=payment_id)
    cancelled = commands.CancelPayment(cancel, metadata=auth, timeout=20)
    print("cancelled", cancelled.payment.payment_id, payment_pb2.PaymentStatus.Name(cancelled.payment.status),
          cancelled.payment.version)
    again = commands.CancelPayment(cancel, metadata=auth, timeout=20)
    print("cancelled-again", again.payment.payment_id, payment_pb2.PaymentStatus.Name(again.payment.status),
          again.payment.version)
    try:
        commands.CancelPayment(command_pb2.CancelPaymentRequest(payment_id="pay_nope"), metadata=auth, timeout=10)
        print("cancel-invalid accepted?!")
    except grpc.RpcError as error:
        print("cancel-invalid", error.code().name, error.details())
    final = queries.GetPayment(
        query_pb2.GetPaymentRequest(payment_id=payment_id, min_version=cancelled.payment.version), metadata=auth,
        timeout=20)
    print("got-cancelled", final.payment_id, payment_pb2.PaymentStatus.Name(final.status))

    # RefundPayment of a charged payment: partial, repeated, too much; of the cancelled one.
    charged_request = command_pb2.SubmitPaymentRequest()
    charged_request.CopyFrom(request)
    charged_request.idempotency_key = "py-charged-" + str(uuid.uuid4())
    charged_request.provider = "sandbox"
    charged = commands.SubmitPayment(charged_request, metadata=auth, timeout=10).payment
    for update in queries.WatchPayment(query_pb2.WatchPaymentRequest(payment_id=charged.payment_id),
                                       metadata=auth, timeout=60):
        if update.status == payment_pb2.PAYMENT_STATUS_SUCCEEDED:
            break
    refund_request = command_pb2.RefundPaymentRequest(
        idempotency_key="py-refund-" + str(uuid.uuid4()), payment_id=charged.payment_id, amount_minor=2345,
        currency="BHD", reason="returned goods")
    refund = commands.RefundPayment(refund_request, metadata=auth, timeout=20)
    print("refunded", refund.refund.refund_id, payment_pb2.RefundStatus.Name(refund.refund.status), refund.replayed,
          refund.refund.amount.amount_minor)
    again = commands.RefundPayment(refund_request, metadata=auth, timeout=20)
    print("refund-replayed", again.refund.refund_id, again.replayed)
    for name, change in [("refund-too-much", {"amount_minor": 10001}), ("refund-cancelled", {"payment_id": payment_id})]:
        bad_refund = command_pb2.RefundPaymentRequest()
        bad_refund.CopyFrom(refund_request)
        bad_refund.idempotency_key = "py-refund-" + str(uuid.uuid4())
        for field, value in change.items():
            setattr(bad_refund, field, value)
        try:
            commands.RefundPayment(bad_refund, metadata=auth, timeout=20)
            print(name, "accepted?!")
        except grpc.RpcError as error:
            print(name, error.code().name, error.details())
    got_refund = None
    for _ in range(200):
        try:
            got_refund = queries.GetRefund(query_pb2.GetRefundRequest(refund_id=refund.refund.refund_id),
                                           metadata=auth, timeout=10)
            if got_refund.status == payment_pb2.REFUND_STATUS_SUCCEEDED:
                break
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.NOT_FOUND:
                raise
        time.sleep(0.1)
    if got_refund is not None:
        print("got-refund", got_refund.refund_id, payment_pb2.RefundStatus.Name(got_refund.status),
              got_refund.payment_id)
    refunded_payment = queries.GetPayment(query_pb2.GetPaymentRequest(payment_id=charged.payment_id), metadata=auth,
                                          timeout=10)
    print("payment-refunds", len(refunded_payment.refunds), refunded_payment.refunded.amount_minor,
          refunded_payment.refunded.currency)


if __name__ == "__main__":
    main()
