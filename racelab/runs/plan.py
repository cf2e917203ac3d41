"""What a run against one endpoint of any project is to send, and every rule about its options.

An ``EndpointPlan`` is checked as it is built, so a plan that exists can be run: nothing is sent
and nothing is changed before every rule holds.
"""

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import parse_qsl

from racelab.conf import cookie_names, login_form
from racelab.loadgen.credentials import SESSION_ENV_VAR
from racelab.loadgen.drivers import DriverName
from racelab.loadgen.locust.protocol import LocustMode
from racelab.loadgen.locust.runner import LocustSetup, MasterAddress
from racelab.loadgen.login import CookieNames, Credentials
from racelab.loadgen.target import LoadRequest, Target
from racelab.racewindow import park_points
from racelab.racewindow.window import DEFAULT_TIMEOUT_SECONDS, MAX_TIMEOUT_SECONDS
from racelab.runs.checks import Check

DEFAULT_REQUESTS = 100
MAX_REQUESTS = 100_000
MAX_CONCURRENCY = 1_000
METHODS = ("POST", "PUT", "PATCH", "DELETE")
MAX_LOCUST_WORKERS = 64
DEFAULT_LOCUST_WORKERS = 1
LOCUST_OPTIONS = "--locust-mode, --locust-workers, --expect-workers, --locust-bind and --locust-output"
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


def project_cookie_names() -> CookieNames:
    """The project's CSRF and session names, from its settings (racelab.conf.cookie_names)."""
    try:
        return cookie_names()
    except ValueError as error:
        raise PlanError(str(error)) from error


@dataclass(frozen=True, kw_only=True)
class LocustOptions:
    """The Locust driver's options as given (None where one was not): --locust-mode,
    --locust-workers, --expect-workers, --locust-bind (parsed by ``parse_bind``) and
    --locust-output. The same rules and defaults for a run at --path and the demo's races."""

    mode: LocustMode | None = None
    workers: int | None = None
    expect_workers: int | None = None
    bind: MasterAddress | None = None
    output: Path | None = None

    @property
    def given(self) -> bool:
        return any(
            option is not None
            for option in (self.mode, self.workers, self.expect_workers, self.bind, self.output)
        )

    def setup(self, *, default_mode: LocustMode) -> LocustSetup:
        """How the Locust driver runs: in ``default_mode`` unless told; one local worker unless
        told, none when workers started elsewhere are expected."""
        return LocustSetup(
            mode=default_mode if self.mode is None else self.mode,
            local_workers=None
            if self.expect_workers is not None
            else (self.workers or DEFAULT_LOCUST_WORKERS),
            expect_workers=self.expect_workers,
            bind=self.bind,
            output=self.output,
        )

    def check(self, *, locust: bool, levels: Iterable[int]) -> None:
        """Every rule about the options: given only with the Locust driver (``locust``), workers
        from one place, a master address with expected workers, and at most as many workers as
        each -c level has requests."""
        if not locust:
            if self.given:
                raise PlanError(f"{LOCUST_OPTIONS} configure the Locust driver: add --driver locust.")
            return
        if self.expect_workers is not None and self.workers is not None:
            raise PlanError(
                "--expect-workers waits for workers started elsewhere and --locust-workers starts them "
                "here: give one of the two."
            )
        if (self.expect_workers is None) != (self.bind is None):
            raise PlanError(
                "--expect-workers N and --locust-bind ADDRESS[:PORT] go together: the master listens "
                "there for the N workers started elsewhere."
            )
        given = self.expect_workers if self.expect_workers is not None else self.workers
        workers = DEFAULT_LOCUST_WORKERS if given is None else given
        if not 1 <= workers <= MAX_LOCUST_WORKERS:
            option = "--locust-workers" if self.expect_workers is None else "--expect-workers"
            raise PlanError(f"{option} must be from 1 to {MAX_LOCUST_WORKERS}, not {workers}.")
        for level in levels:
            if level < workers:
                raise PlanError(
                    f"-c {level} is fewer than the {workers} Locust workers: each worker needs a request "
                    "of every burst (a user, in steady mode); raise -c or use fewer workers."
                )
        output = self.output
        if output is not None and (not output.parent.is_dir() or (output.exists() and not output.is_dir())):
            raise PlanError(
                f"--locust-output {output}: give a folder, new or existing, inside a folder that exists."
            )


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
    locust: LocustOptions = field(default_factory=LocustOptions)
    # The names the project's CSRF check and sessions go by (project_credentials gives them to
    # the credentials).
    cookie_names: CookieNames = field(default_factory=project_cookie_names)

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
        self.locust.check(locust=self.driver is DriverName.LOCUST, levels=(self.concurrency,))
        check_csrf_header_not_given(self.requests, names=self.cookie_names)

    @property
    def parties(self) -> int | None:
        """How many requests the armed window waits for: one burst; None when it is not armed."""
        return self.concurrency if self.race_window else None

    @property
    def locust_setup(self) -> LocustSetup:
        """In bursts under the race window, where the requests must meet, steady otherwise,
        unless --locust-mode says; one local worker unless told."""
        return self.locust.setup(default_mode=LocustMode.BURST if self.race_window else LocustMode.STEADY)


def project_credentials(credentials: Credentials, names: CookieNames) -> Credentials:
    """``credentials`` with the project's names. Where the project keeps its CSRF secret in the
    session, a client that does not log in needs a session, and a page to read its token from:
    the login page (settings.LOGIN_URL)."""
    if not names.csrf_use_sessions or credentials.form is not None:
        return replace(credentials, cookie_names=names)
    if not credentials.sessionid:
        raise PlanError(
            "This project keeps its CSRF secret in the session (settings.CSRF_USE_SESSIONS = True), so a "
            "request without a session cannot pass its CSRF check: log in with --username, or give a "
            f"session cookie's value in ${SESSION_ENV_VAR}."
        )
    try:
        page = login_form().path
    except ValueError as error:
        raise PlanError(str(error)) from error
    check_path(page, option="settings.LOGIN_URL")
    return replace(credentials, cookie_names=names, token_page=page)


def check_csrf_header_not_given(requests: tuple[LoadRequest, ...], *, names: CookieNames) -> None:
    for request in requests:
        for name, _ in request.headers:
            if name.lower() == names.csrf_header.lower():
                raise PlanError(
                    f"--header {name}: it is this project's CSRF header (settings.CSRF_HEADER_NAME), "
                    "which splatter sets itself from the login."
                )


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
    # Each form goes out as typed; its fields are for the run's records.
    return tuple(
        LoadRequest(path=path, method=method, fields=parse_form(form), raw_form=form, headers=parsed_headers)
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
    """``--data 'a=1&b=2'``: a URL-encoded form, as curl's --data takes it (and sends it: as
    typed, in UTF-8)."""
    if not value:
        return ()
    try:
        value.encode()
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
