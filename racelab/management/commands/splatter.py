import json
import os
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError
from tabulate import tabulate

from racelab.conf import login_form
from racelab.loadgen.credentials import PASSWORD_ENV_VAR, SESSION_ENV_VAR
from racelab.loadgen.drivers import DriverName, default_driver
from racelab.loadgen.errors import LoadError
from racelab.loadgen.locust.protocol import LocustMode
from racelab.loadgen.locust.runner import DEFAULT_MASTER_PORT, parse_bind
from racelab.loadgen.login import Credentials, LoginForm
from racelab.loadgen.outcomes import Outcome
from racelab.loadgen.target import parse_target
from racelab.management.arguments import ascii_float, ascii_int, parse_drivers, parse_levels
from racelab.management.confirmation import add_no_input_argument
from racelab.management.database_errors import database_error_message
from racelab.management.password_input import read_password
from racelab.racewindow.barrier import DEFAULT_TIMEOUT_SECONDS
from racelab.runs.checks import Check, CheckError
from racelab.runs.endpoint import (
    EndpointRun,
    barrier_sentence,
    endpoint_document,
    run_endpoint,
    unjudged_reason,
)
from racelab.runs.plan import (
    DEFAULT_REQUESTS,
    EndpointPlan,
    LocustOptions,
    PlanError,
    check_path,
    check_session_cookie,
    endpoint_requests,
    project_cookie_names,
    project_credentials,
)

# As argparse exits on a usage error; 1 is the verdict "violations found", as `makemigrations --check`.
USAGE_ERROR = 2
VIOLATIONS_FOUND = 1
# The login form's options, which need --username.
LOGIN_OPTIONS = ("login_url", "username_field", "password_field")
# The options only a run at --path reads.
ENDPOINT_OPTIONS = (
    "method",
    "data",
    "json",
    "header",
    "login_url",
    "username_field",
    "password_field",
    "check",
)


