"""The retry pause of every strategy that lets the database refuse it: it spreads contenders
over a span that grows with the attempt number and with how long the refused attempt took."""

import time

import pytest
from django.db import OperationalError

from races import serializable
from races.serializable import retried, retry_span

pytestmark = pytest.mark.database_independent


def test_the_span_doubles_per_attempt_up_to_32_steps():
    spans = [retry_span(attempt=attempt, lasted=0.002) for attempt in range(1, 9)]

    assert spans == pytest.approx([0.004, 0.008, 0.016, 0.032, 0.064, 0.064, 0.064, 0.064])


@pytest.mark.parametrize(
    ("lasted", "span"),
    [(0.0001, 0.064), (0.002, 0.064), (0.010, 0.320), (0.050, 1.6), (5.0, 1.6)],
)
def test_a_slower_attempt_spreads_its_retry_wider_within_bounds(lasted, span):
    assert retry_span(attempt=20, lasted=lasted) == pytest.approx(span)


class _SerializationFailure(Exception):
    sqlstate = "40001"


def test_retried_backs_off_by_the_refused_attempts_own_duration(monkeypatch):
    pauses = []
    monkeypatch.setattr(serializable, "back_off", lambda **pause: pauses.append(pause))
    refusals = iter([True, False])

    def attempt() -> str:
        time.sleep(0.03)
        if next(refusals):
            failure = OperationalError("could not serialize access")
            failure.__cause__ = _SerializationFailure()
            raise failure
        return "done"

    assert retried(attempt, what="a test", gave_up="a test gave up") == "done"
    (pause,) = pauses
    assert pause["attempt"] == 1
    assert 0.03 <= pause["lasted"] < 1
