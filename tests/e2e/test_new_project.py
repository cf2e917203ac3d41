"""racelab in a project it has never seen: ``django-admin startproject``, an app with a counter
written here, racelab installed from this checkout into a virtualenv of its own, and the race
window switched on by settings alone. Held at the counter's table, five concurrent increments of a
read-modify-write lose exactly four; the same five through ``F()`` lose none.

The new project uses the database DATABASE_URL names (SQLite by default), as the rest of the suite.
"""

import json
import os
import shutil
import subprocess
import venv
from pathlib import Path

import pytest

from labserver.databases import fresh_database
from labserver.lab import LOOPBACK, PROJECT_DIR, free_port, running_gunicorn

pytestmark = pytest.mark.e2e

# What the new project needs besides racelab, at the versions this checkout pins.
PROJECT_REQUIREMENTS = ("gunicorn", "dj-database-url", "psycopg[binary]", "mysqlclient")
INSTALL_TIMEOUT_SECONDS = 600
COMMAND_TIMEOUT_SECONDS = 120
K = 5
# The files of the checkout pyproject.toml builds the distribution from.
DISTRIBUTION_FILES = ("pyproject.toml", "README.md", "racelab")
# This suite's own environment, which would point the new project at the checkout.
CHECKOUT_ENVIRONMENT = {"PYTHONPATH", "DJANGO_SETTINGS_MODULE"}

COUNTER_MODELS = """
from django.db import models


class Counter(models.Model):
    name = models.CharField(max_length=20, unique=True)
    value = models.IntegerField(default=0)
"""

# The naive view is the blog's bug in four lines; the fixed one lets the database add.
COUNTER_VIEWS = """
from django.db.models import F
from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from counter.models import Counter


@csrf_exempt
@require_POST
def naive(request):
    counter = Counter.objects.get(name="hits")
    counter.value += 1
    counter.save()
    return HttpResponse("ok")


@csrf_exempt
@require_POST
def fixed(request):
    Counter.objects.filter(name="hits").update(value=F("value") + 1)
    return HttpResponse("ok")
"""

COUNTER_URLS = """
from django.urls import path

from counter import views

urlpatterns = [path("naive/", views.naive), path("fixed/", views.fixed)]
"""

# What a user adds to the settings startproject wrote: the app, the middleware, the database.
SETTINGS_ADDED = """
import dj_database_url

INSTALLED_APPS += ["racelab", "counter"]
MIDDLEWARE.insert(0, "racelab.middleware.RaceWindowMiddleware")
DATABASES = {"default": dj_database_url.parse(os.environ["DATABASE_URL"])}
"""

# Run in the new project's virtualenv, as its manage.py shell: arm the window at the counter's
# table for K requests, fire K at once with racelab's burst driver, and say what happened.
BURST_SCRIPT = """
import json
from counter.models import Counter
from racelab.loadgen.burst import BurstSession, run_bursts
from racelab.loadgen.login import SessionCookies
from racelab.loadgen.target import FormPost, parse_target
from racelab.racewindow.barrier import armed

Counter.objects.update_or_create(name="hits", defaults={{"value": 0}})
anonymous = BurstSession(username="anonymous", cookies=SessionCookies(csrftoken="", sessionid=""))
post = FormPost(path={path!r}, strategy="", fields=(("by", "1"),))
with armed(parties={k}, timeout=10, at="counter_counter:any") as barrier:
    run = run_bursts(
        target=parse_target({url!r}), sessions=[anonymous], posts=[post], requests={k}, burst_size={k}
    )
    stats = barrier.stats()
print(json.dumps({{
    "statuses": sorted(record.status for record in run.records),
    "value": Counter.objects.get(name="hits").value,
    "held": stats.held, "windows": stats.windows, "timeouts": stats.timeouts,
}}))
"""


def pinned(requirement: str) -> str:
    """``requirement`` at the version requirements.txt pins."""
    name = requirement.split("[")[0].lower()
    for line in (PROJECT_DIR / "requirements.txt").read_text().splitlines():
        if line.split("[")[0].split("==")[0].strip().lower() == name:
            return f"{requirement}=={line.split('==')[1].strip()}"
    raise AssertionError(f"requirements.txt pins no {name}")


def distribution(tmp_path_factory) -> str:
    """What ``pip install CHECKOUT`` reads, copied: a build writes build/ and *.egg-info beside
    its sources, which must not land in the checkout (other test workers read it meanwhile)."""
    sources = tmp_path_factory.mktemp("racelab-sources")
    for name in DISTRIBUTION_FILES:
        copy = shutil.copytree if (PROJECT_DIR / name).is_dir() else shutil.copy2
        copy(PROJECT_DIR / name, sources / name)
    return str(sources)


@pytest.fixture(scope="module")
def project_python(tmp_path_factory) -> Path:
    """A new virtualenv with racelab installed from this checkout (not editable) and what the
    project needs to serve."""
    environment = tmp_path_factory.mktemp("venv")
    venv.create(environment, with_pip=True)
    python = environment / "bin" / "python"
    requirements = [pinned(requirement) for requirement in ("Django", *PROJECT_REQUIREMENTS)]
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", distribution(tmp_path_factory), *requirements],
        check=True, timeout=INSTALL_TIMEOUT_SECONDS, capture_output=True,
    )  # fmt: skip
    return python


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
    urls = project / "shop" / "urls.py"
    urls.write_text(
        urls.read_text()
        .replace("from django.urls import path", "from django.urls import include, path")
        .replace("urlpatterns = [", 'urlpatterns = [\n    path("counter/", include("counter.urls")),')
    )
    with (project / "shop" / "settings.py").open("a") as settings:
        settings.write("\nimport os\n" + SETTINGS_ADDED)
    with fresh_database(base_url=os.environ.get("DATABASE_URL") or None, workdir=workdir) as database_url:
        env = {**env, "DATABASE_URL": database_url}
        for args in (["makemigrations", "counter"], ["migrate", "--no-input"]):
            manage(project_python, project, env, *args)
        yield project, env


def manage(python: Path, project: Path, env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [python, "manage.py", *args], cwd=project, env=env, capture_output=True, text=True,
        timeout=COMMAND_TIMEOUT_SECONDS,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
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
        log_path=project / "gunicorn.log", ready_path="/counter/naive/", workers=K,
    ) as server:  # fmt: skip
        yield server.url


def burst(project_python: Path, new_project, url: str, path: str) -> dict:
    project, env = new_project
    script = BURST_SCRIPT.format(path=path, k=K, url=url)
    return json.loads(manage(project_python, project, env, "shell", "-c", script).strip().splitlines()[-1])


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


def test_held_at_its_table_read_modify_write_loses_all_but_one(project_python, new_project, race_mode_server):
    held = burst(project_python, new_project, race_mode_server, "/counter/naive/")

    assert held == {"statuses": [200] * K, "value": 1, "held": K, "windows": 1, "timeouts": 0}


def test_held_at_its_table_the_f_expression_fix_loses_nothing(project_python, new_project, race_mode_server):
    held = burst(project_python, new_project, race_mode_server, "/counter/fixed/")

    assert held == {"statuses": [200] * K, "value": K, "held": K, "windows": 1, "timeouts": 0}
