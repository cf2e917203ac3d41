"""splatter's side of the Locust driver: start the master (and local workers) as processes once
per command, hand the master each run in the session folder, read each result back. Nothing
here imports Locust: importing it would patch this whole process with gevent, so Locust only
ever runs in processes of its own.

The password reaches the master and the local workers in their environment, never on a command
line; workers started by hand elsewhere read it from theirs.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from racelab.loadgen.burst import (
    CONNECT_TIMEOUT_SECONDS,
    DEFAULT_RESPONSE_TIMEOUT_SECONDS,
    DEFAULT_SETTLE_SECONDS,
)
from racelab.loadgen.credentials import PASSWORD_ENV_VAR, SESSION_ENV_VAR, without_secrets
from racelab.loadgen.errors import LoadError
from racelab.loadgen.locust.protocol import (
    BATCH_SECONDS,
    MESSAGE_SLACK_SECONDS,
    SESSION_OPTION,
    LocustMode,
    RunSpec,
    SessionFolder,
    SessionSpec,
    answers_bound,
    arming_bound,
    write_atomically,
)
from racelab.loadgen.locust.result import LocustRun, read_result
from racelab.loadgen.login import DEFAULT_COOKIE_NAMES, DEFAULT_LOGIN_PATH, CookieNames, LoginForm
from racelab.loadgen.target import LoadRequest, Target, is_loopback

# Where ``import racelab`` works from (a checkout's root, or site-packages): the master and its
# workers run there, so the locustfile finds racelab whether it is installed or not.
IMPORT_ROOT = Path(__file__).resolve().parents[3]
LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
# Locust's own default master port.
DEFAULT_MASTER_PORT = 5557
# Workers connect and log in within this: Locust starts in a second or two per process.
DEFAULT_WORKER_WAIT_SECONDS = 60.0
WORKER_WAIT_SLACK_SECONDS = 5.0
# Beyond the master's own bounded waits: handing over the spec and writing the result.
RUN_SLACK_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 10.0
POLL_SECONDS = 0.005
# The local workers' process ids, for whoever wants to watch them (or kill one, as a test does).
LOCAL_WORKERS_FILE = "local-workers.json"
MASTER_LOG = "master.log"
LOG_TAIL_CHARACTERS = 2_000


@dataclass(frozen=True, kw_only=True)
class MasterAddress:
    host: str
    port: int


@dataclass(frozen=True, kw_only=True)
class LocustSetup:
    """Where the workers come from and where Locust's files go."""

    mode: LocustMode
    # Worker processes splatter starts on this machine, or None when workers started elsewhere
    # connect to ``bind``.
    local_workers: int | None = 1
    expect_workers: int | None = None
    bind: MasterAddress | None = None
    # Locust's CSV, JSON and HTML reports and the logs: kept here, one folder per command; None:
    # a temporary folder, removed at the end.
    output: Path | None = None
    worker_wait: float = DEFAULT_WORKER_WAIT_SECONDS
    response_timeout: float = DEFAULT_RESPONSE_TIMEOUT_SECONDS

    @property
    def workers(self) -> int:
        return self.local_workers if self.expect_workers is None else self.expect_workers


def parse_bind(value: str, *, allow_remote: bool = False) -> MasterAddress:
    """--locust-bind ADDRESS[:PORT] (the port defaults to Locust's 5557); a non-loopback address
    exposes the master to the network, so it needs ``allow_remote`` like a remote target."""
    if value.startswith("["):  # [IPv6]:PORT
        host, _, rest = value[1:].partition("]")
        port = rest.removeprefix(":")
    elif value.count(":") == 1:
        host, _, port = value.rpartition(":")
    else:  # a host alone, IPv6 included
        host, port = value, ""
    # ASCII digits alone: int() would read any script's digits ('٣' as 3).
    if port and not (port.isascii() and port.isdigit()):
        raise LoadError(f"--locust-bind {value!r}: the port must be a number, like 0.0.0.0:5557.")
    number = int(port) if port else DEFAULT_MASTER_PORT
    if not host or not 1 <= number <= 65_535:
        raise LoadError(
            f"--locust-bind {value!r}: give an address and a port from 1 to 65535, like 0.0.0.0:5557."
        )
    if not allow_remote and not is_loopback(host):
        raise LoadError(
            f"--locust-bind {host}: the master would listen beyond this machine; pass --allow-remote "
            "to let workers on other machines connect, or bind 127.0.0.1."
        )
    return MasterAddress(host=host, port=number)


