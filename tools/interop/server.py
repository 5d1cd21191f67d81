"""A Python grpcio server of echo.v1.Echo with the same behaviour as the Swift EchoService, for
our client to call. Writes its port to --port-file, then serves until killed."""

import argparse
import time
from concurrent import futures

import grpc

import peers

echo_pb2, echo_grpc, _, _ = peers.load_modules()


def prepare(request, context, echo=True):
    if echo:
        echo_metadata(context)
    if request.delay_ms > 0:
        time.sleep(request.delay_ms / 1000)
    if request.fail_with_code != 0:
        code = next(c for c in grpc.StatusCode if c.value[0] == request.fail_with_code)
        context.abort(code, request.text)


def echo_metadata(context):
    echoed = [(k, v) for k, v in context.invocation_metadata() if k.startswith("echo-")]
    context.send_initial_metadata(echoed)
    context.set_trailing_metadata([("trailer-" + k, v) for k, v in echoed])


class Echo(echo_grpc.EchoServicer):
    def Get(self, request, context):
        prepare(request, context)
        return echo_pb2.EchoResponse(text=request.text, payload=request.payload)

    def Expand(self, request, context):
        prepare(request, context)
        for index in range(request.repeat):
            yield echo_pb2.EchoResponse(text=request.text, index=index)

    def Collect(self, request_iterator, context):
        echo_metadata(context)
        texts, payload = [], b""
        for request in request_iterator:
            prepare(request, context, echo=False)
            texts.append(request.text)
            payload += request.payload
        return echo_pb2.EchoResponse(text=" ".join(texts), payload=payload)

    def Update(self, request_iterator, context):
        echo_metadata(context)
        for index, request in enumerate(request_iterator):
            prepare(request, context, echo=False)
            yield echo_pb2.EchoResponse(text=request.text, payload=request.payload, index=index)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--reflection", action="store_true", help="also serve grpcio-reflection")
    arguments = parser.parse_args()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    echo_grpc.add_EchoServicer_to_server(Echo(), server)
    if arguments.reflection:
        from grpc_reflection.v1alpha import reflection

        names = (echo_pb2.DESCRIPTOR.services_by_name["Echo"].full_name, reflection.SERVICE_NAME)
        reflection.enable_server_reflection(names, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    with open(arguments.port_file + ".tmp", "w") as file:
        file.write(str(port))
    import os

    os.rename(arguments.port_file + ".tmp", arguments.port_file)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
