"""What the kernel says of one TCP connection on IPv4 loopback: has a server process accepted it
and read every byte sent so far? A test waits for that state ("a worker is now reading my
request") instead of sleeping for a time that a slower machine would need longer than."""

import time

POLL_SECONDS = 0.01
ESTABLISHED = "01"


def wait_until_read_by_server(*, server_port: int, client_port: int, timeout: float = 15) -> None:
    """Return once the server side of the connection from ``client_port`` to ``server_port`` is
    accepted (a connection still in the listen queue has no socket inode yet) and its receive
    queue is empty; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = _server_side(server_port=server_port, client_port=client_port)
        if state is not None and state["accepted"] and state["unread"] == 0:
            return
        time.sleep(POLL_SECONDS)
    raise AssertionError(
        f"no server process took and read the connection from port {client_port} within {timeout} s "
        f"(last seen: {_server_side(server_port=server_port, client_port=client_port)})"
    )


def _server_side(*, server_port: int, client_port: int) -> dict | None:
    with open("/proc/net/tcp") as table:
        for line in table.read().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rpartition(":")[2], 16)
            remote_port = int(fields[2].rpartition(":")[2], 16)
            if (local_port, remote_port) == (server_port, client_port) and fields[3] == ESTABLISHED:
                unread = int(fields[4].rpartition(":")[2], 16)
                return {"accepted": fields[9] != "0", "unread": unread}
    return None
