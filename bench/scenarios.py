"""The scenario matrix: every strategy of every catalogue scenario, under load and in race mode.

    .venv/bin/python -m bench.scenarios --database sqlite
    .venv/bin/python -m bench.scenarios --database postgres
    .venv/bin/python -m bench.scenarios --database mysql
    .venv/bin/python -m bench.scenarios --database sqlite --scenario voucher   # one, or several

For each scenario and strategy, on a fresh lab database and real Gunicorns, through splatter:

- load: ``ab -n REQUESTS -c 50`` at data seeded, where the scenario has a size, for half of
  them to succeed (a voucher of REQUESTS/2 uses, an activity of REQUESTS/2 places): the
  invariant's violations (5xx answers included), the 5xx answers and ab's requests/s;
- race mode: TRIALS bursts of K held together at the scenario's park point (burst driver,
  ``--race-window``) at data of size 1: the trials that break the invariant, and for the naive
  strategy how many broke it exactly as its scenario predicts (at size 1, K-1 for most; 3(K-1)
  for the withdrawal).
"""

import json

from tabulate import tabulate

from bench.harness import PASSWORD, USERNAME, argument_parser, bench_lab, seed_user, setup_django

RACE_MODE = {"RACE_WINDOW": "armed", "DJANGO_DEBUG": "1"}


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--requests", type=int, default=2000, help="ab -n per strategy (default: 2000).")
    parser.add_argument("--trials", type=int, default=20, help="Race-mode trials per strategy (default: 20).")
    parser.add_argument("--parties", type=int, default=5, help="K, the race-mode burst (default: 5).")
    parser.add_argument(
        "--scenario", action="append", dest="scenarios", metavar="NAME", help="Only these (default: all)."
    )
    args = parser.parse_args()

    rows = []
    with bench_lab(args.database) as lab_env:
        seed_user(lab_env)
        setup_django(lab_env)
        from scenarios.catalogue import SCENARIOS  # its models need Django set up first

        unknown = set(args.scenarios or ()) - set(SCENARIOS)
        if unknown:
            parser.error(
                f"no such scenario: {', '.join(sorted(unknown))}; the catalogue has {', '.join(SCENARIOS)}"
            )

        for scenario in SCENARIOS.values():
            if args.scenarios and scenario.name not in args.scenarios:
                continue
            with lab_env.serve(workers=4) as server:
                lab_env.manage(*scenario.seed_command(size=args.requests // 2))
                load = splatter_json(
                    lab_env, server.url, scenario.name,
                    "--strategy", "all", "--driver", "ab", "-n", str(args.requests), "-c", "50",
                )  # fmt: skip
            with lab_env.serve(workers=args.parties + 1, env=RACE_MODE) as server:
                lab_env.manage(*scenario.seed_command(size=1))
                race = splatter_json(
                    lab_env, server.url, scenario.name,
                    "--strategy", "all", "--driver", "burst", "--trials", str(args.trials),
                    "-c", str(args.parties), "--race-window", "--race-window-timeout", "2",
                )  # fmt: skip
            held = {summary["strategy"]: summary for summary in race["summaries"]}
            for loaded in load["runs"]:
                summary = held[loaded["strategy"]]
                exact = "-" if summary["exact"] is None else f"{summary['exact']}/{summary['trials']}"
                rows.append(
                    (
                        scenario.name,
                        loaded["strategy"],
                        loaded["violations"],
                        loaded["server_errors"],
                        f"{loaded['requests_per_second']:.0f}",
                        f"{summary['hits']}/{summary['trials']}",
                        exact,
                        summary["server_errors"],
                    )
                )
    print(
        f"database {args.database}; load: ab -n {args.requests} -c 50, size {args.requests // 2}; race mode: "
        f"{args.trials} trials of K={args.parties}, size 1\n"
    )
    headers = [
        "scenario",
        "strategy",
        "load: violations",
        "load: 5xx",
        "load: requests/s",
        "race: trials broken",
        "race: exactly as predicted",
        "race: 5xx",
    ]
    print(tabulate(rows, headers=headers, tablefmt="github"))


def splatter_json(lab_env, url: str, scenario: str, *args: str) -> dict:
    result = lab_env.manage(
        "splatter", "--url", url, "--username", USERNAME, "--no-input", "--scenario", scenario,
        "--format", "json", *args,
        env={"BANK_PASSWORD": PASSWORD}, timeout=1200,
    )  # fmt: skip
    return json.loads(result.stdout)


if __name__ == "__main__":
    main()
