"""The signup scenario in one process: each strategy, its refusals, the endpoint, the checker,
the commands, and the race held open at the SQL level with no hook in the code."""

import json
import threading
import time

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import IntegrityError, OperationalError, connection, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from racelab.racewindow.barrier import armed
from racelab.racewindow.statements import holding
from races.refusals import Refused
from scenarios.signups.audit import DUPLICATES, audit_signups
from scenarios.signups.forms import EMAIL_ERROR, STRATEGY_ERROR
from scenarios.signups.models import Signup
from scenarios.signups.provisioning import LAB_EMAIL, seed_signups
from scenarios.signups.registrations import SAFE_STRATEGIES, Strategy, register
from scenarios.signups.scenario import SIGNUP
from tests.concurrency import JOIN_SECONDS, run_concurrently
from tests.helpers import PASSWORD, STARTED_AT
from tests.json_schema import valid

MYSQL_DEADLOCK = 1213

URL = reverse("register-signup")
ALREADY = f"already registered: {LAB_EMAIL} has signed up before"
# 64 characters before the @ and 189 after: as long as an address may be (Django's validator
# alone would take one more).
LONGEST_EMAIL = "x" * 64 + "@" + "y" * 63 + "." + "y" * 63 + "." + "y" * 57 + ".com"
LOST_RACE = f"already registered: a concurrent request registered {LAB_EMAIL} first"


def strategy_params(strategies) -> list:
    # serializable opens a durable transaction: it cannot run inside the one a default test is in.
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


def sign_up(user: User, strategy: Strategy, email: str = LAB_EMAIL):
    return register(user=user, email=email, strategy=strategy, request_started_at=STARTED_AT)


@pytest.mark.parametrize("strategy", ALL)
def test_each_strategy_registers_the_address_once_and_then_refuses(user, strategy):
    registration = sign_up(user, strategy)

    (signup,) = Signup.objects.all()
    assert (registration.signup_id, registration.email) == (signup.pk, LAB_EMAIL)
    assert (signup.email, signup.user_id, signup.strategy) == (LAB_EMAIL, user.pk, strategy.value)
    assert signup.request_started_at == STARTED_AT
    with pytest.raises(Refused, match=ALREADY):
        sign_up(user, strategy)
    assert Signup.objects.count() == 1


@pytest.mark.parametrize("strategy", ALL)
def test_an_address_is_one_whatever_its_case(user, strategy, database_unchanged):
    assert sign_up(user, strategy, email="Lab@Example.COM").email == LAB_EMAIL

    with database_unchanged(), pytest.raises(Refused, match=ALREADY):
        sign_up(user, strategy, email="LAB@example.com")


def register_concurrently(*, strategy: Strategy, parties: int, window) -> list:
    """``parties`` signups of the lab address at once, each held in ``window`` as the server
    holds a request; what each got (or raised)."""

    def one() -> object:
        with holding(window=window):
            return register(
                user=User.objects.get(username="alice"),
                email=LAB_EMAIL,
                strategy=strategy,
                request_started_at=timezone.now(),
            )

    return run_concurrently([one] * parties)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("parties", [2, 5])
def test_naive_fails_every_request_held_together_but_one_with_an_uncaught_integrity_error(user, parties):
    with armed(parties=parties, timeout=5, at=SIGNUP.park_point) as barrier:
        for _ in range(20):
            seed_signups()
            results = register_concurrently(strategy=Strategy.NAIVE, parties=parties, window=barrier.window)

            # The unique index keeps the table right: one row. The K-1 others raise what the
            # server answers with a 500: the duplicate key, or on MariaDB, where the inserts can
            # meet over the row the reset deleted and purge has not yet removed, a deadlock
            # (1213) among the losers, as uncaught.
            crashed = [result for result in results if _uncaught_refusal_of_the_duplicate(result)]
            assert len(results) == parties and len(crashed) == parties - 1, results
            assert Signup.objects.count() == 1
            audit = audit_signups()
            assert audit.violations == []
            assert SIGNUP.naive_violations(parties, audit) == len(crashed)
        stats = barrier.stats()
    assert (stats.held, stats.windows, stats.timeouts) == (20 * parties, 20, 0)


