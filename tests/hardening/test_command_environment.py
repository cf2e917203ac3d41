"""Commands run as a user runs them, ``manage.py`` in its own process, when their world is wrong:
a wrong password, a missing binary, an unreachable, unmigrated or misspelt database, nobody at
the prompt, a target off this machine."""

import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labserver.databases import fresh_database
from labserver.lab import LOOPBACK, PROJECT_DIR, free_port
from tests.helpers import LAB_PASSWORD, LAB_USER, lab_snapshot, require
from tests.lab_database import command, dumped

pytestmark = pytest.mark.e2e

PROJECT_COMMANDS = {
    "seed_account": ["--no-input"],
    "reset_balances": ["--no-input"],
    "audit_transactions": [],
    "fill_ledger": ["--rows", "10"],
    "splatter": ["--no-input", "--url", f"http://{LOOPBACK}:1"],
}
# A documentation address (TEST-NET-1, RFC 5737): nothing answers there, and the test that
# names it runs in an empty network namespace, so not one packet can leave this machine.
REMOTE_URL = "http://192.0.2.1:8001"


def manage(lab_env, *args: str, password: str = LAB_PASSWORD, **env: str) -> subprocess.CompletedProcess:
    return lab_env.manage(*args, env={"BANK_PASSWORD": password, **env}, check=False)


def assert_clear_refusal(result: subprocess.CompletedProcess, message: str) -> None:
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("CommandError: "), result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_splatter_with_a_wrong_password(module_lab, module_server):
    before = lab_snapshot(module_lab)

    result = manage(
        module_lab, "splatter", "--url", module_server.url, "--username", LAB_USER, "--no-input",
        password="not the password",
    )  # fmt: skip

    assert_clear_refusal(result, f"the server refused the username {LAB_USER!r} or its password.")
    assert lab_snapshot(module_lab) == before


def test_splatter_without_ab_installed(module_lab, module_server, tmp_path):
    only_curl = tmp_path / "bin"
    only_curl.mkdir()
    (only_curl / "curl").symlink_to(shutil.which("curl"))
    before = lab_snapshot(module_lab)

    result = manage(
        module_lab, "splatter", "--driver", "ab", "--url", module_server.url, "--username", LAB_USER,
        "--no-input", PATH=str(only_curl),
    )  # fmt: skip

    assert_clear_refusal(result, "ab is not installed: install the Debian package apache2-utils")
    assert lab_snapshot(module_lab) == before


UNREACHABLE_DATABASES = {
    "postgresql": lambda tmp_path: f"postgres://postgres@{LOOPBACK}:{free_port()}/bank",
    "mysql": lambda tmp_path: f"mysql://root@{LOOPBACK}:{free_port()}/bank",
    "sqlite": lambda tmp_path: f"sqlite:///{tmp_path / 'no-such-folder' / 'bank.sqlite3'}",
}


@pytest.mark.parametrize("database", UNREACHABLE_DATABASES)
@pytest.mark.parametrize("command", PROJECT_COMMANDS)
def test_unreachable_database_is_one_clear_sentence(module_lab, command, database, tmp_path):
    url = UNREACHABLE_DATABASES[database](tmp_path)

    result = manage(module_lab, command, *PROJECT_COMMANDS[command], DATABASE_URL=url)

    assert_clear_refusal(result, "Cannot use the ")
    assert "and that it is migrated (`manage.py migrate`)." in result.stderr
    assert "postgres://" not in result.stderr and "mysql://" not in result.stderr


@pytest.fixture(scope="module")
def unmigrated_database_url(tmp_path_factory) -> str:
    """A new, empty database of the kind DATABASE_URL names: no table has been created in it."""
    with fresh_database(
        base_url=os.environ.get("DATABASE_URL"), workdir=tmp_path_factory.mktemp("empty")
    ) as url:
        yield url


@pytest.mark.parametrize("command", PROJECT_COMMANDS)
def test_unmigrated_database_is_one_clear_sentence(module_lab, command, unmigrated_database_url):
    # A missing table is an OperationalError on SQLite but a ProgrammingError on PostgreSQL and
    # MariaDB: both must end as the same sentence, telling the user to migrate.
    result = manage(module_lab, command, *PROJECT_COMMANDS[command], DATABASE_URL=unmigrated_database_url)

    assert_clear_refusal(result, "Cannot use the ")
    assert "and that it is migrated (`manage.py migrate`)." in result.stderr


