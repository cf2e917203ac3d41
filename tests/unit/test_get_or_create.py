"""The get_or_create scenario in one process: each strategy, the naive one's 500, the endpoint,
the checker, the commands, and the race held open at the SQL level with no hook in the code."""

import json
import re
import time

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import OperationalError, connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from racelab.racewindow.barrier import armed
from racelab.racewindow.statements import holding
from races.refusals import Refused
from scenarios.get_or_create.audit import DUPLICATES, audit_repositories
from scenarios.get_or_create.forms import FULL_NAME_ERROR, STRATEGY_ERROR
from scenarios.get_or_create.models import RemoteRepository, UniqueRemoteRepository
from scenarios.get_or_create.provisioning import LAB_REPOSITORY, seed_repositories
from scenarios.get_or_create.scenario import GET_OR_CREATE
from scenarios.get_or_create.syncs import (
    SAFE_STRATEGIES,
    Strategy,
    SyncedRepository,
    sync_repository,
)
from tests.concurrency import run_concurrently
from tests.helpers import PASSWORD, STARTED_AT
from tests.json_schema import valid

URL = reverse("sync-repository")
# Where each strategy keeps its rows.
TABLES = {
    Strategy.NAIVE: RemoteRepository,
    Strategy.UNIQUE_CONSTRAINT: UniqueRemoteRepository,
    Strategy.SERIALIZABLE: RemoteRepository,
}


def strategy_params(strategies) -> list:
    # serializable opens a durable transaction: not inside the one a default test is wrapped in.
    return [
        pytest.param(
            strategy,
            marks=pytest.mark.django_db(transaction=strategy is Strategy.SERIALIZABLE),
            id=strategy.value,
        )
        for strategy in strategies
    ]


ALL = strategy_params(Strategy)
SAFE = strategy_params(SAFE_STRATEGIES)


@pytest.fixture
def user(db) -> User:
    return User.objects.create_user(username="alice", password=PASSWORD)


def sync(user: User, strategy: Strategy, full_name: str = LAB_REPOSITORY) -> SyncedRepository:
    return sync_repository(user=user, full_name=full_name, strategy=strategy, request_started_at=STARTED_AT)


def make_rows(model, full_name: str, count: int, *, user: User) -> list[int]:
    """Hand-made rows of one name, as a race leaves them."""
    return [
        model.objects.create(
            full_name=full_name, synced_by=user, strategy="naive", request_started_at=STARTED_AT
        ).pk
        for _ in range(count)
    ]


@pytest.mark.parametrize("strategy", ALL)
def test_each_strategy_creates_the_row_once_and_then_finds_it(user, strategy):
    created = sync(user, strategy)
    found = sync(user, strategy)
    other = sync(user, strategy, "lab/other")

    (row, other_row) = TABLES[strategy].objects.order_by("pk")
    assert (created, found) == (
        SyncedRepository(repository_id=row.pk, created=True),
        SyncedRepository(repository_id=row.pk, created=False),
    )
    assert other == SyncedRepository(repository_id=other_row.pk, created=True)
    assert (row.full_name, row.synced_by_id, row.strategy) == (LAB_REPOSITORY, user.pk, strategy.value)
    assert row.request_started_at == STARTED_AT
    assert RemoteRepository.objects.count() + UniqueRemoteRepository.objects.count() == 2


@pytest.mark.django_db
def test_naive_fails_on_every_sync_of_a_name_a_race_left_twice(user, database_unchanged):
    make_rows(RemoteRepository, LAB_REPOSITORY, 2, user=user)

    with (
        database_unchanged(),
        pytest.raises(
            RemoteRepository.MultipleObjectsReturned,
            match=r"^get\(\) returned more than one RemoteRepository -- it returned 2!$",
        ),
    ):
        sync(user, Strategy.NAIVE)


@pytest.mark.parametrize("strategy", SAFE)
def test_safe_strategies_answer_for_a_name_the_naive_one_left_twice(user, strategy):
    first, _ = make_rows(RemoteRepository, LAB_REPOSITORY, 2, user=user)

    synced = sync(user, strategy)

    if strategy is Strategy.SERIALIZABLE:
        assert synced == SyncedRepository(repository_id=first, created=False)
    else:
        assert synced.created and UniqueRemoteRepository.objects.get().pk == synced.repository_id


class _SerializationFailure(Exception):
    """What psycopg raises when PostgreSQL refuses to serialize a transaction."""

    sqlstate = "40001"


def refuse_to_serialize_inserts(execute, sql, params, many, context):
    # Every INSERT refused as the database refuses the loser of a race, on any database.
    if sql.lstrip().upper().startswith("INSERT"):
        raise OperationalError("could not serialize access") from _SerializationFailure()
    return execute(sql, params, many, context)


@pytest.mark.django_db(transaction=True)
def test_serializable_gives_up_after_its_last_attempt_and_creates_nothing(user, database_unchanged):
    gave_up = (
        f"Conflict: the database refused to serialize the sync of {LAB_REPOSITORY} 20 times in a row; "
        "nothing was created, try again."
    )
    with (
        database_unchanged(),
        connection.execute_wrapper(refuse_to_serialize_inserts),
        pytest.raises(Refused, match=f"^{re.escape(gave_up)}$"),
    ):
        sync(user, Strategy.SERIALIZABLE)


