"""A gRPC server and client for vane's end-to-end tests: grpcio (gRPC's C core, an HTTP/2 stack
other than vane's), with no generated code: every message is raw bytes. Service
`vane.test.Echo`, methods:

  Unary   answers NAME:REQUEST
  Stream  REQUEST is "COUNT,INTERVAL_MS": answers NAME:0 .. NAME:COUNT-1, one per interval
  Fail    ends with NOT_FOUND "no such thing"
  Slow    waits (at most 10 s) for the call to be cancelled, and says so on stdout

  peer.py serve NAME                        prints "port N", then "cancelled Slow" per cancelled Slow
  peer.py unary ADDRESS COUNT               COUNT calls on one channel: "served NAME" or "status CODE"
  peer.py unary-tls ADDRESS CA NAME COUNT   the same over TLS, trusting the PEM file CA, asking for NAME
  peer.py stream ADDRESS COUNT INTERVAL_MS  "message M" per message, then "status CODE DETAILS"
  peer.py fail ADDRESS                      "status CODE DETAILS"

Every line is flushed at once, so a test can act on it while the call goes on.
"""

import sys
import threading
import time
from concurrent import futures

import grpc

SERVICE = "vane.test.Echo"


def say(*words):
    print(*words, flush=True)


def serve(name):
    def unary(request, context):
        return name.encode() + b":" + request

    def stream(request, context):
        count, interval_ms = (int(part) for part in request.decode().split(","))
        for index in range(count):
            if not context.is_active():
                return
            yield f"{name}:{index}".encode()
            time.sleep(interval_ms / 1000)

    def fail(request, context):
        context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")

    def slow(request, context):
        ended = threading.Event()
        context.add_callback(ended.set)
        if ended.wait(10):
            say("cancelled Slow")
        return b"too late"

    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Unary": grpc.unary_unary_rpc_method_handler(unary),
            "Stream": grpc.unary_stream_rpc_method_handler(stream),
            "Fail": grpc.unary_unary_rpc_method_handler(fail),
            "Slow": grpc.unary_unary_rpc_method_handler(slow),
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    say("port", port)
    server.wait_for_termination()


def method(channel, name, streaming=False):
    path = f"/{SERVICE}/{name}"
    return channel.unary_stream(path) if streaming else channel.unary_unary(path)


def status(error):
    say("status", error.code().name, error.details())


def main(command, *args):
    if command == "serve":
        return serve(args[0])
    if command == "unary-tls":
        address, ca, name, count = args
        with open(ca, "rb") as pem:
            credentials = grpc.ssl_channel_credentials(root_certificates=pem.read())
        options = [("grpc.ssl_target_name_override", name)]
        channel = grpc.secure_channel(address, credentials, options=options)
        command, args = "unary", (address, count)
    else:
        channel = grpc.insecure_channel(args[0])
    if command == "unary":
        call = method(channel, "Unary")
        for index in range(int(args[1])):
            try:
                answer = call(f"call {index}".encode(), timeout=10)
                say("served", answer.decode().split(":")[0])
            except grpc.RpcError as error:
                status(error)
    elif command == "stream":
        call = method(channel, "Stream", streaming=True)
        try:
            for message in call(f"{args[1]},{args[2]}".encode(), timeout=60):
                say("message", message.decode())
            say("status OK")
        except grpc.RpcError as error:
            status(error)
    elif command == "fail":
        try:
            method(channel, "Fail")(b"", timeout=10)
            say("status OK")
        except grpc.RpcError as error:
            status(error)
    else:
        sys.exit(f"unknown command {command!r}")


if __name__ == "__main__":
    main(*sys.argv[1:])
