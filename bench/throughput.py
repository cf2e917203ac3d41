"""Cost of correctness, server headroom and the bare-WSGI floor, measured side by side on one database.

    .venv/bin/python -m bench.throughput --database sqlite
    .venv/bin/python -m bench.throughput --database postgres

Every round runs ab once for each case, in a new random order: a trivial authenticated GET (the
balance), the naive withdrawal and each safe strategy, all on the same account of the same
server, and the floor's two cases (below). The figures are medians over rounds of the ratios
taken within a round, so a noisy machine moves all cases of a round together and the ratios stay
fair.

- cost of correctness: a safe strategy's requests/s divided by naive's (goal: at least 0.95);
- headroom: a strategy's withdrawals/s divided by the GET's requests/s (the framework's ceiling);
- the floor: the same GET and atomic_update withdrawal as a bare WSGI function (bench/floor/: raw
  SQL through the same driver, no Django) on a second Gunicorn with the same config, database and
  account, fired in the same rounds (one server loaded at a time). Django's figure divided by the
  floor's is how close to the stack's limit the lab runs; the floor's own headroom is its
  withdrawal divided by its GET.

Every request must be answered 2xx, but for the rare optimistic or serializable withdrawal that
loses the race on every one of its attempts and answers 409 (counted in the last column, and in
its case's requests/s, which ab measures over every answer).
"""

import argparse
import statistics
from collections import Counter
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from tabulate import tabulate

from bench.floor.server import serve_floor
from bench.harness import PASSWORD, USERNAME, add_ab_options, argument_parser, bench_lab, seed_user
from bench.timing import interleaved
from labserver.lab import LAB_LOGIN, Server
from racelab.loadgen.ab import AbReport, run_ab
from racelab.loadgen.login import SessionCookies, log_in
from racelab.loadgen.target import parse_target
from scenarios.withdrawals.scenario import WITHDRAW_PATH

# As much as a balance holds, so no withdrawal of a run is refused.
OPENING = 2_000_000_000
GET = "GET (balance)"
NAIVE = "naive"
STRATEGIES = [NAIVE, "atomic_update", "locking", "optimistic", "serializable"]
FLOOR_GET = "floor: GET"
FLOOR_WITHDRAWAL = "floor: atomic_update"
# accounts/withdrawals.py's log line of a withdrawal that ran out of attempts and answered 409:
# optimistic and serializable may, rarely, on one account this hot. Counted, not fatal.
GAVE_UP = "withdrawal gave up"


@dataclass(frozen=True, kw_only=True)
class Case:
    """One ab run of a round, and the cases its requests/s is divided by (None: not reported)."""

    url: str
    server: Server
    amount: int | None  # None: a GET, with no form
    naive: str | None = None  # cost of correctness
    get: str | None = None  # headroom: the GET on the same server
    floor: str | None = None  # the same request on the floor


def main() -> None:
    parser = argument_parser(__doc__, rounds=5)
    add_ab_options(parser, requests=2000)
    args = parser.parse_args()

    with bench_lab(args.database) as lab_env:
        seed_user(lab_env, balance=OPENING)
        with (
            lab_env.serve(workers=args.workers) as server,
            serve_floor(lab_env, workers=args.workers) as floor,
        ):
            cases = bench_cases(django=server, floor=floor)
            cookies = log_in(
                target=parse_target(server.url),
                username=USERNAME,
                password=PASSWORD,
                workdir=lab_env.workdir,
                form=LAB_LOGIN,
            )
            rps, gave_up = measure(cases, cookies=cookies, workdir=lab_env.workdir, args=args)
    report(cases, rps, gave_up, args=args)


def bench_cases(*, django: Server, floor: Server) -> dict[str, Case]:
    """Django's GET and strategies, then the floor's GET and withdrawal (the session is Django's,
    in the database both read)."""
    django_target, floor_target = parse_target(django.url), parse_target(floor.url)
    cases = {
        GET: Case(url=django_target.base_url + WITHDRAW_PATH, server=django, amount=None, floor=FLOOR_GET)
    }
    for strategy in STRATEGIES:
        cases[strategy] = Case(
            url=django_target.withdraw_url(strategy=strategy),
            server=django,
            amount=1,
            naive=None if strategy == NAIVE else NAIVE,
            get=GET,
            floor=FLOOR_WITHDRAWAL if strategy == "atomic_update" else None,
        )
    cases[FLOOR_GET] = Case(url=floor_target.base_url + WITHDRAW_PATH, server=floor, amount=None)
    cases[FLOOR_WITHDRAWAL] = Case(
        url=floor_target.withdraw_url(strategy="atomic_update"), server=floor, amount=1, get=FLOOR_GET
    )
    return cases


def measure(
    cases: dict[str, Case], *, cookies: SessionCookies, workdir: Path, args: argparse.Namespace
) -> tuple[dict[str, list[float]], Counter[str]]:
    """Each case's requests/s, round by round, and how many of its requests gave up (409)."""
    gave_up: Counter[str] = Counter()

    def fire(name: str, *, requests: int) -> float:
        case = cases[name]
        logged_before = case.server.log().count(GAVE_UP)
        _, ab_report = run_ab(
            url=case.url,
            cookies=cookies,
            requests=requests,
            concurrency=args.concurrency,
            form=None if case.amount is None else f"amount={case.amount}",
            workdir=workdir,
            log_responses=False,  # a per-response log would slow ab itself
        )
        gave_up[name] += checked_gave_up(
            ab_report,
            requests=requests,
            logged=case.server.log().count(GAVE_UP) - logged_before,
            url=case.url,
        )
        return ab_report.requests_per_second

    for name in cases:  # warm every worker's connection and code paths
        fire(name, requests=200)
    gave_up.clear()
    runs = {name: partial(fire, name, requests=args.requests) for name in cases}
    return interleaved(runs, rounds=args.rounds, shown="{:.0f}/s"), gave_up


def checked_gave_up(ab_report: AbReport, *, requests: int, logged: int, url: str) -> int:
    """How many requests of an ab run gave up: every request must be answered 2xx but those, which
    the server logged (ab's quiet mode counts non-2xx answers without telling them apart)."""
    if ab_report.failed_unanswered or ab_report.complete != requests or ab_report.non_2xx != logged:
        raise SystemExit(
            f"{url}: {ab_report.non_2xx} non-2xx ({logged} of them gave up after their last attempt) and "
            f"{ab_report.failed_unanswered} unanswered of {ab_report.complete}"
        )
    return logged


def report(
    cases: dict[str, Case], rps: dict[str, list[float]], gave_up: Counter[str], *, args: argparse.Namespace
) -> None:
    def ratio(case: str, base: str | None) -> str:
        if base is None:
            return ""
        return f"{statistics.median(rps[case][i] / rps[base][i] for i in range(args.rounds)):.2f}"

    rows = [
        (
            name,
            f"{statistics.median(rps[name]):.0f}",
            f"{min(rps[name]):.0f}-{max(rps[name]):.0f}",
            ratio(name, case.naive),
            ratio(name, case.get),
            ratio(name, case.floor),
            gave_up[name] or "",
        )
        for name, case in cases.items()
    ]
    print(
        f"database {args.database}, {args.workers} workers, ab -n {args.requests} -c {args.concurrency}, "
        f"{args.rounds} rounds\n"
    )
    headers = [
        "case",
        "requests/s (median)",
        "range",
        "÷ naive (cost of correctness)",
        "÷ GET (headroom)",
        "÷ floor (of the stack's limit)",
        "gave up (409)",
    ]
    print(tabulate(rows, headers=headers, tablefmt="github"))


if __name__ == "__main__":
    main()
