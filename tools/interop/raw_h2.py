"""Misbehaving HTTP/2 clients (Python h2, frame by frame) for the server's robustness tests.
Each scenario prints one JSON object with what the server did."""

import argparse
import json
import socket
import struct
import time

import h2.config
import h2.connection
import h2.events

GRPC_HEADERS = [
    (":method", "POST"),
    (":scheme", "http"),
    (":path", "/echo.v1.Echo/Get"),
    (":authority", "localhost"),
    ("content-type", "application/grpc"),
    ("te", "trailers"),
]


def connect(port):
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    return sock, conn


def collect(sock, conn, until, timeout=10.0):
    """Reads and records events until `until(events)` is true, the peer closes, or timeout."""
    events = []
    deadline = time.monotonic() + timeout
    closed = False
    while not until(events) and time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = sock.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            closed = True
            break
        if not data:
            closed = True
            break
        try:
            events += conn.receive_data(data)
        except Exception as exc:  # the server broke the protocol: report it
            events.append(("protocol-error", repr(exc)))
            break
        pending = conn.data_to_send()
        if pending:
            sock.sendall(pending)
    return events, closed


def headers_of(events, stream_id):
    result = {}
    for event in events:
        if isinstance(event, (h2.events.ResponseReceived, h2.events.TrailersReceived)) and event.stream_id == stream_id:
            result.update(dict(event.headers))
    return result


def stream_ended(stream_id):
    return lambda events: any(
        isinstance(e, (h2.events.StreamEnded, h2.events.StreamReset)) and e.stream_id == stream_id for e in events
    )


def garbage_preface(port):
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    started = time.monotonic()
    sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n" + bytes(range(256)))
    received = b""
    closed = False
    sock.settimeout(10)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                closed = True
                break
            received += data
    except (socket.timeout, ConnectionResetError) as exc:
        closed = isinstance(exc, ConnectionResetError)
    return {"closed": closed, "seconds": round(time.monotonic() - started, 3)}


def wrong_content_type(port, content_type="text/plain"):
    sock, conn = connect(port)
    headers = [h if h[0] != "content-type" else ("content-type", content_type) for h in GRPC_HEADERS]
    conn.send_headers(1, headers, end_stream=True)
    sock.sendall(conn.data_to_send())
    events, _ = collect(sock, conn, stream_ended(1))
    return headers_of(events, 1)


def huge_length_prefix(port):
    sock, conn = connect(port)
    conn.send_headers(1, GRPC_HEADERS)
    # A message that claims 4 GiB - 1 bytes, followed by a few of them.
    conn.send_data(1, b"\x00" + struct.pack(">I", 0xFFFFFFFF) + b"abc")
    sock.sendall(conn.data_to_send())
    events, _ = collect(sock, conn, stream_ended(1))
    return headers_of(events, 1)


def rapid_reset(port, count=1000):
    sock, conn = connect(port)
    request = b"\x00\x00\x00\x00\x07" + b"\x0a\x05hello"
    for index in range(count):
        stream_id = 1 + 2 * index
        conn.send_headers(stream_id, GRPC_HEADERS)
        conn.send_data(stream_id, request)
        conn.reset_stream(stream_id)
    sock.sendall(conn.data_to_send())
    events, closed = collect(sock, conn, lambda events: any(isinstance(e, h2.events.ConnectionTerminated) for e in events), timeout=5)
    goaway = [e for e in events if isinstance(e, h2.events.ConnectionTerminated)]
    return {
        "goaway": bool(goaway),
        "goaway_code": int(goaway[0].error_code) if goaway else None,
        "closed": closed,
    }


def stall(port, seconds):
    """Asks for a huge server stream and never reads (no WINDOW_UPDATE, no recv)."""
    sock, conn = connect(port)
    headers = [h if h[0] != ":path" else (":path", "/echo.v1.Echo/Expand") for h in GRPC_HEADERS]
    conn.send_headers(1, headers)
    text = b"x" * 1000
    body = b"\x0a" + bytes([0xE8, 0x07]) + text + b"\x18" + bytes([0xC0, 0x84, 0x3D])  # text, repeat=1_000_000
    conn.send_data(1, b"\x00" + struct.pack(">I", len(body)) + body, end_stream=True)
    sock.sendall(conn.data_to_send())
    time.sleep(seconds)
    sock.close()
    return {"stalled_seconds": seconds}


