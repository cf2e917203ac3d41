"""Gunicorn serving the floor beside the lab's own server, on the lab's database."""

from collections.abc import Iterator
from contextlib import contextmanager

from bench.floor.app import WITHDRAW_PATH
from labserver.lab import Lab, Server

FLOOR_APP = "bench.floor.app:from_environment()"


@contextmanager
def serve_floor(lab_env: Lab, *, workers: int) -> Iterator[Server]:
    """The floor on a free loopback port, same Gunicorn and config as the lab's; always stopped.
    Without a session cookie it answers 403: ready."""
    with lab_env.serve(workers=workers, app=FLOOR_APP, ready_path=WITHDRAW_PATH) as server:
        yield server
