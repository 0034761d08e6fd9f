#!/usr/bin/env python3
"""Opens N keep-alive connections to an HTTP/1.1 server, sends one request on each and reads its
answer, then holds them all idle until told to stop (a line on stdin, or SIGTERM). With --h2,
the connections are h2c (HTTP/2 with prior knowledge): the preface, one GET stream, then idle.

Prints one line once they are all open: `open N SECONDS` (the time from the first connect to
the last answer read), or `failed REASON` and exits 1. Connections are spread over source
addresses 127.0.0.2, 127.0.0.3, ... so that more than one address's ephemeral ports can be used.

    python3 bench/idle_clients.py HOST:PORT N [--h2]
"""

import asyncio
import resource
import socket
import sys
import time

PER_SOURCE = 20000  # connections per source address, well inside one address's port range
CONCURRENT_OPENS = 256  # connects in flight at once, so that the backlog is not overrun
# Linux: bind() to a source address picks the port at connect(), by the whole address pair, so
# ports left in TIME_WAIT by an earlier run against another target do not slow the search.
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)


def raise_fd_limit(needed):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < needed + 64:
        raise SystemExit(f"failed the file-descriptor limit is {hard}, {needed} connections need more")


def h2_frame(kind, flags, stream, payload=b""):
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


def h2_request(authority):
    """The client preface, an empty SETTINGS frame and one GET / on stream 1, HPACK-encoded with
    the static table (:method GET, :scheme http, :path /) and a literal :authority."""
    name = authority.encode()
    block = bytes([0x82, 0x86, 0x84, 0x41, len(name)]) + name
    return (
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
        + h2_frame(0x4, 0x0, 0)
        + h2_frame(0x1, 0x5, 1, block)  # HEADERS, END_STREAM | END_HEADERS
    )


async def read_h2_answer(loop, sock):
    """Reads frames until stream 1 ends, acknowledging the server's SETTINGS."""
    data = b""
    while True:
        while len(data) < 9 or len(data) < 9 + int.from_bytes(data[:3], "big"):
            chunk = await loop.sock_recv(sock, 16384)
            if not chunk:
                raise ConnectionError("closed before answering")
            data += chunk
        length = int.from_bytes(data[:3], "big")
        kind, flags, stream = data[3], data[4], int.from_bytes(data[5:9], "big") & 0x7FFFFFFF
        data = data[9 + length :]
        if kind == 0x4 and not flags & 0x1:
            await loop.sock_sendall(sock, h2_frame(0x4, 0x1, 0))
        if kind == 0x7:
            raise ConnectionError("GOAWAY")
        if stream == 1 and kind in (0x0, 0x1) and flags & 0x1:
            return


async def open_one(host, port, index, gate, request, h2):
    source = f"127.0.0.{2 + index // PER_SOURCE}"
    async with gate:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        sock.bind((source, 0))
        loop = asyncio.get_running_loop()
        await loop.sock_connect(sock, (host, port))
        await loop.sock_sendall(sock, request)
        if h2:
            await read_h2_answer(loop, sock)
            return sock
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = await loop.sock_recv(sock, 4096)
            if not chunk:
                raise ConnectionError("closed before answering")
            answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise ConnectionError(head.split(b"\r\n")[0].decode(errors="replace"))
        length = next(
            (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")),
            None,
        )
        if length is None:
            raise ConnectionError("no content-length in the answer")
        while len(body) < length:
            chunk = await loop.sock_recv(sock, 4096)
            if not chunk:
                raise ConnectionError("closed inside the body")
            body += chunk
        return sock


async def main():
    address, count = sys.argv[1], int(sys.argv[2])
    h2 = "--h2" in sys.argv[3:]
    host, port = address.rsplit(":", 1)
    raise_fd_limit(count)
    request = h2_request(address) if h2 else f"GET / HTTP/1.1\r\nHost: {address}\r\n\r\n".encode()
    gate = asyncio.Semaphore(CONCURRENT_OPENS)
    started = time.monotonic()
    try:
        socks = await asyncio.gather(*(open_one(host, int(port), i, gate, request, h2) for i in range(count)))
    except Exception as err:  # noqa: BLE001 - reported to the caller as one line
        print(f"failed {type(err).__name__}: {err}", flush=True)
        sys.exit(1)
    print(f"open {len(socks)} {time.monotonic() - started:.3f}", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)
    closed = sum(1 for s in socks if _closed(s))
    try:
        print(f"closed-by-server {closed}", flush=True)
    except BrokenPipeError:
        pass
    for s in socks:
        s.close()


def _closed(sock):
    """Whether the server closed this connection while it was held."""
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


if __name__ == "__main__":
    asyncio.run(main())
