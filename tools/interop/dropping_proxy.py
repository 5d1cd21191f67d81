"""A TCP proxy for HTTP/2 that drops the first connection at the worst moment for a client.

It forwards bytes both ways between its clients and TARGET_PORT. On the first connection, when
the server's first response HEADERS frame on a stream arrives (the server has processed the
request and is answering), the proxy closes both sides instead of forwarding it: the client
sees its connection lost without an answer, although the server did the work. Every later
connection is forwarded untouched.

Usage: dropping_proxy.py --port-file FILE --target-port PORT
"""

import argparse
import socket
import threading


def pipe(source, sink, on_data=None):
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            if on_data is not None and not on_data(data):
                break
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for s in (source, sink):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class FrameWatcher:
    """Parses server-to-client HTTP/2 frames; returns False at the first response HEADERS."""

    def __init__(self):
        self.buffer = b""

    def __call__(self, data):
        self.buffer += data
        while len(self.buffer) >= 9:
            length = int.from_bytes(self.buffer[0:3], "big")
            frame_type = self.buffer[3]
            stream = int.from_bytes(self.buffer[5:9], "big") & 0x7FFFFFFF
            if frame_type == 0x1 and stream != 0:
                return False
            if len(self.buffer) < 9 + length:
                break
            self.buffer = self.buffer[9 + length:]
        return True


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--target-port", type=int, required=True)
    args = parser.parse_args()
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(listener.getsockname()[1]))
    import os
    os.rename(args.port_file + ".tmp", args.port_file)
    first = True
    while True:
        client, _ = listener.accept()
        server = socket.create_connection(("127.0.0.1", args.target_port))
        watcher = FrameWatcher() if first else None
        first = False
        threading.Thread(target=pipe, args=(client, server), daemon=True).start()
        threading.Thread(target=pipe, args=(server, client, watcher), daemon=True).start()


if __name__ == "__main__":
    main()
