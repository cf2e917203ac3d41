"""The transfer scenario in one process: each strategy, its refusals, the endpoint, the checker,
the commands, and the deadlock held open at the SQL level with no hook in the code."""

import json
import logging
import threading
import time

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import OperationalError, connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from racelab.racewindow.barrier import BarrierStats, armed
from racelab.racewindow.statements import holding
from races.refusals import NotFound, Refused
from scenarios.transfers import movements
from scenarios.transfers.audit import UNEXPLAINED, audit_wallets
from scenarios.transfers.forms import (
    AMOUNT_ERROR,
    DESTINATION_ERROR,
    SAME_WALLET_ERROR,
    SOURCE_ERROR,
    STRATEGY_ERROR,
)
from scenarios.transfers.models import Transfer, Wallet
from scenarios.transfers.movements import (
    SAFE_STRATEGIES,
    Strategy,
    transfer,
)
from scenarios.transfers.provisioning import LAB_WALLETS, OPENING_BALANCE, RING_SIZE, seed_wallets
from scenarios.transfers.scenario import TRANSFER
from tests.concurrency import JOIN_SECONDS, run_concurrently
from tests.helpers import PASSWORD, STARTED_AT
from tests.json_schema import valid

URL = reverse("send-transfer")
A, B, C = LAB_WALLETS[:3]
ALL = [pytest.param(strategy, id=strategy.value) for strategy in Strategy]
SAFE = [pytest.param(strategy, id=strategy.value) for strategy in SAFE_STRATEGIES]
# What the database raises for the deadlock's victim: SQLSTATE 40P01 (PostgreSQL), error 1213 (MariaDB).
DEADLOCK_SQLSTATE, DEADLOCK_MYSQL_CODE = "40P01", 1213
CANNOT_DEADLOCK = "SQLite's transactions take the write lock at BEGIN: transfers run one at a time"


def reproduces_here() -> bool:
    return connection.vendor in TRANSFER.reproduces_on


def is_deadlock(result: object) -> bool:
    cause = getattr(result, "__cause__", None)
    return isinstance(result, OperationalError) and (
        getattr(cause, "sqlstate", None) == DEADLOCK_SQLSTATE
        or getattr(cause, "args", (None,))[:1] == (DEADLOCK_MYSQL_CODE,)
    )


@pytest.fixture
def user(db) -> User:
    return User.objects.create_user(username="alice", password=PASSWORD)


@pytest.fixture
def wallets(db) -> None:
    seed_wallets()


def send(strategy: Strategy, *, source: str = A, destination: str = B, amount: int = 1):
    return transfer(
        source=source,
        destination=destination,
        amount=amount,
        strategy=strategy,
        request_started_at=STARTED_AT,
    )


def balances() -> dict[str, int]:
    return dict(Wallet.objects.values_list("name", "balance"))


@pytest.mark.django_db
@pytest.mark.parametrize("strategy", ALL)
def test_each_strategy_moves_the_money_and_records_the_transfer(wallets, strategy):
    receipt = send(strategy, amount=7)

    (row,) = Transfer.objects.all()
    assert (receipt.transfer_id, receipt.source, receipt.destination, receipt.amount) == (row.pk, A, B, 7)
    assert (row.source.name, row.destination.name, row.amount, row.strategy) == (A, B, 7, strategy.value)
    assert row.request_started_at == STARTED_AT
    assert balances() == {**dict.fromkeys(LAB_WALLETS, OPENING_BALANCE), A: OPENING_BALANCE - 7, B: 1_000_007}
    assert audit_wallets().violations == []


@pytest.mark.django_db
@pytest.mark.parametrize("strategy", ALL)
def test_each_strategy_refuses_what_the_source_cannot_cover(wallets, strategy, database_unchanged):
    Wallet.objects.filter(name=A).update(balance=3, opening_balance=3)
    send(strategy, amount=3, source=C, destination=A)

    with (
        database_unchanged(),
        pytest.raises(Refused, match=f"^Wallet {A} holds 6, less than the 7 to send; nothing was moved.$"),
    ):
        send(strategy, amount=7)
    assert send(strategy, amount=6).amount == 6
    assert balances()[A] == 0


@pytest.mark.django_db
@pytest.mark.parametrize("strategy", ALL)
@pytest.mark.parametrize(("source", "destination"), [("nope", B), (A, "nope")])
def test_an_unknown_wallet_changes_nothing(wallets, strategy, source, destination, database_unchanged):
    with database_unchanged(), pytest.raises(NotFound, match="^There is no wallet 'nope'.$"):
        send(strategy, source=source, destination=destination)


