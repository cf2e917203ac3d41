"""A PostgreSQL server of the test's own: a new cluster on a free loopback port, for a test that
stops and starts its database under load without touching the server every other test shares
(tests of other processes keep running on that one meanwhile)."""

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from labserver.lab import LOOPBACK, free_port
from tests.helpers import require

TIMEOUT_SECONDS = 120
# Debian installs each major version's server programs here, outside PATH.
DEBIAN_BINARIES = Path("/usr/lib/postgresql")


@dataclass(frozen=True)
class PrivateCluster:
    url: str
    data: Path
    port: int
    bindir: Path

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses={LOOPBACK} -k {self.data.parent} -c fsync=off"
        self._pg_ctl("start", "-w", "-o", options, "-l", str(self.data.parent / "server.log"))

    def stop(self) -> None:
        self._pg_ctl("stop", "-w", "-m", "fast")

    def _pg_ctl(self, action: str, *args: str) -> None:
        _run_as_owner([str(self.bindir / "pg_ctl"), action, "-D", str(self.data), *args])


@contextmanager
def private_postgres() -> Iterator[PrivateCluster]:
    """A started cluster (superuser ``postgres``, trusted on loopback); stopped and removed after."""
    bindir = _server_binaries()
    # Not under pytest's temporary folders: the server refuses to run as root, and its own user
    # must be able to reach the folder.
    home = Path(tempfile.mkdtemp(prefix="lab-postgres-"))
    try:
        os.chmod(home, 0o700)
        if os.geteuid() == 0:
            shutil.chown(home, user="postgres", group="postgres")
        data = home / "data"
        _run_as_owner([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync"])
        port = free_port()
        cluster = PrivateCluster(url=f"postgres://postgres@{LOOPBACK}:{port}/postgres", data=data, port=port,
                                 bindir=bindir)  # fmt: skip
        cluster.start()
        try:
            yield cluster
        finally:
            _run_as_owner([str(bindir / "pg_ctl"), "stop", "-D", str(data), "-m", "immediate"], check=False)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _server_binaries() -> Path:
    versions = sorted(DEBIAN_BINARIES.glob("*/bin/initdb"), key=lambda path: int(path.parts[-3]))
    require(
        bool(versions), f"no PostgreSQL server programs under {DEBIAN_BINARIES} (apt-get install postgresql)"
    )
    return versions[-1].parent


def _run_as_owner(argv: list[str], *, check: bool = True) -> None:
    """Root runs the server programs as ``postgres``: PostgreSQL refuses to run as root."""
    if os.geteuid() == 0:
        argv = ["runuser", "-u", "postgres", "--", *argv]
    subprocess.run(argv, check=check, capture_output=True, timeout=TIMEOUT_SECONDS, stdin=subprocess.DEVNULL)
