#!/usr/bin/env python3
"""Opens N keep-alive connections to an HTTP/1.1 server, sends one request on each and reads its
answer, then holds them all idle until told to stop (a line on stdin, or SIGTERM).

Prints one line once they are all open: `open N SECONDS` (the time from the first connect to
the last answer read), or `failed REASON` and exits 1. Connections are spread over source
addresses 127.0.0.2, 127.0.0.3, ... so that more than one address's ephemeral ports can be used.

    python3 bench/idle_clients.py HOST:PORT N
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


async def open_one(host, port, index, gate, request):
    source = f"127.0.0.{2 + index // PER_SOURCE}"
    async with gate:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        sock.bind((source, 0))
        loop = asyncio.get_running_loop()
        await loop.sock_connect(sock, (host, port))
        await loop.sock_sendall(sock, request)
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
    host, port = address.rsplit(":", 1)
    raise_fd_limit(count)
    request = f"GET / HTTP/1.1\r\nHost: {address}\r\n\r\n".encode()
    gate = asyncio.Semaphore(CONCURRENT_OPENS)
    started = time.monotonic()
    try:
        socks = await asyncio.gather(*(open_one(host, int(port), i, gate, request) for i in range(count)))
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
