"""Race mode across app servers: two Gunicorns on one lab database hold each other's requests at
one barrier, in Redis (as servers on several hosts would) or in files (same host). K naive
withdrawals split between the two lose exactly K-1 in every trial; the safe strategies lose none,
never hang and answer no 5xx. A Redis of the test's own, killed while it holds requests, or under
splatter mid-run: each held request is answered 503 with the reason and changes nothing, and
splatter says the window failed."""

import dataclasses
import http.client
import json
import re
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress

import pytest
import redis

from bank.database_url import database_from_url
from experiment.requests import withdrawal_post
from labserver.lab import LAB_LOGIN, PROJECT_DIR, Lab, Server, free_port, lab
from racelab.loadgen.burst import BurstSession, RequestRecord, run_bursts
from racelab.loadgen.http_login import log_in_http
from racelab.loadgen.target import parse_target
from racelab.racewindow.barrier import MAX_TIMEOUT_SECONDS, BarrierStats
from racelab.racewindow.redis_backend import RedisBackend, namespace
from tests.helpers import LAB_PASSWORD, LAB_USER, REDIS_URL, audit, require, require_redis, seed
from tests.lab_database import command

pytestmark = pytest.mark.e2e

OPENING = 1_000_000
# Per server: each takes its share of a window (at most 2 of K=4) and one spare.
WORKERS = 3
# Generous: a window closes as soon as its K have read (naive), or as soon as those still to come
# are blocked on the first one's lock (locking), so the timeout only spares a slow machine; a
# withdrawal lost on the way would cost it once.
NAIVE_TIMEOUT = 5.0
# Far beyond any trial: a child that takes this long has hung.
HANG_SECONDS = 120

# What the lab's settings make of the database: its barrier's key prefix in Redis.
NAMESPACE = "from racelab.racewindow.barrier import current_backend; print(current_backend().prefix)"
# Each line on its stdin asks for the counters; EOF disarms.
ARM = """
import dataclasses, json, sys
from racelab.racewindow.barrier import armed
with armed(parties={parties}, timeout={timeout}) as barrier:
    print("armed", flush=True)
    for _ in sys.stdin:
        print(json.dumps(dataclasses.asdict(barrier.stats())), flush=True)
"""


@pytest.fixture(scope="module")
def race_lab(tmp_path_factory, lab_template) -> Iterator[Lab]:
    """A lab database of its own: its name, so its barrier's namespace, is unique to this run."""
    with lab(workdir=tmp_path_factory.mktemp("race-lab-redis"), template=lab_template) as prepared:
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
    command(race_lab, "reset_balances", "--no-input")
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
        cookies=log_in_http(
            target=parse_target(servers[0].url), username=LAB_USER, password=LAB_PASSWORD, form=LAB_LOGIN
        ),
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
            assert [(record.status, record.answer) for record in records] == [
                (200, str(OPENING - trial))
            ] * parties
        stats = arming.stats()

    # Every window closed because all K had read the balance, none by the timeout or a lock.
    assert stats == BarrierStats(held=trials * parties, windows=trials, timeouts=0, serialized=0)
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
    with armed_lab(lab_env, backend=REDIS_URL, parties=parties, timeout=NAIVE_TIMEOUT) as arming:
        for trial in range(trials):
            records = fire(redis_servers, strategy=strategy, parties=parties)

            assert {record.status for record in records} == {200}, records
            # Each wrote a balance of its own: none lost.
            before = OPENING - trial * parties
            assert sorted(int(record.answer) for record in records) == list(range(before - parties, before))
        stats = arming.stats()
    elapsed = time.monotonic() - started
    # What docs/race-mode.md says the barrier sees: locking's first holds the row lock while it
    # waits, and the others wait for it in the database, whichever server they came through:
    # counted as arrived, they close its window at once, serialized. atomic_update reads nothing.
    if strategy == "locking":
        assert stats == BarrierStats(held=trials * parties, windows=trials, timeouts=0, serialized=trials)
    else:
        assert stats == BarrierStats(held=0, windows=0, timeouts=0, serialized=0)

    account = audit(lab_env)
    assert (account["ledger_rows"], account["lost_withdrawals"], account["anomalies"]) == (
        trials * parties,
        0,
        [],
    )
    # No window waited for its timeout (the counters say so): what remains is logins, bursts and
    # the arming process, far below what a hang would take.
    assert elapsed < NAIVE_TIMEOUT + 20
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


@dataclasses.dataclass(frozen=True)
class PrivateRedis:
    url: str
    process: subprocess.Popen

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=HANG_SECONDS)


@pytest.fixture
def private_redis(tmp_path) -> Iterator[PrivateRedis]:
    """A redis-server of the test's own, on a free loopback port, for a test that kills it."""
    require(
        shutil.which("redis-server") is not None,
        "redis-server is not installed (apt-get install redis-server)",
    )
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    server = PrivateRedis(url=f"redis://127.0.0.1:{port}/0", process=process)
    try:
        wait_for(lambda: answers(server.url))
        yield server
    finally:
        server.kill()


def answers(url: str) -> bool:
    with redis.Redis.from_url(url, socket_timeout=1) as client:
        try:
            return client.ping()
        except redis.ConnectionError:
            return False


def race_mode_on(private: PrivateRedis) -> dict[str, str]:
    return {"RACE_WINDOW": "armed", "DJANGO_DEBUG": "1", "RACE_WINDOW_BACKEND": private.url}


