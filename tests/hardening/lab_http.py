"""Plain HTTP requests to the lab's real Gunicorn, with exactly the headers a test chooses."""

import http.client
from dataclasses import dataclass
from http.cookies import Morsel, SimpleCookie
from urllib.parse import urlsplit

from racelab.loadgen.login import SessionCookies

TIMEOUT_SECONDS = 15


@dataclass(frozen=True)
class Reply:
    status: int
    text: str
    set_cookies: list[str]


def request(
    base_url: str,
    method: str,
    path: str,
    *,
    body: bytes | str = b"",
    headers: dict[str, str] | None = None,
    session: SessionCookies | None = None,
    csrf: bool = True,
) -> Reply:
    """Send one request; ``session`` adds its cookies and, with ``csrf``, the X-CSRFToken header."""
    parts = urlsplit(base_url)
    headers = dict(headers or {})
    if session is not None:
        headers.setdefault("Cookie", session.cookie_header)
        if csrf:
            headers.setdefault("X-CSRFToken", session.csrftoken)
    if body and method == "POST":
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT_SECONDS)
    try:
        connection.request(method, path, body=body or None, headers=headers)
        response = connection.getresponse()
        return Reply(
            status=response.status,
            text=response.read().decode(errors="replace"),
            set_cookies=response.headers.get_all("Set-Cookie") or [],
        )
    finally:
        connection.close()


def set_cookie(set_cookies: list[str], name: str) -> Morsel:
    """Cookie ``name`` as one of the Set-Cookie headers sets it."""
    for header in set_cookies:
        cookie = SimpleCookie(header)
        if name in cookie:
            return cookie[name]
    raise AssertionError(f"no Set-Cookie for {name} in {set_cookies}")


def cookie_attributes(set_cookies: list[str], name: str) -> set[str]:
    """The lower-cased attributes (``httponly``, ``samesite``, ...) set on cookie ``name``."""
    return {key for key, value in set_cookie(set_cookies, name).items() if value}
