"""What stamping a lab run's requests costs: off the hot path when nobody asked, and when recorded.

    .venv/bin/python -m bench.request_timing --database sqlite
    .venv/bin/python -m bench.request_timing --database postgres

Two Gunicorns with the same config, database and account, loaded one at a time: the lab's, and
one whose settings lack RequestTimingMiddleware (bench/settings_without_timing.py). Every round
runs ab once for each case, in a new random order, for the naive and atomic_update withdrawals:

- without the middleware (the second server);
- not recorded: the lab's server, no X-Lab-Run header (every benchmark's and user's request);
- recorded: the lab's server with X-Lab-Run, so each request's statements are watched and one
  RecordedRequest row is inserted before the answer goes out (what splatter's runs pay).

The figures are medians over rounds of ratios taken within a round. "not recorded ÷ without" is
what the middleware costs everyone (goal: at least 0.98, so throughput ratios elsewhere move by
at most 2%); "recorded ÷ not recorded" is what a recorded run pays.
"""

import statistics
import uuid
from functools import partial

from tabulate import tabulate

from bench.harness import (
    PASSWORD,
    USERNAME,
    add_ab_options,
    argument_parser,
    bench_lab,
    seed_user,
    setup_django,
)
from bench.throughput import OPENING
from bench.timing import interleaved
from labserver.lab import LAB_LOGIN, Lab
from racelab.loadgen.ab import run_ab
from racelab.loadgen.login import log_in
from racelab.loadgen.target import parse_target

STRATEGIES = ["naive", "atomic_update"]
WITHOUT, NOT_RECORDED, RECORDED = "without the middleware", "not recorded", "recorded"
BASELINE_SETTINGS = "bench.settings_without_timing"


def main() -> None:
    parser = argument_parser(__doc__, rounds=7)
    add_ab_options(parser, requests=2000)
    args = parser.parse_args()

    with bench_lab(args.database) as lab_env:
        seed_user(lab_env, balance=OPENING)
        with (
            lab_env.serve(workers=args.workers) as timed_server,
            lab_env.serve(
                workers=args.workers, env={"DJANGO_SETTINGS_MODULE": BASELINE_SETTINGS}
            ) as bare_server,
        ):
            timed, bare = parse_target(timed_server.url), parse_target(bare_server.url)
            # One login serves both: the session lives in the database both servers read.
            cookies = log_in(
                target=timed, username=USERNAME, password=PASSWORD, workdir=lab_env.workdir, form=LAB_LOGIN
            )
            run_token = f"bench-{uuid.uuid4().hex[:12]}"

            def fire(strategy: str, mode: str, *, requests: int) -> float:
                target = bare if mode == WITHOUT else timed
                _, report = run_ab(
                    url=target.withdraw_url(strategy=strategy),
                    cookies=cookies,
                    requests=requests,
                    concurrency=args.concurrency,
                    form="amount=1",
                    workdir=lab_env.workdir,
                    log_responses=False,
                    run_token=run_token if mode == RECORDED else None,
                )
                if report.non_2xx or report.failed_unanswered or report.complete != requests:
                    raise SystemExit(f"{strategy} {mode}: {report.non_2xx} non-2xx of {report.complete}")
                return report.requests_per_second

            cases = {
                (s, m): partial(fire, s, m) for s in STRATEGIES for m in (WITHOUT, NOT_RECORDED, RECORDED)
            }
            for case in cases.values():  # warm every worker's connection and code paths
                case(requests=200)
            rps = interleaved(
                {f"{s}, {m}": partial(case, requests=args.requests) for (s, m), case in cases.items()},
                rounds=args.rounds,
                shown="{:.0f}/s",
            )
            recorded_rows = recorded_requests(lab_env, run_token)

    def ratio(case: str, base: str) -> float:
        return statistics.median(a / b for a, b in zip(rps[case], rps[base], strict=True))

    rows = []
    for strategy in STRATEGIES:
        for mode in (WITHOUT, NOT_RECORDED, RECORDED):
            name = f"{strategy}, {mode}"
            rows.append(
                (
                    name,
                    f"{statistics.median(rps[name]):.0f}",
                    f"{min(rps[name]):.0f}-{max(rps[name]):.0f}",
                    f"{ratio(name, f'{strategy}, {WITHOUT}'):.3f}" if mode != WITHOUT else "",
                    f"{ratio(name, f'{strategy}, {NOT_RECORDED}'):.3f}" if mode == RECORDED else "",
                )
            )
    print(
        f"database {args.database}, {args.workers} workers each server, ab -n {args.requests} "
        f"-c {args.concurrency}, {args.rounds} rounds; {recorded_rows} requests recorded\n"
    )
    headers = ["case", "requests/s (median)", "range", "÷ without the middleware", "÷ not recorded"]
    print(tabulate(rows, headers=headers, tablefmt="github"))


def recorded_requests(lab_env: Lab, run_token: str) -> int:
    """Rows the recorded cases left: proof that they were recorded, not just sent a header."""
    setup_django(lab_env)
    from labreport.models import RecordedRequest

    return RecordedRequest.objects.filter(run_token=run_token).count()


if __name__ == "__main__":
    main()
