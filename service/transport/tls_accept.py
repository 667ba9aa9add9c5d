"""TLS for the TCP listener: accepted and counted by us, with a short handshake timeout.

With `create_server(ssl=...)`, which uvicorn uses, a connection reaches the HTTP protocol
only once its TLS handshake is complete, and asyncio gives a client 60 s to complete it:
1,000 silent TCP connections were held that long, never counted against
`max_connections`, and under a 1,024 fd limit the Unix sockets stopped accepting. So the
TLS listener's accept loop is ours:

* each accepted connection takes a place in the listener's count at once (the HTTP
  connections plus the handshakes in progress); one over the cap is closed at once (no
  TLS yet, so there is nothing readable to answer with);
* the handshake runs through `loop.connect_accepted_socket` with a short timeout
  (`tls_handshake_timeout_secs`, 5 s by default); a failed or timed-out one gives its place
  back, a completed one hands the connection to the HTTP protocol, which holds the place
  from then on;
* accept() failing for lack of descriptors (EMFILE) pauses the loop briefly instead of
  ending it.

(Doing the handshake with `loop.start_tls` from a protocol that accepted plain TCP does not
work on uvloop: it starts reading right after `connection_made`, so the client's first
bytes could reach the plain protocol before the TLS one.)
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import ssl
from collections.abc import Callable
from typing import Any

from uvicorn.config import Config
from uvicorn.server import ServerState

from service.transport.protocol import GuardedProtocol

log = logging.getLogger("patina.transport")

# accept() errors that mean "no resources right now": wait a moment and go on.
_SHORT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
RESOURCE_PAUSE_SECS = 0.1


class TlsAcceptLoop:
    """Accepts on one listening TCP socket and runs each connection's TLS handshake."""

    def __init__(
        self,
        sock: socket.socket,
        ssl_context: ssl.SSLContext,
        protocol_class: type[GuardedProtocol],
    ) -> None:
        self.sock = sock
        self.ssl_context = ssl_context
        self.protocol_class = protocol_class
        self.policy = protocol_class.policy
        self._handshakes: set[asyncio.Task[None]] = set()
        self._accepting: asyncio.Task[None] | None = None
        self._make_protocol: Callable[[], GuardedProtocol] | None = None
        self._connections: set[Any] = set()

    def start(self, config: Config, server_state: ServerState, app_state: dict[str, Any]) -> None:
        """Begin accepting; HTTP protocols are made as uvicorn would make them."""
        loop = asyncio.get_running_loop()
        self._connections = server_state.connections

        def make_protocol() -> GuardedProtocol:
            return self.protocol_class(
                config=config, server_state=server_state, app_state=app_state, _loop=loop
            )

        self._make_protocol = make_protocol
        self._accepting = loop.create_task(self._accept_forever())

    async def _accept_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _address = await loop.sock_accept(self.sock)
            except OSError as exc:
                if exc.errno in _SHORT_OF_RESOURCES:
                    await asyncio.sleep(RESOURCE_PAUSE_SECS)
                continue  # e.g. ECONNABORTED: the client left before we got to it
            if len(self._connections) + len(self._handshakes) >= self.policy.max_connections:
                conn.close()
                continue
            task = loop.create_task(self._handshake(conn))
            self._handshakes.add(task)
            task.add_done_callback(self._handshakes.discard)

    async def _handshake(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        assert self._make_protocol is not None
        try:
            await loop.connect_accepted_socket(
                self._make_protocol,
                conn,
                ssl=self.ssl_context,
                ssl_handshake_timeout=self.policy.tls_handshake_timeout,
            )
        except (OSError, ssl.SSLError, TimeoutError):
            # Silent, slow, not TLS, or a certificate the context refuses.
            conn.close()
        except asyncio.CancelledError:
            conn.close()
            raise

    async def stop(self) -> None:
        """Stop accepting and drop the handshakes in progress (HTTP connections are
        uvicorn's to drain)."""
        tasks = [*self._handshakes]
        if self._accepting is not None:
            tasks.append(self._accepting)
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)