# Each is refused by bank/settings.py as it loads, before any command can touch a database. Every
# host is this machine's loopback, and none is connected to: nothing can leave the machine.
BAD_DATABASE_URLS = {
    "not-a-url": ("not-a-url", "but it is not a URL."),
    "unknown-scheme": ("http://lab:s3cret@127.0.0.1/bank", "but its scheme is 'http'."),
    "mariadb-scheme": ("mariadb://root:s3cret@127.0.0.1/bank", "but its scheme is 'mariadb'."),
    "unsupported-database": (
        "oracle://lab:s3cret@127.0.0.1/bank",
        "names a database the lab does not run on",
    ),
    "unquoted-password": ("postgres://lab:s3cret/x@127.0.0.1:5432/bank", "it is not a valid URL"),
}
SETTINGS_ERROR = (
    "ImproperlyConfigured: DATABASE_URL must name a database the lab runs on, with the scheme "
    "sqlite, postgres or mysql"
)


def assert_settings_refusal(result: subprocess.CompletedProcess, message: str) -> None:
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith(SETTINGS_ERROR), result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert "s3cret" not in result.stderr  # the URL may hold a password: it is never repeated


@pytest.mark.parametrize("command", [*PROJECT_COMMANDS, "migrate", "check"])
def test_a_database_url_that_is_not_one_is_one_clear_sentence(module_lab, command):
    before = lab_snapshot(module_lab)

    result = manage(module_lab, command, *PROJECT_COMMANDS.get(command, []), DATABASE_URL="not-a-url")

    assert_settings_refusal(result, "but it is not a URL.")
    assert lab_snapshot(module_lab) == before


@pytest.mark.parametrize(("url", "message"), BAD_DATABASE_URLS.values(), ids=BAD_DATABASE_URLS)
def test_each_bad_database_url_says_what_is_wrong(module_lab, url, message):
    result = manage(module_lab, "reset_balances", "--no-input", DATABASE_URL=url)

    assert_settings_refusal(result, message)


@pytest.fixture
def ledger_to_lose(module_lab) -> list[dict]:
    """Ledger rows a reset would delete, so a reset that went on would show; the snapshot."""
    command(module_lab, "fill_ledger", "--rows", "5", "--accounts", "1", "--prefix", "reset-guard")
    snapshot = lab_snapshot(module_lab)
    assert any(row["model"] == "accounts.transaction" for row in snapshot)
    return snapshot


def test_reset_balances_with_no_one_to_answer_is_cancelled(module_lab, ledger_to_lose):
    # Standard input at its end, as under cron, in CI or with `< /dev/null`: input() meets EOF.
    result = manage(module_lab, "reset_balances")

    assert_clear_refusal(result, "Reset cancelled; nothing was changed.")
    assert lab_snapshot(module_lab) == ledger_to_lose


CTRL_C, CTRL_D = b"\x03", b"\x04"
PASSWORD_PROMPT = b"Password: "
RESET_PROMPT = b"Type 'yes' to continue, or 'no' to cancel: "


@pytest.mark.parametrize("key", [CTRL_C, CTRL_D], ids=["ctrl-c", "ctrl-d"])
def test_reset_balances_left_at_its_prompt_on_a_terminal_is_cancelled(module_lab, ledger_to_lose, key):
    returncode, output = on_a_terminal(module_lab, "reset_balances", wait_for=RESET_PROMPT, type_=key)

    assert (returncode, output) == (1, "CommandError: Reset cancelled; nothing was changed.")
    assert lab_snapshot(module_lab) == ledger_to_lose


@pytest.mark.parametrize("key", [CTRL_C, CTRL_D], ids=["ctrl-c", "ctrl-d"])
def test_seed_account_left_at_its_password_prompt_is_cancelled(module_lab, key):
    before = lab_snapshot(module_lab)

    returncode, output = on_a_terminal(
        module_lab, "seed_account", "--username", "typist", wait_for=PASSWORD_PROMPT, type_=key
    )

    assert (returncode, output) == (1, "CommandError: No password was typed; nothing was changed.")
    assert not [user for user in dumped(module_lab, "auth.user") if user["fields"]["username"] == "typist"]
    assert lab_snapshot(module_lab) == before