def _uncaught_refusal_of_the_duplicate(result) -> bool:
    if isinstance(result, IntegrityError):
        return True
    deadlock = connection.vendor == "mysql" and isinstance(result, OperationalError)
    return deadlock and result.args[0] == MYSQL_DEADLOCK


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("strategy", SAFE)
def test_safe_strategies_register_it_once_and_refuse_the_rest_with_a_reason(user, strategy):
    parties, timeout = 3, 0.25
    started = time.monotonic()
    with armed(parties=parties, timeout=timeout, at=SIGNUP.park_point) as barrier:
        results = register_concurrently(strategy=strategy, parties=parties, window=barrier.window)
    elapsed = time.monotonic() - started

    refused = [result for result in results if isinstance(result, Refused)]
    assert len(results) == parties and len(refused) == parties - 1, results
    assert all(str(refusal).startswith("already registered: ") for refusal in refused), refused
    assert Signup.objects.count() == 1
    assert audit_signups().violations == []
    # Each held request waits at most its own window, in turn: far below a hang.
    assert elapsed < parties * (timeout + 1) + 5


@pytest.mark.django_db(transaction=True)
def test_constraint_tells_the_losers_a_concurrent_request_registered_first(user):
    with armed(parties=3, timeout=5, at=SIGNUP.park_point) as barrier:
        results = register_concurrently(strategy=Strategy.CONSTRAINT, parties=3, window=barrier.window)

    # All three found the address free; the unique index refused two, each told why.
    refusals = [str(result) for result in results if isinstance(result, Refused)]
    assert len(refusals) == 2 and all(refusal.startswith(LOST_RACE) for refusal in refusals), results
    assert barrier.stats().held == 3


def post_concurrently(user: User, *, strategy: Strategy, parties: int) -> list[tuple[int, str]]:
    """``parties`` logged-in POSTs of the lab address through the test client, held together by
    the race-window middleware as a server holds them; each (status, text) in finishing order."""
    answers, lock = [], threading.Lock()

    def one() -> None:
        try:
            client = Client(raise_request_exception=False)
            client.force_login(user)
            response = client.post(f"{URL}?strategy={strategy}", {"email": LAB_EMAIL})
        finally:
            connection.close()
        with lock:
            answers.append((response.status_code, response.content.decode()))

    with armed(parties=parties, timeout=5, at=SIGNUP.park_point):
        threads = [threading.Thread(target=one) for _ in range(parties)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=JOIN_SECONDS)
    assert not any(thread.is_alive() for thread in threads), "a request is stuck"
    return answers


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("strategy", "loser"), [(Strategy.NAIVE, 500), (Strategy.CONSTRAINT, 409), (Strategy.SERIALIZABLE, 409)]
)
def test_the_endpoint_answers_the_loser_of_a_held_race(user, strategy, loser):
    answers = post_concurrently(user, strategy=strategy, parties=2)

    assert sorted(status for status, _ in answers) == sorted([200, loser]), answers
    assert Signup.objects.count() == 1
    if loser == 409:
        (refusal,) = [text for status, text in answers if status == 409]
        assert refusal.startswith("already registered: ")


# MariaDB's default collation compares text case-insensitively; SQLite's and PostgreSQL's do not.
CASE_INSENSITIVE_VENDORS = ("mysql",)


