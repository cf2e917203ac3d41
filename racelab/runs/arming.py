"""The race window around a run: armed for one burst's parties, and checked to have been used."""

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from racelab.loadgen.errors import LoadError
from racelab.racewindow import barrier as race_window

SERVER_IGNORED_RACE_WINDOW = (
    "The race window was armed, but the server held no request: restart it with "
    "RACE_WINDOW=armed (and DEBUG on) on the same database, and check that the park "
    "points (--race-window-at, else the scenario's or the server's RACE_WINDOW_AT) name a "
    "statement the requests send; then try again."
)


@contextmanager
def arming(
    *, parties: int | None, timeout: float, at: str | None
) -> Iterator[race_window.ArmedBarrier | None]:
    """Arm the race window around a block for ``parties`` requests at the park points ``at``, or
    do nothing when ``parties`` is None."""
    try:
        with ExitStack() as stack:
            barrier = None
            if parties is not None:
                try:
                    barrier = stack.enter_context(race_window.armed(parties=parties, timeout=timeout, at=at))
                except (race_window.RaceWindowError, ValueError) as error:
                    raise LoadError(f"Cannot arm the race window: {error}") from error
            yield barrier
    except race_window.RaceWindowError as error:
        # Armed, then lost (its Redis lease lapsed): its figures can no longer be trusted.
        raise LoadError(f"The race window failed during the run: {error}") from error


def check_barrier_used(stats: race_window.BarrierStats | None, *, ok: int) -> None:
    """Requests went through an armed race window, yet the server held none: say so."""
    if stats is not None and ok and not stats.held:
        raise LoadError(SERVER_IGNORED_RACE_WINDOW)