# What a server in race mode answers each request its Redis failed (racelab/middleware.py);
# what Redis said varies with the moment it died.
UNAVAILABLE = (
    r"The race window's barrier is unavailable \(The race window's Redis at {url} \(RACE_WINDOW_BACKEND\) "
    r"does not answer, or refuses us \(.+\): start it, check its password, or point RACE_WINDOW_BACKEND "
    r"at one that runs\.\), so this request stopped where it would have been held\. This lab server "
    r"holds requests on purpose \(RACE_WINDOW\): bring its Redis back, or restart the server without "
    r"RACE_WINDOW\.\n"
)


@pytest.mark.parametrize("strategy", ["naive", "locking"])
def test_a_redis_that_dies_while_requests_are_held_answers_each_503_and_changes_nothing(
    lab_env, private_redis, strategy
):
    requests = 3
    # naive's are held together, after their read; locking's first is held holding the row's lock,
    # inside its transaction, and the others wait for the lock in the database.
    held = requests if strategy == "naive" else 1
    with (
        lab_env.serve(workers=requests + 1, env=race_mode_on(private_redis)) as server,
        # One party more than there are requests: only Redis's death ends the wait, not the window.
        armed_lab(
            lab_env, backend=private_redis.url, parties=requests + 1, timeout=MAX_TIMEOUT_SECONDS
        ) as arming,
        ThreadPoolExecutor(max_workers=1) as pool,
    ):
        answered = pool.submit(withdraw_at_once, server, strategy=strategy, requests=requests)
        wait_for(lambda: arming.stats().held == held)
        private_redis.kill()
        answers_ = answered.result(timeout=HANG_SECONDS)

    unavailable = re.compile(UNAVAILABLE.format(url=re.escape(private_redis.url)), re.DOTALL)
    assert [status for status, _ in answers_] == [503] * requests, answers_
    assert all(unavailable.fullmatch(body) for _, body in answers_), answers_
    # Each stopped where it was held, or would have been: no write, no ledger row, no transaction
    # left open (the next withdrawal runs).
    account = audit(lab_env)
    assert (account["final"], account["ledger_rows"]) == (OPENING, 0), account
    assert "Traceback" not in server.log()


def test_splatter_says_the_race_window_failed_when_its_redis_dies_mid_run(lab_env, private_redis):
    env = race_mode_on(private_redis)
    with lab_env.serve(workers=3, env=env) as server:
        splatter_process = subprocess.Popen(
            [
                sys.executable, str(PROJECT_DIR / "manage.py"), "splatter", "--url", server.url,
                "--username", LAB_USER, "--no-input", "--driver", "burst", "--strategy", "locking",
                "-n", "2", "-c", "2", "--race-window", "--race-window-timeout", str(MAX_TIMEOUT_SECONDS),
            ],
            cwd=PROJECT_DIR, env={**lab_env.env, **env, "BANK_PASSWORD": LAB_PASSWORD},
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            # locking's first withdrawal waits at the barrier holding the row's lock: alone, until
            # the timeout, far longer than the kill takes.
            barrier = RedisBackend(
                url=private_redis.url, prefix=namespace(database_from_url(lab_env.database_url))
            )
            wait_for(lambda: barrier.stats().held == 1)
            private_redis.kill()
            stdout, stderr = splatter_process.communicate(timeout=HANG_SECONDS)
        finally:
            if splatter_process.poll() is None:
                splatter_process.kill()
                splatter_process.communicate()

    port = private_redis.url.split(":")[2].split("/")[0]
    assert splatter_process.returncode == 1, stdout
    assert stderr == (
        "CommandError: The race window failed during the run: The race window's Redis at "
        f"{private_redis.url} (RACE_WINDOW_BACKEND) does not answer, or refuses us (Error 111 connecting "
        f"to 127.0.0.1:{port}. Connection refused.): start it, check its password, or point "
        "RACE_WINDOW_BACKEND at one that runs.\n"
    )
    # The run is recorded all the same, as the server answered it: both 503 (indeterminate for the
    # checker), neither written.
    account = audit(lab_env)
    assert (account["final"], account["ledger_rows"]) == (OPENING, 0), account
    client = account["client"]
    assert (client["ok"], client["indeterminate"]) == (0, 2), client


def withdraw_at_once(server: Server, *, strategy: str, requests: int) -> list[tuple[int, str]]:
    """``requests`` withdrawals of 1 at once, each on a connection of its own: each one's status
    and body."""
    target = parse_target(server.url)
    cookies = log_in_http(target=target, username=LAB_USER, password=LAB_PASSWORD, form=LAB_LOGIN)
    post = withdrawal_post(strategy=strategy, amount=1)
    headers = {
        "Cookie": cookies.cookie_header,
        "X-CSRFToken": cookies.csrftoken,
        "Content-Type": "application/x-www-form-urlencoded",
    }

    def withdraw(_) -> tuple[int, str]:
        connection = http.client.HTTPConnection(target.host, target.port, timeout=HANG_SECONDS)
        try:
            connection.request(post.method, post.path_and_query, body=post.body, headers=headers)
            answer = connection.getresponse()
            return answer.status, answer.read().decode()
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=requests) as pool:
        return list(pool.map(withdraw, range(requests)))


def wait_for(condition, *, timeout: float = HANG_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
