"""Log in the way the blog's splatter.sh does, with real curl: CSRF cookie first, then the session.

Secrets never reach an argv that ``ps`` shows: the password, and the CSRF header with it, go to
curl as a config file on its standard input (``-K -``).
"""

import secrets
import string
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

from racelab.loadgen.errors import LoadError
from racelab.loadgen.target import Target
from racelab.loadgen.tools import require_tool, run_tool

CURL_COULD_NOT_CONNECT = 7
CURL_TIMED_OUT = 28


# Django's own default for settings.LOGIN_URL.
DEFAULT_LOGIN_PATH = "/accounts/login/"
# The length of a CSRF secret Django accepts in its cookie (django.middleware.csrf).
CSRF_SECRET_LENGTH = 32


@dataclass(frozen=True)
class LoginForm:
    """The project's login form: where it is and what its two fields are called (Django's
    ``LoginView`` and ``AuthenticationForm``: ``username`` and ``password``)."""

    path: str = DEFAULT_LOGIN_PATH
    username_field: str = "username"
    password_field: str = "password"

    def body(self, *, csrftoken: str, username: str, password: str) -> str:
        return urlencode(
            {"csrfmiddlewaretoken": csrftoken, self.username_field: username, self.password_field: password}
        )


DEFAULT_LOGIN_FORM = LoginForm()


@dataclass(frozen=True, kw_only=True)
class Credentials:
    """Who a load's requests come from: users logged in through ``form``, or, with no form, one
    client with the session ``sessionid`` (empty: anonymous)."""

    usernames: tuple[str, ...] = ()
    password: str = field(default="", repr=False)
    form: LoginForm | None = DEFAULT_LOGIN_FORM
    sessionid: str = field(default="", repr=False)

    @property
    def clients(self) -> tuple[str, ...]:
        """The names the drivers count outcomes under: the users, else "session" or "anonymous"."""
        if self.form is not None:
            return self.usernames
        return ("session",) if self.sessionid else ("anonymous",)


@dataclass(frozen=True)
class SessionCookies:
    csrftoken: str
    # Empty for an anonymous client.
    sessionid: str = ""

    @property
    def cookie_header(self) -> str:
        session = f"sessionid={self.sessionid}; " if self.sessionid else ""
        return f"{session}csrftoken={self.csrftoken}"


def cookies_without_login(*, sessionid: str = "") -> SessionCookies:
    """Cookies for a client that does not log in: anonymous, or with a session it was given.

    Django's CSRF check compares the header with the cookie and nothing else, so a secret made
    here is as good as one the server set: no page needs to be fetched first.
    """
    alphabet = string.ascii_letters + string.digits
    csrftoken = "".join(secrets.choice(alphabet) for _ in range(CSRF_SECRET_LENGTH))
    return SessionCookies(csrftoken=csrftoken, sessionid=sessionid)


def log_in(
    *,
    target: Target,
    username: str,
    password: str,
    workdir: Path,
    form: LoginForm = DEFAULT_LOGIN_FORM,
    timeout: float = 10,
) -> SessionCookies:
    curl = require_tool("curl")
    anonymous_jar = workdir / "cookies.txt"
    session_jar = workdir / "new_cookies.txt"
    login_url = target.url(form.path)
    common = [curl, "--silent", "--show-error", "--max-time", str(timeout), "--output", "/dev/null"]

    page = run_tool(
        [*common, "--cookie-jar", str(anonymous_jar), "--write-out", "%{http_code}", login_url],
        timeout=timeout + 5,
    )
    _raise_for_curl(page.returncode, page.stderr, target=target, url=login_url)
    csrftoken = read_cookie_jar(anonymous_jar).get("csrftoken")
    if page.stdout != "200" or not csrftoken:
        raise LoadError(
            f"{login_url} answered HTTP {page.stdout} without a CSRF cookie: it does not look like "
            "a Django login page. Give the project's login page (--login-url), or check that no "
            "other program listens on that port."
        )

    body = form.body(csrftoken=csrftoken, username=username, password=password)
    config = f'header = "X-CSRFToken: {csrftoken}"\ndata-binary = "{body}"\n'
    login = run_tool(
        [
            *common,
            "--cookie", str(anonymous_jar),
            "--cookie-jar", str(session_jar),
            "--header", "Content-Type: application/x-www-form-urlencoded",
            "--write-out", "%{http_code}",
            "--config", "-",
            login_url,
        ],
        stdin=config,
        timeout=timeout + 5,
    )  # fmt: skip
    _raise_for_curl(login.returncode, login.stderr, target=target, url=login_url)
    cookies = read_cookie_jar(session_jar)
    if login.stdout != "302" or "sessionid" not in cookies:
        reason = {
            "200": f"the server refused the username {username!r} or its password",
            "403": "the server refused the CSRF token",
        }.get(login.stdout, f"the server answered HTTP {login.stdout}")
        raise LoadError(f"Login at {login_url} failed: {reason}.")
    # Django rotates the CSRF token at login; the newest one is the one to send.
    return SessionCookies(csrftoken=cookies.get("csrftoken", csrftoken), sessionid=cookies["sessionid"])


def read_cookie_jar(path: Path) -> dict[str, str]:
    """Cookies from a Netscape-format jar as curl writes it (HttpOnly ones behind ``#HttpOnly_``)."""
    cookies = {}
    if not path.exists():
        return cookies
    for line in path.read_text().splitlines():
        line = line.removeprefix("#HttpOnly_")
        fields = line.split("\t")
        if line.startswith("#") or len(fields) != 7:
            continue
        cookies[fields[5]] = fields[6]
    return cookies


def _raise_for_curl(returncode: int, stderr: str, *, target: Target, url: str) -> None:
    if returncode == 0:
        return
    if returncode in (CURL_COULD_NOT_CONNECT, CURL_TIMED_OUT):
        raise LoadError(
            f"Cannot reach the server at {url}: is it running, and listening on {target.host}:{target.port}?"
        )
    raise LoadError(f"curl failed on {url} (exit {returncode}): {stderr.strip()}")
