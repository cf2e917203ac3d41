"""splatter --path in a project whose CSRF and session settings are its own: a throwaway settings
module over the demo's, served by a real Gunicorn on loopback, and ``manage.py splatter`` run on
the same settings, as a user runs it in their project.

With CSRF_COOKIE_NAME, CSRF_HEADER_NAME and SESSION_COOKIE_NAME renamed, every driver logs in and
its requests pass the CSRF check; with CSRF_USE_SESSIONS the token is read from the login page of
the session, after logging in or for a session cookie given; and without either a run is refused
before anything is sent.
"""

import json
import os
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, replace

import pytest

from labserver.lab import LAB_LOGIN, Lab, Server, lab
from racelab.loadgen.http_login import log_in_http
from racelab.loadgen.login import CookieNames
from racelab.loadgen.target import parse_target
from tests.helpers import LAB_PASSWORD, LAB_USER, audit, require_ab, splatter
from tests.json_schema import valid

# What the drivers send does not depend on the database: CI runs these once, on SQLite.
pytestmark = [pytest.mark.e2e, pytest.mark.database_independent]

# What a project adds to its settings, beside the demo's own.
CUSTOM_NAMES = """
CSRF_COOKIE_NAME = "shop_csrf"
CSRF_HEADER_NAME = "HTTP_X_SHOP_CSRF"
SESSION_COOKIE_NAME = "shop_session"
"""
CSRF_IN_SESSION = """
CSRF_USE_SESSIONS = True
"""
# Atomic withdrawals of 1: every request that passes the CSRF check is answered 200.
WITHDRAW = ("--path", "/accounts/withdraw/?strategy=atomic_update", "--data", "amount=1")
N, C = 4, 2
DRIVERS = ["burst", "ab", "locust"]


@dataclass(frozen=True)
class Project:
    """The lab's database with the project's settings in its environment, and its server."""

    lab: Lab
    server: Server

    def set_cookies(self) -> str:
        """The Set-Cookie headers of the login page, for an anonymous visitor."""
        with urllib.request.urlopen(self.server.url + LAB_LOGIN.path, timeout=10) as page:
            return "\n".join(page.headers.get_all("Set-Cookie") or [])


@pytest.fixture(scope="module")
def settings_lab(tmp_path_factory, seeded_lab_template) -> Iterator[Lab]:
    with lab(workdir=tmp_path_factory.mktemp("settings-lab"), template=seeded_lab_template) as prepared:
        yield prepared


def project(settings_lab: Lab, name: str, settings: str) -> Iterator[Project]:
    """The module ``name`` (the demo's settings and ``settings``) for Gunicorn and manage.py alike."""
    folder = settings_lab.workdir / "settings"
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.py").write_text("from bank.settings import *  # noqa: F403\n" + settings)
    path = os.pathsep.join(filter(None, (str(folder), settings_lab.env.get("PYTHONPATH"))))
    env = {**settings_lab.env, "DJANGO_SETTINGS_MODULE": name, "PYTHONPATH": path}
    project_lab = replace(settings_lab, env=env)
    with project_lab.serve(workers=2) as server:
        yield Project(lab=project_lab, server=server)


@pytest.fixture(scope="module")
def custom_names(settings_lab) -> Iterator[Project]:
    yield from project(settings_lab, "shop_custom_names", CUSTOM_NAMES)


@pytest.fixture(scope="module")
def csrf_in_session(settings_lab) -> Iterator[Project]:
    yield from project(settings_lab, "shop_csrf_in_session", CSRF_IN_SESSION)


def endpoint_run(project: Project, *args: str, driver: str, **options) -> dict:
    """splatter at the withdrawals, as the document it prints; exit 0 required."""
    if driver == "ab":
        require_ab()
    result = splatter(
        project.lab, project.server, *WITHDRAW, "--driver", driver, "-n", str(N), "-c", str(C),
        "--format", "json", *args, check=False, **options,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return valid(json.loads(result.stdout), kind="splatter-endpoint")


def test_the_servers_go_by_the_projects_settings(custom_names, csrf_in_session):
    # Not Django's defaults: a client that sent those would fail each project's CSRF check.
    assert "shop_csrf=" in custom_names.set_cookies() and "csrftoken=" not in custom_names.set_cookies()
    in_session = csrf_in_session.set_cookies()
    assert "sessionid=" in in_session and "csrftoken=" not in in_session


@pytest.mark.parametrize("driver", DRIVERS)
def test_with_its_own_cookie_and_header_names_a_logged_in_run_passes_csrf(custom_names, driver):
    before = audit(custom_names.lab)["ledger_rows"]

    run = endpoint_run(custom_names, driver=driver)

    assert (run["driver"], run["ok"], run["refused"], run["indeterminate"]) == (driver, N, 0, 0)
    assert audit(custom_names.lab)["ledger_rows"] == before + N


@pytest.mark.parametrize("driver", DRIVERS)
def test_with_csrf_in_the_session_a_logged_in_run_passes_csrf(csrf_in_session, driver):
    before = audit(csrf_in_session.lab)["ledger_rows"]

    run = endpoint_run(csrf_in_session, driver=driver)

    assert (run["driver"], run["ok"], run["refused"], run["indeterminate"]) == (driver, N, 0, 0)
    assert audit(csrf_in_session.lab)["ledger_rows"] == before + N


@pytest.mark.parametrize("driver", ["burst", "locust"])
def test_with_csrf_in_the_session_a_given_session_cookie_gets_its_token(csrf_in_session, driver):
    target = parse_target(csrf_in_session.server.url)
    session = log_in_http(
        target=target, username=LAB_USER, password=LAB_PASSWORD, form=LAB_LOGIN,
        names=CookieNames(csrf_use_sessions=True),
    )  # fmt: skip

    result = csrf_in_session.lab.manage(
        "splatter", "--url", csrf_in_session.server.url, *WITHDRAW, "--driver", driver, "-n", str(N),
        "-c", str(C), "--format", "json", "--no-input",
        env={"RACELAB_SESSION_COOKIE": session.sessionid}, check=False,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    run = valid(json.loads(result.stdout), kind="splatter-endpoint")
    assert (run["ok"], run["refused"], run["indeterminate"]) == (N, 0, 0)


def test_with_csrf_in_the_session_an_anonymous_run_is_refused_before_anything_is_sent(csrf_in_session):
    before = audit(csrf_in_session.lab)

    result = csrf_in_session.lab.manage(
        "splatter", "--url", csrf_in_session.server.url, *WITHDRAW, "--driver", "burst", "--no-input",
        env={"RACELAB_SESSION_COOKIE": ""}, check=False,
    )  # fmt: skip

    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    assert result.stderr.strip() == (
        "CommandError: This project keeps its CSRF secret in the session (settings.CSRF_USE_SESSIONS = "
        "True), so a request without a session cannot pass its CSRF check: log in with --username, or "
        "give a session cookie's value in $RACELAB_SESSION_COOKIE."
    )
    assert audit(csrf_in_session.lab) == before
