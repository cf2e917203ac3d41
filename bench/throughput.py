"""Cost of correctness and server headroom, measured side by side on one Gunicorn and one database.

    .venv/bin/python bench/throughput.py --database sqlite
    .venv/bin/python bench/throughput.py --database postgres

Every round runs ab once for each case, in a new random order: a trivial authenticated GET (the
balance), the naive withdrawal and each safe strategy, all on the same account of the same
server. The figures are medians over rounds of the ratios taken within a round, so a noisy
machine moves all cases of a round together and the ratios stay fair.

- cost of correctness: a safe strategy's requests/s divided by naive's (goal: at least 0.95);
- headroom: a strategy's withdrawals/s divided by the GET's requests/s (the framework's ceiling).
"""

import argparse
import random
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tabulate import tabulate

from labserver.bench import ab, argument_parser, bench_lab
from loadgen.login import log_in
from loadgen.target import parse_target

USERNAME = "bench"
PASSWORD = "bench-password"
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
        lab_env.manage(
            "seed_account", "--username", USERNAME, "--balance", str(OPENING), "--no-input",
            env={"BANK_PASSWORD": PASSWORD},
        )  # fmt: skip
        with lab_env.serve(workers=args.workers) as server:
            rps = measure(server.url, workdir=lab_env.workdir, args=args)
    report(rps, args=args)


def measure(url: str, *, workdir: Path, args: argparse.Namespace) -> dict[str, list[float]]:
    target = parse_target(url)
    cookies = log_in(target=target, username=USERNAME, password=PASSWORD, workdir=workdir)
    body = workdir / "withdrawal.form"
    body.write_text("amount=1")
    cases = {GET: (target.base_url + "/accounts/withdraw/", None)}
    cases |= {strategy: (target.withdraw_url(strategy=strategy), body) for strategy in STRATEGIES}
    for case_url, case_body in cases.values():  # warm every worker's connection and code paths
        ab(case_url, cookies=cookies, requests=200, concurrency=args.concurrency, body=case_body)
    rps = {case: [] for case in cases}
    for round_number in range(1, args.rounds + 1):
        order = random.sample(list(cases), len(cases))
        for case in order:
            case_url, case_body = cases[case]
            run = ab(
                case_url,
                cookies=cookies,
                requests=args.requests,
                concurrency=args.concurrency,
                body=case_body,
            )
            if run.non_2xx or run.failed or run.complete != args.requests:
                raise SystemExit(f"{case}: {run.non_2xx} non-2xx and {run.failed} failed of {run.complete}")
            rps[case].append(run.requests_per_second)
        print(
            f"round {round_number}: " + ", ".join(f"{c} {rps[c][-1]:.0f}/s" for c in cases), file=sys.stderr
        )
    return rps


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
