"""Fire the load with Apache Bench and read its report."""

import functools
import os
import re
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from racelab.loadgen.errors import LoadError
from racelab.loadgen.login import SessionCookies
from racelab.loadgen.target import FORM
from racelab.loadgen.tools import require_tool, run_tool

PERCENTILES = (50, 90, 99, 100)
# ab gives up on a request after this long (-s) and counts it unanswered: indeterminate.
RESPONSE_TIMEOUT_SECONDS = 30
# The whole run is stopped after this long, so a load never outlives its purpose.
RUN_TIMEOUT_SECONDS = 600


@dataclass(frozen=True)
class AbReport:
    complete: int
    failed: int
    failed_connect: int
    failed_receive: int
    failed_length: int
    failed_exceptions: int
    non_2xx: int
    requests_per_second: float
    mean_ms: float
    percentiles_ms: dict[int, int]
    # Status code of each non-2xx answer, from ab's -v 2 warnings.
    non_2xx_statuses: Counter = field(default_factory=Counter)
    # Requests whose response header arrived, from ab's -v 2 log; None without that log.
    answered: int | None = None

    @property
    def ok(self) -> int:
        return self.complete - self.non_2xx - self.failed_unanswered

    @property
    def failed_unanswered(self) -> int:
        """Requests that got no answer. Length failures are answered requests that merely
        differed in length from the first (balances do), so they are not counted.

        ab's failure breakdown counts events, not requests (one reset connection is both a
        Receive and an Exceptions failure), so the -v 2 header log is used when there is one.
        """
        if self.answered is not None:
            return self.complete - self.answered
        return self.failed_connect + self.failed_receive + self.failed_exceptions

    @property
    def client_errors(self) -> int:
        return sum(n for status, n in self.non_2xx_statuses.items() if status.startswith("4"))

    @property
    def server_errors(self) -> int:
        return self.non_2xx - self.client_errors

    @property
    def indeterminate(self) -> int:
        return self.failed_unanswered + self.server_errors


@functools.cache
def ab_accepts_variable_length(ab: str) -> bool:
    usage = run_tool([ab, "-h"], timeout=10)
    return bool(re.search(r"^\s+-l\s", usage.stdout + usage.stderr, re.MULTILINE))


def run_ab(
    *,
    url: str,
    cookies: SessionCookies,
    requests: int,
    concurrency: int,
    form: str | None,
    workdir: Path,
    method: str = "POST",
    content_type: str = FORM,
    headers: tuple[tuple[str, str], ...] = (),
    log_responses: bool = True,
    run_token: str | None = None,
) -> tuple[list[str], AbReport]:
    """Run ``ab -n requests -c concurrency`` sending the body ``form`` (of ``content_type``, a
    url-encoded form unless told) to ``url`` (POSTed, or with ``method``), with ``headers`` too;
    return argv and report.

    ``form=None`` sends GETs instead, with no body. ``log_responses=False`` drops ab's
    per-response log (``-v 2``), which costs ab time at high rates: benchmarks want that, but the
    report then cannot tell 4xx from 5xx (``non_2xx_statuses`` stays empty). ``run_token`` goes
    out as X-Lab-Run, for the server to stamp each request's timings.
    """
    ab = require_tool("ab")
    # -v 2 makes ab print the status of every non-2xx answer, so 409s and 500s can be told apart.
    log = ["-v", "2"] if log_responses else []
    post = []
    if form is not None:
        # A file of its own: ab processes run side by side in one workdir (AbDriver).
        handle, name = tempfile.mkstemp(dir=workdir, prefix="request-", suffix=".form")
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(form)
        body = Path(name)
        # ab sends a body with -p (POST) or -u (PUT); -m after -u renames PUT to the method.
        send = ["-p", str(body)] if method == "POST" else ["-u", str(body), "-m", method]
        post = [
            "-H", cookies.csrf_header,
            *send,
            "-T", content_type,
        ]  # fmt: skip
    argv = [
        ab,
        "-n", str(requests),
        "-c", str(concurrency),
        "-s", str(RESPONSE_TIMEOUT_SECONDS),
        *log,
        # -r: a reset connection (a worker killed mid-request) is counted, not fatal to the run.
        "-r",
        # ab keeps only the last -C, so both cookies travel in one.
        *(["-C", cookies.cookie_header] if cookies.cookie_header else []),
        *(["-H", f"X-Lab-Run: {run_token}"] if run_token else []),
        *[option for name, value in headers for option in ("-H", f"{name}: {value}")],
        *post,
    ]  # fmt: skip
    if ab_accepts_variable_length(ab):
        argv.append("-l")
    argv.append(url)
    result = run_tool(argv, timeout=RUN_TIMEOUT_SECONDS)
    if result.returncode != 0 or "Complete requests:" not in result.stdout:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise LoadError(f"ab failed (exit {result.returncode}): {' '.join(detail[-3:])}")
    return _redact(argv, cookies), parse_ab_report(result.stdout)


