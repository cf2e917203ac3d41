"""racelab sends what the project's settings name: its CSRF cookie and header, its session cookie;
with CSRF_USE_SESSIONS a token read from a page of the session; and to an https target the Origin
and Referer Django's CSRF check wants there. The drivers take the names as plain data (no
settings), from the plan splatter builds."""

import http.client
import subprocess
from dataclasses import asdict, replace
from pathlib import Path

import pytest
from django.contrib.auth.models import User

from labserver.lab import LAB_LOGIN
from racelab.conf import cookie_names
from racelab.loadgen import ab, login
from racelab.loadgen.burst import form_request
from racelab.loadgen.drivers import AbDriver
from racelab.loadgen.errors import LoadError
from racelab.loadgen.http_login import cookies_of_session, log_in_http
from racelab.loadgen.locust.protocol import LocustMode, RunSpec
from racelab.loadgen.login import (
    DEFAULT_COOKIE_NAMES,
    CookieNames,
    Credentials,
    LoginForm,
    SessionCookies,
    cookies_without_login,
    form_csrf_token,
    log_in,
)
from racelab.loadgen.target import FORM, LoadRequest, Target, parse_target
from racelab.runs.plan import EndpointPlan, PlanError, project_cookie_names, project_credentials
from tests.helpers import PASSWORD

CUSTOM = CookieNames(csrf_cookie="shop_csrf", csrf_header="X-Shop-Csrf", session_cookie="shop_session")
IN_SESSION = CookieNames(csrf_use_sessions=True)
TOKEN = "t" * 64
SECRET = "a" * 32


# racelab.conf: the names from the settings


@pytest.mark.database_independent
def test_the_names_are_djangos_defaults_unless_the_settings_say_otherwise(settings):
    assert (
        cookie_names() == DEFAULT_COOKIE_NAMES == CookieNames("csrftoken", "X-CSRFToken", "sessionid", False)
    )

    settings.CSRF_COOKIE_NAME = "shop_csrf"
    # A request.META key, as Django's docs say: the header X-Shop-Csrf.
    settings.CSRF_HEADER_NAME = "HTTP_X_SHOP_CSRF"
    settings.SESSION_COOKIE_NAME = "shop_session"
    settings.CSRF_USE_SESSIONS = True
    assert cookie_names() == CookieNames("shop_csrf", "X-Shop-Csrf", "shop_session", True)


@pytest.mark.database_independent
@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("CSRF_HEADER_NAME", "X_CSRFTOKEN", "is not the request.META key of a header"),
        ("CSRF_HEADER_NAME", "HTTP_", "is not the request.META key of a header"),
        ("CSRF_HEADER_NAME", "CONTENT_TYPE", "is not the request.META key of a header"),
        ("CSRF_HEADER_NAME", "http_x_csrftoken", "is not the request.META key of a header"),
        ("CSRF_COOKIE_NAME", "csrf token", "is not a cookie name a client can send"),
        ("SESSION_COOKIE_NAME", "a;b", "is not a cookie name a client can send"),
    ],
)
def test_names_no_client_can_send_stop_the_plan(settings, setting, value, message):
    setattr(settings, setting, value)

    with pytest.raises(PlanError, match=f"settings.{setting} .* {message}"):
        EndpointPlan(target=TARGET, requests=(POST,), credentials=Credentials(form=None), driver="burst")


# racelab.runs.plan: the credentials get the project's names; CSRF in the session needs a session

TARGET = parse_target("http://127.0.0.1:8001")
POST = LoadRequest(path="/a/", fields=(("x", "1"),))


def named(credentials: Credentials) -> Credentials:
    """The credentials as splatter builds them from the options, with the settings' names."""
    return project_credentials(credentials, project_cookie_names())


@pytest.mark.database_independent
def test_the_plan_gives_the_credentials_the_projects_names(settings):
    settings.CSRF_COOKIE_NAME, settings.CSRF_HEADER_NAME = "shop_csrf", "HTTP_X_SHOP_CSRF"
    settings.SESSION_COOKIE_NAME = "shop_session"

    logged_in = named(Credentials(usernames=("alice",), form=LAB_LOGIN))
    anonymous = named(Credentials(form=None))

    assert logged_in.cookie_names == anonymous.cookie_names == CUSTOM
    assert logged_in.usernames == ("alice",) and logged_in.form == LAB_LOGIN


