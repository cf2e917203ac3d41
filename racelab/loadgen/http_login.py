"""Log in with Python's own HTTP client, in the same steps as curl in ``racelab.loadgen.login``.

GET the login page for the CSRF cookie, then POST the form with that token and keep the session
cookie. The burst driver uses this, so the lab runs where neither curl nor ab is installed.
"""

import http.client
from http.cookies import CookieError, SimpleCookie

from racelab.loadgen.errors import LoadError
from racelab.loadgen.login import DEFAULT_LOGIN_FORM, LoginForm, SessionCookies
from racelab.loadgen.target import Target

LOGIN_REDIRECT = 302


def log_in_http(
    *, target: Target, username: str, password: str, form: LoginForm = DEFAULT_LOGIN_FORM, timeout: float = 10
) -> SessionCookies:
    if target.scheme != "http":
        raise LoadError(f"The burst driver speaks plain HTTP only, not {target.scheme}: use --driver ab.")
    login_url = target.url(form.path)
    status, cookies = _request(target=target, path=form.path, method="GET", cookies={}, timeout=timeout)
    csrftoken = cookies.get("csrftoken")
    if status != 200 or not csrftoken:
        raise LoadError(
            f"{login_url} answered HTTP {status} without a CSRF cookie: it does not look like a "
            "Django login page. Give the project's login page (--login-url), or check that no "
            "other program listens on that port."
        )
    body = form.body(csrftoken=csrftoken, username=username, password=password)
    status, session = _request(
        target=target,
        path=form.path,
        method="POST",
        cookies={"csrftoken": csrftoken},
        timeout=timeout,
        body=body,
        headers={"X-CSRFToken": csrftoken, "Content-Type": "application/x-www-form-urlencoded"},
    )
    if status != LOGIN_REDIRECT or "sessionid" not in session:
        reason = {
            200: f"the server refused the username {username!r} or its password",
            403: "the server refused the CSRF token",
        }.get(status, f"the server answered HTTP {status}")
        raise LoadError(f"Login at {login_url} failed: {reason}.")
    # Django rotates the CSRF token at login; the newest one is the one to send.
    return SessionCookies(csrftoken=session.get("csrftoken", csrftoken), sessionid=session["sessionid"])


def _request(
    *,
    target: Target,
    path: str,
    method: str,
    cookies: dict[str, str],
    timeout: float,
    body: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str]]:
    """Send one request to the login page; return its status and the cookies it set."""
    connection = http.client.HTTPConnection(target.host, target.port, timeout=timeout)
    request_headers = dict(headers or {})
    if cookies:
        request_headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in cookies.items())
    try:
        connection.request(method, path, body=body, headers=request_headers)
        response = connection.getresponse()
        response.read()
        set_cookies = response.headers.get_all("Set-Cookie") or []
        return response.status, _parse_set_cookies(set_cookies)
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
