"""Log in the way the blog's splatter.sh does, with real curl: CSRF cookie first, then the session.

Secrets never reach an argv that ``ps`` shows: the password, and the CSRF header with it, go to
curl as a config file on its standard input (``-K -``).

Cookies and the CSRF header go by the project's names (``CookieNames``: Django's defaults unless
its settings say otherwise). A project that keeps its CSRF secret in the session
(settings.CSRF_USE_SESSIONS) sets no CSRF cookie: the token is read from the login page's form
instead, and once logged in from that page again, rendered in the new session.
"""

import secrets
import string
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlencode

from racelab.loadgen.errors import LoadError
from racelab.loadgen.target import LoadRequest, Target
from racelab.loadgen.tools import require_tool, run_tool

CURL_COULD_NOT_CONNECT = 7
CURL_TIMED_OUT = 28


# Django's own default for settings.LOGIN_URL.
DEFAULT_LOGIN_PATH = "/accounts/login/"
# The length of a CSRF secret Django accepts in its cookie (django.middleware.csrf), and of the
# masked token of it a form carries.
CSRF_SECRET_LENGTH = 32
CSRF_TOKEN_LENGTH = 2 * CSRF_SECRET_LENGTH
# The hidden field {% csrf_token %} renders in a form (a name Django does not let projects change).
CSRF_FORM_FIELD = "csrfmiddlewaretoken"
NO_SESSION_FOR_CSRF = (
    "This project keeps its CSRF secret in the session (settings.CSRF_USE_SESSIONS), so a request "
    "without a session cannot pass its CSRF check: log in with --username, or give a session cookie."
)


@dataclass(frozen=True)
class CookieNames:
    """What a project's CSRF check and sessions go by: Django's defaults unless its settings say
    otherwise (racelab.conf.cookie_names reads CSRF_COOKIE_NAME, CSRF_HEADER_NAME as the header a
    client sends, SESSION_COOKIE_NAME and CSRF_USE_SESSIONS)."""

    csrf_cookie: str = "csrftoken"
    csrf_header: str = "X-CSRFToken"
    session_cookie: str = "sessionid"
    # The CSRF secret is kept in the session and no CSRF cookie is set: the token to send is one
    # read from a page rendered in that session (its form's csrfmiddlewaretoken).
    csrf_use_sessions: bool = False

    @property
    def described(self) -> str:
        """The names, for a sentence: "header X-CSRFToken, cookie csrftoken, session cookie sessionid"."""
        secret = "secret in the session" if self.csrf_use_sessions else f"cookie {self.csrf_cookie}"
        return f"header {self.csrf_header}, {secret}, session cookie {self.session_cookie}"


DEFAULT_COOKIE_NAMES = CookieNames()