@pytest.mark.database_independent
def test_with_csrf_in_the_session_a_run_without_a_session_is_refused(settings):
    settings.CSRF_USE_SESSIONS = True

    with pytest.raises(PlanError) as refused:
        named(Credentials(form=None))

    assert str(refused.value) == (
        "This project keeps its CSRF secret in the session (settings.CSRF_USE_SESSIONS = True), so a "
        "request without a session cannot pass its CSRF check: log in with --username, or give a "
        "session cookie's value in $RACELAB_SESSION_COOKIE."
    )


@pytest.mark.database_independent
def test_with_csrf_in_the_session_a_given_session_reads_its_token_from_the_login_page(settings):
    settings.CSRF_USE_SESSIONS = True

    credentials = named(Credentials(form=None, sessionid="s" * 32))

    assert credentials.cookie_names == IN_SESSION
    # settings.LOGIN_URL is the URL name "login": the demo's /auth/login/.
    assert credentials.token_page == "/auth/login/"


@pytest.mark.database_independent
def test_the_projects_csrf_header_is_not_a_header_to_give(settings):
    settings.CSRF_HEADER_NAME = "HTTP_X_SHOP_CSRF"
    post = LoadRequest(path="/a/", headers=(("x-shop-csrf", "mine"),))

    with pytest.raises(PlanError, match="--header x-shop-csrf: it is this project's CSRF header"):
        EndpointPlan(target=TARGET, requests=(post,), credentials=Credentials(form=None), driver="burst")


# racelab.loadgen: the cookies, the headers, the page's token


@pytest.mark.database_independent
def test_the_cookies_and_the_header_go_by_the_projects_names():
    cookies = SessionCookies(csrftoken="c", sessionid="s", names=CUSTOM)
    assert cookies.cookie_header == "shop_session=s; shop_csrf=c"
    assert cookies.csrf_header == "X-Shop-Csrf: c"

    # With the secret in the session there is no CSRF cookie to send.
    assert SessionCookies(csrftoken=TOKEN, sessionid="s", names=IN_SESSION).cookie_header == "sessionid=s"
    anonymous = cookies_without_login(names=CUSTOM)
    assert anonymous.cookie_header == f"shop_csrf={anonymous.csrftoken}" and len(anonymous.csrftoken) == 32


@pytest.mark.database_independent
def test_a_made_up_secret_is_refused_where_the_secret_lives_in_the_session():
    with pytest.raises(
        LoadError, match=r"keeps its CSRF secret in the session \(settings.CSRF_USE_SESSIONS\)"
    ):
        cookies_without_login(sessionid="s", names=IN_SESSION)
    with pytest.raises(LoadError, match="log in with --username, or give a session cookie"):
        cookies_of_session(target=TARGET, sessionid="", names=IN_SESSION, page="/auth/login/")


@pytest.mark.database_independent
@pytest.mark.parametrize(
    ("html", "token"),
    [
        (f'<form><input type="hidden" name="csrfmiddlewaretoken" value="{TOKEN}"></form>', TOKEN),
        (f"<INPUT value={TOKEN} name=csrfmiddlewaretoken>", TOKEN),
        # The first form's: an unmasked secret is a token too.
        (f'<input name="csrfmiddlewaretoken" value="{SECRET}"/><input name="csrfmiddlewaretoken">', SECRET),
        ('<input type="hidden" name="next" value="">', None),
        ('<input name="csrfmiddlewaretoken" value="short">', None),
        (f'<input name="csrfmiddlewaretoken" value="{"é" * 64}">', None),
        ("no form at all", None),
    ],
)  # fmt: skip
def test_the_token_of_a_page_is_its_forms_hidden_field(html, token):
    assert form_csrf_token(html) == token


@pytest.mark.database_independent
def test_the_burst_drivers_request_carries_the_projects_names():
    post = LoadRequest(path="/a/", fields=(("x", "1"),))

    custom = form_request(target=TARGET, cookies=SessionCookies("c" * 32, "s", names=CUSTOM), post=post)
    in_session = form_request(target=TARGET, cookies=SessionCookies(TOKEN, "s", names=IN_SESSION), post=post)

    assert b"\r\nCookie: shop_session=s; shop_csrf=" + b"c" * 32 + b"\r\n" in custom
    assert b"\r\nX-Shop-Csrf: " + b"c" * 32 + b"\r\n" in custom and b"X-CSRFToken" not in custom
    assert (
        b"\r\nCookie: sessionid=s\r\n" in in_session
        and f"\r\nX-CSRFToken: {TOKEN}\r\n".encode() in in_session
    )


