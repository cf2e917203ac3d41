"""Clocks for benchmarks, and cases measured in turn, in a new random order each round."""

import random
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path


def wall_time(work: Callable[[], object]) -> float:
    """Seconds one call of ``work`` takes."""
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def command_wall_time(argv: list[str], *, env: dict[str, str], cwd: Path) -> float:
    """Seconds one command takes; it must succeed."""
    return wall_time(
        lambda: subprocess.run(argv, env=env, cwd=cwd, check=True, capture_output=True, timeout=600)
    )


def interleaved(
    cases: Mapping[str, Callable[[], float]], *, rounds: int, shown: str = "{:.3f} s"
) -> dict[str, list[float]]:
    """Each case's measurement, round by round; every round runs all cases in a new random order,
    so the machine's noise during a round moves all of them together. A line a round goes to
    stderr, with each measurement formatted by ``shown``, so a long run shows it is alive."""
    measured = {name: [] for name in cases}
    for round_number in range(1, rounds + 1):
        for name in random.sample(list(cases), len(cases)):
            measured[name].append(cases[name]())
        progress = ", ".join(f"{name} {shown.format(values[-1])}" for name, values in measured.items())
        print(f"round {round_number}: {progress}", file=sys.stderr)
    return measured