@pytest.fixture
def case_sensitive_unique_index(db) -> None:
    """Skip on MariaDB: its unique index refuses a second case of an address itself, so nothing
    can break the invariant. Whether the index refused one is checked against the vendor first,
    so a change of collation fails here instead of turning into a skip (or a false pass)."""
    try:
        with transaction.atomic():
            add_signup("probe@example.com")
            add_signup("PROBE@example.com")
            transaction.set_rollback(True)
        refused = False
    except IntegrityError:
        refused = True
    assert refused == (connection.vendor in CASE_INSENSITIVE_VENDORS), (
        f"the unique index on {connection.vendor} {'refused' if refused else 'took'} a second case of "
        "an address"
    )
    if connection.vendor in CASE_INSENSITIVE_VENDORS:
        pytest.skip("MariaDB's unique index already compares addresses case-insensitively")


def add_signup(email: str) -> int:
    return Signup.objects.create(email=email, strategy="naive", request_started_at=STARTED_AT).pk


@pytest.mark.django_db
def test_the_checker_finds_an_address_signed_up_twice_and_nothing_on_clean_rows(case_sensitive_unique_index):
    _, twice, thrice = (add_signup(f"{word}@example.com") for word in ("once", "twice", "thrice"))
    clean = audit_signups()
    assert clean.violations == [] and clean.verdict == "OK"
    assert dict(clean.figures) == {
        "signups": 3,
        "addresses": 3,
        "addresses signed up more than once": 0,
        "signups beyond one per address": 0,
    }
    twice_ids = [twice, add_signup("TWICE@example.com")]
    thrice_ids = [thrice, add_signup("Thrice@example.com"), add_signup("THRICE@EXAMPLE.COM")]

    audit = audit_signups()
    (violation,) = audit.violations
    assert (violation.kind, violation.count) == (DUPLICATES, 1 + 2)
    assert violation.first == {
        "address": "twice@example.com",
        "signups": 2,
        "emails": ["twice@example.com", "TWICE@example.com"],
        "signup_ids_beyond_first": twice_ids[1:],
    }
    assert violation.worst == {
        "address": "thrice@example.com",
        "signups": 3,
        "emails": ["thrice@example.com", "Thrice@example.com", "THRICE@EXAMPLE.COM"],
        "signup_ids_beyond_first": thrice_ids[1:],
    }
    assert dict(audit.figures)["addresses signed up more than once"] == 2
    assert audit.verdict == f"ANOMALIES: {DUPLICATES}"


@pytest.fixture
def logged_in(client, user):
    client.force_login(user)
    return client


def post(client, *, strategy: str = "naive", **form):
    return client.post(f"{URL}?strategy={strategy}", form)


@pytest.mark.django_db
def test_the_endpoint_answers_the_signup_then_409_with_the_reason(logged_in):
    registered = post(logged_in, email=" Lab@Example.com ")
    refused = post(logged_in, email=LAB_EMAIL, strategy="constraint")

    signup = Signup.objects.get()
    assert (registered.status_code, registered.content.decode()) == (
        200,
        f"registered: {LAB_EMAIL} (signup {signup.pk}).\n",
    )
    assert refused.status_code == 409 and refused["Content-Type"] == "text/plain"
    assert refused.content.decode().startswith(ALREADY)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "form", "reason"),
    [
        ("strategy=fast", {"email": LAB_EMAIL}, STRATEGY_ERROR),
        ("strategy=naive&strategy=constraint", {"email": LAB_EMAIL}, "strategy was given 2 times"),
        ("", {}, EMAIL_ERROR),
        ("", {"email": "  "}, EMAIL_ERROR),
        ("", {"email": "lab"}, EMAIL_ERROR),
        ("", {"email": "lab@"}, EMAIL_ERROR),
        ("", {"email": "two words@example.com"}, EMAIL_ERROR),
        ("", {"email": "lab@example.com\x00"}, EMAIL_ERROR),
        ("", {"email": LONGEST_EMAIL.replace(".com", "y.com")}, EMAIL_ERROR),
        # 171 characters as sent, 331 lower-cased (each İ becomes two): too long for the column.
        ("", {"email": "lab@" + ".".join(["İ" * 40] * 4) + ".com"}, EMAIL_ERROR),
        ("", {"email": [LAB_EMAIL, LAB_EMAIL]}, "email was given 2 times; send it once."),
    ],
)
def test_bad_input_gets_a_400_with_a_reason_and_changes_nothing(
    logged_in, query, form, reason, database_unchanged
):
    with database_unchanged():
        response = logged_in.post(f"{URL}?{query}", form)
    assert response.status_code == 400
    assert reason in response.content.decode()


