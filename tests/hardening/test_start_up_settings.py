"""Settings the lab refuses stop it at start-up with the one sentence that says what to fix: Gunicorn
before any worker boots (gunicorn.conf.py's on_starting), and manage.py, with no traceback, no
password, and nothing changed."""

import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from bank.database_url import database_from_url
from labserver.lab import LOOPBACK, PROJECT_DIR, free_port
from racelab.racewindow import redis_backend
from racelab.racewindow.barrier import REFUSED_WITHOUT_DEBUG, UNKNOWN_BACKEND
from racelab.racewindow.window import MAX_PARTIES, MAX_TIMEOUT_SECONDS, RaceWindowError
from tests.helpers import lab_snapshot

pytestmark = pytest.mark.e2e

PASSWORD = "s3cret-pw"
START_TIMEOUT_SECONDS = 60
GUNICORN_STARTING = "[INFO] Starting gunicorn "


def park_point_refusal(value: str) -> str:
    return (
        f"RACE_WINDOW_AT must name park points ({value!r} is not a park point: write "
        "table[:read|write|any[:occurrence]], e.g. shop_product or shop_product:write:1)."
    )


NUMBERS_REFUSAL = (
    f"RACE_WINDOW must be 'off', 'armed' or a number of requests from 1 to {MAX_PARTIES}, "
    f"RACE_WINDOW_TIMEOUT a number of seconds above 0 and at most {MAX_TIMEOUT_SECONDS}, and "
    "RACE_WINDOW_AT park points (numbers are written in ASCII digits)."
)


def unreachable_redis_refusal(url: str) -> str:
    """What the lab says of a Redis that does not answer at ``url``, as ping words it here."""
    with pytest.raises(RaceWindowError) as refused:
        redis_backend.ping(url)
    return str(refused.value)


def database_url_refusal(url: str) -> str:
    with pytest.raises(ImproperlyConfigured) as refused:
        database_from_url(url)
    return str(refused.value)


# Each setting, and the sentence that refuses it (a function: the unreachable Redis's port is free
# only when the test runs).
BAD_SETTINGS = {
    "park-point": (
        lambda: {"RACE_WINDOW_AT": "a:b:c:d"},
        lambda env: park_point_refusal("a:b:c:d"),
    ),
    "occurrence-in-superscript": (
        lambda: {"RACE_WINDOW_AT": "accounts_account:read:²"},
        lambda env: park_point_refusal("accounts_account:read:²"),
    ),
    "unknown-backend": (
        lambda: {"RACE_WINDOW_BACKEND": "bogus"},
        lambda env: UNKNOWN_BACKEND.format(value="bogus"),
    ),
    "unclosed-ipv6-bracket": (
        lambda: {"RACE_WINDOW_BACKEND": "redis://[::1"},
        lambda env: UNKNOWN_BACKEND.format(value="redis://[::1"),
    ),
    "mistyped-url-with-a-password": (
        lambda: {"RACE_WINDOW_BACKEND": f"redis:/lab:{PASSWORD}@{LOOPBACK}"},
        lambda env: UNKNOWN_BACKEND.format(value=f"redis:/lab:***@{LOOPBACK}"),
    ),
    "database-number-in-arabic-digits": (
        lambda: {"RACE_WINDOW_BACKEND": f"redis://{LOOPBACK}:6379/٣"},
        lambda env: UNKNOWN_BACKEND.format(value=f"redis://{LOOPBACK}:6379/٣"),
    ),
    "redis-that-does-not-answer": (
        lambda: {"RACE_WINDOW_BACKEND": f"redis://lab:{PASSWORD}@{LOOPBACK}:{free_port()}/0"},
        lambda env: unreachable_redis_refusal(env["RACE_WINDOW_BACKEND"]),
    ),
    "armed-with-debug-off": (
        lambda: {"RACE_WINDOW": "armed"},
        lambda env: REFUSED_WITHOUT_DEBUG,
    ),
    "parties-in-arabic-digits": (
        lambda: {"RACE_WINDOW": "٣", "DJANGO_DEBUG": "1"},
        lambda env: NUMBERS_REFUSAL,
    ),
    "timeout-in-arabic-digits": (
        lambda: {"RACE_WINDOW": "2", "RACE_WINDOW_TIMEOUT": "٠.٥", "DJANGO_DEBUG": "1"},
        lambda env: NUMBERS_REFUSAL,
    ),
    "database-url": (
        lambda: {"DATABASE_URL": "not-a-url"},
        lambda env: database_url_refusal("not-a-url"),
    ),
    # What stands before :// is no scheme but the password: it is not repeated.
    "database-url-with-a-password-before-its-slashes": (
        lambda: {"DATABASE_URL": f"lab:{PASSWORD}@{LOOPBACK}://bank"},
        lambda env: database_url_refusal(env["DATABASE_URL"]),
    ),
}


@pytest.fixture(params=BAD_SETTINGS.values(), ids=BAD_SETTINGS)
def bad_setting(request) -> tuple[dict[str, str], str]:
    """The environment that sets it, and the line that must refuse it."""
    settings, sentence = request.param
    env = settings()
    return env, f"ImproperlyConfigured: {sentence(env)}"


def start_gunicorn(lab_env, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Gunicorn from the project's config, as Lab.serve starts it, run until it exits by itself."""
    return subprocess.run(
        [
            sys.executable, "-m", "gunicorn", "--config", str(PROJECT_DIR / "gunicorn.conf.py"),
            "--bind", f"{LOOPBACK}:{free_port()}", "--workers", "2",
        ],
        cwd=PROJECT_DIR, env={**lab_env.env, **env}, capture_output=True, text=True,
        timeout=START_TIMEOUT_SECONDS, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_gunicorn_refuses_to_start_with_the_sentence_alone(module_lab, bad_setting):
    env, refusal = bad_setting
    before = lab_snapshot(module_lab)

    result = start_gunicorn(module_lab, env)

    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output and PASSWORD not in output
    assert "Booting worker" not in output  # refused in the master, before any worker
    assert [line for line in output.splitlines() if GUNICORN_STARTING not in line] == [refusal]
    assert lab_snapshot(module_lab) == before


@pytest.mark.parametrize(
    ("name", "value", "what"),
    [
        ("GUNICORN_WORKERS", "four", "workers"),
        ("GUNICORN_WORKERS", "0", "workers"),
        ("GUNICORN_WORKERS", "٤", "workers"),
        ("GUNICORN_TIMEOUT", "-1", "seconds"),
        ("GUNICORN_TIMEOUT", "2.5", "seconds"),
    ],
)
def test_gunicorn_refuses_a_count_it_cannot_use_with_the_sentence_alone(module_lab, name, value, what):
    result = start_gunicorn(module_lab, {name: value})

    assert result.returncode != 0
    assert (result.stdout, result.stderr) == (
        "",
        f"{name} must be a whole number of {what} above 0, in ASCII digits (not {value!r}).\n",
    )


def test_manage_py_refuses_to_run_with_the_sentence_alone(module_lab, bad_setting):
    env, refusal = bad_setting
    before = lab_snapshot(module_lab)

    # The voucher it would seed is not there yet: had it run, the snapshot would show it.
    result = module_lab.manage("seed_scenario", "voucher", env=env, check=False)

    assert (result.returncode, result.stdout, result.stderr) == (1, "", refusal + "\n")
    assert PASSWORD not in result.stderr
    assert lab_snapshot(module_lab) == before
