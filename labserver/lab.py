"""A migrated lab database, ``manage.py`` pointed at it, and a real Gunicorn serving it."""

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from labserver.databases import copied_database, fresh_database
from labserver.hosts import Host, free_port_at
from racelab.loadgen.login import LoginForm

PROJECT_DIR = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"
# The demo's login form, where bank/urls.py serves Django's LoginView (settings.LOGIN_URL).
LAB_LOGIN = LoginForm(path="/auth/login/")
# A simulated host has its own address and nothing else listening there: one fixed port will do.
APP_HOST_PORT = 8000
READY_TIMEOUT_SECONDS = 30
STOP_TIMEOUT_SECONDS = 15


class LabError(RuntimeError):
    pass


@dataclass(frozen=True)
class Server:
    url: str
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@dataclass(frozen=True)
class Lab:
    database_url: str
    env: dict[str, str]
    workdir: Path

    def manage(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 600, check: bool = True
    ) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [sys.executable, str(PROJECT_DIR / "manage.py"), *args],
            cwd=PROJECT_DIR,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if check and result.returncode != 0:
            raise LabError(f"manage.py {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
        return result

    @contextmanager
    def serve(
        self,
        *,
        workers: int = 4,
        env: dict[str, str] | None = None,
        app: str | None = None,
        ready_path: str = "/auth/login/",
        host: Host | None = None,
    ) -> Iterator[Server]:
        """Start Gunicorn from the project's config on a free loopback port; always stop it.

        ``app`` serves another WSGI application than the config's (Django) with the same Gunicorn
        settings; the server is ready when ``ready_path`` answers below 500. ``host`` runs it in
        that simulated host's namespace, on its address (labserver/hosts.py).
        """
        address = LOOPBACK if host is None else host.address
        port = free_port() if host is None else APP_HOST_PORT
        log_path = self.workdir / f"gunicorn-{address}-{port}.log"
        argv = [
            sys.executable, "-m", "gunicorn",
            "--config", str(PROJECT_DIR / "gunicorn.conf.py"),
            "--bind", f"{address}:{port}",
            "--workers", str(workers),
            *([app] if app else []),
        ]  # fmt: skip
        server_env = {**self.env, **(env or {})}
        if host is not None:
            # Clients name the server by its address; Django answers 400 to a Host it does not know.
            allowed = server_env.get("DJANGO_ALLOWED_HOSTS", "")
            server_env["DJANGO_ALLOWED_HOSTS"] = ",".join(filter(None, (allowed, host.address)))
        with running_gunicorn(
            argv if host is None else host.argv(argv),
            url=f"http://{address}:{port}", cwd=PROJECT_DIR, env=server_env, log_path=log_path,
            ready_path=ready_path, workers=workers,
        ) as server:  # fmt: skip
            yield server


@contextmanager
def running_gunicorn(
    argv: list, *, url: str, cwd: Path, env: dict[str, str], log_path: Path, ready_path: str, workers: int
) -> Iterator[Server]:
    """Start the Gunicorn ``argv`` runs, its output in ``log_path``; yield it once ``ready_path``
    answers below 500 and all its ``workers`` are up; always stop it."""
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    server = Server(url=url, process=process, log_path=log_path)
    try:
        _wait_until_ready(server, path=ready_path, workers=workers)
        yield server
    finally:
        _stop(process)


@contextmanager
def lab(*, workdir: Path, base_database_url: str | None = None, template: Lab | None = None) -> Iterator[Lab]:
    """A fresh database of the kind ``base_database_url`` names (default: SQLite), migrated; or,
    with ``template``, a copy of that lab's database (nothing may use the template meanwhile)."""
    if template is not None:
        database = copied_database(source_url=template.database_url, workdir=workdir)
    else:
        base_database_url = base_database_url or os.environ.get("DATABASE_URL")
        database = fresh_database(base_url=base_database_url, workdir=workdir)
    with database as database_url:
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "DJANGO_SECRET_KEY_FILE": str(workdir / "secret_key"),
            "PYTHONUNBUFFERED": "1",
        }
        env.pop("DJANGO_DEBUG", None)
        prepared = Lab(database_url=database_url, env=env, workdir=workdir)
        if template is None:
            prepared.manage("migrate", "--verbosity", "0")
        yield prepared


def free_port() -> int:
    return free_port_at(LOOPBACK)


def _wait_until_ready(server: Server, *, path: str, workers: int) -> None:
    """Until ``path`` answers and every worker is up: a test that holds K requests at once, or
    counts the workers, must not find some of them still being forked."""
    deadline, answered = time.monotonic() + READY_TIMEOUT_SECONDS, False
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise LabError(f"Gunicorn exited with {server.process.returncode}:\n{server.log()}")
        answered = answered or _answers(server, path=path)
        if answered and len(_children(server.process.pid)) >= workers:
            return
        time.sleep(0.05)
    late = f"Gunicorn and its {workers} worker(s) were not up within {READY_TIMEOUT_SECONDS} s"
    raise LabError(f"{late}:\n{server.log()}")


def _answers(server: Server, *, path: str) -> bool:
    try:
        urllib.request.urlopen(f"{server.url}{path}", timeout=2).close()
    except urllib.error.HTTPError as answer:  # an answer all the same, unless the app failed
        return answer.code < 500
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False
    return True


def _children(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/task/{pid}/children").read_text().split()


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