@pytest.mark.django_db
@pytest.mark.parametrize("strategy", ALL)
@pytest.mark.parametrize(
    ("destination", "amount", "reason"),
    [
        (B, 0, "amount must be from 1 to 1000, not 0"),
        (B, 1001, "not 1001"),
        (A, 1, "not from 'lab-wallet-0' to itself"),
    ],
)
def test_the_service_refuses_what_the_form_refuses(
    wallets, strategy, destination, amount, reason, database_unchanged
):
    with database_unchanged(), pytest.raises(ValueError, match=reason):
        send(strategy, destination=destination, amount=amount)


def test_the_lab_sends_a_ring_of_transfers_as_wide_as_the_race():
    def ring(concurrency: int) -> list[tuple[str, str]]:
        forms = TRANSFER.forms_for(concurrency=concurrency)
        assert {form["amount"] for form in forms} == {"1"}
        return [(form["source"], form["destination"]) for form in forms]

    # Two requests: A->B and B->A, the classic pair. Five: each pays the next, the last the first.
    assert ring(1) == ring(2) == [(A, B), (B, A)]
    assert ring(3) == [(A, B), (B, C), (C, A)]
    assert (
        ring(5) == ring(50) == [(LAB_WALLETS[i], LAB_WALLETS[(i + 1) % RING_SIZE]) for i in range(RING_SIZE)]
    )
    assert TRANSFER.park_point == "transfers_wallet:write" and TRANSFER.never_held == ()
    assert TRANSFER.race_parties_max == RING_SIZE
    assert TRANSFER.reproduces_on == ("postgresql", "mysql")


def send_ring_concurrently(*, strategy: Strategy, parties: int, window) -> list:
    """The lab's ring of ``parties`` transfers at once, each held in ``window`` as the server
    holds a request; what each got (or raised)."""

    def one(form: dict[str, str]):
        def call() -> object:
            with holding(window=window):
                return transfer(
                    source=form["source"],
                    destination=form["destination"],
                    amount=int(form["amount"]),
                    strategy=strategy,
                    request_started_at=timezone.now(),
                )

        return call

    return run_concurrently([one(form) for form in TRANSFER.forms_for(concurrency=parties)])


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("parties", [2, 5])
def test_naive_deadlocks_exactly_one_transfer_of_a_ring_held_together(parties):
    if not reproduces_here():
        pytest.skip(CANNOT_DEADLOCK)
    with armed(parties=parties, timeout=5, at=TRANSFER.park_point) as barrier:
        for _ in range(20):
            seed_wallets()
            results = send_ring_concurrently(strategy=Strategy.NAIVE, parties=parties, window=barrier.window)

            # One cycle through all K: the database aborts one (the server's 500) and the rest
            # go through. The victim was rolled back whole, so every balance is still explained.
            deadlocked = [result for result in results if is_deadlock(result)]
            assert len(results) == parties and len(deadlocked) == 1, results
            assert not any(isinstance(r, Exception) and not is_deadlock(r) for r in results), results
            assert Transfer.objects.count() == parties - 1
            audit = audit_wallets(names=LAB_WALLETS)
            assert audit.violations == [] and dict(audit.figures)["money created or destroyed"] == 0
            assert TRANSFER.naive_violations(parties, audit) == len(deadlocked)
        stats = barrier.stats()
    assert (stats.held, stats.windows, stats.timeouts) == (20 * parties, 20, 0)


