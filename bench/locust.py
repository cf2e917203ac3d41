"""The Locust driver past one process: its burst across workers against the burst driver and ab,
its steady load against ab, and both across simulated hosts.

    .venv/bin/python -m bench.locust --database sqlite
    .venv/bin/python -m bench.locust --database sqlite --hosts

All on one fresh lab database, naive strategy. The drivers take turns: each round runs every
driver's share of the trials (or one steady run each) in a new random order, on the same server.

1. arrival spread: -c 20 on 20 Gunicorn workers, ab, the burst driver, and Locust's burst across
   2 and 4 workers. Server-side, from the ledger's request_started_at: the gap between the first
   two arrivals and the whole spread. Goal: Locust's median first-two gap at most 1 ms.
2. pair races: -c 2 on 2 Gunicorn workers, ab, burst, and Locust across 2 workers (one request
   each): the share of trials that lose one. Goal: Locust within 10 points of burst.
3. steady: `ab -n N -c C` against Locust's steady mode (`-n N -c C`, 2 workers) on 4 Gunicorn
   workers: requests/s, and the client's CPU per request (user + system time of splatter and
   every process it started; a run of one request per user is subtracted, so start-up and
   log-in are not counted).
4. with --hosts: the same three with the server on a simulated app host, ab and the burst driver
   on the hub, Locust's workers each on a client host of its own (labserver/hosts.py); then
   deterministic mode through two app hosts sharing one Redis race window: K = 2 and 4.

It prints a Markdown summary for docs/benchmarks.md; --output keeps the raw JSON.
"""

import json
import os
import random
import re
import resource
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from bench.harness import PASSWORD, USERNAME, argument_parser, bench_lab, seed_user
from bench.trial_tables import hit_rate, milliseconds, table
from experiment.stats import median_or_none, wilson_interval
from labserver.databases import reached_at, server_port
from labserver.hosts import Topology, free_port_at, topology
from labserver.lab import Lab, Server
from racelab.loadgen.locust.runner import MasterAddress, locust_process, worker_argv

SPREAD_LEVEL = 20
LOCUST_WORKERS = (2, 4)
PAIR_LOCUST_WORKERS = 2
STEADY_LOCUST_WORKERS = 2
DETERMINISTIC_LEVELS = (2, 4)
RACE_MODE = {"RACE_WINDOW": "armed", "DJANGO_DEBUG": "1"}
RACE_WINDOW_TIMEOUT = "2"
REDIS_PORT = 6379
SPLATTER_TIMEOUT_SECONDS = 3_600


@dataclass(frozen=True)
class Driver:
    """One way to fire: splatter's options for it, and how many Locust workers it needs."""

    label: str
    options: tuple[str, ...]
    locust_workers: int = 0


def main() -> None:
    parser = argument_parser(__doc__, rounds=5)
    parser.add_argument("--spread-trials", type=int, default=60, help="Trials per driver at -c 20 (60).")
    parser.add_argument("--pair-trials", type=int, default=100, help="Trials per driver at -c 2 (100).")
    parser.add_argument("--steady-requests", type=int, default=2000, help="-n per steady run (2000).")
    parser.add_argument("--steady-concurrency", type=int, default=8, help="-c per steady run (8).")
    parser.add_argument("--deterministic-trials", type=int, default=20, help="--hosts: trials per K (20).")
    parser.add_argument("--hosts", action="store_true", help="Run on simulated hosts (needs root).")
    parser.add_argument("--output", type=Path, help="Save the raw results as JSON here.")
    args = parser.parse_args()

    results: dict = {"load_average_at_start": os.getloadavg()[0], "hosts": args.hosts}
    started = time.monotonic()
    names = ("app-1", "app-2", *(f"client-{number}" for number in range(1, max(LOCUST_WORKERS) + 1)))
    with (
        bench_lab(args.database) as lab_env,
        topology(names=names) if args.hosts else nullcontext() as hosts,
    ):
        seed_user(lab_env)
        lab = BenchLab(lab_env=lab_env, hosts=hosts)
        if hosts is not None:
            results["delay"] = hosts.delay_note
        spread_drivers = [ab_driver(SPREAD_LEVEL), BURST, *(locust_burst(n) for n in LOCUST_WORKERS)]
        with lab.serve(workers=SPREAD_LEVEL) as server:
            results["spread"] = lab.trials(
                server, spread_drivers, level=SPREAD_LEVEL, trials=args.spread_trials, rounds=args.rounds
            )
        with lab.serve(workers=2) as server:
            results["pairs"] = lab.trials(
                server, [ab_driver(2), BURST, locust_burst(PAIR_LOCUST_WORKERS)],
                level=2, trials=args.pair_trials, rounds=args.rounds,
            )  # fmt: skip
        with lab.serve(workers=4) as server:
            results["steady"] = lab.steady(
                server, requests=args.steady_requests, concurrency=args.steady_concurrency, rounds=args.rounds
            )
        if hosts is not None:
            results["deterministic"] = lab.deterministic(trials=args.deterministic_trials)
    results["elapsed_seconds"] = time.monotonic() - started
    results["load_average_at_end"] = os.getloadavg()[0]
    if args.output is not None:
        args.output.write_text(json.dumps(results, indent=2) + "\n")
    report(results, database=args.database)