def on_a_terminal(lab_env, *args: str, wait_for: bytes, type_: bytes, timeout: float = 60) -> tuple[int, str]:
    """Run ``manage.py`` on a terminal of its own (a pseudo-terminal), as a user at a prompt does:
    once it has written ``wait_for``, type ``type_`` (Ctrl-C there is a SIGINT, Ctrl-D an EOF).

    Returns its exit code and what it wrote after the prompt, without colour or the final newline.
    """
    env = {key: value for key, value in lab_env.env.items() if key != "BANK_PASSWORD"}
    env["DJANGO_COLORS"] = "nocolor"
    pid, terminal = pty.fork()
    if pid == 0:  # the child: become manage.py at once, with the terminal as its own
        try:
            os.chdir(PROJECT_DIR)
            os.execve(sys.executable, [sys.executable, str(PROJECT_DIR / "manage.py"), *args], env)
        finally:
            os._exit(127)
    try:
        before = read_terminal(terminal, until=wait_for, timeout=timeout)
        wait_until_asleep(pid, timeout=timeout)
        os.write(terminal, type_)
        after = read_terminal(terminal, until=None, timeout=timeout)
        _, status = os.waitpid(pid, 0)
        pid = None
    finally:
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(terminal)
    assert before.endswith(wait_for), before
    # The terminal echoes what was typed as ^C (Ctrl-D is not echoed) and ends lines with \r\n.
    text = after.decode().replace("\r\n", "\n").removeprefix("^C").strip()
    return os.waitstatus_to_exitcode(status), text


def wait_until_asleep(pid: int, *, timeout: float) -> None:
    """Wait until process ``pid`` sleeps: after its prompt, that is in the read of the answer.

    A SIGINT that lands between the prompt's write and that read is only noted, and the read
    then waits for a line that never comes (as a user would press Ctrl-C again): type only once
    the program is reading.
    """
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "S":
        if time.monotonic() > deadline:
            raise AssertionError(f"process {pid} did not wait for input within {timeout} s")
        time.sleep(0.01)


def read_terminal(terminal: int, *, until: bytes | None, timeout: float) -> bytes:
    """What the program writes to ``terminal``, up to ``until``, or until it closes it."""
    received = b""
    deadline = time.monotonic() + timeout
    while until is None or not received.endswith(until):
        ready, _, _ = select.select([terminal], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise AssertionError(f"nothing more within {timeout} s; got {received!r}")
        try:
            chunk = os.read(terminal, 4096)
        except OSError:  # EIO: every process holding the terminal has closed it
            chunk = b""
        if not chunk:
            if until is None:
                return received
            raise AssertionError(f"the terminal closed before {until!r}; got {received!r}")
        received += chunk
    return received


def run_offline(lab_env, *args: str) -> subprocess.CompletedProcess:
    """``manage.py`` in a new, empty network namespace: no interface is up, not even loopback."""
    return subprocess.run(
        ["unshare", "--net", "--", sys.executable, str(PROJECT_DIR / "manage.py"), *args],
        cwd=PROJECT_DIR, env={**lab_env.env, "BANK_PASSWORD": LAB_PASSWORD},
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.fixture(scope="module")
def network_namespaces():
    # Without a namespace of its own, a broken loopback guard would send real traffic: such a
    # test never runs outside one, and CI must have them.
    require(shutil.which("unshare") is not None, "unshare is not installed (util-linux)")
    probe = subprocess.run(["unshare", "--net", "true"], capture_output=True, timeout=30)
    require(probe.returncode == 0, f"cannot create a network namespace here: {probe.stderr.decode().strip()}")


def test_splatter_refuses_a_remote_target(module_lab, network_namespaces):
    before = lab_snapshot(module_lab)

    result = run_offline(module_lab, "splatter", "--url", REMOTE_URL, "--username", LAB_USER, "--no-input")

    assert_clear_refusal(result, "192.0.2.1 is not a loopback address: splatter is a load generator")
    assert "--allow-remote" in result.stderr
    assert lab_snapshot(module_lab) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # A remote app server among several (the Locust driver's round-robin).
        (("--url", f"http://127.0.0.1:8001,{REMOTE_URL}"), "192.0.2.1 is not a loopback address"),
        # The master's listening address: workers on other machines could reach it.
        (
            ("--expect-workers", "1", "--locust-bind", "0.0.0.0:5557"),
            "--locust-bind 0.0.0.0: the master would listen beyond this machine; pass --allow-remote",
        ),
    ],
)
def test_the_locust_driver_keeps_to_loopback(module_lab, network_namespaces, args, message):
    before = lab_snapshot(module_lab)

    result = run_offline(
        module_lab, "splatter", "--driver", "locust", *args, "--username", LAB_USER, "--no-input"
    )

    assert_clear_refusal(result, message)
    assert lab_snapshot(module_lab) == before


@pytest.mark.parametrize("driver", ["ab", "burst"])
def test_allow_remote_lets_the_target_through(module_lab, network_namespaces, driver):
    # Past the guard the driver tries to connect, and finds no network in the namespace.
    result = run_offline(
        module_lab, "splatter", "--url", REMOTE_URL, "--allow-remote", "--driver", driver, "--no-record",
        "--username", LAB_USER, "--no-input",
    )  # fmt: skip

    assert_clear_refusal(result, "Cannot reach the server at http://192.0.2.1:8001/auth/login/")
