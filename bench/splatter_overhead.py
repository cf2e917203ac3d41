"""Splatter's own cost: the whole `manage.py splatter` wall time minus ab's own, for -n 100.

    .venv/bin/python -m bench.splatter_overhead --database sqlite

Each round, in a new random order: the whole command as a user runs it (Python and Django
start-up, curl login, ab, recording the run), and ab alone with the same arguments on a session
logged in beforehand. The overhead is the difference of the medians (goal: at most 1.5 s). For
the breakdown, a bare Django start-up (`manage.py check`) and a curl login are timed as well.
"""

import argparse
import statistics
import sys
from pathlib import Path

from tabulate import tabulate

from bench.harness import PASSWORD, USERNAME, argument_parser, bench_lab, seed_user
from bench.timing import command_wall_time, interleaved, wall_time
from labserver.lab import LAB_LOGIN, PROJECT_DIR, Lab
from racelab.loadgen.ab import run_ab
from racelab.loadgen.login import log_in
from racelab.loadgen.target import parse_target

STRATEGY = "atomic_update"


def main() -> None:
    parser = argument_parser(__doc__, rounds=7)
    parser.add_argument("--requests", type=int, default=100, help="splatter -n (default: 100).")
    parser.add_argument("--concurrency", type=int, default=3, help="splatter -c (default: 3, the blog's).")
    args = parser.parse_args()

    with bench_lab(args.database) as lab_env:
        seed_user(lab_env)
        with lab_env.serve() as server:
            timings = measure(lab_env, server.url, workdir=lab_env.workdir, args=args)

    medians = {name: statistics.median(seconds) for name, seconds in timings.items()}
    print(
        f"database {args.database}, splatter -n {args.requests} -c {args.concurrency} "
        f"--strategy {STRATEGY}, {args.rounds} rounds\n"
    )
    rows = [(name, f"{seconds:.2f}") for name, seconds in medians.items()]
    rows.append(
        (
            "splatter overhead (whole command - ab alone)",
            f"{medians['manage.py splatter'] - medians['ab alone']:.2f}",
        )
    )
    print(tabulate(rows, headers=["measure", "seconds (median)"], tablefmt="github"))


def measure(lab_env: Lab, url: str, *, workdir: Path, args: argparse.Namespace) -> dict[str, list[float]]:
    target = parse_target(url)
    env = {**lab_env.env, "BANK_PASSWORD": PASSWORD}
    manage = [sys.executable, str(PROJECT_DIR / "manage.py")]
    splatter = [
        *manage, "splatter", "--url", url, "--username", USERNAME, "--no-input", "--strategy", STRATEGY,
        "-n", str(args.requests), "-c", str(args.concurrency),
    ]  # fmt: skip
    cookies = log_in(target=target, username=USERNAME, password=PASSWORD, workdir=workdir, form=LAB_LOGIN)

    def ab_alone() -> None:
        run_ab(
            url=target.withdraw_url(strategy=STRATEGY),
            cookies=cookies,
            requests=args.requests,
            concurrency=args.concurrency,
            form="amount=1",
            workdir=workdir,
        )

    def login() -> None:
        log_in(target=target, username=USERNAME, password=PASSWORD, workdir=workdir, form=LAB_LOGIN)

    cases = {
        "manage.py splatter": lambda: command_wall_time(splatter, env=env, cwd=PROJECT_DIR),
        "ab alone": lambda: wall_time(ab_alone),
        "Django start-up (manage.py check)": lambda: command_wall_time(
            [*manage, "check"], env=env, cwd=PROJECT_DIR
        ),
        "curl login (two requests, one password hash)": lambda: wall_time(login),
    }
    ab_alone()  # warm up the server and ab's -l probe
    return interleaved(cases, rounds=args.rounds)


if __name__ == "__main__":
    main()