def sync_concurrently(*, strategy: Strategy, parties: int, window) -> list:
    """``parties`` syncs of the lab repository at once, each held in ``window`` as the server
    holds a request; what each got (or raised)."""

    def one() -> object:
        # Looked up before holding, as the middleware has the user before the view runs.
        user = User.objects.get(username="alice")
        with holding(window=window):
            return sync_repository(
                user=user, full_name=LAB_REPOSITORY, strategy=strategy, request_started_at=timezone.now()
            )

    return run_concurrently([one] * parties)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("parties", [2, 5])
def test_naive_creates_one_row_per_request_held_together(user, parties):
    with armed(parties=parties, timeout=5, at=GET_OR_CREATE.park_point) as barrier:
        for _ in range(20):
            seed_repositories()
            results = sync_concurrently(strategy=Strategy.NAIVE, parties=parties, window=barrier.window)

            assert all(isinstance(result, SyncedRepository) and result.created for result in results), results
            audit = audit_repositories()
            assert [(v.kind, v.count) for v in audit.violations] == [(DUPLICATES, parties - 1)]
            assert GET_OR_CREATE.naive_violations(parties, audit) == parties - 1
        stats = barrier.stats()
    assert (stats.held, stats.windows, stats.timeouts) == (20 * parties, 20, 0)
    # And from then on the name is broken for the naive strategy.
    with pytest.raises(
        RemoteRepository.MultipleObjectsReturned,
        match=rf"^get\(\) returned more than one RemoteRepository -- it returned {parties}!$",
    ):
        sync(user, Strategy.NAIVE)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("parties", [2, 5])
@pytest.mark.parametrize("strategy", SAFE_STRATEGIES, ids=str)
def test_safe_strategies_create_one_row_and_find_it_for_the_rest(user, strategy, parties):
    timeout = 0.25
    started = time.monotonic()
    with armed(parties=parties, timeout=timeout, at=GET_OR_CREATE.park_point) as barrier:
        results = sync_concurrently(strategy=strategy, parties=parties, window=barrier.window)
    elapsed = time.monotonic() - started

    assert all(isinstance(result, SyncedRepository) for result in results), results
    assert sorted(result.created for result in results) == [False] * (parties - 1) + [True]
    (row,) = TABLES[strategy].objects.all()
    assert {result.repository_id for result in results} == {row.pk}
    assert RemoteRepository.objects.count() + UniqueRemoteRepository.objects.count() == 1
    assert audit_repositories().violations == []
    # Each held request waits at most its own window, in turn: far below a hang.
    assert elapsed < parties * (timeout + 1) + 5


def test_the_checker_finds_duplicates_on_hand_made_rows_and_nothing_on_clean_ones(user):
    make_rows(RemoteRepository, "lab/clean", 1, user=user)
    make_rows(UniqueRemoteRepository, "lab/clean", 1, user=user)
    assert audit_repositories().violations == []
    twice = make_rows(RemoteRepository, "lab/twice", 2, user=user)
    four_times = make_rows(RemoteRepository, "lab/four-times", 4, user=user)

    audit = audit_repositories()
    (violation,) = audit.violations
    assert (violation.kind, violation.count) == (DUPLICATES, 1 + 3)
    table = RemoteRepository._meta.db_table
    assert violation.first == {
        "table": table,
        "full_name": "lab/twice",
        "rows": 2,
        "row_ids_beyond_first": twice[1:],
    }
    assert violation.worst == {
        "table": table,
        "full_name": "lab/four-times",
        "rows": 4,
        "row_ids_beyond_first": four_times[1:],
    }
    assert audit.figures == [
        ("repository names (per table)", 4),
        ("repository rows", 8),
        ("names with duplicates", 2),
        ("rows beyond one per name", 4),
    ]
    assert audit.verdict == f"ANOMALIES: {DUPLICATES}"


@pytest.fixture
def logged_in(client, user):
    client.force_login(user)
    return client


def post(client, *, strategy: str = "naive", **form):
    return client.post(f"{URL}?strategy={strategy}", form)


@pytest.mark.django_db
def test_the_endpoint_answers_created_then_found_with_the_row(logged_in):
    created = post(logged_in, full_name=LAB_REPOSITORY)
    found = post(logged_in, full_name="Lab/Repository")

    row = RemoteRepository.objects.get()
    assert (created.status_code, created.content.decode()) == (
        200,
        f"Repository {LAB_REPOSITORY} created: row {row.pk}.\n",
    )
    assert (found.status_code, found.content.decode()) == (
        200,
        f"Repository {LAB_REPOSITORY} found: row {row.pk}.\n",
    )
    assert created["Content-Type"] == "text/plain"