class Command(BaseCommand):
    help = (
        "Fire concurrent requests at an endpoint of a running server of this project (--path), with "
        "Apache Bench, the built-in last-byte-synchronised burst driver, or Locust; hold them at a "
        "table in race mode (--race-window); then count violations with --check: exit 1 when there "
        "are any, 0 when none, 2 when the run could not be made. The password comes from "
        f"${PASSWORD_ENV_VAR}."
    )
    # When --locust-mode defaults to burst: where the requests must meet.
    locust_burst_default = "with --race-window"

    def add_arguments(self, parser):
        add = parser.add_argument
        add("--url", default="http://127.0.0.1:8000", help="The server (default: %(default)s).")
        add("--path", help="The endpoint, like /shop/cart/checkout/ (a query may follow).")
        add("--method", help="POST (the default), PUT, PATCH or DELETE.")
        add(
            "--data",
            action="append",
            default=[],
            metavar="FORM",
            help="A URL-encoded form to send, like 'a=1&b=2'; repeat it and request i sends form i mod n.",
        )
        add("--json", metavar="BODY", help="A JSON body to send instead of a form.")
        add(
            "--header",
            action="append",
            default=[],
            metavar="'NAME: VALUE'",
            help="A header to send; repeatable.",
        )
        add(
            "--username",
            help="Log in as this user through the project's login form, the password from "
            f"${PASSWORD_ENV_VAR}; without it, requests carry the session cookie in ${SESSION_ENV_VAR}, "
            "or none.",
        )
        add("--login-url", metavar="PATH", help="The login form (default: settings.LOGIN_URL).")
        add("--username-field", help="The login form's user field (default: username).")
        add(
            "--password-field",
            help="The login form's password field (default: password).",
        )
        add("-n", "--requests", type=ascii_int, help=f"Requests to send (default: {DEFAULT_REQUESTS}).")
        add(
            "-c",
            "--concurrency",
            type=parse_levels,
            default=(3,),
            help="Requests in flight at once: the burst size, the race window's parties (default: 3).",
        )
        add(
            "--driver",
            type=parse_drivers,
            help="ab (the default; burst when ab is missing), burst (last-byte synchronised) or locust.",
        )
        add("--history", type=Path, metavar="FILE.json", help="Burst, locust: save every request's outcome.")
        add("--race-window", action="store_true", help="Arm race mode: hold each burst at its park point.")
        add(
            "--race-window-timeout",
            type=ascii_float,
            default=DEFAULT_TIMEOUT_SECONDS,
            help="With --race-window: seconds a held request waits for the next (default: %(default)s).",
        )
        add(
            "--race-window-at",
            metavar="POINTS",
            help="With --race-window: where the server holds each request, "
            "table[:read|write|any[:occurrence]] (default: the server's RACE_WINDOW_AT).",
        )
        add(
            "--check",
            metavar="SQL|MODULE:FUNCTION",
            help="After the run, count the violations: a query answering one number, or a function "
            "returning it; exit 1 when it is above 0.",
        )
        add("--format", choices=["table", "json"], default="table", help="A table, or JSON.")
        add("--allow-remote", action="store_true", help="Allow a non-loopback target (a server you own).")
        add_no_input_argument(parser, help=f"Never prompt: take the password from ${PASSWORD_ENV_VAR}.")
        self.add_locust_arguments(parser)

    def add_locust_arguments(self, parser) -> None:
        locust = parser.add_argument_group("the Locust driver (--driver locust, docs/locust.md)")
        locust.add_argument(
            "--locust-mode",
            choices=list(LocustMode),
            help="steady (-n requests from -c users, as ab) or burst (bursts of -c released together "
            f"across the workers); default: burst {self.locust_burst_default}, steady otherwise.",
        )
        workers = locust.add_mutually_exclusive_group()
        workers.add_argument(
            "--locust-workers",
            type=ascii_int,
            metavar="N",
            help="Start N worker processes here (default: 1).",
        )
        workers.add_argument(
            "--expect-workers",
            type=ascii_int,
            metavar="N",
            help="Start none: wait for N workers started elsewhere (locust --worker) to connect to "
            "--locust-bind.",
        )
        locust.add_argument(
            "--locust-bind",
            metavar="ADDRESS[:PORT]",
            help=f"With --expect-workers: where the master listens (port default {DEFAULT_MASTER_PORT}); "
            "a non-loopback address needs --allow-remote.",
        )
        locust.add_argument(
            "--locust-output",
            type=Path,
            metavar="DIR",
            help="Keep Locust's CSV, JSON and HTML reports and logs here, a run-NNN folder per command "
            "(default: a temporary folder, removed).",
        )

    def handle(self, *, interactive, **options):
        try:
            run = run_endpoint(plan=self.endpoint_plan(options, interactive=interactive))
        except (PlanError, LoadError, CheckError) as error:
            raise CommandError(str(error), returncode=USAGE_ERROR) from error
        except DatabaseError as error:
            raise CommandError(database_error_message(error), returncode=USAGE_ERROR) from error
        except CommandError as error:
            raise CommandError(str(error), returncode=USAGE_ERROR) from error
        if options["format"] == "json":
            self.stdout.write(json.dumps(endpoint_document(run), indent=2))
        else:
            self.stdout.write(endpoint_table(run))
        reason = unjudged_reason(run)
        if reason is not None:
            raise CommandError(reason, returncode=USAGE_ERROR)
        if run.violations:
            sys.exit(VIOLATIONS_FOUND)

    def endpoint_plan(self, options: dict, *, interactive: bool) -> EndpointPlan:
        if options["path"] is None:
            raise PlanError("Name the endpoint to fire at: --path /shop/cart/checkout/ (and --data, --json).")
        levels, drivers = options["concurrency"], options["driver"]
        if len(levels) > 1 or (drivers is not None and len(drivers) > 1):
            raise PlanError("With --path, give one -c level and one driver.")
        if drivers is None:
            driver, note = default_driver()
            if note:
                self.stderr.write(note, style_func=self.style.WARNING)
        else:
            (driver,) = drivers
        requests = endpoint_requests(
            path=options["path"],
            method=options["method"] or "POST",
            forms=options["data"],
            json_body=options["json"],
            headers=options["header"],
        )
        target = parse_target(options["url"], allow_remote=options["allow_remote"])
        locust = locust_options(options)
        check = None if options["check"] is None else Check(options["check"])
        names = project_cookie_names()
        credentials = project_credentials(self._credentials(options, interactive=interactive), names)
        if credentials.sessionid and driver == DriverName.AB:
            raise PlanError(
                f"ab takes a cookie on its command line, where ps would show ${SESSION_ENV_VAR}: use "
                "--driver burst (or locust) with a session cookie."
            )
        return EndpointPlan(
            target=target,
            requests=requests,
            credentials=credentials,
            driver=DriverName(driver),
            count=DEFAULT_REQUESTS if options["requests"] is None else options["requests"],
            concurrency=levels[0],
            race_window=options["race_window"],
            race_window_timeout=options["race_window_timeout"],
            race_window_at=options["race_window_at"],
            check=check,
            history=options["history"],
            locust=locust,
            cookie_names=names,
        )

    def _credentials(self, options: dict, *, interactive: bool) -> Credentials:
        username = options["username"]
        if not username:
            login_options = [name for name in LOGIN_OPTIONS if options[name] is not None]
            if login_options:
                option = "--" + login_options[0].replace("_", "-")
                raise PlanError(f"{option} describes the login form: add --username.")
            sessionid = os.environ.get(SESSION_ENV_VAR, "")
            check_session_cookie(sessionid)
            return Credentials(form=None, sessionid=sessionid)
        try:
            form = login_form() if options["login_url"] is None else LoginForm(path=options["login_url"])
        except ValueError as error:
            raise PlanError(str(error)) from error
        check_path(form.path, option="--login-url" if options["login_url"] else "settings.LOGIN_URL")
        form = LoginForm(
            path=form.path,
            username_field=options["username_field"] or form.username_field,
            password_field=options["password_field"] or form.password_field,
        )
        password = read_password(no_input=not interactive, ask_twice=False)
        return Credentials(usernames=(username,), password=password, form=form)