BURST = Driver(label="burst", options=("--driver", "burst"))


def ab_driver(level: int) -> Driver:
    return Driver(label=f"ab -c {level} -n {level}", options=("--driver", "ab"))


def locust_burst(workers: int) -> Driver:
    return Driver(
        label=f"locust, {workers} workers",
        options=("--driver", "locust", "--locust-mode", "burst"),
        locust_workers=workers,
    )


@dataclass
class BenchLab:
    """The lab the figures come from: on this machine's loopback, or across simulated hosts."""

    lab_env: Lab
    hosts: Topology | None

    @contextmanager
    def serve(self, *, workers: int, env: dict | None = None, host: str = "app-1") -> Iterator[Server]:
        if self.hosts is None:
            with self.lab_env.serve(workers=workers, env=env) as server:
                yield server
            return
        with self.lab_env.serve(
            workers=workers, host=self.hosts.hosts[host], env={**self.reached_env(), **(env or {})}
        ) as server:
            yield server

    def reached_env(self) -> dict[str, str]:
        """An app host's view of the shared services: the database and Redis through the hub."""
        hub = self.hosts.hub_address
        url, port = self.lab_env.database_url, server_port(self.lab_env.database_url)
        database_url = (
            url if port is None else reached_at(url, address=hub, port=self.hosts.forward(port=port))
        )
        redis = f"redis://{hub}:{self.hosts.forward(port=REDIS_PORT)}/0"
        return {"DATABASE_URL": database_url, "RACE_WINDOW_BACKEND": redis}

    def splatter(self, urls: list[str], driver: Driver, *args: str) -> dict:
        """One splatter run with ``driver``; its Locust workers started on client hosts if any."""
        options = list(driver.options)
        with ExitStack() as stack:
            if driver.locust_workers and self.hosts is not None:
                port = free_port_at(self.hosts.hub_address)
                clients = [self.hosts.hosts[f"client-{n}"] for n in range(1, driver.locust_workers + 1)]
                argv = worker_argv(MasterAddress(host=self.hosts.hub_address, port=port))
                env = {**self.lab_env.env, "BANK_PASSWORD": PASSWORD}
                for client in clients:
                    log = self.lab_env.workdir / f"worker-{client.name}.log"
                    stack.enter_context(locust_process(client.argv(argv), log=log, env=env))
                options += ["--expect-workers", str(driver.locust_workers)]
                options += ["--locust-bind", f"{self.hosts.hub_address}:{port}"]
            elif driver.locust_workers:
                options += ["--locust-workers", str(driver.locust_workers)]
            result = self.lab_env.manage(
                "splatter", "--url", ",".join(urls), "--username", USERNAME, "--no-input",
                *(["--allow-remote"] if self.hosts is not None else []), *options, *args,
                env={"BANK_PASSWORD": PASSWORD, "RACE_WINDOW_BACKEND": f"redis://127.0.0.1:{REDIS_PORT}/0"},
                timeout=SPLATTER_TIMEOUT_SECONDS,
            )  # fmt: skip
        return json.loads(result.stdout) if "--format" in args else {"stdout": result.stdout}

    def trials(self, server: Server, drivers: list[Driver], *, level: int, trials: int, rounds: int) -> dict:
        """Each driver's trials, split over ``rounds`` rounds in a new random order each."""
        outcomes: dict[str, list[dict]] = {driver.label: [] for driver in drivers}
        for number in range(rounds):
            share = trials // rounds + (1 if number < trials % rounds else 0)
            for driver in random.sample(drivers, len(drivers)):
                document = self.splatter(
                    [server.url], driver, "--trials", str(share), "-c", str(level), "--format", "json"
                )
                outcomes[driver.label] += document["runs"]
        return {label: summary(found) for label, found in outcomes.items()}

    def steady(self, server: Server, *, requests: int, concurrency: int, rounds: int) -> dict:
        drivers = [
            Driver(label=f"ab -n {requests} -c {concurrency}", options=("--driver", "ab")),
            Driver(
                label=f"locust steady, {STEADY_LOCUST_WORKERS} workers",
                options=("--driver", "locust", "--locust-mode", "steady"),
                locust_workers=STEADY_LOCUST_WORKERS,
            ),
        ]
        run = {
            driver.label: lambda n, driver=driver: self.timed(
                server, driver, "-n", str(n), "-c", str(concurrency), "--no-record"
            )
            for driver in drivers
        }
        # A run of one request per user: what start-up and log-in cost, subtracted below.
        overhead = {label: fire(concurrency)[1] for label, fire in run.items()}
        figures: dict[str, list[tuple[float, float]]] = {label: [] for label in run}
        for _ in range(rounds):
            for label in random.sample(list(run), len(run)):
                seconds, cpu = run[label](requests)
                figures[label].append(
                    (requests / seconds, (cpu - overhead[label]) / (requests - concurrency))
                )
        return {
            label: {
                "requests_per_second": median_or_none(rps for rps, _ in found),
                "cpu_ms_per_request": median_or_none(cpu * 1000 for _, cpu in found),
                "rounds": len(found),
            }
            for label, found in figures.items()
        }

    def timed(self, server: Server, driver: Driver, *args: str) -> tuple[float, float]:
        """Wall-clock seconds of the requests (splatter's own figure) and the client's CPU seconds."""
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        output = self.splatter([server.url], driver, *args)["stdout"]
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        rate = float(re.search(r"requests/s\W+([\d.]+)", output).group(1))
        return (int(args[1]) / rate if rate else float("inf")), cpu

    def deterministic(self, *, trials: int) -> dict:
        """Race mode through two app hosts and the Redis barrier, Locust workers on two client hosts."""
        with (
            self.serve(workers=4, env=RACE_MODE) as first,
            self.serve(workers=4, env=RACE_MODE, host="app-2") as second,
        ):
            document = self.splatter(
                [first.url, second.url], locust_burst(2), "--trials", str(trials),
                "-c", ",".join(map(str, DETERMINISTIC_LEVELS)), "--format", "json",
                "--race-window", "--race-window-timeout", RACE_WINDOW_TIMEOUT,
            )  # fmt: skip
        by_level = {}
        for level in DETERMINISTIC_LEVELS:
            found = [t for t in document["runs"] if t["concurrency"] == level]
            by_level[level] = {
                "trials": len(found),
                "exact": sum(t["lost"] == level - 1 for t in found),
                "timeouts": document["race_window"][str(level)]["timeouts"],
                "server_errors": sum(t["server_errors"] for t in found),
            }
        return by_level


