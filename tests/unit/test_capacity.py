"""The capacity scenario in one process: each strategy, its refusals, the endpoint, the checker,
the commands, and the race held open at the SQL level with no hook in the code."""

import json
import logging
import re
import time

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import DatabaseError, OperationalError, connection
from django.urls import reverse
from django.utils import timezone

from racelab.racewindow.barrier import armed
from racelab.racewindow.statements import holding
from races import serializable
from races.refusals import NotFound, Refused
from scenarios.capacity import participation
from scenarios.capacity.audit import OVERFULL, audit_activities
from scenarios.capacity.forms import ACTIVITY_ERROR, STRATEGY_ERROR
from scenarios.capacity.models import Activity, Participant
from scenarios.capacity.participation import (
    SAFE_STRATEGIES,
    Strategy,
    join,
)
from scenarios.capacity.provisioning import LAB_ACTIVITY, seed_activity
from scenarios.capacity.scenario import CAPACITY
from tests.concurrency import run_concurrently
from tests.helpers import PASSWORD, STARTED_AT
from tests.json_schema import valid

URL = reverse("join-activity")


def strategy_params(strategies) -> list:
    """``serializable`` opens ``transaction.atomic(durable=True)``, which cannot run inside the
    transaction a default test is wrapped in."""
    return [
        pytest.param(
            strategy,
            marks=pytest.mark.django_db(transaction=strategy is Strategy.SERIALIZABLE),
            id=strategy.value,
        )
        for strategy in strategies
    ]


ALL = strategy_params(Strategy)
SAFE = [pytest.param(strategy, id=strategy.value) for strategy in SAFE_STRATEGIES]


@pytest.fixture
def user(db) -> User:
    return User.objects.create_user(username="alice", password=PASSWORD)


@pytest.fixture
def activity(db) -> Activity:
    seed_activity(limit=1)
    return Activity.objects.get(name=LAB_ACTIVITY)


def join_lab_activity(user: User, strategy: Strategy):
    return join(user=user, activity=LAB_ACTIVITY, strategy=strategy, request_started_at=STARTED_AT)


@pytest.mark.parametrize("strategy", ALL)
def test_each_strategy_takes_the_place_once_and_then_refuses(user, activity, strategy):
    joined = join_lab_activity(user, strategy)

    (participant,) = Participant.objects.all()
    assert (joined.participant_id, joined.place, joined.max_participants) == (participant.pk, 1, 1)
    assert (participant.activity_id, participant.user_id) == (activity.pk, user.pk)
    assert (participant.strategy, participant.request_started_at) == (strategy.value, STARTED_AT)
    with pytest.raises(Refused, match=f"Activity {LAB_ACTIVITY} is full: 1 of 1 place"):
        join_lab_activity(user, strategy)
    assert Participant.objects.count() == 1


@pytest.mark.parametrize("strategy", ALL)
def test_an_activity_of_three_places_counts_them(user, strategy):
    seed_activity(limit=3)
    places = [join_lab_activity(user, strategy).place for _ in range(3)]

    assert places == [1, 2, 3]
    with pytest.raises(Refused, match="is full: 3 of 3 place"):
        join_lab_activity(user, strategy)


@pytest.mark.parametrize("strategy", ALL)
def test_an_unknown_activity_changes_nothing(user, activity, strategy, database_unchanged):
    with database_unchanged(), pytest.raises(NotFound, match="There is no activity 'NOPE'"):
        join(user=user, activity="NOPE", strategy=strategy, request_started_at=STARTED_AT)


class _SerializationFailure(Exception):
    """What psycopg raises for SQLSTATE 40001, as far as is_serialization_failure looks."""

    sqlstate = "40001"


def failing_inserts(error: Exception, attempts: list):
    """An execute wrapper that fails every INSERT of a participant with ``error``, counting them."""

    def wrapper(execute, sql, params, many, context):
        if sql.startswith("INSERT") and Participant._meta.db_table in sql:
            attempts.append(sql)
            raise error
        return execute(sql, params, many, context)

    return wrapper


