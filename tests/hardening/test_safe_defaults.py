"""Safe defaults: DEBUG off, a private SECRET_KEY, loopback hosts, HttpOnly cookies, no secret in argv."""

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlencode

import pytest

from bank.secret_key import load_or_create_secret_key
from labserver.lab import PROJECT_DIR
from tests.hardening.lab_http import cookie_attributes, request, set_cookie
from tests.helpers import LAB_PASSWORD, LAB_USER, require
from tests.lab_database import dumped

pytestmark = pytest.mark.e2e

# `manage.py check --deploy` warnings that a lab served over plain HTTP on loopback keeps; the
# README explains each. Any other warning is new and fails this test.
EXPLAINED_DEPLOY_WARNINGS = {"security.W004", "security.W008", "security.W012", "security.W016"}
SETTINGS_AS_JSON = (
    "import json; from django.conf import settings as s; print(json.dumps({'DEBUG': s.DEBUG, "
    "'SECRET_KEY': s.SECRET_KEY, 'ALLOWED_HOSTS': s.ALLOWED_HOSTS}))"
)


def settings_in_a_new_process(lab_env, **env: str) -> dict:
    result = lab_env.manage("shell", "-c", SETTINGS_AS_JSON, env=env)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_debug_is_off_unless_asked_for(module_lab):
    assert settings_in_a_new_process(module_lab)["DEBUG"] is False
    assert settings_in_a_new_process(module_lab, DJANGO_DEBUG="1")["DEBUG"] is True
    assert settings_in_a_new_process(module_lab, DJANGO_DEBUG="true")["DEBUG"] is False


def test_an_error_page_shows_no_debug_detail(module_server):
    reply = request(module_server.url, "GET", "/no-such-page/")

    assert reply.status == 404
    assert "URLconf" not in reply.text and "Traceback" not in reply.text


def test_secret_key_from_the_environment_wins_and_writes_no_file(module_lab, tmp_path):
    key_file = tmp_path / "secret_key"

    seen = settings_in_a_new_process(
        module_lab, DJANGO_SECRET_KEY="from-the-environment", DJANGO_SECRET_KEY_FILE=str(key_file)
    )

    assert seen["SECRET_KEY"] == "from-the-environment"
    assert not key_file.exists()


def test_generated_secret_key_is_private_and_kept(module_lab, tmp_path):
    key_file = tmp_path / "secret_key"
    no_key = {"DJANGO_SECRET_KEY": "", "DJANGO_SECRET_KEY_FILE": str(key_file)}

    first = settings_in_a_new_process(module_lab, **no_key)["SECRET_KEY"]
    second = settings_in_a_new_process(module_lab, **no_key)["SECRET_KEY"]

    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert first == second == key_file.read_text().strip()
    assert len(first) >= 50


def test_workers_starting_together_agree_on_one_generated_key(tmp_path):
    key_file = tmp_path / "secret_key"
    code = (
        "import sys; from pathlib import Path; from bank.secret_key import load_or_create_secret_key; "
        "print(load_or_create_secret_key(path=Path(sys.argv[1])))"
    )
    starts = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(key_file)], cwd=PROJECT_DIR, stdout=subprocess.PIPE, text=True
        )
        for _ in range(8)
    ]
    keys = {process.communicate(timeout=60)[0].strip() for process in starts}

    assert keys == {load_or_create_secret_key(path=key_file)}
    assert [path.name for path in tmp_path.iterdir()] == ["secret_key"]  # no temporary file left


def test_the_default_secret_key_file_is_git_ignored():
    require(shutil.which("git") is not None and (PROJECT_DIR / ".git").exists(), "not a git checkout")
    ignored = subprocess.run(
        ["git", "check-ignore", "--quiet", ".secret_key"], cwd=PROJECT_DIR, capture_output=True, timeout=30
    )

    assert ignored.returncode == 0


