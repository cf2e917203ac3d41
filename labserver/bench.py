"""What the scripts under bench/ share: databases by name, Django in-process, ab runs, timers."""

import argparse
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from labserver.lab import Lab, lab
from loadgen.ab import ab_accepts_variable_length, parse_ab_report
from loadgen.login import SessionCookies
from loadgen.tools import require_tool, run_tool

# The local servers this project's machines run; any other URL may be given instead.
DATABASES = {
    "sqlite": None,
    "postgres": "postgres://postgres@127.0.0.1:5432/postgres",
    "mysql": "mysql://root@127.0.0.1:3306/test",
}


def database_url(name_or_url: str) -> str | None:
    """``sqlite``, ``postgres``, ``mysql`` or a full DATABASE_URL."""
    return DATABASES.get(name_or_url, name_or_url)


def argument_parser(doc: str, *, rounds: int) -> argparse.ArgumentParser:
    """A parser whose help is the script's docstring, with the options every script takes."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default="sqlite", help="sqlite, postgres, mysql or a DATABASE_URL.")
    parser.add_argument("--rounds", type=int, default=rounds, help=f"Timed rounds (default: {rounds}).")
    return parser


@contextmanager
def bench_lab(database: str) -> Iterator[Lab]:
    """A fresh lab database of that kind in a temporary folder (the lab's workdir), dropped after."""
    with (
        tempfile.TemporaryDirectory(prefix="bench-") as workdir,
        lab(workdir=Path(workdir), base_database_url=database_url(database)) as lab_env,
    ):
        yield lab_env


def setup_django(lab_env: Lab) -> None:
    """Configure Django in this process on the lab's database. Call it before importing models."""
    os.environ.update(
        DJANGO_SETTINGS_MODULE="bank.settings",
        DATABASE_URL=lab_env.database_url,
        DJANGO_SECRET_KEY_FILE=lab_env.env["DJANGO_SECRET_KEY_FILE"],
    )
    import django

    django.setup()


@dataclass(frozen=True)
class AbRun:
    requests_per_second: float
    complete: int
    non_2xx: int
    failed: int


def ab(
    url: str, *, cookies: SessionCookies, requests: int, concurrency: int, body: Path | None = None
) -> AbRun:
    """One quiet ab run (GET, or POST of ``body``), with no per-response log to slow ab itself."""
    binary = require_tool("ab")
    argv = [binary, "-q", "-n", str(requests), "-c", str(concurrency), "-C", cookies.cookie_header]
    if body is not None:
        argv += ["-H", f"X-CSRFToken: {cookies.csrftoken}", "-p", str(body)]
        argv += ["-T", "application/x-www-form-urlencoded"]
    if ab_accepts_variable_length(binary):
        argv.append("-l")
    result = run_tool([*argv, url], timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"ab failed (exit {result.returncode}): {result.stderr.strip()}")
    report = parse_ab_report(result.stdout)
    return AbRun(
        requests_per_second=report.requests_per_second,
        complete=report.complete,
        non_2xx=report.non_2xx,
        failed=report.failed - report.failed_length,
    )


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