@pytest.mark.django_db
def test_the_longest_address_is_accepted(logged_in):
    assert len(LONGEST_EMAIL) == 254
    assert post(logged_in, email=LONGEST_EMAIL).status_code == 200


@pytest.mark.django_db
def test_anonymous_and_get_requests_are_refused(client, database_unchanged):
    with database_unchanged():
        assert post(client, email=LAB_EMAIL).status_code == 403
        assert client.get(URL).status_code == 405


@pytest.mark.django_db
def test_seed_and_reset_commands(user, capsys):
    sign_up(user, Strategy.NAIVE)
    sign_up(user, Strategy.CONSTRAINT, email="other@example.com")

    call_command("seed_scenario", "signup")
    assert list(Signup.objects.values_list("email", flat=True)) == ["other@example.com"]
    assert f"{LAB_EMAIL} is free to register: 1 signup(s) of it cleared." in capsys.readouterr().out
    assert SIGNUP.is_seeded()

    call_command("reset_scenario", "signup", "--no-input")
    assert Signup.objects.count() == 0
    assert "Cleared 1 signup(s): every address is free to register." in capsys.readouterr().out


@pytest.mark.django_db
def test_seeding_with_a_limit_is_refused_and_changes_nothing(user, database_unchanged):
    sign_up(user, Strategy.NAIVE)
    with (
        database_unchanged(),
        pytest.raises(CommandError, match="The signup scenario has nothing to size; drop --limit."),
    ):
        call_command("seed_scenario", "signup", "--limit", "2")


@pytest.mark.django_db
def test_audit_transactions_reports_a_clean_table(user, capsys):
    sign_up(user, Strategy.NAIVE)

    call_command("audit_transactions", "--scenario", "signup", "--fail-on-anomaly")
    assert "Verdict: OK, the invariant holds." in capsys.readouterr().out
    call_command("audit_transactions", "--scenario", "signup", "--format", "json")
    document = valid(json.loads(capsys.readouterr().out), kind="scenario-audit")
    assert (document["verdict"], document["violations"]) == ("OK", [])
    assert document["figures"] == {
        "signups": 1,
        "addresses": 1,
        "addresses signed up more than once": 0,
        "signups beyond one per address": 0,
    }


@pytest.mark.django_db
def test_audit_transactions_proves_the_signup_invariant_broken(case_sensitive_unique_index, capsys):
    ids = [add_signup(LAB_EMAIL), add_signup(LAB_EMAIL.upper())]

    call_command("audit_transactions", "--scenario", "signup", "--format", "json")
    document = valid(json.loads(capsys.readouterr().out), kind="scenario-audit")
    assert document["verdict"] == f"ANOMALIES: {DUPLICATES}"
    assert document["figures"]["signups beyond one per address"] == 1
    (violation,) = document["violations"]
    assert violation["first"]["signup_ids_beyond_first"] == ids[1:]

    with pytest.raises(CommandError, match="The signup scenario breaks its invariant") as failed:
        call_command("audit_transactions", "--scenario", "signup", "--fail-on-anomaly")
    assert failed.value.returncode == 1
    assert DUPLICATES in capsys.readouterr().out


@pytest.mark.django_db
@pytest.mark.parametrize("option", [("--username", "alice"), ("--timeline", "run.svg")])
def test_audit_transactions_refuses_bank_options_with_a_scenario(user, option, database_unchanged):
    with database_unchanged(), pytest.raises(CommandError, match="drop them with --scenario"):
        call_command("audit_transactions", "--scenario", "signup", *option)