@pytest.mark.django_db(transaction=True)
def test_serializable_gives_up_after_its_last_attempt_and_adds_no_one(
    user, activity, monkeypatch, database_unchanged
):
    attempts = []
    failure = OperationalError("could not serialize access")
    failure.__cause__ = _SerializationFailure()
    monkeypatch.setattr(serializable, "back_off", lambda **_: None)
    gave_up = (
        f"Activity {LAB_ACTIVITY}: the database refused to serialize this join "
        f"{participation.MAX_ATTEMPTS} times in a row; you were not added, try again."
    )

    with (
        database_unchanged(),
        connection.execute_wrapper(failing_inserts(failure, attempts)),
        pytest.raises(Refused, match=f"^{re.escape(gave_up)}$"),
    ):
        join_lab_activity(user, Strategy.SERIALIZABLE)

    assert len(attempts) == participation.MAX_ATTEMPTS


@pytest.mark.django_db(transaction=True)
def test_serializable_does_not_retry_an_error_that_is_not_a_serialization_failure(
    user, activity, database_unchanged
):
    attempts = []
    with (
        database_unchanged(),
        connection.execute_wrapper(failing_inserts(DatabaseError("disk full"), attempts)),
        pytest.raises(DatabaseError, match="disk full"),
    ):
        join_lab_activity(user, Strategy.SERIALIZABLE)
    assert len(attempts) == 1


def join_concurrently(*, strategy: Strategy, parties: int, window) -> list:
    """``parties`` joins of the lab activity at once, each held in ``window`` as the server
    holds a request; what each got (or raised)."""

    def one() -> object:
        with holding(window=window):
            return join(
                user=User.objects.get(username="alice"),
                activity=LAB_ACTIVITY,
                strategy=strategy,
                request_started_at=timezone.now(),
            )

    return run_concurrently([one] * parties)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("parties", [2, 5])
def test_naive_takes_one_place_per_request_held_together(user, parties):
    with armed(parties=parties, timeout=5, at=CAPACITY.park_point) as barrier:
        for _ in range(20):
            seed_activity(limit=1)
            results = join_concurrently(strategy=Strategy.NAIVE, parties=parties, window=barrier.window)

            assert not any(isinstance(result, Exception) for result in results), results
            # All K counted no place taken: each was told it took place 1 of 1.
            assert {result.place for result in results} == {1}
            audit = audit_activities(name=LAB_ACTIVITY)
            assert [(v.kind, v.count) for v in audit.violations] == [(OVERFULL, parties - 1)]
            assert CAPACITY.naive_violations(parties, audit) == parties - 1
        stats = barrier.stats()
    assert (stats.held, stats.windows, stats.timeouts) == (20 * parties, 20, 0)


@pytest.mark.django_db(transaction=True)
def test_the_prediction_counts_the_places_the_activity_has(user):
    # 5 held together at an activity of 3 places: all 5 count 0 and join, 2 beyond its places.
    seed_activity(limit=3)
    with armed(parties=5, timeout=5, at=CAPACITY.park_point) as barrier:
        results = join_concurrently(strategy=Strategy.NAIVE, parties=5, window=barrier.window)

    assert not any(isinstance(result, Exception) for result in results), results
    audit = audit_activities(name=LAB_ACTIVITY)
    assert [(v.kind, v.count) for v in audit.violations] == [(OVERFULL, 2)]
    assert CAPACITY.naive_violations(5, audit) == 2
    # More places than requests: none beyond them.
    assert CAPACITY.naive_violations(2, audit) == 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("places", [1, 2])
