"""Where a benchmark runs: its command line, a fresh lab database and its user, Django in this process."""

import argparse
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from labserver.lab import Lab, lab

# The local servers this project's machines run; any other URL may be given instead.
DATABASES = {
    "sqlite": None,
    "postgres": "postgres://postgres@127.0.0.1:5432/postgres",
    "mysql": "mysql://root@127.0.0.1:3306/test",
}
# The user every benchmark that logs in seeds and logs in as.
USERNAME = "bench"
PASSWORD = "bench-password"


def database_url(name_or_url: str) -> str | None:
    """``sqlite``, ``postgres``, ``mysql`` or a full DATABASE_URL."""
    return DATABASES.get(name_or_url, name_or_url)


def argument_parser(doc: str, *, rounds: int | None = None) -> argparse.ArgumentParser:
    """A parser whose help is the script's docstring, with --database, and --rounds if it has a default."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default="sqlite", help="sqlite, postgres, mysql or a DATABASE_URL.")
    if rounds is not None:
        parser.add_argument("--rounds", type=int, default=rounds, help=f"Timed rounds (default: {rounds}).")
    return parser


def add_ab_options(parser: argparse.ArgumentParser, *, requests: int) -> None:
    """-n per ab run, -c, and Gunicorn's workers: the options of every benchmark that fires ab."""
    parser.add_argument(
        "--requests", type=int, default=requests, help=f"ab -n per case and round (default: {requests})."
    )
    parser.add_argument("--concurrency", type=int, default=4, help="ab -c (default: 4, one per worker).")
    parser.add_argument("--workers", type=int, default=4, help="Gunicorn workers, each server (default: 4).")


@contextmanager
def bench_lab(database: str) -> Iterator[Lab]:
    """A fresh lab database of that kind in a temporary folder (the lab's workdir), dropped after."""
    with (
        tempfile.TemporaryDirectory(prefix="bench-") as workdir,
        lab(workdir=Path(workdir), base_database_url=database_url(database)) as lab_env,
    ):
        yield lab_env


def seed_user(lab_env: Lab, *, balance: int | None = None) -> None:
    """Create the benchmarks' user and their account (at ``seed_account``'s default balance)."""
    options = [] if balance is None else ["--balance", str(balance)]
    lab_env.manage(
        "seed_account", "--username", USERNAME, *options, "--no-input", env={"BANK_PASSWORD": PASSWORD}
    )


def setup_django(lab_env: Lab) -> None:
    """Configure Django in this process on the lab's database. Call it before importing models."""
    os.environ.update(
        DJANGO_SETTINGS_MODULE="bank.settings",
        DATABASE_URL=lab_env.database_url,
        DJANGO_SECRET_KEY_FILE=lab_env.env["DJANGO_SECRET_KEY_FILE"],
    )
    import django

    django.setup()
