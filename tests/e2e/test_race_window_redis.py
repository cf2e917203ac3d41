"""Race mode across app servers: two Gunicorns on one lab database hold each other's requests at
one barrier, in Redis (as servers on several hosts would) or in files (same host). K naive
withdrawals split between the two lose exactly K-1 in every trial; the safe strategies lose none,
never hang and answer no 5xx."""

import dataclasses
import json
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress

import pytest
import redis

from labserver.lab import PROJECT_DIR, Lab, Server, lab
from loadgen.burst import BurstSession, RequestRecord, run_bursts
from loadgen.http_login import log_in_http
from loadgen.target import parse_target, withdrawal_post
from racewindow.barrier import BarrierStats
from tests.helpers import LAB_PASSWORD, LAB_USER, REDIS_URL, audit, require_redis, seed

pytestmark = pytest.mark.e2e

OPENING = 1_000_000
# Per server: each takes its share of a window (at most 2 of K=4) and one spare.
WORKERS = 3
# Generous for the naive runs: a window closes as soon as its K have read, so the timeout only
# spares a slow machine; a withdrawal lost on the way would cost it once.
NAIVE_TIMEOUT = 5.0
# Short for the safe strategies: each one that blocks before the barrier waits it out in turn.
SAFE_TIMEOUT = 0.3
# Far beyond any trial: a child that takes this long has hung.
HANG_SECONDS = 120

# What the lab's settings make of the database: its barrier's key prefix in Redis.
NAMESPACE = "from racewindow.barrier import current_backend; print(current_backend().prefix)"
# Each line on its stdin asks for the counters; EOF disarms.
ARM = """
import dataclasses, json, sys
from racewindow.barrier import armed
with armed(parties={parties}, timeout={timeout}) as barrier:
    print("armed", flush=True)
    for _ in sys.stdin:
        print(json.dumps(dataclasses.asdict(barrier.stats())), flush=True)
"""


@pytest.fixture(scope="module")
def race_lab(tmp_path_factory) -> Iterator[Lab]:
    """A lab database of its own: its name, so its barrier's namespace, is unique to this run."""
    with lab(workdir=tmp_path_factory.mktemp("race-lab-redis")) as prepared:
        seed(prepared, balance=OPENING)
        try:
            yield prepared
        finally:
            forget_barrier(prepared)


def forget_barrier(race_lab: Lab) -> None:
    """The lab's database is dropped: its barrier's keys in Redis would only wait out their expiry."""
    with suppress(redis.RedisError), redis.Redis.from_url(REDIS_URL) as client:
        client.ping()
        prefix = race_lab.manage(
            "shell", "--verbosity", "0", "--command", NAMESPACE, env={"RACE_WINDOW_BACKEND": REDIS_URL}
        ).stdout.strip()
        for key in client.scan_iter(match=f"{prefix}*"):
            client.unlink(key)


@contextmanager
def two_servers(race_lab: Lab, *, backend: str) -> Iterator[tuple[Server, Server]]:
    """Two Gunicorns in race mode on the one lab database, sharing the barrier in ``backend``."""
    env = {"RACE_WINDOW": "armed", "DJANGO_DEBUG": "1", "RACE_WINDOW_BACKEND": backend}
    with (
        race_lab.serve(workers=WORKERS, env=env) as first,
        race_lab.serve(workers=WORKERS, env=env) as second,
    ):
        yield first, second


@pytest.fixture(scope="module")
def redis_servers(race_lab) -> Iterator[tuple[Server, Server]]:
    """As on two hosts: nothing but Redis (and the database) is shared between them."""
    require_redis()
    with two_servers(race_lab, backend=REDIS_URL) as servers:
        yield servers


@pytest.fixture
def lab_env(race_lab) -> Lab:
    race_lab.manage("reset_balances", "--no-input")
    return race_lab