@pytest.mark.parametrize("strategy", SAFE)
def test_safe_strategies_fill_the_places_and_refuse_the_rest_with_a_reason(user, strategy, places, caplog):
    parties, timeout = 4, 0.25
    seed_activity(limit=places)
    started = time.monotonic()
    with (
        caplog.at_level(logging.INFO, logger=serializable.__name__),
        armed(parties=parties, timeout=timeout, at=CAPACITY.park_point) as barrier,
    ):
        results = join_concurrently(strategy=strategy, parties=parties, window=barrier.window)
        stats = barrier.stats()
    elapsed = time.monotonic() - started

    refused = [result for result in results if isinstance(result, Refused)]
    joined = sorted(result.place for result in results if isinstance(result, participation.Participation))
    assert len(results) == parties and len(refused) == parties - places, results
    assert joined == list(range(1, places + 1))
    assert all(" is full: " in str(refusal) for refusal in refused), refused
    assert Participant.objects.count() == places
    assert audit_activities(name=LAB_ACTIVITY).violations == []
    # Each held request waits at most its own window, in turn: far below a hang.
    assert elapsed < parties * (timeout + 1) + 5
    if strategy in CAPACITY.never_held:
        assert stats.held == 0
    else:
        assert stats.held == parties
    if strategy is Strategy.SERIALIZABLE and connection.vendor != "sqlite":
        # Held together, all counted the same places; the database refused to serialize the
        # losers (PostgreSQL) or deadlocked them (MariaDB), and they retried, not held again.
        assert stats.windows == 1
        assert any("serializable join retried" in record.message for record in caplog.records)


def test_the_checker_finds_overfull_activities_on_hand_made_rows_and_nothing_on_clean_ones(user):
    clean = Activity.objects.create(name="CLEAN", max_participants=2, places_left=2)
    full = Activity.objects.create(name="FULL", max_participants=1, places_left=1)
    worst = Activity.objects.create(name="WORST", max_participants=1, places_left=1)

    def take(activity: Activity, places: int) -> list[int]:
        return [
            Participant.objects.create(
                activity=activity, user=user, strategy="naive", request_started_at=STARTED_AT
            ).pk
            for _ in range(places)
        ]

    take(clean, 2)
    assert audit_activities().violations == []
    full_ids, worst_ids = take(full, 2), take(worst, 4)

    audit = audit_activities()
    (violation,) = audit.violations
    assert (violation.kind, violation.count) == (OVERFULL, 1 + 3)
    assert violation.first == {
        "activity": "FULL",
        "max_participants": 1,
        "participants": 2,
        "participant_ids_beyond_places": full_ids[1:],
    }
    assert violation.worst == {
        "activity": "WORST",
        "max_participants": 1,
        "participants": 4,
        "participant_ids_beyond_places": worst_ids[1:],
    }
    figures = dict(audit.figures)
    assert (figures["activities"], figures["places"], figures["participants"]) == (3, 4, 8)
    assert (figures["activities over their places"], figures["participants beyond the places"]) == (2, 4)
    assert audit.verdict == f"ANOMALIES: {OVERFULL}"
    assert audit_activities(name="CLEAN").violations == []


@pytest.fixture
def logged_in(client, user):
    client.force_login(user)
    return client


def post(client, *, strategy: str = "naive", **form):
    return client.post(f"{URL}?strategy={strategy}", form)


@pytest.mark.django_db
def test_the_endpoint_answers_the_place_then_409_with_the_reason(logged_in, activity):
    joined = post(logged_in, activity=LAB_ACTIVITY)
    refused = post(logged_in, activity=LAB_ACTIVITY, strategy="locking")

    assert (joined.status_code, joined.content.decode()) == (
        200,
        f"Joined activity {LAB_ACTIVITY}: place 1 of 1.\n",
    )
    assert refused.status_code == 409 and refused["Content-Type"] == "text/plain"
    assert refused.content.decode() == (
        f"Activity {LAB_ACTIVITY} is full: 1 of 1 place(s) taken; you were not added.\n"
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "form", "status", "reason"),
    [
        ("strategy=fast", {"activity": LAB_ACTIVITY}, 400, STRATEGY_ERROR),
        ("", {}, 400, ACTIVITY_ERROR),
        ("", {"activity": "two words"}, 400, ACTIVITY_ERROR),
        ("", {"activity": "x" * 41}, 400, ACTIVITY_ERROR),
        ("", {"activity": [LAB_ACTIVITY, LAB_ACTIVITY]}, 400, "activity was given 2 times; send it once."),
        (
            "",
            {"activity": "NOPE"},
            404,
            "There is no activity 'NOPE'. Create it with `manage.py seed_scenario",
        ),
    ],
)
def test_bad_input_gets_a_reason_and_changes_nothing(
    logged_in, activity, query, form, status, reason, database_unchanged
):
    with database_unchanged():
        response = logged_in.post(f"{URL}?{query}", form)
    assert response.status_code == status
    assert reason in response.content.decode()


