"""Dropping a stream's socket at once, which ASGI cannot ask for.

An ASGI app can only end its response; the server then closes the connection
gracefully, and the kernel keeps the socket and its unsent bytes until the
peer reads them. A client that stopped reading never does, so a stream
dropped as a slow client would keep its file descriptor and send buffer (and
escape MAX_CONNECTIONS, since it is no longer registered) until the client
goes away. `abort_socket` finds the transport in uvicorn's request cycle
(`channel_app.server_connection`) and resets it. Under another server it
finds nothing and the graceful close is all there is.
"""

from __future__ import annotations

import contextlib
import socket
import struct

from starlette.types import Scope

from channel_app.server_connection import request_cycle

LINGER_OFF_RESET = struct.pack("ii", 1, 0)  # struct linger {l_onoff=1, l_linger=0}


def abort_socket(scope: Scope) -> bool:
    """Reset the connection behind this request; False when the server offers no way."""
    transport = getattr(request_cycle(scope), "transport", None)
    abort = getattr(transport, "abort", None)
    if not callable(abort):
        return False
    sock = transport.get_extra_info("socket")
    if sock is not None:
        # Linger 0: the close sends a reset and frees the send buffer now. Without it the
        # kernel keeps the orphaned socket, buffer and all, in FIN_WAIT1 for minutes.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_OFF_RESET)
    abort()
    return True
