"""racelab in a project it has never seen: ``django-admin startproject``, an app with a counter
written here, racelab installed from this checkout into a virtualenv of its own, and the race
window switched on by settings alone. ``manage.py splatter --path ... --check SQL``, as the
contract says a user runs it: held at the counter's table, five concurrent increments of a
read-modify-write lose exactly four (exit 1); the same five through ``F()`` or a row lock lose
none (exit 0), the row lock's window closed by the lock waits, not by its timeout.

The new project uses the database DATABASE_URL names (SQLite by default), as the rest of the suite.
"""

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from labserver.databases import fresh_database
from labserver.lab import LOOPBACK, PROJECT_DIR, free_port, running_gunicorn
from racelab.loadgen.http_login import log_in_http
from racelab.loadgen.target import parse_target

pytestmark = pytest.mark.e2e

# What the new project needs besides racelab, at the versions this checkout pins.
PROJECT_REQUIREMENTS = ("gunicorn", "dj-database-url", "psycopg[binary]", "mysqlclient")
INSTALL_TIMEOUT_SECONDS = 600
COMMAND_TIMEOUT_SECONDS = 120
K = 5
# Far above what a window takes to close by arrivals or lock waits, on any machine: a window
# closed by its timeout shows in the figures, not as a flaky duration.
WINDOW_TIMEOUT_SECONDS = 10
# The files of the checkout pyproject.toml builds the distribution from.
DISTRIBUTION_FILES = ("pyproject.toml", "README.md", "racelab")
# This suite's own environment, which would point the new project at the checkout.
CHECKOUT_ENVIRONMENT = {"PYTHONPATH", "DJANGO_SETTINGS_MODULE"}
# The install is most of this file's time (45 s a pass on CI's busy cores): one virtualenv for
# each state of the distribution files and pins, built by the first test process that needs it
# and shared by the next, the three database passes of a CI run (one fresh clone) among them.
VENV_CACHE = PROJECT_DIR / ".cache" / "new-project-venv"
# Written once pip has succeeded: a virtualenv without it is an install cut short.
INSTALLED = "installed.json"

COUNTER_MODELS = """
from django.db import models


class Counter(models.Model):
    name = models.CharField(max_length=20, unique=True)
    value = models.IntegerField(default=0)
"""

# The naive view is the blog's bug in four lines; the fixed ones let the database add, or lock
# the row first. Django's own login and CSRF protect them, as in any project.
COUNTER_VIEWS = """
import json

from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.db.models import F
from django.http import HttpResponse, HttpResponseBadRequest
from django.views.decorators.http import require_POST

from counter.models import Counter


@login_required
@require_POST
def naive(request):
    counter = Counter.objects.get(name=request.POST["name"])
    counter.value += int(request.POST["by"])
    counter.save()
    return HttpResponse("ok")


@require_POST
def anonymous_f_expression(request):
    Counter.objects.filter(name=request.POST["name"]).update(value=F("value") + int(request.POST["by"]))
    return HttpResponse("ok")


@require_POST
def anonymous_json(request):
    if request.headers.get("X-Increment") != "yes":
        return HttpResponseBadRequest("no X-Increment header")
    body = json.loads(request.body)
    Counter.objects.filter(name=body["name"]).update(value=F("value") + body["by"])
    return HttpResponse("ok")


@login_required
@require_POST
def f_expression(request):
    Counter.objects.filter(name=request.POST["name"]).update(value=F("value") + int(request.POST["by"]))
    return HttpResponse("ok")


@login_required
@require_POST
def locked(request):
    with transaction.atomic():
        counter = Counter.objects.select_for_update().get(name=request.POST["name"])
        counter.value += int(request.POST["by"])
        counter.save()
    return HttpResponse("ok")
"""

COUNTER_URLS = """
from django.urls import path

from counter import views

urlpatterns = [
    path("naive/", views.naive),
    path("f_expression/", views.f_expression),
    path("anonymous_f_expression/", views.anonymous_f_expression),
    path("locked/", views.locked),
    path("anonymous_json/", views.anonymous_json),
]
"""

# Django ships LoginView but not its template: every project writes one.
LOGIN_TEMPLATE = """
<form method="post">{% csrf_token %}{{ form }}<button>Log in</button></form>
"""

# What a user adds to the settings startproject wrote: the app, the middleware, the database;
# on SQLite, transactions that take the write lock at BEGIN, since select_for_update() is a no-op
# there (Django's transaction_mode option).
SETTINGS_ADDED = """
import dj_database_url

INSTALLED_APPS += ["racelab", "counter"]
MIDDLEWARE.insert(0, "racelab.middleware.RaceWindowMiddleware")
DATABASES = {"default": dj_database_url.parse(os.environ["DATABASE_URL"])}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {"transaction_mode": "IMMEDIATE"}
"""