@pytest.mark.database_independent
def test_the_locust_spec_carries_the_names_to_the_workers(tmp_path):
    spec = RunSpec(
        mode=LocustMode.STEADY, usernames=["session"], login=None, forms=[POST], targets=[TARGET.base_url],
        requests=1, concurrency=1, run_token=None, response_timeout=30.0, settle=0.1, worker_wait=60.0,
        cookie_names=CookieNames("shop_csrf", "X-Shop-Csrf", "shop_session", True), token_page="/login/",
    )  # fmt: skip
    spec.save(tmp_path / "run.json")

    assert RunSpec.load(tmp_path / "run.json") == spec == RunSpec.from_document(asdict(spec))


# https: Origin and Referer


@pytest.mark.database_independent
@pytest.mark.parametrize(
    ("target", "origin"),
    [
        (Target("https", "127.0.0.1", 443), "https://127.0.0.1"),
        (Target("https", "localhost", 8443), "https://localhost:8443"),
        (Target("https", "::1", 8443), "https://[::1]:8443"),
        (Target("http", "127.0.0.1", 80), "http://127.0.0.1"),
        (Target("http", "127.0.0.1", 8001), "http://127.0.0.1:8001"),
    ],
)
def test_the_origin_leaves_out_the_schemes_own_port(target, origin):
    assert target.origin == origin


@pytest.mark.database_independent
def test_unsafe_requests_to_an_https_target_carry_origin_and_referer():
    https = Target("https", "127.0.0.1", 8443)
    post = LoadRequest(path="/a/", query=(("v", "2"),), method="PATCH")

    assert https.origin_headers(post) == (
        ("Origin", "https://127.0.0.1:8443"),
        ("Referer", "https://127.0.0.1:8443/a/?v=2"),
    )
    # Not over plain http (Django checks an Origin there only when one is sent), nor a GET.
    assert Target("http", "127.0.0.1", 8001).origin_headers(post) == ()
    assert https.origin_headers(LoadRequest(path="/a/", method="GET")) == ()
    # The user's own Referer is kept.
    mine = LoadRequest(path="/a/", headers=(("referer", "https://127.0.0.1:8443/cart/"),))
    assert https.origin_headers(mine) == (("Origin", "https://127.0.0.1:8443"),)


@pytest.fixture
def fake_tools(monkeypatch):
    """ab and curl replaced: each argv (and curl's config on stdin) recorded; curl answers as a
    Django login page does, ab with a lab report."""
    runs = []
    report = (Path(__file__).parent / "data" / "ab_lab_variable_length.txt").read_text()

    def run_tool(argv, *, timeout, stdin=None):
        runs.append((argv, stdin))
        if "--cookie-jar" in argv:
            jar = Path(argv[argv.index("--cookie-jar") + 1])
            name = "shop_session" if stdin else "shop_csrf"
            jar.write_text(f"127.0.0.1\tFALSE\t/\tFALSE\t0\t{name}\tvalue{len(runs):027d}\n")
            return subprocess.CompletedProcess(argv, 0, stdout="302" if stdin else "200", stderr="")
        return subprocess.CompletedProcess(argv, 0, stdout=report, stderr="")

    for module in (ab, login):
        monkeypatch.setattr(module, "require_tool", lambda name: f"/usr/bin/{name}")
        monkeypatch.setattr(module, "run_tool", run_tool)
    monkeypatch.setattr(ab, "ab_accepts_variable_length", lambda binary: True)
    return runs


@pytest.mark.database_independent
def test_curl_logs_in_to_an_https_project_with_its_names_and_origin(fake_tools, tmp_path):
    https = Target("https", "127.0.0.1", 8443)

    cookies = log_in(
        target=https, username="alice", password=PASSWORD, workdir=tmp_path, form=LoginForm("/login/"),
        names=CUSTOM,
    )  # fmt: skip

    (_, config) = fake_tools[1]
    assert config.splitlines()[:3] == [
        f'header = "X-Shop-Csrf: value{1:027d}"',
        'header = "Origin: https://127.0.0.1:8443"',
        'header = "Referer: https://127.0.0.1:8443/login/"',
    ]
    assert cookies == SessionCookies(csrftoken=f"value{1:027d}", sessionid=f"value{2:027d}", names=CUSTOM)


