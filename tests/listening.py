"""A loopback port that listens and never answers, for tests that prove nothing was sent to it.

The kernel completes a connection's handshake into the listening socket's queue whether or not
anyone accepts it, so after the code under test has run, whatever connected is still waiting
there, with the bytes it sent.
"""

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from labserver.lab import LOOPBACK

READ_SECONDS = 0.5


@dataclass(frozen=True)
class Listener:
    url: str
    sock: socket.socket

    def arrivals(self) -> list[bytes]:
        """What each connection made so far sent (b"" for one that sent nothing): [] if none came."""
        arrived = []
        self.sock.setblocking(False)
        while True:
            try:
                connection, _ = self.sock.accept()
            except BlockingIOError:
                return arrived
            with connection:
                connection.settimeout(READ_SECONDS)
                try:
                    arrived.append(connection.recv(65536))
                except TimeoutError:
                    arrived.append(b"")


@contextmanager
def listener() -> Iterator[Listener]:
    """A socket listening on a free loopback port, closed on the way out."""
    with socket.create_server((LOOPBACK, 0)) as sock:
        yield Listener(url=f"http://{LOOPBACK}:{sock.getsockname()[1]}", sock=sock)