@pytest.mark.django_db
def test_anonymous_and_get_requests_are_refused(client, activity, database_unchanged):
    with database_unchanged():
        assert post(client, activity=LAB_ACTIVITY).status_code == 403
        assert client.get(URL).status_code == 405


@pytest.mark.django_db
def test_seed_and_reset_commands(user, capsys):
    call_command("seed_scenario", "capacity", "--limit", "2")
    assert Activity.objects.filter(name=LAB_ACTIVITY, max_participants=2, places_left=2).exists()
    assert "Created activity LAB-ACTIVITY: 2 place(s), 0 participant(s) cleared." in capsys.readouterr().out
    for strategy in (Strategy.NAIVE, Strategy.CONDITIONAL_UPDATE):
        join_lab_activity(user, strategy)

    call_command("reset_scenario", "capacity", "--no-input")

    assert Participant.objects.count() == 0
    assert Activity.objects.get(name=LAB_ACTIVITY).places_left == 2
    assert "Reset 1 activity: 2 participant(s) cleared." in capsys.readouterr().out

    join_lab_activity(user, Strategy.NAIVE)
    call_command("seed_scenario", "capacity")
    assert Activity.objects.filter(name=LAB_ACTIVITY, max_participants=1, places_left=1).exists()
    assert "Reset activity LAB-ACTIVITY: 1 place(s), 1 participant(s) cleared." in capsys.readouterr().out


@pytest.mark.django_db
@pytest.mark.parametrize("limit", ["0", "-1", "1000001"])
def test_seeding_a_nonsense_limit_is_refused_and_changes_nothing(activity, limit, database_unchanged):
    with (
        database_unchanged(),
        pytest.raises(CommandError, match="An activity's places must be from 1 to 1000000"),
    ):
        call_command("seed_scenario", "capacity", "--limit", limit)


@pytest.mark.django_db
def test_audit_transactions_proves_the_capacity_invariant(user, activity, capsys):
    call_command("audit_transactions", "--scenario", "capacity", "--fail-on-anomaly")
    out = capsys.readouterr().out
    assert "Scenario capacity: participants per activity at most its places" in out
    assert "Verdict: OK, the invariant holds." in out

    ids = [
        Participant.objects.create(
            activity=activity, user=user, strategy="naive", request_started_at=STARTED_AT
        ).pk
        for _ in range(3)
    ]
    call_command("audit_transactions", "--scenario", "capacity", "--format", "json")
    document = valid(json.loads(capsys.readouterr().out), kind="scenario-audit")
    assert document["verdict"] == f"ANOMALIES: {OVERFULL}"
    assert document["figures"]["participants beyond the places"] == 2
    (violation,) = document["violations"]
    assert violation["first"]["participant_ids_beyond_places"] == ids[1:]

    with pytest.raises(CommandError, match="The capacity scenario breaks its invariant") as failed:
        call_command("audit_transactions", "--scenario", "capacity", "--fail-on-anomaly")
    assert failed.value.returncode == 1
    assert OVERFULL in capsys.readouterr().out


@pytest.mark.django_db
@pytest.mark.parametrize("option", [("--username", "alice"), ("--timeline", "run.svg")])
def test_audit_transactions_refuses_bank_options_with_a_scenario(activity, option, database_unchanged):
    with database_unchanged(), pytest.raises(CommandError, match="drop them with --scenario"):
        call_command("audit_transactions", "--scenario", "capacity", *option)