@pytest.mark.parametrize("host", ["evil.example", "10.0.0.1", "127.0.0.1.nip.io"])
def test_only_loopback_host_names_are_served(module_server, host):
    reply = request(module_server.url, "GET", "/auth/login/", headers={"Host": host})

    assert reply.status == 400


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]"])
def test_loopback_host_names_are_served(module_server, host):
    port = module_server.url.rsplit(":", 1)[1]

    reply = request(module_server.url, "GET", "/auth/login/", headers={"Host": f"{host}:{port}"})

    assert reply.status == 200


def test_session_and_csrf_cookies_are_http_only(module_server):
    page = request(module_server.url, "GET", "/auth/login/")
    assert {"httponly", "samesite"} <= cookie_attributes(page.set_cookies, "csrftoken")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    csrf_cookie = f"csrftoken={set_cookie(page.set_cookies, 'csrftoken').value}"

    login = request(
        module_server.url, "POST", "/auth/login/",
        body=urlencode({"csrfmiddlewaretoken": token, "username": LAB_USER, "password": LAB_PASSWORD}),
        headers={"Cookie": csrf_cookie},
    )  # fmt: skip

    assert login.status == 302
    assert {"httponly", "samesite"} <= cookie_attributes(login.set_cookies, "sessionid")
    assert {"httponly", "samesite"} <= cookie_attributes(login.set_cookies, "csrftoken")


def test_check_deploy_warns_only_about_what_the_readme_explains(module_lab):
    result = module_lab.manage("check", "--deploy", "--fail-level", "CRITICAL")

    assert (
        set(re.findall(r"\((security\.[WE]\d+)\)", result.stdout + result.stderr))
        == EXPLAINED_DEPLOY_WARNINGS
    )


def test_no_password_or_session_in_any_argv_but_abs_cookie(module_lab, module_server, tmp_path):
    """curl and ab are wrapped by shims that log their argv, then exec the real binaries."""
    argv_log = tmp_path / "argv.jsonl"
    shims = tmp_path / "shims"
    shims.mkdir()
    for tool in ("curl", "ab"):
        real = shutil.which(tool)
        shim = shims / tool
        shim.write_text(
            f"#!{sys.executable}\nimport json, os, sys\n"
            f"with open({str(argv_log)!r}, 'a') as log:\n    log.write(json.dumps(sys.argv) + '\\n')\n"
            f"os.execv({real!r}, [{real!r}, *sys.argv[1:]])\n"
        )
        shim.chmod(0o755)

    module_lab.manage(
        "splatter", "--driver", "ab", "--url", module_server.url, "--username", LAB_USER, "--no-input",
        "-n", "5", "-c", "1", "--no-record",
        env={"BANK_PASSWORD": LAB_PASSWORD, "PATH": f"{shims}{os.pathsep}{os.environ['PATH']}"},
    )  # fmt: skip

    runs = [json.loads(line) for line in argv_log.read_text().splitlines()]
    sessions = {row["pk"] for row in dumped(module_lab, "sessions")}
    secret_key = Path(module_lab.env["DJANGO_SECRET_KEY_FILE"]).read_text().strip()
    curl_runs = [argv for argv in runs if Path(argv[0]).name == "curl"]
    ab_loads = [argv for argv in runs if Path(argv[0]).name == "ab" and "-C" in argv]
    assert len(curl_runs) == 2 and len(ab_loads) == 1
    for argv in runs:
        assert not any(LAB_PASSWORD in arg or secret_key in arg for arg in argv), argv
    for argv in curl_runs:
        assert not any(session in arg for arg in argv for session in sessions), argv
    # ab takes its cookie on the command line, the one exception the README owns up to (Safety).
    assert any(session in arg for arg in ab_loads[0] for session in sessions)
    for pid in [module_server.process.pid, *_children(module_server.process.pid)]:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode()
        assert LAB_PASSWORD not in cmdline and secret_key not in cmdline


def _children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