# Run in the new project's virtualenv, as its manage.py shell.
SEED_SCRIPT = """
import os
from django.contrib.auth.models import User
from counter.models import Counter

User.objects.filter(username="alice").delete()
User.objects.create_user("alice", password=os.environ["RACELAB_PASSWORD"])
Counter.objects.update_or_create(name="hits", defaults={"value": 0})
"""
RESET_SCRIPT = """
from counter.models import Counter

Counter.objects.filter(name="hits").update(value=0)
"""
# The contract's check: how many of the K increments are missing.
LOST_INCREMENTS = f"SELECT {K} - value FROM counter_counter WHERE name = 'hits'"
PASSWORD = "correct horse battery staple"
HELD_AT_THE_COUNTER = (
    "--race-window", "--race-window-at", "counter_counter:any",
    "--race-window-timeout", str(WINDOW_TIMEOUT_SECONDS),
)  # fmt: skip


def pinned(requirement: str) -> str:
    """``requirement`` at the version requirements.txt pins."""
    name = requirement.split("[")[0].lower()
    for line in (PROJECT_DIR / "requirements.txt").read_text().splitlines():
        if line.split("[")[0].split("==")[0].strip().lower() == name:
            return f"{requirement}=={line.split('==')[1].strip()}"
    raise AssertionError(f"requirements.txt pins no {name}")


def distribution_files() -> list[Path]:
    """The checkout's files that ``pip install`` builds racelab from (the bytecode a run of the
    checkout leaves beside them is no part of it)."""
    files = []
    for name in DISTRIBUTION_FILES:
        top = PROJECT_DIR / name
        if top.is_dir():
            files += sorted(p for p in top.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        else:
            files.append(top)
    return files


def distribution(tmp_path_factory) -> str:
    """What ``pip install CHECKOUT`` reads, copied: a build writes build/ and *.egg-info beside
    its sources, which must not land in the checkout (other test workers read it meanwhile)."""
    sources = tmp_path_factory.mktemp("racelab-sources")
    for path in distribution_files():
        copy = sources / path.relative_to(PROJECT_DIR)
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, copy)
    return str(sources)


def install_recipe(requirements: list[str]) -> dict:
    """All that decides what the virtualenv holds: the interpreter, the pins, the distribution's
    files (a digest of each)."""
    return {
        "python": sys.version, "base_prefix": sys.base_prefix, "requirements": requirements,
        "sources": {
            path.relative_to(PROJECT_DIR).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in distribution_files()
        },
    }  # fmt: skip


def install(environment: Path, requirements: list[str], recipe: dict, tmp_path_factory) -> None:
    """Under the cache's exclusive lock, held by no other process: the virtualenvs of earlier
    states go first, as does an install cut short, so the cache holds one at most."""
    for stale in VENV_CACHE.iterdir():
        if stale.is_dir():
            shutil.rmtree(stale)
    venv.create(environment, with_pip=True)
    subprocess.run(
        [environment / "bin" / "python", "-m", "pip", "install", "--quiet", distribution(tmp_path_factory),
         *requirements],
        check=True, timeout=INSTALL_TIMEOUT_SECONDS, capture_output=True,
    )  # fmt: skip
    (environment / INSTALLED).write_text(json.dumps(recipe, indent=2))


@pytest.fixture(scope="module")
def project_python(tmp_path_factory) -> Path:
    """A virtualenv with racelab installed from this checkout (not editable) and what the project
    needs to serve, built fresh for this state of the checkout by whichever test process needed
    it first. A shared lock held while it is in use keeps any other from replacing it."""
    requirements = [pinned(requirement) for requirement in ("Django", *PROJECT_REQUIREMENTS)]
    recipe = install_recipe(requirements)
    environment = VENV_CACHE / hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]
    VENV_CACHE.mkdir(parents=True, exist_ok=True)
    with (VENV_CACHE / ".lock").open("a") as lock:
        # flock() converts between shared and exclusive by letting go first: another process may
        # install (and remove this one) in between, so the shared lock looks again.
        fcntl.flock(lock, fcntl.LOCK_SH)
        while not (environment / INSTALLED).exists():
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (environment / INSTALLED).exists():
                install(environment, requirements, recipe, tmp_path_factory)
            fcntl.flock(lock, fcntl.LOCK_SH)
        yield environment / "bin" / "python"


