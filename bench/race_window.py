"""Hitting the race window: the burst driver against ab, and the deterministic race mode.

    .venv/bin/python -m bench.race_window --database sqlite --plot docs/race-window-sweep.png

All on one fresh lab database, naive strategy, Gunicorn with as many sync workers as the burst
size; the drivers take turns within each trial (`splatter --trials` does that), so both see the
same server in the same run:

1. arrival spread: 20 workers, `burst` against `ab -c 20 -n 20`. Per trial, from the ledger's
   request_started_at: the gap between the first two arrivals and the whole spread. Goals:
   burst's median first-two gap at most 1 ms; its median whole spread at least 2x tighter.
2. pair races: 2 workers, `burst` against `ab -c 2 -n 2`, the share of trials that lose one.
3. deterministic mode: 20 workers with RACE_WINDOW=armed, K = 2, 5, 20. Goal: every trial loses
   exactly K-1.
4. with --plot: a sweep of both drivers over 2, 5, 10, 20, 50 (50 workers), drawn to a PNG.

It prints a Markdown summary for docs/benchmarks.md; --output keeps the raw JSON of every trial.
"""

import json
import os
import time
from pathlib import Path

from bench.harness import PASSWORD, USERNAME, argument_parser, bench_lab, seed_user
from bench.trial_tables import hit_rate, milliseconds, table
from labserver.lab import Lab, Server

SPREAD_LEVEL = 20
DETERMINISTIC_LEVELS = (2, 5, 20)
SWEEP_LEVELS = (2, 5, 10, 20, 50)
RACE_MODE = {"RACE_WINDOW": "armed", "DJANGO_DEBUG": "1"}
# The window closes once all K have read; the timeout only matters if one is lost on the way.
RACE_WINDOW_TIMEOUT = "2"
SPLATTER_TIMEOUT_SECONDS = 3_600


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--spread-trials", type=int, default=100, help="Trials per driver at -c 20 (100).")
    parser.add_argument("--pair-trials", type=int, default=200, help="Trials per driver at -c 2 (200).")
    parser.add_argument(
        "--deterministic-trials", type=int, default=50, help="Trials per K in race mode (50)."
    )
    parser.add_argument(
        "--sweep-trials", type=int, default=30, help="Trials per point of the --plot sweep (30)."
    )
    parser.add_argument("--plot", type=Path, help="Also run the sweep and draw it to this PNG.")
    parser.add_argument("--output", type=Path, help="Save every trial as JSON here.")
    args = parser.parse_args()

    results = {"load_average_at_start": os.getloadavg()[0]}
    started = time.monotonic()
    with bench_lab(args.database) as lab_env:
        seed_user(lab_env)
        with lab_env.serve(workers=SPREAD_LEVEL) as server:
            results["spread"] = trials(
                lab_env, server, "--driver", "ab,burst", "--trials", str(args.spread_trials),
                "-c", str(SPREAD_LEVEL),
            )  # fmt: skip
        with lab_env.serve(workers=2) as server:
            results["pairs"] = trials(
                lab_env, server, "--driver", "ab,burst", "--trials", str(args.pair_trials), "-c", "2"
            )
        with lab_env.serve(workers=max(DETERMINISTIC_LEVELS), env=RACE_MODE) as server:
            results["deterministic"] = trials(
                lab_env, server, "--driver", "burst", "--trials", str(args.deterministic_trials),
                "-c", ",".join(map(str, DETERMINISTIC_LEVELS)),
                "--race-window", "--race-window-timeout", RACE_WINDOW_TIMEOUT,
            )  # fmt: skip
        if args.plot is not None:
            with lab_env.serve(workers=max(SWEEP_LEVELS)) as server:
                results["sweep"] = trials(
                    lab_env, server, "--driver", "ab,burst", "--trials", str(args.sweep_trials),
                    "-c", ",".join(map(str, SWEEP_LEVELS)), "--plot", str(args.plot.resolve()),
                )  # fmt: skip
    elapsed = time.monotonic() - started
    results["load_average_at_end"] = os.getloadavg()[0]
    if args.output is not None:
        args.output.write_text(json.dumps(results, indent=2) + "\n")
    report(results, database=args.database, elapsed=elapsed)