@pytest.mark.django_db(transaction=True)
def test_on_sqlite_the_naive_transfers_queue_at_begin_and_cannot_deadlock():
    if reproduces_here():
        pytest.skip("this database runs transfers concurrently; the deadlock test covers it")
    parties, timeout = 2, 5
    seed_wallets()
    started = time.monotonic()
    with armed(parties=parties, timeout=timeout, at=TRANSFER.park_point) as barrier:
        results = send_ring_concurrently(strategy=Strategy.NAIVE, parties=parties, window=barrier.window)
        stats = barrier.stats()
    elapsed = time.monotonic() - started

    # The held request holds the write lock, so the other waits at BEGIN: counted as arrived, it
    # closes the window at once, serialized, and goes straight on once it gets the lock.
    assert not any(isinstance(result, Exception) for result in results), results
    assert Transfer.objects.count() == parties and audit_wallets().violations == []
    assert stats == BarrierStats(held=parties, windows=1, timeouts=0, serialized=1)
    assert elapsed < timeout


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("parties", [2, 5])
@pytest.mark.parametrize("strategy", SAFE)
def test_safe_strategies_send_every_transfer_of_the_ring(strategy, parties, caplog):
    trials, timeout = 3, 0.5
    caplog.set_level(logging.INFO, logger="races.serializable")
    started = time.monotonic()
    with armed(parties=parties, timeout=timeout, at=TRANSFER.park_point) as barrier:
        for _ in range(trials):
            seed_wallets()
            results = send_ring_concurrently(strategy=strategy, parties=parties, window=barrier.window)

            assert not any(isinstance(result, Exception) for result in results), results
            # Each wallet of the ring paid 1 and was paid 1.
            assert Transfer.objects.count() == parties
            assert set(balances().values()) == {OPENING_BALANCE}
            assert audit_wallets(names=LAB_WALLETS).violations == []
        stats = barrier.stats()
    elapsed = time.monotonic() - started

    # Every request held once; a retried victim is not held again.
    assert stats.held == trials * parties
    retries = [record for record in caplog.records if "retried after" in record.getMessage()]
    if strategy is Strategy.ORDERED or not reproduces_here():
        assert retries == []
    else:
        # retry pays for its correctness: every ring still deadlocks, and its victim runs again.
        assert len(retries) >= trials
    # Held requests wait at most a window each, in turn, and a deadlock a second: far below a hang.
    assert elapsed < trials * parties * (timeout + 2) + 5


def test_the_checker_finds_unexplained_balances_on_hand_made_rows_and_nothing_on_clean_ones(db):
    def wallet(name: str, *, balance: int, opening: int = 100) -> Wallet:
        return Wallet.objects.create(name=name, balance=balance, opening_balance=opening)

    def record(source: Wallet, destination: Wallet, amount: int) -> None:
        Transfer.objects.create(
            source=source,
            destination=destination,
            amount=amount,
            strategy="naive",
            request_started_at=STARTED_AT,
        )

    payer, payee = wallet("payer", balance=70), wallet("payee", balance=130)
    record(payer, payee, 10)
    record(payer, payee, 20)
    clean = audit_wallets()
    assert clean.violations == [] and clean.verdict == "OK"
    assert dict(clean.figures)["money created or destroyed"] == 0

    # Money moved with no transfer row: 50 left the leaky wallet and arrived nowhere.
    leaky = wallet("leaky", balance=50)
    # A transfer recorded without its money: 40 from payee to ghost, neither balance moved.
    ghost = wallet("ghost", balance=100)
    record(payee, ghost, 40)

    audit = audit_wallets()
    (violation,) = audit.violations
    assert (violation.kind, violation.count) == (UNEXPLAINED, 3)
    assert violation.first == {
        "wallet": "payee",
        "opening_balance": 100,
        "transfers_in": 2,
        "received": 30,
        "transfers_out": 1,
        "sent": 40,
        "expected_balance": 90,
        "balance": 130,
        "difference": 40,
    }
    assert violation.worst == {
        "wallet": "leaky",
        "opening_balance": 100,
        "transfers_in": 0,
        "received": 0,
        "transfers_out": 0,
        "sent": 0,
        "expected_balance": 100,
        "balance": 50,
        "difference": -50,
    }
    assert dict(audit.figures) == {
        "wallets": 4,
        "transfers": 3,
        "money at opening": 400,
        "money now": 350,
        "money created or destroyed": -50,
        "wallets the transfers do not explain": 3,
    }
    assert audit.verdict == f"ANOMALIES: {UNEXPLAINED}"
    (only_leaky,) = audit_wallets(names=[leaky.name, payer.name]).violations
    assert (only_leaky.count, only_leaky.first, only_leaky.worst) == (1, violation.worst, violation.worst)
    assert audit_wallets(names=["payer"]).violations == []


@pytest.fixture
def logged_in(client, user):
    client.force_login(user)
    return client


def post(client, *, strategy: str = "naive", **form):
    return client.post(f"{URL}?strategy={strategy}", form)


