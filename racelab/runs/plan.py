"""What a run against one endpoint of any project is to send, and every rule about its options.

An ``EndpointPlan`` is checked as it is built, so a plan that exists can be run: nothing is sent
and nothing is changed before every rule holds.
"""

import json
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl

from racelab.loadgen.drivers import DriverName
from racelab.loadgen.locust.protocol import LocustMode
from racelab.loadgen.locust.runner import LocustSetup
from racelab.loadgen.login import Credentials
from racelab.loadgen.target import LoadRequest, Target
from racelab.racewindow import park_points
from racelab.racewindow.window import DEFAULT_TIMEOUT_SECONDS, MAX_TIMEOUT_SECONDS
from racelab.runs.checks import Check

DEFAULT_REQUESTS = 100
MAX_REQUESTS = 100_000
MAX_CONCURRENCY = 1_000
METHODS = ("POST", "PUT", "PATCH", "DELETE")
# An HTTP header name (RFC 9110 token).
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# What every driver sets itself, from the login, the body and the connection, and what would
# change how the body is framed (the burst driver holds back its last byte by Content-Length).
_DRIVER_HEADERS = frozenset(
    {
        "cookie", "x-csrftoken", "content-type", "content-length", "host", "connection", "x-lab-run",
        "transfer-encoding", "expect", "te", "upgrade", "trailer", "keep-alive",
    }
)  # fmt: skip


class PlanError(ValueError):
    """The options do not make a plan; the message says which and what to do."""


@dataclass(frozen=True, kw_only=True)
class EndpointPlan:
    target: Target
    # Request i sends requests[i % len(requests)].
    requests: tuple[LoadRequest, ...]
    credentials: Credentials
    driver: DriverName
    count: int = DEFAULT_REQUESTS
    concurrency: int = 3
    race_window: bool = False
    race_window_timeout: float = DEFAULT_TIMEOUT_SECONDS
    race_window_at: str | None = None
    check: Check | None = None
    history: Path | None = None

    def __post_init__(self) -> None:
        check_run_size(requests=self.count, concurrency=self.concurrency)
        forms = len(self.requests)
        if self.driver is DriverName.AB and forms > self.concurrency:
            raise PlanError(
                f"ab sends one body per process, and {forms} --data forms need -c of at least {forms}: "
                "raise -c, or use --driver burst."
            )
        if self.driver is DriverName.AB and self.history is not None:
            raise PlanError("--history records the burst and Locust drivers' requests: add --driver burst.")
        check_output_folder(self.history, option="--history")
        check_race_window(armed=self.race_window, timeout=self.race_window_timeout, at=self.race_window_at)

    @property
    def parties(self) -> int | None:
        """How many requests the armed window waits for: one burst; None when it is not armed."""
        return self.concurrency if self.race_window else None

    @property
    def locust_setup(self) -> LocustSetup:
        """One local worker; in bursts under the race window, where the requests must meet."""
        return LocustSetup(mode=LocustMode.BURST if self.race_window else LocustMode.STEADY)


def check_run_size(*, requests: int, concurrency: int) -> None:
    if not 1 <= requests <= MAX_REQUESTS:
        raise PlanError(f"-n must be from 1 to {MAX_REQUESTS}, not {requests}.")
    if not 1 <= concurrency <= min(requests, MAX_CONCURRENCY):
        raise PlanError(
            f"-c must be from 1 to -n ({requests}) and at most {MAX_CONCURRENCY}, not {concurrency}."
        )


def check_output_folder(path: Path | None, *, option: str) -> None:
    if path is not None and path.is_dir():
        raise PlanError(f"{option} {path} is a folder: give the name of a file to write.")
    if path is not None and not path.parent.is_dir():
        raise PlanError(
            f"{option} {path}: the folder {path.parent} does not exist; create it or pick another."
        )


def check_race_window(*, armed: bool, timeout: float, at: str | None) -> None:
    if not 0 < timeout <= MAX_TIMEOUT_SECONDS:
        raise PlanError(
            f"--race-window-timeout must be above 0 and at most {MAX_TIMEOUT_SECONDS} seconds, not {timeout}."
        )
    if at is None:
        return
    if not armed:
        raise PlanError("--race-window-at says where --race-window holds requests: add --race-window.")
    try:
        park_points.parse(at)
    except ValueError as error:
        raise PlanError(f"--race-window-at: {error}.") from error


def endpoint_requests(
    *,
    path: str,
    method: str,
    forms: list[str],
    json_body: str | None,
    headers: list[str],
) -> tuple[LoadRequest, ...]:
    """The requests ``--path``, ``--method``, ``--data``, ``--json`` and ``--header`` describe."""
    check_path(path, option="--path")
    if method not in METHODS:
        raise PlanError(f"--method must be one of {', '.join(METHODS)}, not {method!r}.")
    if forms and json_body is not None:
        raise PlanError("--data sends a form and --json a JSON body: give one of the two.")
    if json_body is not None:
        try:
            json.loads(json_body)
        except ValueError as error:
            raise PlanError(f"--json is not valid JSON ({error}).") from error
    parsed_headers = tuple(parse_header(header) for header in headers)
    if json_body is not None:
        return (LoadRequest(path=path, method=method, json=json_body, headers=parsed_headers),)
    return tuple(
        LoadRequest(path=path, method=method, fields=parse_form(form), headers=parsed_headers)
        for form in forms or [""]
    )


def check_path(path: str, *, option: str) -> None:
    """A path on the target server: anything else (``@host/...``, ``//host/...``) would let the
    URL it is joined to name another host."""
    if (
        not path.startswith("/")
        or path.startswith("//")
        or any(not 0x21 <= ord(c) <= 0x7E for c in path)
        or "#" in path
        or "@" in path.partition("?")[0]
    ):
        raise PlanError(
            f"{option} {path!r} must be a path on the server, starting with one / (like "
            "/shop/cart/checkout/), in URL-encoded ASCII without spaces, an @ or a #fragment."
        )


def check_session_cookie(value: str) -> None:
    """$RACELAB_SESSION_COOKIE: a cookie value (RFC 6265 cookie-octets), so it cannot end the
    Cookie header or add one."""
    if any(not 0x21 <= ord(c) <= 0x7E or c in '",;\\' for c in value):
        raise PlanError(
            "$RACELAB_SESSION_COOKIE must be a session cookie's value alone: printable ASCII without "
            "spaces, quotes, commas, semicolons or backslashes."
        )


def parse_form(value: str) -> tuple[tuple[str, str], ...]:
    """``--data 'a=1&b=2'``: a URL-encoded form, as curl's --data takes it."""
    if not value:
        return ()
    try:
        return tuple(parse_qsl(value, keep_blank_values=True, strict_parsing=True))
    except ValueError as error:
        raise PlanError(f"--data {value!r} is not a URL-encoded form like 'a=1&b=2' ({error}).") from error


def parse_header(value: str) -> tuple[str, str]:
    """``--header 'Name: value'``, refusing what would break the request or that the drivers set."""
    name, colon, text = value.partition(":")
    text = text.strip()
    if not colon or not _HEADER_NAME.fullmatch(name) or any(not 0x20 <= ord(c) <= 0x7E for c in text):
        raise PlanError(
            f"--header {value!r} is not a header: write 'Name: value', on one line, in printable ASCII."
        )
    if name.lower() in _DRIVER_HEADERS:
        raise PlanError(
            f"--header {name}: splatter sets it itself (cookies and the CSRF token from the login, the "
            "body's type and length); use --username, --data or --json instead."
        )
    return name, text
