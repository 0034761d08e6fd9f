#!/usr/bin/env python3
"""Hostile HTTP/1 clients for bench/floods.sh: COUNT connections to vane, each doing one bad
thing for as long as it runs, reconnecting when vane closes them.

    floods.py MODE COUNT PORT

Modes:
  slowloris   a request head that never ends: one more header line every second
  stalled     a POST announcing 1 MB that sends 3 bytes and then nothing
  never-read  a GET of /big that never reads its response (small receive buffer)
  idle        one GET answered, then an idle keep-alive connection
"""

import asyncio
import socket
import sys


async def connect(port, receive_buffer=None):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return await asyncio.open_connection(sock=sock)


async def until_closed(reader):
    """Reads until vane closes the connection."""
    while await reader.read(65536):
        pass


async def slowloris(port):
    reader, writer = await connect(port)
    writer.write(b"GET / HTTP/1.1\r\nHost: a\r\n")
    closed = asyncio.ensure_future(until_closed(reader))
    line = 0
    while not closed.done():
        await asyncio.sleep(1)
        line += 1
        writer.write(b"X-%d: x\r\n" % line)
    writer.close()


async def stalled(port):
    reader, writer = await connect(port)
    writer.write(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\nabc")
    await until_closed(reader)
    writer.close()


async def never_read(port):
    _reader, writer = await connect(port, receive_buffer=4096)
    writer.write(b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
    await writer.drain()
    # Never read; vane's send timeout closes the connection, which this side sees only on a
    # write, so it tries one now and then.
    while True:
        await asyncio.sleep(1)
        if writer.transport.is_closing():
            break
        try:
            writer.write(b"\r\n")
            await writer.drain()
        except (ConnectionError, OSError):
            break
    writer.close()


async def idle(port):
    reader, writer = await connect(port)
    writer.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    await until_closed(reader)
    writer.close()


async def forever(mode, port):
    while True:
        try:
            await mode(port)
        except (ConnectionError, OSError):
            await asyncio.sleep(0.1)


async def main():
    modes = {"slowloris": slowloris, "stalled": stalled, "never-read": never_read, "idle": idle}
    mode, count, port = modes[sys.argv[1]], int(sys.argv[2]), int(sys.argv[3])
    await asyncio.gather(*(forever(mode, port) for _ in range(count)))


if __name__ == "__main__":
    asyncio.run(main())