@contextmanager
def armed_lab(lab_env: Lab, *, backend: str, parties: int, timeout: float) -> Iterator["Arming"]:
    """The window armed for the lab database by a process of its own, as splatter --race-window
    arms it: from the same settings as the servers, ``backend`` included."""
    process = subprocess.Popen(
        [
            sys.executable, str(PROJECT_DIR / "manage.py"), "shell", "--verbosity", "0",
            "--command", ARM.format(parties=parties, timeout=timeout),
        ],
        cwd=PROJECT_DIR,
        env={**lab_env.env, "RACE_WINDOW_BACKEND": backend},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    arming = Arming(process=process)
    try:
        assert arming.read_line() == "armed", process.stderr.read() if process.poll() is not None else ""
        yield arming
    finally:
        process.stdin.close()
        try:
            process.wait(timeout=HANG_SECONDS)
        except subprocess.TimeoutExpired:  # pragma: no cover
            process.kill()
            process.wait(timeout=HANG_SECONDS)


@dataclasses.dataclass(frozen=True)
class Arming:
    process: subprocess.Popen

    def read_line(self) -> str:
        ready, _, _ = select.select([self.process.stdout], [], [], HANG_SECONDS)
        assert ready, "the arming process said nothing: has it hung?"
        return self.process.stdout.readline().strip()

    def stats(self) -> BarrierStats:
        self.process.stdin.write("stats\n")
        self.process.stdin.flush()
        return BarrierStats(**json.loads(self.read_line()))


def fire(servers: tuple[Server, Server], *, strategy: str, parties: int) -> list[RequestRecord]:
    """``parties`` withdrawals of 1 at once, dealt out between the two servers (each burst-fired
    by a thread of its own, so neither waits for the other); what each got back."""
    shares = [parties // 2 + parties % 2, parties // 2]
    session = BurstSession(
        username=LAB_USER,
        # The session lives in the shared database: one login serves both servers.
        cookies=log_in_http(target=parse_target(servers[0].url), username=LAB_USER, password=LAB_PASSWORD),
    )
    post = withdrawal_post(strategy=strategy, amount=1)
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = [
            pool.submit(
                run_bursts,
                target=parse_target(server.url),
                sessions=[session],
                posts=[post],
                requests=share,
                burst_size=share,
            )
            for server, share in zip(servers, shares, strict=True)
        ]
        return [record for run in runs for record in run.result(timeout=HANG_SECONDS).records]


def lose_all_but_one(
    lab_env: Lab, servers: tuple[Server, Server], *, backend: str, parties: int, trials: int
):
    """Fire ``trials`` naive windows of ``parties`` through both servers; each must lose K-1."""
    with armed_lab(lab_env, backend=backend, parties=parties, timeout=NAIVE_TIMEOUT) as arming:
        for trial in range(1, trials + 1):
            records = fire(servers, strategy="naive", parties=parties)

            # All K acknowledged, all read the same balance and wrote the same new one: it fell
            # by 1, not K, so exactly K-1 were lost.
            assert [(record.status, record.balance) for record in records] == [
                (200, OPENING - trial)
            ] * parties
        stats = arming.stats()

    # Every window closed because all K had read the balance, none by the timeout.
    assert stats == BarrierStats(held=trials * parties, windows=trials, timeouts=0)
    account = audit(lab_env)
    assert (account["ledger_rows"], account["lost_withdrawals"]) == (trials * parties, trials * (parties - 1))
    for server in servers:
        assert "Traceback" not in server.log()


@pytest.mark.parametrize(("parties", "trials"), [(2, 20), (4, 10)])
def test_naive_loses_exactly_all_but_one_in_every_trial(lab_env, redis_servers, parties, trials):
    lose_all_but_one(lab_env, redis_servers, backend=REDIS_URL, parties=parties, trials=trials)


def test_the_file_backend_holds_two_servers_of_one_host(lab_env):
    with two_servers(lab_env, backend="file") as servers:
        lose_all_but_one(lab_env, servers, backend="file", parties=2, trials=5)


@pytest.mark.parametrize("strategy", ["locking", "atomic_update"])
def test_safe_strategies_lose_nothing_and_never_hang(lab_env, redis_servers, strategy):
    parties, trials = 4, 3
    started = time.monotonic()
    with armed_lab(lab_env, backend=REDIS_URL, parties=parties, timeout=SAFE_TIMEOUT) as arming:
        for trial in range(trials):
            records = fire(redis_servers, strategy=strategy, parties=parties)

            assert {record.status for record in records} == {200}, records
            # Each wrote a balance of its own: none lost.
            before = OPENING - trial * parties
            assert sorted(record.balance for record in records) == list(range(before - parties, before))
        stats = arming.stats()
    elapsed = time.monotonic() - started
    # What docs/race-mode.md says the barrier sees: locking's first holds the row lock while it
    # waits, so each waits alone and the timeout lets it through; atomic_update reads nothing.
    held = trials * parties if strategy == "locking" else 0
    assert stats == BarrierStats(held=held, windows=held, timeouts=held)

    account = audit(lab_env)
    assert (account["ledger_rows"], account["lost_withdrawals"], account["anomalies"]) == (
        trials * parties,
        0,
        [],
    )
    # At worst every withdrawal waits out a window of its own, in turn (locking queues on the
    # lock); far below what a hang would take. The rest is logins, bursts and the arming process.
    assert elapsed < trials * parties * (SAFE_TIMEOUT + 1) + 20
    for server in redis_servers:
        assert "Traceback" not in server.log()


def test_splatter_arms_the_servers_redis_barrier_with_the_same_setting(lab_env, redis_servers):
    server = redis_servers[0]
    same_backend = {"RACE_WINDOW_BACKEND": REDIS_URL, "BANK_PASSWORD": LAB_PASSWORD}
    args = (
        "--url",
        server.url,
        "--username",
        LAB_USER,
        "--no-input",
        "--driver",
        "burst",
        "-n",
        "3",
        "-c",
        "3",
    )
    result = lab_env.manage(
        "splatter", *args, "--race-window", "--race-window-timeout", str(NAIVE_TIMEOUT), env=same_backend
    )

    assert "held 3 request(s) in 1 window(s)" in result.stdout, result.stdout
    assert audit(lab_env)["lost_withdrawals"] == 2
    # Armed in files instead, the servers never see it: splatter says so.
    other_backend = {**same_backend, "RACE_WINDOW_BACKEND": "file"}
    refused = lab_env.manage("splatter", *args, "--race-window", env=other_backend, check=False)
    assert refused.returncode == 1
    assert "the server held no request" in refused.stderr