@pytest.mark.django_db
def test_the_endpoint_answers_500_for_a_name_the_naive_race_left_twice(user, database_unchanged):
    first, _ = make_rows(RemoteRepository, LAB_REPOSITORY, 2, user=user)
    client = Client(raise_request_exception=False)
    client.force_login(user)

    with database_unchanged():
        broken = post(client, full_name=LAB_REPOSITORY)
    unique = post(client, full_name=LAB_REPOSITORY, strategy="unique_constraint")

    assert broken.status_code == 500
    assert unique.status_code == 200 and unique.content.decode().startswith(
        f"Repository {LAB_REPOSITORY} created"
    )


@pytest.mark.django_db(transaction=True)
def test_a_conflict_is_answered_409_and_creates_nothing(logged_in, database_unchanged):
    with database_unchanged(), connection.execute_wrapper(refuse_to_serialize_inserts):
        response = post(logged_in, full_name=LAB_REPOSITORY, strategy="serializable")

    assert response.status_code == 409 and response["Content-Type"] == "text/plain"
    assert response.content.decode().startswith("Conflict: the database refused to serialize the sync")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "form", "reason"),
    [
        ("strategy=fast", {"full_name": LAB_REPOSITORY}, STRATEGY_ERROR),
        ("strategy=naive&strategy=serializable", {"full_name": LAB_REPOSITORY}, "strategy was given 2 times"),
        ("", {}, FULL_NAME_ERROR),
        ("", {"full_name": "lab"}, FULL_NAME_ERROR),
        ("", {"full_name": "lab/repo/extra"}, FULL_NAME_ERROR),
        ("", {"full_name": "lab repository/x"}, FULL_NAME_ERROR),
        ("", {"full_name": "lab/" + "x" * 97}, FULL_NAME_ERROR),
        ("", {"full_name": [LAB_REPOSITORY, LAB_REPOSITORY]}, "full_name was given 2 times; send it once."),
    ],
)
def test_bad_input_gets_a_reason_and_changes_nothing(logged_in, query, form, reason, database_unchanged):
    with database_unchanged():
        response = logged_in.post(f"{URL}?{query}", form)
    assert response.status_code == 400
    assert reason in response.content.decode()


@pytest.mark.django_db
def test_the_longest_name_is_accepted(logged_in):
    longest = "lab/" + "x" * 96
    assert post(logged_in, full_name=longest).status_code == 200
    assert RemoteRepository.objects.get().full_name == longest


@pytest.mark.django_db
def test_anonymous_and_get_requests_are_refused(client, database_unchanged):
    with database_unchanged():
        assert post(client, full_name=LAB_REPOSITORY).status_code == 403
        assert client.get(URL).status_code == 405


@pytest.mark.django_db
def test_seed_and_reset_commands(user, capsys):
    sync(user, Strategy.NAIVE)
    call_command("seed_scenario", "get_or_create")
    assert RemoteRepository.objects.count() == 0
    assert (
        f"Ready: no repository rows (1 cleared); the next sync of {LAB_REPOSITORY}" in capsys.readouterr().out
    )
    sync(user, Strategy.NAIVE)
    sync(user, Strategy.UNIQUE_CONSTRAINT)

    call_command("reset_scenario", "get_or_create", "--no-input")

    assert RemoteRepository.objects.count() + UniqueRemoteRepository.objects.count() == 0
    assert "Reset: 2 repository row(s) cleared." in capsys.readouterr().out
    assert GET_OR_CREATE.is_seeded()


@pytest.mark.django_db
def test_seeding_with_a_limit_is_refused_and_changes_nothing(user, database_unchanged):
    sync(user, Strategy.NAIVE)
    with (
        database_unchanged(),
        pytest.raises(CommandError, match="The get_or_create scenario has nothing to size; drop --limit."),
    ):
        call_command("seed_scenario", "get_or_create", "--limit", "2")


@pytest.mark.django_db
def test_audit_transactions_proves_the_get_or_create_invariant(user, capsys):
    sync(user, Strategy.NAIVE)
    call_command("audit_transactions", "--scenario", "get_or_create", "--fail-on-anomaly")
    assert "Verdict: OK, the invariant holds." in capsys.readouterr().out

    ids = make_rows(RemoteRepository, LAB_REPOSITORY, 2, user=user)
    call_command("audit_transactions", "--scenario", "get_or_create", "--format", "json")
    document = valid(json.loads(capsys.readouterr().out), kind="scenario-audit")
    assert document["verdict"] == f"ANOMALIES: {DUPLICATES}"
    assert document["figures"]["rows beyond one per name"] == 2
    (violation,) = document["violations"]
    assert violation["first"]["row_ids_beyond_first"] == ids

    with pytest.raises(CommandError, match="The get_or_create scenario breaks its invariant") as failed:
        call_command("audit_transactions", "--scenario", "get_or_create", "--fail-on-anomaly")
    assert failed.value.returncode == 1
    assert DUPLICATES in capsys.readouterr().out


@pytest.mark.django_db
@pytest.mark.parametrize("option", [("--username", "alice"), ("--timeline", "run.svg")])
def test_audit_transactions_refuses_bank_options_with_the_scenario(user, option, database_unchanged):
    with database_unchanged(), pytest.raises(CommandError, match="drop them with --scenario"):
        call_command("audit_transactions", "--scenario", "get_or_create", *option)