@pytest.mark.django_db
def test_the_endpoint_answers_the_transfer_then_409_with_the_reason(logged_in, wallets):
    sent = post(logged_in, source=A, destination=B, amount=" 1000 ")
    Wallet.objects.filter(name=A).update(balance=2)
    refused = post(logged_in, strategy="ordered", source=A, destination=B, amount="3")

    row = Transfer.objects.get()
    assert (sent.status_code, sent["Content-Type"]) == (200, "text/plain")
    assert sent.content.decode() == f"Sent 1000 from {A} to {B}: transfer {row.pk}.\n"
    assert (refused.status_code, refused.content.decode()) == (
        409,
        f"Wallet {A} holds 2, less than the 3 to send; nothing was moved.\n",
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "form", "status", "reason"),
    [
        ("strategy=fast", {"source": A, "destination": B, "amount": "1"}, 400, STRATEGY_ERROR),
        (
            "strategy=naive&strategy=retry",
            {"source": A, "destination": B, "amount": "1"},
            400,
            "strategy was given 2",
        ),
        ("", {"destination": B, "amount": "1"}, 400, SOURCE_ERROR),
        ("", {"source": "lab wallet", "destination": B, "amount": "1"}, 400, SOURCE_ERROR),
        ("", {"source": "x" * 41, "destination": B, "amount": "1"}, 400, SOURCE_ERROR),
        (
            "",
            {"source": [A, A], "destination": B, "amount": "1"},
            400,
            "source was given 2 times; send it once.",
        ),
        ("", {"source": A, "amount": "1"}, 400, DESTINATION_ERROR),
        ("", {"source": A, "destination": "é", "amount": "1"}, 400, DESTINATION_ERROR),
        ("", {"source": A, "destination": A, "amount": "1"}, 400, SAME_WALLET_ERROR),
        ("", {"source": A, "destination": B}, 400, AMOUNT_ERROR),
        ("", {"source": A, "destination": B, "amount": ""}, 400, AMOUNT_ERROR),
        ("", {"source": A, "destination": B, "amount": "0"}, 400, AMOUNT_ERROR),
        ("", {"source": A, "destination": B, "amount": "1001"}, 400, AMOUNT_ERROR),
        ("", {"source": A, "destination": B, "amount": "-1"}, 400, AMOUNT_ERROR),
        ("", {"source": A, "destination": B, "amount": "1.5"}, 400, AMOUNT_ERROR),
        ("", {"source": A, "destination": B, "amount": "9" * 17}, 400, AMOUNT_ERROR),
        ("", {"source": A, "destination": B, "amount": ["1", "1"]}, 400, "amount was given 2 times"),
        (
            "",
            {"source": "nope", "destination": B, "amount": "1"},
            404,
            "There is no wallet 'nope'. Create the lab's wallets with `manage.py seed_scenario transfer`.",
        ),
        (
            "strategy=ordered",
            {"source": A, "destination": "nope", "amount": "1"},
            404,
            "There is no wallet 'nope'.",
        ),
    ],
)
def test_bad_input_gets_a_reason_and_changes_nothing(
    logged_in, wallets, query, form, status, reason, database_unchanged
):
    with database_unchanged():
        response = logged_in.post(f"{URL}?{query}", form)
    assert response.status_code == status
    assert reason in response.content.decode()


@pytest.mark.django_db
def test_anonymous_and_get_requests_are_refused(client, wallets, database_unchanged):
    with database_unchanged():
        assert post(client, source=A, destination=B, amount="1").status_code == 403
        assert client.get(URL).status_code == 405


def post_ring_concurrently(user: User, *, strategy: Strategy, parties: int) -> list[tuple[int, str]]:
    """The lab's ring of ``parties`` logged-in POSTs through the test client, held together by the
    race-window middleware as a server holds them; each (status, text) in finishing order."""
    answers, lock = [], threading.Lock()

    def one(form: dict[str, str]) -> None:
        try:
            client = Client(raise_request_exception=False)
            client.force_login(user)
            response = post(client, strategy=strategy, **form)
        finally:
            connection.close()
        with lock:
            answers.append((response.status_code, response.content.decode()))

    with armed(parties=parties, timeout=2, at=TRANSFER.park_point):
        threads = [
            threading.Thread(target=one, args=(form,)) for form in TRANSFER.forms_for(concurrency=parties)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=JOIN_SECONDS)
    assert not any(thread.is_alive() for thread in threads), "a request is stuck"
    return answers


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("strategy", "statuses"),
    [(Strategy.NAIVE, [200, 500]), (Strategy.ORDERED, [200, 200]), (Strategy.RETRY, [200, 200])],
)
def test_the_endpoint_answers_both_transfers_of_a_held_pair(user, strategy, statuses):
    if strategy is Strategy.NAIVE and not reproduces_here():
        pytest.skip(CANNOT_DEADLOCK)
    seed_wallets()
    answers = post_ring_concurrently(user, strategy=strategy, parties=2)

    # The bug answers the deadlock's victim with a 500; the fixes send both.
    assert sorted(status for status, _ in answers) == statuses, answers
    assert Transfer.objects.count() == statuses.count(200)
    assert audit_wallets().violations == []


