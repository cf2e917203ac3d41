"""bench/throughput.py lets a run through only if every answer it did not count as a give-up was 2xx."""

import re

import pytest

from accounts import withdrawals
from bench import throughput
from racelab.loadgen.ab import AbReport

pytestmark = pytest.mark.database_independent

URL = "http://127.0.0.1:8000/accounts/withdraw/?strategy=optimistic"


def ab_report(*, complete: int = 100, non_2xx: int = 0, failed_connect: int = 0) -> AbReport:
    return AbReport(
        complete=complete,
        failed=failed_connect,
        failed_connect=failed_connect,
        failed_receive=0,
        failed_length=0,
        failed_exceptions=0,
        non_2xx=non_2xx,
        requests_per_second=500.0,
        mean_ms=8.0,
        percentiles_ms={},
    )


def test_the_bench_counts_the_log_line_the_withdrawal_service_writes():
    assert throughput.GAVE_UP == withdrawals.GAVE_UP


@pytest.mark.parametrize(("non_2xx", "logged"), [(0, 0), (2, 2)])
def test_answers_that_the_server_logged_as_give_ups_are_counted(non_2xx, logged):
    report = ab_report(non_2xx=non_2xx)

    assert throughput.checked_gave_up(report, requests=100, logged=logged, url=URL) == logged


@pytest.mark.parametrize(
    ("report", "logged"),
    [
        (ab_report(non_2xx=1), 0),  # a 4xx or 5xx that is not a give-up
        (ab_report(non_2xx=3), 2),
        (ab_report(non_2xx=1), 2),  # the log and ab disagree
        (ab_report(failed_connect=1), 0),
        (ab_report(complete=99), 0),
    ],
)
def test_any_other_failure_stops_the_run_and_says_what_happened(report, logged):
    with pytest.raises(
        SystemExit, match=rf"^{re.escape(URL)}: {report.non_2xx} non-2xx \({logged} of them gave up"
    ):
        throughput.checked_gave_up(report, requests=100, logged=logged, url=URL)