def merged_reports(reports: list[AbReport]) -> AbReport:
    """One report for ab processes run side by side against one server: counts and rates summed,
    the mean weighted by requests, and each percentile the highest of theirs (a bound on the
    merged distribution, which ab's summaries cannot give)."""
    if len(reports) == 1:
        return reports[0]
    complete = sum(report.complete for report in reports)
    answered = [report.answered for report in reports]
    return AbReport(
        complete=complete,
        failed=sum(report.failed for report in reports),
        failed_connect=sum(report.failed_connect for report in reports),
        failed_receive=sum(report.failed_receive for report in reports),
        failed_length=sum(report.failed_length for report in reports),
        failed_exceptions=sum(report.failed_exceptions for report in reports),
        non_2xx=sum(report.non_2xx for report in reports),
        requests_per_second=sum(report.requests_per_second for report in reports),
        mean_ms=sum(report.mean_ms * report.complete for report in reports) / complete if complete else 0.0,
        percentiles_ms={
            percentile: max(report.percentiles_ms.get(percentile, 0) for report in reports)
            for percentile in set().union(*(report.percentiles_ms for report in reports))
        },
        non_2xx_statuses=sum((report.non_2xx_statuses for report in reports), start=Counter()),
        answered=None if None in answered else sum(answered),
    )


def _redact(argv: list[str], cookies: SessionCookies) -> list[str]:
    if not cookies.sessionid:
        return argv
    return [arg.replace(cookies.sessionid, "<sessionid>") for arg in argv]


def _number(pattern: str, text: str, default: float | None = None) -> float:
    match = re.search(pattern, text, re.MULTILINE)
    if match is None:
        if default is None:
            raise LoadError(f"Could not read {pattern!r} from ab's report.")
        return default
    return float(match.group(1))


def parse_ab_report(text: str) -> AbReport:
    breakdown = re.search(r"\(Connect: (\d+), Receive: (\d+), Length: (\d+), Exceptions: (\d+)\)", text)
    connect, receive, length, exceptions = (int(n) for n in breakdown.groups()) if breakdown else (0,) * 4
    percentiles = {
        int(p): int(ms)
        for p, ms in re.findall(r"^\s+(\d+)%\s+(\d+)", text, re.MULTILINE)
        if int(p) in PERCENTILES
    }
    return AbReport(
        complete=int(_number(r"^Complete requests:\s+(\d+)", text)),
        failed=int(_number(r"^Failed requests:\s+(\d+)", text)),
        failed_connect=connect,
        failed_receive=receive,
        failed_length=length,
        failed_exceptions=exceptions,
        non_2xx=int(_number(r"^Non-2xx responses:\s+(\d+)", text, default=0)),
        requests_per_second=_number(r"^Requests per second:\s+([\d.]+)", text),
        mean_ms=_number(r"^Time per request:\s+([\d.]+) \[ms\] \(mean\)$", text),
        percentiles_ms=percentiles,
        non_2xx_statuses=Counter(
            re.findall(r"^WARNING: Response code not 2xx \((\d+)\)", text, re.MULTILINE)
        ),
        answered=_answered(text),
    )


def _answered(text: str) -> int | None:
    # At -v 2 ab prints the request it sends ("INFO: POST header ==") once, then "LOG: header
    # received:" for every response header that arrives.
    if not re.search(r"INFO: [A-Z]+ header == $", text, re.MULTILINE):
        return None
    return len(re.findall(r"^LOG: header received:$", text, re.MULTILINE))