def trials(lab_env: Lab, server: Server, *args: str) -> dict:
    result = lab_env.manage(
        "splatter", "--url", server.url, "--username", USERNAME, "--no-input", "--format", "json", *args,
        env={"BANK_PASSWORD": PASSWORD}, timeout=SPLATTER_TIMEOUT_SECONDS,
    )  # fmt: skip
    return json.loads(result.stdout)


def report(results: dict, *, database: str, elapsed: float) -> None:
    print(
        f"## Race window on {database} ({elapsed / 60:.1f} min; 1-minute load average "
        f"{results['load_average_at_start']:.1f} at start, {results['load_average_at_end']:.1f} at end)\n"
    )
    report_spread(results["spread"]["summaries"])
    report_pairs(results["pairs"]["summaries"])
    report_deterministic(results["deterministic"])
    if "sweep" in results:
        report_sweep(results["sweep"]["summaries"])


def report_spread(summaries: list[dict]) -> None:
    by_driver = {summary["driver"]: summary for summary in summaries}
    burst, ab = by_driver["burst"], by_driver["ab"]
    print(f"### Arrival spread, -c {SPREAD_LEVEL}, {burst['trials']} trials per driver (server-side)\n")
    table(
        ["driver", "first two ms, median", f"all {SPREAD_LEVEL} ms, median", "hit rate (95% Wilson)", "5xx"],
        [
            (
                _driver(s),
                milliseconds(s["median_first_gap_ms"]),
                milliseconds(s["median_spread_ms"]),
                hit_rate(s),
                s["server_errors"],
            )
            for s in (burst, ab)
        ],
    )
    first_two, ratio = burst["median_first_gap_ms"], ab["median_spread_ms"] / burst["median_spread_ms"]
    print(
        f"\nFirst two within 1 ms: {'met' if first_two <= 1 else 'NOT met'} ({milliseconds(first_two)} ms). "
        f"Whole spread: burst {ratio:.2f}x tighter than ab (goal 2x: {'met' if ratio >= 2 else 'NOT met'}).\n"
    )


def report_pairs(summaries: list[dict]) -> None:
    print("### Pair races, -c 2: share of trials that lose one withdrawal\n")
    table(
        ["driver", "trials", "lost one", "hit rate (95% Wilson)", "first two ms, median"],
        [
            (_driver(s), s["trials"], s["hits"], hit_rate(s), milliseconds(s["median_first_gap_ms"]))
            for s in summaries
        ],
    )


def report_deterministic(deterministic: dict) -> None:
    print("\n### Deterministic mode (RACE_WINDOW=armed, burst, naive)\n")
    rows = []
    for level in DETERMINISTIC_LEVELS:
        level_trials = [t for t in deterministic["runs"] if t["concurrency"] == level]
        exact = sum(t["lost"] == level - 1 for t in level_trials)
        timeouts = deterministic["race_window"][str(level)]["timeouts"]
        rows.append((level, len(level_trials), exact, f"{exact / len(level_trials):.0%}", timeouts))
    table(["K", "trials", "lost exactly K-1", "share", "windows closed by timeout"], rows)


def report_sweep(summaries: list[dict]) -> None:
    print("\n### Sweep\n")
    table(
        ["driver", "-c", "trials", "hit rate (95% Wilson)", "lost fraction, mean", "spread ms, median"],
        [
            (
                s["driver"],
                s["concurrency"],
                s["trials"],
                hit_rate(s),
                f"{s['mean_lost_fraction']:.2f}",
                milliseconds(s["median_spread_ms"]),
            )
            for s in summaries
        ],  # fmt: skip
    )


def _driver(summary: dict) -> str:
    level = summary["concurrency"]
    return "burst" if summary["driver"] == "burst" else f"ab -c {level} -n {level}"


if __name__ == "__main__":
    main()