@pytest.mark.database_independent
def test_ab_sends_an_https_project_origin_and_its_csrf_header(fake_tools, tmp_path, settings):
    credentials = Credentials(form=None, cookie_names=CUSTOM)
    driver = AbDriver(target=Target("https", "127.0.0.1", 8443), credentials=credentials, workdir=tmp_path)

    driver.fire(posts=(LoadRequest(path="/a/", fields=(("x", "1"),)),), requests=2, concurrency=1)

    ((argv, _),) = fake_tools
    headers = [argv[i + 1] for i, option in enumerate(argv) if option == "-H"]
    assert headers == [
        "Origin: https://127.0.0.1:8443",
        "Referer: https://127.0.0.1:8443/a/",
        f"X-Shop-Csrf: {driver.cookies.csrftoken}",
    ]
    assert argv[argv.index("-C") + 1] == f"shop_csrf={driver.cookies.csrftoken}"


# Against Django itself (a live server in this process, the settings changed for the test)


def csrf_status(url: str, cookies: SessionCookies) -> int:
    """What Django's CSRF check makes of ``cookies`` on a POST: 403 refused; 200 let through (the
    login form, answering a wrong password)."""
    target = parse_target(url)
    connection = http.client.HTTPConnection(target.host, target.port, timeout=10)
    headers = {
        "Cookie": cookies.cookie_header,
        cookies.names.csrf_header: cookies.csrftoken,
        "Content-Type": FORM,
    }
    try:
        connection.request("POST", LAB_LOGIN.path, body="username=nobody&password=wrong", headers=headers)
        return connection.getresponse().status
    finally:
        connection.close()


@pytest.fixture
def alice(fast_password_hasher):
    User.objects.create_user(username="alice", password=PASSWORD)


@pytest.fixture
def custom_names(settings):
    settings.CSRF_COOKIE_NAME, settings.CSRF_HEADER_NAME = "shop_csrf", "HTTP_X_SHOP_CSRF"
    settings.SESSION_COOKIE_NAME = "shop_session"


@pytest.fixture
def csrf_in_session(settings):
    settings.CSRF_USE_SESSIONS = True


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("alice", "custom_names")
def test_python_login_with_the_projects_names_gets_a_token_django_accepts(live_server):
    cookies = log_in_http(
        target=parse_target(live_server.url), username="alice", password=PASSWORD, form=LAB_LOGIN,
        names=CUSTOM,
    )  # fmt: skip

    assert csrf_status(live_server.url, cookies) == 200
    # Django's default names would be refused: the project does not know them.
    assert csrf_status(live_server.url, SessionCookies(cookies.csrftoken, cookies.sessionid)) == 403


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("alice", "csrf_in_session")
@pytest.mark.parametrize("client", ["curl", "python"])
def test_with_csrf_in_the_session_the_login_reads_the_token_of_the_new_session(live_server, tmp_path, client):
    if client == "curl":
        cookies = log_in(
            target=parse_target(live_server.url), username="alice", password=PASSWORD, workdir=tmp_path,
            form=LAB_LOGIN, names=IN_SESSION,
        )  # fmt: skip
    else:
        cookies = log_in_http(
            target=parse_target(live_server.url), username="alice", password=PASSWORD, form=LAB_LOGIN,
            names=IN_SESSION,
        )  # fmt: skip

    # A masked token from the page of the logged-in session, no CSRF cookie: what Django accepts.
    assert len(cookies.csrftoken) == 64 and cookies.cookie_header == f"sessionid={cookies.sessionid}"
    assert csrf_status(live_server.url, cookies) == 200


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("alice", "csrf_in_session")
def test_with_csrf_in_the_session_a_given_session_gets_its_own_token(live_server):
    target = parse_target(live_server.url)
    session = log_in_http(
        target=target, username="alice", password=PASSWORD, form=LAB_LOGIN, names=IN_SESSION
    )

    cookies = cookies_of_session(
        target=target, sessionid=session.sessionid, names=IN_SESSION, page=LAB_LOGIN.path
    )

    assert cookies.sessionid == session.sessionid
    assert csrf_status(live_server.url, cookies) == 200
    # Only a token of the session will do: a made-up one is refused.
    assert csrf_status(live_server.url, replace(cookies, csrftoken=TOKEN)) == 403
    with pytest.raises(LoadError, match="the session given is not one the server knows"):
        cookies_of_session(target=target, sessionid="x" * 32, names=IN_SESSION, page=LAB_LOGIN.path)