def locust_options(options: dict) -> LocustOptions:
    """The Locust options as given; --locust-bind beyond loopback only with --allow-remote."""
    mode, bind = options["locust_mode"], options["locust_bind"]
    return LocustOptions(
        mode=None if mode is None else LocustMode(mode),
        workers=options["locust_workers"],
        expect_workers=options["expect_workers"],
        bind=None if bind is None else parse_bind(bind, allow_remote=options["allow_remote"]),
        output=options["locust_output"],
    )


def endpoint_table(run: EndpointRun) -> str:
    plan, totals = run.plan, run.load.totals
    request = plan.requests[0]
    lines = [
        f"{request.method} {request.path} at {plan.target.base_url}: {run.load.requests} requests, "
        f"{plan.concurrency} at once, driver {plan.driver}, in {run.elapsed:.2f} s.",
        tabulate(
            [
                ("ok (2xx)", totals[Outcome.OK]),
                ("refused (4xx, or never sent)", totals[Outcome.REFUSED]),
                ("indeterminate (5xx, timeout, reset)", totals[Outcome.INDETERMINATE]),
                ("of which server errors (5xx)", run.load.server_errors),
            ],
            headers=["outcome", "requests"],
        ),
    ]
    if run.barrier is not None:
        lines.append(barrier_sentence(run.barrier))
    if run.violations is not None:
        verdict = "the race reproduced" if run.violations else "no violation: the endpoint held"
        lines.append(f"Check: {run.violations} violation(s), {verdict}.")
    return "\n".join(lines)
