"""Cost of correctness and server headroom, measured side by side on one Gunicorn and one database.

    .venv/bin/python -m bench.throughput --database sqlite
    .venv/bin/python -m bench.throughput --database postgres

Every round runs ab once for each case, in a new random order: a trivial authenticated GET (the
balance), the naive withdrawal and each safe strategy, all on the same account of the same
server. The figures are medians over rounds of the ratios taken within a round, so a noisy
machine moves all cases of a round together and the ratios stay fair.

- cost of correctness: a safe strategy's requests/s divided by naive's (goal: at least 0.95);
- headroom: a strategy's withdrawals/s divided by the GET's requests/s (the framework's ceiling).
"""

import argparse
import statistics
from functools import partial
from pathlib import Path

from tabulate import tabulate

from bench.harness import PASSWORD, USERNAME, argument_parser, bench_lab, seed_user
from bench.timing import interleaved
from loadgen.ab import run_ab
from loadgen.login import SessionCookies, log_in
from loadgen.target import parse_target

# As much as a balance holds, so no withdrawal of a run is refused.
OPENING = 2_000_000_000
GET = "GET (balance)"
STRATEGIES = ["naive", "atomic_update", "locking", "optimistic", "serializable"]


def main() -> None:
    parser = argument_parser(__doc__, rounds=5)
    parser.add_argument("--requests", type=int, default=2000, help="ab -n per case and round.")
    parser.add_argument("--concurrency", type=int, default=4, help="ab -c (default: 4, one per worker).")
    parser.add_argument("--workers", type=int, default=4, help="Gunicorn workers (default: 4).")
    args = parser.parse_args()

    with bench_lab(args.database) as lab_env:
        seed_user(lab_env, balance=OPENING)
        with lab_env.serve(workers=args.workers) as server:
            rps = measure(server.url, workdir=lab_env.workdir, args=args)
    report(rps, args=args)


def measure(url: str, *, workdir: Path, args: argparse.Namespace) -> dict[str, list[float]]:
    target = parse_target(url)
    cookies = log_in(target=target, username=USERNAME, password=PASSWORD, workdir=workdir)
    # Each case's URL and the amount it withdraws (None: a GET).
    cases = {GET: (target.base_url + "/accounts/withdraw/", None)}
    cases |= {strategy: (target.withdraw_url(strategy=strategy), 1) for strategy in STRATEGIES}

    def fire(case: str, *, requests: int) -> float:
        case_url, amount = cases[case]
        return requests_per_second(
            case_url,
            cookies=cookies,
            requests=requests,
            concurrency=args.concurrency,
            amount=amount,
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
        amount=amount,
        workdir=workdir,
        log_responses=False,
    )
    if report.non_2xx or report.failed_unanswered or report.complete != requests:
        raise SystemExit(
            f"{url}: {report.non_2xx} non-2xx and {report.failed_unanswered} unanswered of {report.complete}"
        )
    return report.requests_per_second


def report(rps: dict[str, list[float]], *, args: argparse.Namespace) -> None:
    rounds = range(args.rounds)

    def ratio(case: str, base: str) -> float:
        return statistics.median(rps[case][i] / rps[base][i] for i in rounds)

    rows = [
        (
            case,
            f"{statistics.median(rps[case]):.0f}",
            f"{min(rps[case]):.0f}-{max(rps[case]):.0f}",
            "" if case in (GET, "naive") else f"{ratio(case, 'naive'):.2f}",
            "" if case == GET else f"{ratio(case, GET):.2f}",
        )
        for case in rps
    ]
    print(
        f"database {args.database}, {args.workers} workers, ab -n {args.requests} -c {args.concurrency}, "
        f"{args.rounds} rounds\n"
    )
    headers = ["case", "requests/s (median)", "range", "÷ naive (cost of correctness)", "÷ GET (headroom)"]
    print(tabulate(rows, headers=headers, tablefmt="github"))


if __name__ == "__main__":
    main()