def big_headers(port):
    sock, conn = connect(port)
    conn.send_headers(1, GRPC_HEADERS + [("x-padding", "p" * 20000)], end_stream=True)
    sock.sendall(conn.data_to_send())
    events, closed = collect(sock, conn, stream_ended(1))
    resets = [e for e in events if isinstance(e, h2.events.StreamReset) and e.stream_id == 1]
    return {"reset": bool(resets), "headers": headers_of(events, 1), "connection_closed": closed}


def silent(port):
    """Connects and sends nothing at all."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    started = time.monotonic()
    closed = False
    sock.settimeout(10)
    try:
        while sock.recv(65536):
            pass
        closed = True
    except socket.timeout:
        pass
    except ConnectionResetError:
        closed = True
    return {"closed": closed, "seconds": round(time.monotonic() - started, 3)}


def settings(port):
    sock, conn = connect(port)
    collect(sock, conn, lambda events: any(isinstance(e, h2.events.RemoteSettingsChanged) for e in events))
    remote = conn.remote_settings
    return {
        "max_concurrent_streams": remote.max_concurrent_streams,
        "max_header_list_size": remote.max_header_list_size,
        "initial_window_size": remote.initial_window_size,
    }


def pings(port):
    """A call that takes a second (delay_ms = 1000), counting the server's PINGs meanwhile."""
    sock, conn = connect(port)
    body = b"\x28\xe8\x07"  # EchoRequest { delay_ms: 1000 }
    conn.send_headers(1, GRPC_HEADERS)
    conn.send_data(1, b"\x00" + struct.pack(">I", len(body)) + body, end_stream=True)
    sock.sendall(conn.data_to_send())
    events, _ = collect(sock, conn, stream_ended(1))
    return {
        "pings": sum(1 for e in events if isinstance(e, h2.events.PingReceived)),
        "grpc_status": headers_of(events, 1).get("grpc-status"),
    }


def partial_messages(port, seconds, connections=20, streams=100):
    """Many connections, each with many streams that announce a 4 MiB message and send as much
    of it as flow control allows, never finishing: what the server buffers must stay bounded.
    Reports the bytes sent (all the server could have had to hold)."""
    peers = []
    for _ in range(connections):
        sock, conn = connect(port)
        sock.setblocking(False)
        peers.append((sock, conn, {}, []))
    announced = b"\x00" + (4 << 20).to_bytes(4, "big")
    sent = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        progress = False
        for sock, conn, remaining, opened in peers:
            try:
                data = sock.recv(1 << 20)
                if data:
                    conn.receive_data(data)
            except (BlockingIOError, InterruptedError):
                pass
            except Exception:
                continue
            if not opened and conn.remote_settings.max_concurrent_streams:
                opened.append(True)
                for _ in range(min(streams, conn.remote_settings.max_concurrent_streams)):
                    stream_id = conn.get_next_available_stream_id()
                    conn.send_headers(stream_id, GRPC_HEADERS)
                    conn.send_data(stream_id, announced)
                    remaining[stream_id] = 4 << 20
            for stream_id in list(remaining):
                window = min(conn.local_flow_control_window(stream_id), conn.max_outbound_frame_size,
                             remaining[stream_id] - 1)
                if window > 0:
                    conn.send_data(stream_id, b"\x00" * window)
                    remaining[stream_id] -= window
                    sent += window
                    progress = True
            pending = conn.data_to_send()
            if pending:
                try:
                    sock.setblocking(True)
                    sock.sendall(pending)
                finally:
                    sock.setblocking(False)
        if not progress:
            time.sleep(0.01)
    for sock, _, _, _ in peers:
        sock.close()
    return {"sent_bytes": sent}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--scenario", required=True)
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--connections", type=int, default=20)
    arguments = parser.parse_args()
    scenarios = {
        "garbage-preface": lambda: garbage_preface(arguments.port),
        "wrong-content-type": lambda: wrong_content_type(arguments.port),
        "json-content-type": lambda: wrong_content_type(arguments.port, "application/grpc+json"),
        "huge-length-prefix": lambda: huge_length_prefix(arguments.port),
        "rapid-reset": lambda: rapid_reset(arguments.port),
        "stall": lambda: stall(arguments.port, arguments.seconds),
        "big-headers": lambda: big_headers(arguments.port),
        "silent": lambda: silent(arguments.port),
        "settings": lambda: settings(arguments.port),
        "pings": lambda: pings(arguments.port),
        "partial-messages": lambda: partial_messages(arguments.port, arguments.seconds, arguments.connections),
    }
    print(json.dumps(scenarios[arguments.scenario]()))


if __name__ == "__main__":
    main()