def summary(trials: list[dict]) -> dict:
    hits = sum(bool(t["anomalies"]) for t in trials)
    low, high = wilson_interval(successes=hits, trials=len(trials))
    return {
        "trials": len(trials),
        "hits": hits,
        "hit_rate": hits / len(trials),
        "hit_rate_low": low,
        "hit_rate_high": high,
        "median_first_gap_ms": median_or_none(
            t["first_gap_ms"] for t in trials if t["first_gap_ms"] is not None
        ),
        "median_spread_ms": median_or_none(t["spread_ms"] for t in trials if t["spread_ms"] is not None),
        "server_errors": sum(t["server_errors"] for t in trials),
    }


def report(results: dict, *, database: str) -> None:
    where = "simulated hosts" if results["hosts"] else "one machine, loopback"
    print(
        f"## Locust on {database}, {where} ({results['elapsed_seconds'] / 60:.1f} min; 1-minute load "
        f"average {results['load_average_at_start']:.1f} at start, "
        f"{results['load_average_at_end']:.1f} at end)\n"
    )
    if "delay" in results:
        print(f"Network: {results['delay']}.\n")
    print(f"### Arrival spread, -c {SPREAD_LEVEL} (server-side)\n")
    headers = ["driver", "trials", "first two ms, median", f"all {SPREAD_LEVEL} ms, median"]
    table(
        [*headers, "hit rate (95% Wilson)", "5xx"],
        [(label, s["trials"], milliseconds(s["median_first_gap_ms"]), milliseconds(s["median_spread_ms"]),
          hit_rate(s), s["server_errors"]) for label, s in results["spread"].items()],
    )  # fmt: skip
    print("\n### Pair races, -c 2: share of trials that lose one withdrawal\n")
    table(
        ["driver", "trials", "lost one", "hit rate (95% Wilson)", "first two ms, median"],
        [(label, s["trials"], s["hits"], hit_rate(s), milliseconds(s["median_first_gap_ms"]))
         for label, s in results["pairs"].items()],
    )  # fmt: skip
    pairs = results["pairs"]
    burst_rate = pairs["burst"]["hit_rate"]
    locust_rate = pairs[locust_burst(PAIR_LOCUST_WORKERS).label]["hit_rate"]
    print(
        f"\nLocust's pair-race hit rate {locust_rate:.1%} against burst's {burst_rate:.1%}: "
        f"{abs(locust_rate - burst_rate) * 100:.1f} points apart (goal: at most 10)."
    )
    print("\n### Steady load, naive (medians over rounds)\n")
    table(
        ["driver", "requests/s", "client CPU ms per request"],
        [(label, f"{s['requests_per_second']:.0f}", f"{s['cpu_ms_per_request']:.2f}")
         for label, s in results["steady"].items()],
    )  # fmt: skip
    if "deterministic" in results:
        print(
            "\n### Deterministic mode through two app hosts and the Redis race window "
            "(Locust, 2 client hosts)\n"
        )
        table(
            ["K", "trials", "lost exactly K-1", "windows closed by timeout", "5xx"],
            [(level, s["trials"], s["exact"], s["timeouts"], s["server_errors"])
             for level, s in results["deterministic"].items()],
        )  # fmt: skip


if __name__ == "__main__":
    main()