@dataclass(frozen=True)
class LoginForm:
    """The project's login form: where it is and what its two fields are called (Django's
    ``LoginView`` and ``AuthenticationForm``: ``username`` and ``password``)."""

    path: str = DEFAULT_LOGIN_PATH
    username_field: str = "username"
    password_field: str = "password"

    def body(self, *, csrftoken: str, username: str, password: str) -> str:
        return urlencode(
            {CSRF_FORM_FIELD: csrftoken, self.username_field: username, self.password_field: password}
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
    cookie_names: CookieNames = DEFAULT_COOKIE_NAMES
    # With no form, where the project keeps its CSRF secret in the session: the page whose form
    # gives a token of the session ``sessionid`` (the login page).
    token_page: str = DEFAULT_LOGIN_PATH

    @property
    def clients(self) -> tuple[str, ...]:
        """The names the drivers count outcomes under: the users, else "session" or "anonymous"."""
        if self.form is not None:
            return self.usernames
        return ("session",) if self.sessionid else ("anonymous",)


@dataclass(frozen=True)
class SessionCookies:
    # The CSRF token sent in the header: the CSRF cookie's secret, or where the project keeps the
    # secret in the session, a masked token of it read from a page of that session.
    csrftoken: str
    # Empty for an anonymous client.
    sessionid: str = ""
    names: CookieNames = DEFAULT_COOKIE_NAMES

    @property
    def cookie_header(self) -> str:
        """The Cookie header's value: the session cookie, if any, and the CSRF cookie, unless the
        secret is kept in the session ("" when there is neither)."""
        cookies = [f"{self.names.session_cookie}={self.sessionid}"] if self.sessionid else []
        if not self.names.csrf_use_sessions:
            cookies.append(f"{self.names.csrf_cookie}={self.csrftoken}")
        return "; ".join(cookies)

    @property
    def csrf_header(self) -> str:
        """The CSRF header line, "X-CSRFToken: token" under Django's default name."""
        return f"{self.names.csrf_header}: {self.csrftoken}"


def cookies_without_login(
    *, sessionid: str = "", names: CookieNames = DEFAULT_COOKIE_NAMES
) -> SessionCookies:
    """Cookies for a client that does not log in: anonymous, or with a session it was given.

    Django's CSRF check compares the header with the cookie and nothing else, so a secret made
    here is as good as one the server set: no page needs to be fetched first. Not where the
    project keeps the secret in the session: only a token read from a page of that session will do
    there (racelab.loadgen.http_login.cookies_of_session).
    """
    if names.csrf_use_sessions:
        raise LoadError(NO_SESSION_FOR_CSRF)
    alphabet = string.ascii_letters + string.digits
    csrftoken = "".join(secrets.choice(alphabet) for _ in range(CSRF_SECRET_LENGTH))
    return SessionCookies(csrftoken=csrftoken, sessionid=sessionid, names=names)


class _CsrfFieldParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.token: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "input" and values.get("name") == CSRF_FORM_FIELD and self.token is None:
            self.token = values.get("value")


def form_csrf_token(html: str) -> str | None:
    """The CSRF token a page rendered with {% csrf_token %} carries (its first hidden
    csrfmiddlewaretoken input), if it is one Django could have made; else None."""
    parser = _CsrfFieldParser()
    parser.feed(html)
    parser.close()
    token = parser.token or ""
    if token.isascii() and token.isalnum() and len(token) in (CSRF_SECRET_LENGTH, CSRF_TOKEN_LENGTH):
        return token
    return None


def not_a_login_page(url: str, status: object, names: CookieNames) -> str:
    """Why a login page did not give a CSRF token, as a sentence."""
    missing = (
        f"a {CSRF_FORM_FIELD} in its form (the project keeps its CSRF secret in the session)"
        if names.csrf_use_sessions
        else f"a CSRF cookie ({names.csrf_cookie})"
    )
    return (
        f"{url} answered HTTP {status} without {missing}: it does not look like a Django login page. "
        "Give the project's login page (--login-url), or check that no other program listens on that port."
    )


def no_token_after_login(url: str, status: object) -> str:
    return (
        f"Logged in at {url}, but that page then answered HTTP {status} without a {CSRF_FORM_FIELD}: the "
        "project keeps its CSRF secret in the session (settings.CSRF_USE_SESSIONS), and splatter reads "
        "the session's token from the login page's form. Does the login view redirect users who are "
        "logged in (redirect_authenticated_user)?"
    )


def log_in(
    *,
    target: Target,
    username: str,
    password: str,
    workdir: Path,
    form: LoginForm = DEFAULT_LOGIN_FORM,
    names: CookieNames = DEFAULT_COOKIE_NAMES,
    timeout: float = 10,
) -> SessionCookies:
    curl = require_tool("curl")
    anonymous_jar = workdir / "cookies.txt"
    session_jar = workdir / "new_cookies.txt"
    page_file = workdir / "login-page.html"
    login_url = target.url(form.path)
    common = [curl, "--silent", "--show-error", "--max-time", str(timeout)]

    def get_page(*, jar: Path, cookies: Path | None = None) -> tuple[str, str]:
        """GET the login page, keeping its cookies in ``jar``: its status and its HTML."""
        page = run_tool(
            [
                *common, "--output", str(page_file), *(["--cookie", str(cookies)] if cookies else []),
                "--cookie-jar", str(jar), "--write-out", "%{http_code}", login_url,
            ],
            timeout=timeout + 5,
        )  # fmt: skip
        _raise_for_curl(page.returncode, page.stderr, target=target, url=login_url)
        return page.stdout, page_file.read_text(errors="replace") if page_file.exists() else ""

    status, html = get_page(jar=anonymous_jar)
    if names.csrf_use_sessions:
        csrftoken = form_csrf_token(html)
    else:
        csrftoken = read_cookie_jar(anonymous_jar).get(names.csrf_cookie)
    if status != "200" or not csrftoken:
        raise LoadError(not_a_login_page(login_url, status, names))

    body = form.body(csrftoken=csrftoken, username=username, password=password)
    # An https login needs the Origin Django's CSRF check compares with the host.
    headers = [f"{names.csrf_header}: {csrftoken}"] + [
        f"{name}: {value}" for name, value in target.origin_headers(LoadRequest(path=form.path))
    ]
    lines = [f"header = {_quoted(header)}" for header in headers] + [f"data-binary = {_quoted(body)}"]
    config = "".join(line + "\n" for line in lines)
    login = run_tool(
        [
            *common,
            "--output", "/dev/null",
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
    if login.stdout != "302" or names.session_cookie not in cookies:
        raise LoadError(login_failed(login_url, login.stdout, username=username, names=names))
    if not names.csrf_use_sessions:
        # Django rotates the CSRF token at login; the newest one is the one to send.
        csrftoken = cookies.get(names.csrf_cookie, csrftoken)
    else:
        # Rotated in the new session, where no response showed it: read from a page of the session.
        status, html = get_page(jar=session_jar, cookies=session_jar)
        csrftoken = form_csrf_token(html) if status == "200" else None
        if not csrftoken:
            raise LoadError(no_token_after_login(login_url, status))
        cookies = read_cookie_jar(session_jar)
    return SessionCookies(csrftoken=csrftoken, sessionid=cookies[names.session_cookie], names=names)


def login_failed(url: str, status: object, *, username: str, names: CookieNames) -> str:
    reason = {
        "200": f"the server refused the username {username!r} or its password",
        "302": f"the server set no session cookie {names.session_cookie!r}",
        "403": f"the server refused the CSRF token ({names.described})",
    }.get(str(status), f"the server answered HTTP {status}")
    return f"Login at {url} failed: {reason}."


def _quoted(value: str) -> str:
    """``value`` as a quoted string of curl's config file, where a backslash escapes."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


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
