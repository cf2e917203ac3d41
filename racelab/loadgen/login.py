"""Log in the way the blog's splatter.sh does, with real curl: CSRF cookie first, then the session.

Secrets never reach an argv that ``ps`` shows: the password, and the CSRF header with it, go to
curl as a config file on its standard input (``-K -``).
"""

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from racelab.loadgen.errors import LoadError
from racelab.loadgen.target import Target
from racelab.loadgen.tools import require_tool, run_tool

CURL_COULD_NOT_CONNECT = 7
CURL_TIMED_OUT = 28


@dataclass(frozen=True)
class SessionCookies:
    csrftoken: str
    sessionid: str

    @property
    def cookie_header(self) -> str:
        return f"sessionid={self.sessionid}; csrftoken={self.csrftoken}"


def log_in(
    *, target: Target, username: str, password: str, workdir: Path, timeout: float = 10
) -> SessionCookies:
    curl = require_tool("curl")
    anonymous_jar = workdir / "cookies.txt"
    session_jar = workdir / "new_cookies.txt"
    common = [curl, "--silent", "--show-error", "--max-time", str(timeout), "--output", "/dev/null"]

    page = run_tool(
        [*common, "--cookie-jar", str(anonymous_jar), "--write-out", "%{http_code}", target.login_url],
        timeout=timeout + 5,
    )
    _raise_for_curl(page.returncode, page.stderr, target=target)
    csrftoken = read_cookie_jar(anonymous_jar).get("csrftoken")
    if page.stdout != "200" or not csrftoken:
        raise LoadError(
            f"{target.login_url} answered HTTP {page.stdout} without a CSRF cookie: it does not "
            "look like this lab's login page. Is another program listening on that port?"
        )

    body = urlencode({"csrfmiddlewaretoken": csrftoken, "username": username, "password": password})
    config = f'header = "X-CSRFToken: {csrftoken}"\ndata-binary = "{body}"\n'
    login = run_tool(
        [
            *common,
            "--cookie", str(anonymous_jar),
            "--cookie-jar", str(session_jar),
            "--header", "Content-Type: application/x-www-form-urlencoded",
            "--write-out", "%{http_code}",
            "--config", "-",
            target.login_url,
        ],
        stdin=config,
        timeout=timeout + 5,
    )  # fmt: skip
    _raise_for_curl(login.returncode, login.stderr, target=target)
    cookies = read_cookie_jar(session_jar)
    if login.stdout != "302" or "sessionid" not in cookies:
        reason = {
            "200": f"the server refused the username {username!r} or its password",
            "403": "the server refused the CSRF token",
        }.get(login.stdout, f"the server answered HTTP {login.stdout}")
        raise LoadError(f"Login at {target.login_url} failed: {reason}.")
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


def _raise_for_curl(returncode: int, stderr: str, *, target: Target) -> None:
    if returncode == 0:
        return
    if returncode in (CURL_COULD_NOT_CONNECT, CURL_TIMED_OUT):
        raise LoadError(
            f"Cannot reach the lab at {target.login_url}: is Gunicorn running? Start it with "
            f"`gunicorn -c gunicorn.conf.py --bind {target.host}:{target.port}`."
        )
    raise LoadError(f"curl failed on {target.login_url} (exit {returncode}): {stderr.strip()}")