@pytest.fixture(scope="module")
def new_project(project_python, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """``django-admin startproject shop`` with the counter app, migrated, on a fresh database."""
    workdir = tmp_path_factory.mktemp("new-project")
    project = workdir / "shop"
    project.mkdir()
    bin_dir = project_python.parent
    # Not this checkout's: the new project finds racelab only where pip installed it.
    env = {name: value for name, value in os.environ.items() if name not in CHECKOUT_ENVIRONMENT}
    subprocess.run([bin_dir / "django-admin", "startproject", "shop", project], check=True, env=env)
    app = project / "counter"
    app.mkdir()
    (app / "__init__.py").write_text("")
    (app / "models.py").write_text(COUNTER_MODELS)
    (app / "views.py").write_text(COUNTER_VIEWS)
    (app / "urls.py").write_text(COUNTER_URLS)
    (app / "templates" / "registration").mkdir(parents=True)
    (app / "templates" / "registration" / "login.html").write_text(LOGIN_TEMPLATE)
    urls = project / "shop" / "urls.py"
    urls.write_text(
        urls.read_text()
        .replace("from django.urls import path", "from django.urls import include, path")
        .replace(
            "urlpatterns = [",
            'urlpatterns = [\n    path("counter/", include("counter.urls")),\n'
            '    path("accounts/", include("django.contrib.auth.urls")),',
        )
    )
    with (project / "shop" / "settings.py").open("a") as settings:
        settings.write("\nimport os\n" + SETTINGS_ADDED)
    with fresh_database(base_url=os.environ.get("DATABASE_URL") or None, workdir=workdir) as database_url:
        env = {**env, "DATABASE_URL": database_url, "RACELAB_PASSWORD": PASSWORD}
        for args in (["makemigrations", "counter"], ["migrate", "--no-input"], ["shell", "-c", SEED_SCRIPT]):
            manage(project_python, project, env, *args)
        yield project, env


def manage(python: Path, project: Path, env: dict[str, str], *args: str, returncode: int = 0) -> str:
    result = subprocess.run(
        [python, "manage.py", *args], cwd=project, env=env, capture_output=True, text=True,
        timeout=COMMAND_TIMEOUT_SECONDS,
    )  # fmt: skip
    assert result.returncode == returncode, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def race_mode_server(project_python, new_project):
    """The new project under Gunicorn, DEBUG on as startproject left it, RACE_WINDOW=armed, with
    K workers all up: a request no worker has picked up cannot reach the window."""
    project, env = new_project
    address = f"{LOOPBACK}:{free_port()}"
    argv = [project_python.parent / "gunicorn", "shop.wsgi", "--bind", address, "--workers", str(K)]
    with running_gunicorn(
        argv,
        url=f"http://{address}", cwd=project, env={**env, "RACE_WINDOW": "armed"},
        log_path=project / "gunicorn.log", ready_path="/accounts/login/", workers=K,
    ) as server:  # fmt: skip
        yield server.url


def splatter(
    project_python: Path,
    new_project,
    url: str,
    path: str,
    *,
    returncode: int,
    login: tuple[str, ...] = ("--username", "alice"),
    body: tuple[str, ...] = ("--data", "name=hits&by=1"),
    driver: str = "burst",
    env: dict[str, str] | None = None,
    race_window: bool = True,
) -> dict:
    """The contract's command, as a user types it in their project: log in as alice through the
    project's login form (or as ``login`` says), fire K at once held at the counter's table, check
    how many were lost."""
    project, project_env = new_project
    env = {**project_env, **(env or {})}
    manage(project_python, project, env, "shell", "-c", RESET_SCRIPT)
    output = manage(
        project_python, project, env,
        "splatter", "--url", url, "--path", path, *body, *login, "--driver", driver,
        "-n", str(K), "-c", str(K), *(HELD_AT_THE_COUNTER if race_window else ()),
        "--check", LOST_INCREMENTS, "--format", "json", "--no-input",
        returncode=returncode,
    )  # fmt: skip
    return json.loads(output)


def test_racelab_installs_as_a_package_of_its_own(project_python):
    result = subprocess.run(
        [project_python, "-c", "import racelab, sys; print(racelab.__file__)"],
        cwd="/", capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "site-packages/racelab/" in result.stdout
    # Only the tool is installed: the demo project's packages stay in the checkout.
    for demo in ("accounts", "bank", "scenarios", "experiment"):
        found = subprocess.run([project_python, "-c", f"import {demo}"], cwd="/", capture_output=True)
        assert found.returncode == 1, demo


def test_the_installed_racelab_is_the_sources_the_virtualenv_is_kept_for(project_python):
    # Any later test process whose checkout has these digests takes this virtualenv as its own:
    # pip installed exactly the files they name, none more or less (a data file left out of the
    # distribution fails here).
    result = subprocess.run(
        [project_python, "-c", "import racelab; print(racelab.__file__)"],
        cwd="/", capture_output=True, text=True, check=True,
    )  # fmt: skip
    package = Path(result.stdout.strip()).parent
    recipe = json.loads((project_python.parent.parent / INSTALLED).read_text())

    assert {
        f"racelab/{path.relative_to(package).as_posix()}": hashlib.sha256(path.read_bytes()).hexdigest()
        for path in package.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    } == {path: digest for path, digest in recipe["sources"].items() if path.startswith("racelab/")}


def test_the_project_gets_the_versions_this_checkout_pins(project_python):
    names = [requirement.split("[")[0] for requirement in ("Django", *PROJECT_REQUIREMENTS)]
    versions = "import importlib.metadata as m, sys; print(*map(m.version, sys.argv[1:]))"
    result = subprocess.run(
        [project_python, "-c", versions, *names], cwd="/", capture_output=True, text=True, check=True
    )

    assert dict(zip(names, result.stdout.split(), strict=True)) == {
        name: pinned(name).split("==")[1] for name in names
    }


def test_held_at_its_table_read_modify_write_loses_all_but_one(project_python, new_project, race_mode_server):
    run = splatter(project_python, new_project, race_mode_server, "/counter/naive/", returncode=1)

    assert (run["ok"], run["refused"], run["indeterminate"]) == (K, 0, 0)
    assert run["check"] == {"check": LOST_INCREMENTS, "violations": K - 1}
    assert run["race_window"] == {"held": K, "windows": 1, "serialized": 0, "timeouts": 0}


def test_held_at_its_table_the_f_expression_fix_loses_nothing(project_python, new_project, race_mode_server):
    run = splatter(project_python, new_project, race_mode_server, "/counter/f_expression/", returncode=0)

    assert (run["ok"], run["refused"], run["indeterminate"]) == (K, 0, 0)
    assert run["check"] == {"check": LOST_INCREMENTS, "violations": 0}
    # Nothing is locked before the UPDATE: all K reach the window, which closes as they arrive.
    assert run["race_window"] == {"held": K, "windows": 1, "serialized": 0, "timeouts": 0}


def test_held_at_its_table_the_row_lock_fix_loses_nothing_and_is_serialized(
    project_python, new_project, race_mode_server
):
    run = splatter(project_python, new_project, race_mode_server, "/counter/locked/", returncode=0)

    assert (run["ok"], run["refused"], run["indeterminate"]) == (K, 0, 0)
    assert run["check"] == {"check": LOST_INCREMENTS, "violations": 0}
    # The first holds the row lock at the window; the other K-1 wait for it inside the database,
    # are counted in, and the window closes at once rather than by its timeout.
    assert run["race_window"] == {"held": K, "windows": 1, "serialized": 1, "timeouts": 0}
    assert run["elapsed_seconds"] < WINDOW_TIMEOUT_SECONDS


def test_without_a_username_requests_pass_csrf_anonymously(project_python, new_project, race_mode_server):
    run = splatter(
        project_python,
        new_project,
        race_mode_server,
        "/counter/anonymous_f_expression/",
        returncode=0,
        login=(),
    )

    # Each went through Django's CSRF check (a 403 otherwise) with no session at all.
    assert (run["ok"], run["refused"], run["indeterminate"]) == (K, 0, 0)
    assert run["check"] == {"check": LOST_INCREMENTS, "violations": 0}


def test_a_session_cookie_from_the_environment_is_sent_instead_of_logging_in(
    project_python, new_project, race_mode_server
):
    session = log_in_http(target=parse_target(race_mode_server), username="alice", password=PASSWORD)
    run = splatter(
        project_python, new_project, race_mode_server, "/counter/naive/", returncode=1, login=(),
        env={"RACELAB_SESSION_COOKIE": session.sessionid, "RACELAB_PASSWORD": ""},
    )  # fmt: skip

    assert (run["ok"], run["refused"], run["indeterminate"]) == (K, 0, 0)
    assert run["check"] == {"check": LOST_INCREMENTS, "violations": K - 1}


@pytest.mark.usefixtures("needs_ab")
@pytest.mark.parametrize("driver", ["ab", "burst"])
def test_a_json_body_and_a_header_reach_the_view(project_python, new_project, race_mode_server, driver):
    # Not held: ab sends its first request alone (docs/race-mode.md), so it would wait out a window.
    run = splatter(
        project_python, new_project, race_mode_server, "/counter/anonymous_json/", returncode=0, login=(),
        body=("--json", '{"name": "hits", "by": 1}', "--header", "X-Increment: yes"), driver=driver,
        race_window=False,
    )  # fmt: skip

    # A 400 without the header, a 500 on a body that is not JSON.
    assert (run["driver"], run["ok"], run["refused"], run["indeterminate"]) == (driver, K, 0, 0)
    assert run["check"] == {"check": LOST_INCREMENTS, "violations": 0}
    assert run["race_window"] is None
