"""Commands run as a user runs them, ``manage.py`` in its own process, when their world is wrong:
a wrong password, a missing binary, an unreachable database, a target off this machine."""

import shutil
import subprocess
import sys

import pytest

from labserver.lab import LOOPBACK, PROJECT_DIR, free_port
from tests.helpers import LAB_PASSWORD, LAB_USER, lab_snapshot

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


def run_offline(lab_env, *args: str) -> subprocess.CompletedProcess:
    """``manage.py`` in a new, empty network namespace: no interface is up, not even loopback."""
    return subprocess.run(
        ["unshare", "--net", "--", sys.executable, str(PROJECT_DIR / "manage.py"), *args],
        cwd=PROJECT_DIR, env={**lab_env.env, "BANK_PASSWORD": LAB_PASSWORD},
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.fixture(scope="module")
def network_namespaces():
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed (util-linux)")
    probe = subprocess.run(["unshare", "--net", "true"], capture_output=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a network namespace here: {probe.stderr.decode().strip()}")


def test_splatter_refuses_a_remote_target(module_lab, network_namespaces):
    before = lab_snapshot(module_lab)

    result = run_offline(module_lab, "splatter", "--url", REMOTE_URL, "--username", LAB_USER, "--no-input")

    assert_clear_refusal(result, "192.0.2.1 is not a loopback address: splatter is a load generator")
    assert "--allow-remote" in result.stderr
    assert lab_snapshot(module_lab) == before


@pytest.mark.parametrize("driver", ["ab", "burst"])
def test_allow_remote_lets_the_target_through(module_lab, network_namespaces, driver):
    # Past the guard the driver tries to connect, and finds no network in the namespace.
    result = run_offline(
        module_lab, "splatter", "--url", REMOTE_URL, "--allow-remote", "--driver", driver, "--no-record",
        "--username", LAB_USER, "--no-input",
    )  # fmt: skip

    assert_clear_refusal(result, "Cannot reach the lab at http://192.0.2.1:8001/auth/login/")
