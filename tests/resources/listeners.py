"""A TCP port that accepts connections and never answers: the worst kind of hung server."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def silent_listener() -> Iterator[int]:
    """Yield the port of a listener on 127.0.0.1 that never accepts nor answers.

    The kernel completes the TCP handshake into the backlog, so a client connects and then
    waits forever for the server's first byte. Closing the socket resets those connections,
    which lets the clients' threads finish.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()