class LocustSession:
    """A master and its workers, started once for a whole splatter command: each ``run`` hands
    the master one run and reads back its result."""

    def __init__(self, *, setup: LocustSetup, folder: SessionFolder, master: subprocess.Popen) -> None:
        self.setup = setup
        self.folder = folder
        self.master = master
        self.runs = 0

    def run(
        self,
        *,
        targets: list[Target],
        usernames: list[str],
        login: LoginForm | None,
        posts: tuple[LoadRequest, ...],
        requests: int,
        concurrency: int,
        run_token: str | None = None,
        cookie_names: CookieNames = DEFAULT_COOKIE_NAMES,
        token_page: str = DEFAULT_LOGIN_PATH,
    ) -> LocustRun:
        """One run: request i sends posts[i % len(posts)] to targets[i % len(targets)], as
        ``concurrency`` steady users or in bursts of ``concurrency``; bounded in time throughout.
        The workers send the project's ``cookie_names``; users that do not log in, where the
        project keeps its CSRF secret in the session, read its token from ``token_page``."""
        self.runs += 1
        spec = RunSpec(
            mode=self.setup.mode,
            usernames=usernames,
            login=login,
            forms=list(posts),
            targets=[target.base_url for target in targets],
            requests=requests,
            concurrency=concurrency,
            run_token=run_token,
            response_timeout=self.setup.response_timeout,
            settle=DEFAULT_SETTLE_SECONDS,
            worker_wait=self.setup.worker_wait,
            cookie_names=cookie_names,
            token_page=token_page,
        )
        spec.save(self.folder.spec(self.runs))
        result = self.folder.result(self.runs)
        self._wait_for(result, timeout=_run_timeout(spec), what=f"finish run {self.runs}")
        return read_result(
            result, posts=posts, output=self.folder.path if self.setup.output is not None else None
        )

    def _wait_for(self, path: Path, *, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not path.exists():
            if self.master.poll() is not None:
                raise LoadError(
                    f"The Locust master exited {self.master.returncode} before it could {what}; its log: "
                    f"{_tail(self.folder.path / MASTER_LOG)}"
                )
            if time.monotonic() > deadline:
                raise LoadError(
                    f"The Locust master did not {what} within {timeout:g} s; its log: "
                    f"{_tail(self.folder.path / MASTER_LOG)}"
                )
            time.sleep(POLL_SECONDS)


@contextmanager
def locust_session(
    *, setup: LocustSetup, targets: list[Target], password: str, sessionid: str = ""
) -> Iterator[LocustSession]:
    """Start the master (and the local workers), wait until every worker has connected, and
    stop them all on the way out, however the block ends (KeyboardInterrupt included). The local
    workers get ``password`` (or ``sessionid``, a session cookie to send instead of logging in) in
    their environment."""
    with _run_folder(setup.output) as path, ExitStack() as processes:
        folder = SessionFolder(path)
        write_atomically(
            folder.session,
            asdict(
                SessionSpec(
                    workers=setup.workers,
                    worker_wait=setup.worker_wait,
                    parent_pid=os.getpid(),
                )
            ),
        )
        address = setup.bind or MasterAddress(host="127.0.0.1", port=_free_port())
        # Only the workers log in: the master never sees the password.
        master_env = without_secrets(os.environ)
        secrets = {PASSWORD_ENV_VAR: password, SESSION_ENV_VAR: sessionid}
        env = {**master_env, **{name: value for name, value in secrets.items() if value}}
        master = processes.enter_context(
            locust_process(
                _master_argv(setup, folder=folder, address=address, host=targets[0].base_url),
                log=path / MASTER_LOG,
                env=master_env,
            )
        )
        workers = [
            processes.enter_context(
                locust_process(worker_argv(address), log=path / f"worker-{number}.log", env=env)
            )
            for number in range(1, (setup.local_workers or 0) + 1)
            if setup.expect_workers is None
        ]
        (path / LOCAL_WORKERS_FILE).write_text(json.dumps([worker.pid for worker in workers]) + "\n")
        session = LocustSession(setup=setup, folder=folder, master=master)
        # The master waits for the workers to connect, then for Locust to start: twice the wait.
        session._wait_for(
            folder.ready, timeout=2 * setup.worker_wait + WORKER_WAIT_SLACK_SECONDS, what="see its workers"
        )
        ready = json.loads(folder.ready.read_text())
        if ready["error"] is not None:
            raise LoadError(f"The Locust run failed: {ready['error']}.")
        try:
            yield session
        finally:
            folder.stop.touch()
            # The master's quit message stops the workers; the waits are only bounds.
            _stop(master, grace=STOP_TIMEOUT_SECONDS)
            for worker in workers:
                _stop(worker, grace=STOP_TIMEOUT_SECONDS)


def _master_argv(
    setup: LocustSetup, *, folder: SessionFolder, address: MasterAddress, host: str
) -> list[str]:
    # No users to start with: the bursts go out from the workers' handlers, and a steady run has
    # the master start its users.
    return [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--master", "--headless",
        "--master-bind-host", address.host, "--master-bind-port", str(address.port),
        "--expect-workers", str(setup.workers),
        # Longer than the session's own wait, so the master says why in the ready file first.
        "--expect-workers-max-wait", str(int(setup.worker_wait + WORKER_WAIT_SLACK_SECONDS)),
        "--users", "0", "--spawn-rate", "1", "--host", host,
        "--only-summary", "--csv", str(folder.path / "locust"), "--json-file", str(folder.path / "locust"),
        "--html", str(folder.path / "locust.html"), SESSION_OPTION, str(folder.path),
    ]  # fmt: skip


def worker_argv(address: MasterAddress) -> list[str]:
    """``locust --worker`` for the master at ``address``, as a user starts one on another machine."""
    return [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--worker",
        "--master-host", address.host, "--master-port", str(address.port),
    ]  # fmt: skip


def _run_timeout(spec: RunSpec) -> float:
    """One run's bound, beyond the master's own: the workers' log-in and the users' start, then
    each burst's arming and answers, or each steady user's requests one after another."""
    rounds = -(-spec.requests // spec.concurrency)
    if spec.mode is LocustMode.BURST:
        per_burst = arming_bound(spec.concurrency, settle=spec.settle) + answers_bound(
            response_timeout=spec.response_timeout
        )
        work = rounds * per_burst
    else:
        work = (
            rounds * (CONNECT_TIMEOUT_SECONDS + spec.response_timeout) + BATCH_SECONDS + MESSAGE_SLACK_SECONDS
        )
    return 2 * spec.worker_wait + work + RUN_SLACK_SECONDS


@contextmanager
def _run_folder(output: Path | None) -> Iterator[Path]:
    if output is None:
        with tempfile.TemporaryDirectory(prefix="splatter-locust-") as folder:
            yield Path(folder)
        return
    output.mkdir(exist_ok=True)
    number = 1 + sum(1 for child in output.iterdir() if child.name.startswith("run-"))
    folder = output / f"run-{number:03d}"
    folder.mkdir()
    yield folder


@contextmanager
def locust_process(argv: list[str], *, log: Path, env: dict[str, str]) -> Iterator[subprocess.Popen]:
    """A Locust process with its output in ``log``; stopped and reaped however the block ends
    (KeyboardInterrupt included)."""
    with open(log, "w") as output:
        process = subprocess.Popen(
            argv, cwd=IMPORT_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT
        )
        try:
            yield process
        finally:
            _stop(process, grace=0)


def _stop(process: subprocess.Popen, *, grace: float) -> None:
    """Wait ``grace`` seconds for the process to end, then SIGTERM it, then SIGKILL it."""
    for sig in (None, signal.SIGTERM, signal.SIGKILL):
        if sig is not None and process.poll() is None:
            process.send_signal(sig)
        try:
            process.wait(timeout=grace if sig is None else STOP_TIMEOUT_SECONDS)
            return
        except subprocess.TimeoutExpired:
            continue


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(log: Path) -> str:
    text = log.read_text(errors="replace") if log.exists() else ""
    return text[-LOG_TAIL_CHARACTERS:] or "(empty)"
