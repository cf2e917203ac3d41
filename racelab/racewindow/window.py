"""What every barrier backend speaks: the window, a request's passage, the counters, the errors.

A module of its own so the backends (racelab/racewindow/file_backend.py, racelab/racewindow/redis_backend.py)
and the public API that picks one (racelab/racewindow/barrier.py) import it without importing each other.
"""

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, fields
from typing import Protocol

from racelab.racewindow import park_points

DEFAULT_TIMEOUT_SECONDS = 0.5
MAX_TIMEOUT_SECONDS = 10.0
MAX_PARTIES = 1_000


class RaceWindowError(RuntimeError):
    """The barrier cannot be armed; the message says why and what to do."""


@dataclass(frozen=True)
class RaceWindow:
    """Hold each request at its park point until ``parties`` on the same resource have reached it.

    ``at`` names the park points (``table[:read|write|any[:occurrence]]``, comma-separated); None
    leaves them to the server's ``RACE_WINDOW_AT``.
    """

    parties: int
    timeout: float = DEFAULT_TIMEOUT_SECONDS
    at: str | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.parties <= MAX_PARTIES:
            raise ValueError(f"parties must be from 1 to {MAX_PARTIES}, not {self.parties}")
        if not 0 < self.timeout <= MAX_TIMEOUT_SECONDS:
            raise ValueError(
                f"timeout must be above 0 and at most {MAX_TIMEOUT_SECONDS} s, not {self.timeout}"
            )
        if self.at is not None:
            park_points.parse(self.at)


@dataclass(frozen=True)
class Passage:
    """How one request went through the barrier: its window, its place in it, its wait."""

    window: int
    position: int
    waited: float


@dataclass(frozen=True)
class BarrierStats:
    """What the barriers of a database saw since it was armed, over every resource.

    ``held``: the requests that reached a park point, each once, those let straight through as
    part of a serialized window included. ``windows``: the windows closed, ``timeouts`` of them
    by the timeout, ``serialized`` of them at once because the parties still missing were blocked
    on a lock a held request holds (racelab/racewindow/lock_waits.py): those go straight through
    when they reach their park point.
    """

    held: int
    windows: int
    timeouts: int
    serialized: int

    def since(self, before: "BarrierStats") -> "BarrierStats":
        """What the barriers saw between ``before`` and these counts."""
        return BarrierStats(
            **{field.name: getattr(self, field.name) - getattr(before, field.name) for field in fields(self)}
        )


class Backend(Protocol):
    """Where the barriers of one lab database live: files on this host, or a Redis that several
    hosts share. Every process that uses the database builds the same one from its settings."""

    def arm(self, *, window: RaceWindow) -> AbstractContextManager[None]:
        """Publish ``window`` to every server of the database while the block runs, after clearing
        what earlier windows left; RaceWindowError if another process has it armed already."""

    def armed_window(self) -> RaceWindow | None:
        """The window some live process has armed for the database, if any."""

    def hold(self, *, window: RaceWindow, resource: str, blocked: Callable[[], int] | None = None) -> Passage:
        """Wait at the barrier of ``resource`` until its window closes. ``blocked``, if given,
        says how many sessions are waiting on this request's locks: the window's first party asks
        it while it watches, and counts them as arrived."""

    def stats(self) -> BarrierStats:
        """Requests held, windows closed, how many of those the timeout closed, and how many
        closed because the parties still missing were blocked on a held request's lock."""