@pytest.mark.django_db
def test_seed_and_reset_commands(capsys):
    call_command("seed_scenario", "transfer")
    assert (
        f"Seeded wallets {LAB_WALLETS[0]} to {LAB_WALLETS[-1]} (5 new), each holding {OPENING_BALANCE}; "
        "0 transfer(s) cleared." in capsys.readouterr().out
    )
    assert TRANSFER.is_seeded()
    other = Wallet.objects.create(name="other", balance=50, opening_balance=50)
    spare = Wallet.objects.create(name="spare", balance=50, opening_balance=50)
    for strategy in Strategy:
        send(strategy)
    send(Strategy.ORDERED, source="other", destination="spare", amount=20)

    call_command("seed_scenario", "transfer")
    assert "(0 new), each holding 1000000; 3 transfer(s) cleared." in capsys.readouterr().out
    assert set(balances().values()) == {OPENING_BALANCE, 30, 70}
    assert list(Transfer.objects.values_list("source__name", flat=True)) == ["other"]

    call_command("reset_scenario", "transfer", "--no-input")
    assert Transfer.objects.count() == 0
    other.refresh_from_db()
    spare.refresh_from_db()
    assert (other.balance, spare.balance) == (50, 50)
    assert "Reset 7 wallet(s) to their opening balance: 1 transfer(s) cleared." in capsys.readouterr().out


@pytest.mark.django_db
def test_a_missing_wallet_means_the_scenario_is_not_seeded(wallets):
    assert TRANSFER.is_seeded()
    Wallet.objects.filter(name=LAB_WALLETS[-1]).delete()
    assert not TRANSFER.is_seeded()


@pytest.mark.django_db
def test_seeding_with_a_limit_is_refused_and_changes_nothing(wallets, database_unchanged):
    send(Strategy.NAIVE)
    with (
        database_unchanged(),
        pytest.raises(CommandError, match="The transfer scenario has nothing to size; drop --limit."),
    ):
        call_command("seed_scenario", "transfer", "--limit", "2")


@pytest.mark.django_db
def test_audit_transactions_proves_the_transfer_invariant(wallets, capsys):
    send(Strategy.RETRY, amount=5)
    call_command("audit_transactions", "--scenario", "transfer", "--fail-on-anomaly")
    assert "Verdict: OK, the invariant holds." in capsys.readouterr().out

    # Money that left a wallet with no transfer row to say where it went.
    Wallet.objects.filter(name=C).update(balance=OPENING_BALANCE - 3)
    call_command("audit_transactions", "--scenario", "transfer", "--format", "json")
    document = valid(json.loads(capsys.readouterr().out), kind="scenario-audit")
    assert document["verdict"] == f"ANOMALIES: {UNEXPLAINED}"
    assert document["figures"] == {
        "wallets": RING_SIZE,
        "transfers": 1,
        "money at opening": RING_SIZE * OPENING_BALANCE,
        "money now": RING_SIZE * OPENING_BALANCE - 3,
        "money created or destroyed": -3,
        "wallets the transfers do not explain": 1,
    }
    (violation,) = document["violations"]
    assert (violation["first"]["wallet"], violation["first"]["difference"]) == (C, -3)

    with pytest.raises(CommandError, match="The transfer scenario breaks its invariant") as failed:
        call_command("audit_transactions", "--scenario", "transfer", "--fail-on-anomaly")
    assert failed.value.returncode == 1
    assert UNEXPLAINED in capsys.readouterr().out


@pytest.mark.django_db
@pytest.mark.parametrize("option", [("--username", "alice"), ("--timeline", "run.svg")])
def test_audit_transactions_refuses_bank_options_with_a_scenario(wallets, option, database_unchanged):
    with database_unchanged(), pytest.raises(CommandError, match="drop them with --scenario"):
        call_command("audit_transactions", "--scenario", "transfer", *option)


@pytest.mark.django_db
def test_a_source_deleted_since_it_was_looked_up_is_not_found(database_unchanged):
    seed_wallets()
    destination = Wallet.objects.get(name=LAB_WALLETS[1])
    gone = movements._Order(
        source="gone", destination=destination.name, source_id=destination.pk + 1000,
        destination_id=destination.pk, amount=1, strategy=Strategy.NAIVE, request_started_at=STARTED_AT,
    )  # fmt: skip
    with database_unchanged(), pytest.raises(NotFound, match="There is no wallet 'gone'"):
        gone.move()
