"""A server that answers every HTTP request with canned bytes and does nothing else.

It is the fastest thing the load generator can talk to, so the benchmark runs it to measure
the client's own ceiling: if the client drives this server much faster than the bare app,
the client is not what limits the other figures.

    python canned_server.py --uds PATH
    python canned_server.py --tcp PORT --tls-cert F --tls-key F
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import ssl
from typing import cast

import uvloop

BODY = b'{"status":"ok"}'
RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
    len(BODY),
    BODY,
)


class Canned(asyncio.Protocol):
    """One reply per complete request head (the benchmark's GETs carry no body)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self.pending = b""

    def data_received(self, data: bytes) -> None:
        self.pending += data
        count = self.pending.count(b"\r\n\r\n")
        if count:
            self.pending = self.pending[self.pending.rfind(b"\r\n\r\n") + 4 :]
            self.transport.write(RESPONSE * count)


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


async def serve(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _resolve, stop)
    if args.uds:
        server = await loop.create_unix_server(Canned, args.uds)
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        server = await loop.create_server(Canned, "127.0.0.1", args.tcp, ssl=ctx)
    async with server:
        await stop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--uds")
    parser.add_argument("--tcp", type=int)
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    uvloop.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
