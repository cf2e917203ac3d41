"""Log in with Python's own HTTP client, in the same steps as curl in ``racelab.loadgen.login``.

GET the login page for the CSRF cookie, then POST the form with that token and keep the session
cookie. The burst driver uses this, so the lab runs where neither curl nor ab is installed.

Where the project keeps its CSRF secret in the session (settings.CSRF_USE_SESSIONS), the token
comes from the page's form instead, and once logged in from the page again, rendered in the new
session (``cookies_of_session``).
"""

import http.client
from http.cookies import CookieError, SimpleCookie
from typing import NamedTuple

from racelab.loadgen.errors import LoadError
from racelab.loadgen.login import (
    DEFAULT_COOKIE_NAMES,
    DEFAULT_LOGIN_FORM,
    NO_SESSION_FOR_CSRF,
    CookieNames,
    LoginForm,
    SessionCookies,
    cookies_without_login,
    form_csrf_token,
    login_failed,
    no_token_after_login,
    not_a_login_page,
)
from racelab.loadgen.target import Target

LOGIN_REDIRECT = 302


class _Answer(NamedTuple):
    status: int
    # The cookies the answer set.
    cookies: dict[str, str]
    body: str


def log_in_http(
    *,
    target: Target,
    username: str,
    password: str,
    form: LoginForm = DEFAULT_LOGIN_FORM,
    names: CookieNames = DEFAULT_COOKIE_NAMES,
    timeout: float = 10,
) -> SessionCookies:
    _check_plain_http(target)
    login_url = target.url(form.path)
    page = _request(target=target, path=form.path, method="GET", cookies={}, timeout=timeout)
    # The CSRF cookie's secret; or, with the secret in the session, the token in the page's form.
    csrftoken = form_csrf_token(page.body) if names.csrf_use_sessions else page.cookies.get(names.csrf_cookie)
    if page.status != 200 or not csrftoken:
        raise LoadError(not_a_login_page(login_url, page.status, names))
    body = form.body(csrftoken=csrftoken, username=username, password=password)
    login = _request(
        target=target,
        path=form.path,
        method="POST",
        # The CSRF cookie; or, with the secret in the session, the anonymous session that holds it.
        cookies=page.cookies,
        timeout=timeout,
        body=body,
        headers={names.csrf_header: csrftoken, "Content-Type": "application/x-www-form-urlencoded"},
    )
    if login.status != LOGIN_REDIRECT or names.session_cookie not in login.cookies:
        raise LoadError(login_failed(login_url, login.status, username=username, names=names))
    sessionid = login.cookies[names.session_cookie]
    if names.csrf_use_sessions:
        # Rotated in the new session, where no response showed it: read from a page of the session.
        return _token_of_session(
            target=target, sessionid=sessionid, names=names, page=form.path, timeout=timeout, after_login=True
        )
    # Django rotates the CSRF token at login; the newest one is the one to send.
    return SessionCookies(
        csrftoken=login.cookies.get(names.csrf_cookie, csrftoken), sessionid=sessionid, names=names
    )


def cookies_of_session(
    *, target: Target, sessionid: str, names: CookieNames, page: str, timeout: float = 10
) -> SessionCookies:
    """The cookies of a client that does not log in: anonymous, or with the session ``sessionid``
    it was given. Where the project keeps its CSRF secret in a cookie, a secret made up here will
    do (``cookies_without_login``); where it keeps it in the session, only a token of that session:
    read from the form of ``page`` (the login page), rendered in the session."""
    if not names.csrf_use_sessions:
        return cookies_without_login(sessionid=sessionid, names=names)
    if not sessionid:
        raise LoadError(NO_SESSION_FOR_CSRF)
    _check_plain_http(target)
    return _token_of_session(
        target=target, sessionid=sessionid, names=names, page=page, timeout=timeout, after_login=False
    )


def _token_of_session(
    *, target: Target, sessionid: str, names: CookieNames, page: str, timeout: float, after_login: bool
) -> SessionCookies:
    url = target.url(page)
    answer = _request(
        target=target, path=page, method="GET", cookies={names.session_cookie: sessionid}, timeout=timeout
    )
    token = form_csrf_token(answer.body) if answer.status == 200 else None
    if not token:
        if after_login:
            raise LoadError(no_token_after_login(url, answer.status))
        raise LoadError(
            f"{url} answered HTTP {answer.status} without a csrfmiddlewaretoken in a form: the project "
            "keeps its CSRF secret in the session (settings.CSRF_USE_SESSIONS), and splatter reads the "
            "session's token from the login page (settings.LOGIN_URL), rendered in that session."
        )
    if answer.cookies.get(names.session_cookie, sessionid) != sessionid:
        # A session the server does not know: it started another, whose token is no use to ours.
        raise LoadError(
            f"{url} replaced the session cookie {names.session_cookie}: the session given is not one the "
            "server knows (expired, or logged out?)."
        )
    return SessionCookies(csrftoken=token, sessionid=sessionid, names=names)


def _check_plain_http(target: Target) -> None:
    if target.scheme != "http":
        raise LoadError(f"The burst driver speaks plain HTTP only, not {target.scheme}: use --driver ab.")


def _request(
    *,
    target: Target,
    path: str,
    method: str,
    cookies: dict[str, str],
    timeout: float,
    body: str | None = None,
    headers: dict[str, str] | None = None,
) -> _Answer:
    """Send one request to the login page; return its status, the cookies it set and its body."""
    connection = http.client.HTTPConnection(target.host, target.port, timeout=timeout)
    request_headers = dict(headers or {})
    if cookies:
        request_headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in cookies.items())
    try:
        connection.request(method, path, body=body, headers=request_headers)
        response = connection.getresponse()
        content = response.read()
        set_cookies = response.headers.get_all("Set-Cookie") or []
        return _Answer(
            status=response.status,
            cookies=_parse_set_cookies(set_cookies),
            body=content.decode("utf-8", "replace"),
        )
    except (ConnectionError, TimeoutError, OSError, http.client.HTTPException) as error:
        raise LoadError(
            f"Cannot reach the server at {target.url(path)} ({error}): is it running, and listening on "
            f"{target.host}:{target.port}?"
        ) from error
    finally:
        connection.close()


def _parse_set_cookies(headers: list[str]) -> dict[str, str]:
    cookies = {}
    for header in headers:
        jar = SimpleCookie()
        try:
            jar.load(header)
        except CookieError:
            continue
        cookies.update({name: morsel.value for name, morsel in jar.items()})
    return cookies
