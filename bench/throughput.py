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
"""

import argparse
import statistics
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from tabulate import tabulate

from bench.floor.server import serve_floor
from bench.harness import PASSWORD, USERNAME, add_ab_options, argument_parser, bench_lab, seed_user
from bench.timing import interleaved
from loadgen.ab import run_ab
from loadgen.login import SessionCookies, log_in
from loadgen.target import WITHDRAW_PATH, parse_target

# As much as a balance holds, so no withdrawal of a run is refused.
OPENING = 2_000_000_000
GET = "GET (balance)"
NAIVE = "naive"
STRATEGIES = [NAIVE, "atomic_update", "locking", "optimistic", "serializable"]
FLOOR_GET = "floor: GET"
FLOOR_WITHDRAWAL = "floor: atomic_update"


@dataclass(frozen=True, kw_only=True)
class Case:
    """One ab run of a round, and the cases its requests/s is divided by (None: not reported)."""

    url: str
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
            cases = bench_cases(django_url=server.url, floor_url=floor.url)
            cookies = log_in(
                target=parse_target(server.url), username=USERNAME, password=PASSWORD, workdir=lab_env.workdir
            )
            rps = measure(cases, cookies=cookies, workdir=lab_env.workdir, args=args)
    report(cases, rps, args=args)


def bench_cases(*, django_url: str, floor_url: str) -> dict[str, Case]:
    """Django's GET and strategies, then the floor's GET and withdrawal (the session is Django's,
    in the database both read)."""
    django, floor = parse_target(django_url), parse_target(floor_url)
    cases = {GET: Case(url=django.base_url + WITHDRAW_PATH, amount=None, floor=FLOOR_GET)}
    for strategy in STRATEGIES:
        cases[strategy] = Case(
            url=django.withdraw_url(strategy=strategy),
            amount=1,
            naive=None if strategy == NAIVE else NAIVE,
            get=GET,
            floor=FLOOR_WITHDRAWAL if strategy == "atomic_update" else None,
        )
    cases[FLOOR_GET] = Case(url=floor.base_url + WITHDRAW_PATH, amount=None)
    cases[FLOOR_WITHDRAWAL] = Case(url=floor.withdraw_url(strategy="atomic_update"), amount=1, get=FLOOR_GET)
    return cases


def measure(
    cases: dict[str, Case], *, cookies: SessionCookies, workdir: Path, args: argparse.Namespace
) -> dict[str, list[float]]:
    def fire(case: str, *, requests: int) -> float:
        return requests_per_second(
            cases[case].url,
            cookies=cookies,
            requests=requests,
            concurrency=args.concurrency,
            amount=cases[case].amount,
            workdir=workdir,
        )

    for case in cases:  # warm every worker's connection and code paths
        fire(case, requests=200)
    runs = {case: partial(fire, case, requests=args.requests) for case in cases}
    return interleaved(runs, rounds=args.rounds, shown="{:.0f}/s")


def requests_per_second(
    url: str, *, cookies: SessionCookies, requests: int, concurrency: int, amount: int | None, workdir: Path
) -> float:
    """One quiet ab run (GET without an amount), with no per-response log to slow ab itself; every
    request must succeed."""
    _, report = run_ab(
        url=url,
        cookies=cookies,
        requests=requests,
        concurrency=concurrency,
        form=None if amount is None else f"amount={amount}",
        workdir=workdir,
        log_responses=False,
    )
    if report.non_2xx or report.failed_unanswered or report.complete != requests:
        raise SystemExit(
            f"{url}: {report.non_2xx} non-2xx and {report.failed_unanswered} unanswered of {report.complete}"
        )
    return report.requests_per_second


def report(cases: dict[str, Case], rps: dict[str, list[float]], *, args: argparse.Namespace) -> None:
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
    ]
    print(tabulate(rows, headers=headers, tablefmt="github"))


if __name__ == "__main__":
    main()
