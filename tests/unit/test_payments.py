"""The payment scenario in one process: each strategy, its refusals and replays, the endpoint,
the checker, the commands, and the double submit held open at the SQL level with no hook in the
code."""

import json
import time

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from racelab.racewindow.barrier import armed
from racelab.racewindow.statements import holding
from races.refusals import NotFound
from scenarios.payments.audit import DUPLICATES, audit_payments
from scenarios.payments.charges import (
    SAFE_STRATEGIES,
    KeyReused,
    PaymentRefused,
    Receipt,
    Strategy,
    pay,
)
from scenarios.payments.forms import INVOICE_ERROR, KEY_ERROR, STRATEGY_ERROR
from scenarios.payments.models import IdempotencyKey, Invoice, Payment
from scenarios.payments.provisioning import INVOICE_AMOUNT, LAB_INVOICE, LAB_KEY, seed_invoice
from scenarios.payments.scenario import PAYMENT
from scenarios.payments.views import REPLAYED_HEADER
from tests.concurrency import run_concurrently
from tests.helpers import PASSWORD, STARTED_AT
from tests.json_schema import valid

URL = reverse("pay-invoice")
ALL = [pytest.param(strategy, id=strategy.value) for strategy in Strategy]
SAFE = [pytest.param(strategy, id=strategy.value) for strategy in SAFE_STRATEGIES]
NOT_IDEMPOTENT = [
    pytest.param(strategy, id=strategy.value) for strategy in (Strategy.NAIVE, Strategy.LOCKING)
]
ALREADY_PAID = f"Invoice {LAB_INVOICE} is already paid; nothing was charged."


@pytest.fixture
def user(db) -> User:
    return User.objects.create_user(username="alice", password=PASSWORD)


@pytest.fixture
def invoice(db) -> Invoice:
    seed_invoice()
    return Invoice.objects.get(number=LAB_INVOICE)


def pay_lab_invoice(user: User, *, strategy: Strategy, key: str = LAB_KEY) -> Receipt:
    return pay(user=user, invoice=LAB_INVOICE, key=key, strategy=strategy, request_started_at=STARTED_AT)


@pytest.mark.django_db
@pytest.mark.parametrize("strategy", ALL)
def test_each_strategy_pays_the_invoice_once_and_refuses_a_new_form(user, invoice, strategy):
    receipt = pay_lab_invoice(user, strategy=strategy)

    (payment,) = Payment.objects.all()
    assert receipt == Receipt(invoice=LAB_INVOICE, payment_id=payment.pk, amount=INVOICE_AMOUNT)
    assert (payment.invoice_id, payment.user_id, payment.idempotency_key) == (invoice.pk, user.pk, LAB_KEY)
    assert (payment.amount, payment.strategy, payment.request_started_at) == (
        INVOICE_AMOUNT,
        strategy.value,
        STARTED_AT,
    )
    invoice.refresh_from_db()
    assert invoice.paid_at is not None
    with pytest.raises(PaymentRefused, match=ALREADY_PAID):
        pay_lab_invoice(user, strategy=strategy, key="LAB-PAYMENT-2")
    assert Payment.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("strategy", NOT_IDEMPOTENT)
def test_without_the_key_the_same_form_sent_again_is_told_the_invoice_is_paid(user, invoice, strategy):
    pay_lab_invoice(user, strategy=strategy)
    with pytest.raises(PaymentRefused, match=ALREADY_PAID):
        pay_lab_invoice(user, strategy=strategy)
    assert IdempotencyKey.objects.count() == 0


@pytest.mark.django_db
def test_the_same_form_sent_again_gets_the_first_answer_and_no_new_charge(user, invoice, database_unchanged):
    first = pay_lab_invoice(user, strategy=Strategy.IDEMPOTENCY_KEY)
    with database_unchanged():
        again = pay_lab_invoice(user, strategy=Strategy.IDEMPOTENCY_KEY)

    assert not first.replayed
    assert again == Receipt(
        invoice=LAB_INVOICE, payment_id=first.payment_id, amount=first.amount, replayed=True
    )
    (taken,) = IdempotencyKey.objects.all()
    assert (taken.user_id, taken.key, taken.invoice_number, taken.payment_id, taken.refusal) == (
        user.pk,
        LAB_KEY,
        LAB_INVOICE,
        first.payment_id,
        "",
    )


@pytest.mark.django_db
def test_a_key_sent_for_one_invoice_is_refused_for_another(user, invoice, database_unchanged):
    Invoice.objects.create(number="OTHER-INVOICE", amount=7)
    pay_lab_invoice(user, strategy=Strategy.IDEMPOTENCY_KEY)

    with (
        database_unchanged(),
        pytest.raises(
            KeyReused,
            match=f"Idempotency key {LAB_KEY} was sent for invoice {LAB_INVOICE}, not OTHER-INVOICE",
        ),
    ):
        pay(
            user=user,
            invoice="OTHER-INVOICE",
            key=LAB_KEY,
            strategy=Strategy.IDEMPOTENCY_KEY,
            request_started_at=STARTED_AT,
        )


@pytest.mark.django_db
def test_a_refusal_is_kept_with_its_key_and_replayed(user, invoice, database_unchanged):
    pay_lab_invoice(user, strategy=Strategy.IDEMPOTENCY_KEY)
    with pytest.raises(PaymentRefused, match=ALREADY_PAID) as first:
        pay_lab_invoice(user, strategy=Strategy.IDEMPOTENCY_KEY, key="LAB-PAYMENT-2")
    with database_unchanged(), pytest.raises(PaymentRefused, match=ALREADY_PAID) as again:
        pay_lab_invoice(user, strategy=Strategy.IDEMPOTENCY_KEY, key="LAB-PAYMENT-2")

    assert (first.value.replayed, again.value.replayed) == (False, True)
    refused = IdempotencyKey.objects.get(key="LAB-PAYMENT-2")
    assert (refused.payment_id, refused.refusal) == (None, ALREADY_PAID)
    assert Payment.objects.count() == 1


@pytest.mark.django_db
def test_another_users_key_is_their_own(user, invoice):
    paid = pay_lab_invoice(user, strategy=Strategy.IDEMPOTENCY_KEY)
    bob = User.objects.create_user(username="bob", password=PASSWORD)

    # Not alice's receipt replayed to bob: his own form, refused.
    with pytest.raises(PaymentRefused, match=ALREADY_PAID) as refused:
        pay_lab_invoice(bob, strategy=Strategy.IDEMPOTENCY_KEY)
    assert not refused.value.replayed
    assert list(IdempotencyKey.objects.order_by("pk").values_list("user_id", "payment_id")) == [
        (user.pk, paid.payment_id),
        (bob.pk, None),
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("strategy", ALL)
def test_an_unknown_invoice_changes_nothing(user, invoice, strategy, database_unchanged):
    with database_unchanged(), pytest.raises(NotFound, match="There is no invoice 'NOPE'"):
        pay(user=user, invoice="NOPE", key=LAB_KEY, strategy=strategy, request_started_at=STARTED_AT)


def pay_concurrently(*, strategy: Strategy, usernames: list[str], window, key: str = LAB_KEY) -> list:
    """One payment of the lab invoice per username at once, each held in ``window`` as the server
    holds a request; what each got (or raised)."""

    def one(username: str) -> object:
        with holding(window=window):
            return pay(
                user=User.objects.get(username=username),
                invoice=LAB_INVOICE,
                key=key,
                strategy=strategy,
                request_started_at=timezone.now(),
            )

    return run_concurrently([lambda username=username: one(username) for username in usernames])


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("parties", [2, 5])
def test_naive_charges_the_same_form_once_per_request_held_together(user, parties):
    with armed(parties=parties, timeout=5, at=PAYMENT.park_point) as barrier:
        for _ in range(20):
            seed_invoice()
            results = pay_concurrently(
                strategy=Strategy.NAIVE, usernames=["alice"] * parties, window=barrier.window
            )

            assert all(isinstance(result, Receipt) for result in results), results
            audit = audit_payments(invoice=LAB_INVOICE)
            assert [(v.kind, v.count) for v in audit.violations] == [(DUPLICATES, parties - 1)]
            assert PAYMENT.naive_violations(parties, audit) == parties - 1
        stats = barrier.stats()
    assert (stats.held, stats.windows, stats.timeouts) == (20 * parties, 20, 0)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("parties", [2, 5])
def test_the_same_form_held_together_is_charged_once_and_every_copy_gets_its_answer(user, parties):
    # All K read the invoice before taking the key, so all K are held together; then one takes
    # the key and pays, and the others wait on the key and replay its answer. Reseeded each
    # trial as the lab resets, which leaves the deleted keys for InnoDB's duplicate check.
    with armed(parties=parties, timeout=5, at=PAYMENT.park_point) as barrier:
        for _ in range(20):
            seed_invoice()
            results = pay_concurrently(
                strategy=Strategy.IDEMPOTENCY_KEY, usernames=["alice"] * parties, window=barrier.window
            )

            assert all(isinstance(result, Receipt) for result in results), results
            (payment,) = Payment.objects.all()
            assert sorted(result.replayed for result in results) == [False] + [True] * (parties - 1)
            assert {result.payment_id for result in results} == {payment.pk}
            assert audit_payments(invoice=LAB_INVOICE).violations == []
        stats = barrier.stats()
    assert (stats.held, stats.windows, stats.timeouts) == (20 * parties, 20, 0)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("strategy", SAFE)
def test_safe_strategies_charge_once_and_never_hang(user, strategy):
    parties, timeout = 3, 0.25
    seed_invoice()
    started = time.monotonic()
    with armed(parties=parties, timeout=timeout, at=PAYMENT.park_point) as barrier:
        results = pay_concurrently(strategy=strategy, usernames=["alice"] * parties, window=barrier.window)
    elapsed = time.monotonic() - started

    assert len(results) == parties
    assert all(isinstance(result, Receipt | PaymentRefused) for result in results), results
    assert Payment.objects.count() == 1
    assert audit_payments(invoice=LAB_INVOICE).violations == []
    # Each held request waits at most its own window, in turn: far below a hang.
    assert elapsed < parties * (timeout + 1) + 5


@pytest.mark.django_db(transaction=True)
def test_locking_refuses_the_copies_of_a_form_where_the_key_would_replay(user):
    seed_invoice()
    with armed(parties=3, timeout=0.25, at=PAYMENT.park_point) as barrier:
        results = pay_concurrently(strategy=Strategy.LOCKING, usernames=["alice"] * 3, window=barrier.window)

    refused = [result for result in results if isinstance(result, PaymentRefused)]
    assert len(refused) == 2 and all(str(refusal) == ALREADY_PAID for refusal in refused), results


@pytest.mark.django_db(transaction=True)
def test_different_forms_held_together_pay_once_and_the_rest_are_refused(user):
    # Four users, each with their own key: the conditional UPDATE, not the key, decides.
    usernames = ["alice", "bob", "carol", "dave"]
    for username in usernames[1:]:
        User.objects.create_user(username=username, password=PASSWORD)
    seed_invoice()
    with armed(parties=len(usernames), timeout=5, at=PAYMENT.park_point) as barrier:
        results = pay_concurrently(
            strategy=Strategy.IDEMPOTENCY_KEY, usernames=usernames, window=barrier.window
        )

    refused = [result for result in results if isinstance(result, PaymentRefused)]
    assert len(refused) == 3 and all(str(refusal) == ALREADY_PAID for refusal in refused), results
    assert not any(refusal.replayed for refusal in refused)
    assert (Payment.objects.count(), IdempotencyKey.objects.count()) == (1, 4)
    assert audit_payments(invoice=LAB_INVOICE).violations == []


@pytest.mark.django_db(transaction=True)
def test_copies_of_a_refused_form_held_together_all_get_its_refusal(user):
    # The first copy to take the key is refused and keeps the refusal with it; the copies that
    # waited on the key replay it.
    parties = 5
    seed_invoice()
    pay_lab_invoice(User.objects.get(username="alice"), strategy=Strategy.NAIVE, key="LAB-PAYMENT-0")
    with armed(parties=parties, timeout=5, at=PAYMENT.park_point) as barrier:
        results = pay_concurrently(
            strategy=Strategy.IDEMPOTENCY_KEY, usernames=["alice"] * parties, window=barrier.window
        )

    assert [str(result) for result in results] == [ALREADY_PAID] * parties, results
    assert sorted(result.replayed for result in results) == [False] + [True] * (parties - 1)
    assert (Payment.objects.count(), IdempotencyKey.objects.count()) == (1, 1)


def test_the_checker_finds_duplicates_on_hand_made_rows_and_nothing_on_clean_ones(user):
    bob = User.objects.create_user(username="bob", password=PASSWORD)
    invoices = {number: Invoice.objects.create(number=number, amount=10) for number in "ABCDE"}

    def charge(number: str, key: str, payer: User = user) -> int:
        return Payment.objects.create(
            invoice=invoices[number],
            user=payer,
            idempotency_key=key,
            amount=10,
            strategy="naive",
            request_started_at=STARTED_AT,
        ).pk

    charge("E", "k0")
    assert audit_payments().violations == []
    reused = charge("B", "k2"), charge("C", "k2")  # one key, two invoices
    doubled = [charge("A", "k1") for _ in range(3)]  # one form, three charges
    charge("D", "k1", payer=bob)  # bob's k1 is another key

    audit = audit_payments()
    (violation,) = audit.violations
    # A's second and third repeat both its invoice and its key: each counted once.
    assert (violation.kind, violation.count) == (DUPLICATES, 1 + 2)
    assert violation.first == {
        "payment_id": reused[0],
        "invoice": "B",
        "idempotency_key": "k2",
        "payments": 2,
        "duplicate_ids": [reused[1]],
    }
    assert violation.worst == {
        "payment_id": doubled[0],
        "invoice": "A",
        "idempotency_key": "k1",
        "payments": 3,
        "duplicate_ids": doubled[1:],
    }
    assert dict(audit.figures) == {
        "invoices": 5,
        "invoices paid": 0,
        "payments": 7,
        "invoices paid more than once": 1,
        "keys that paid more than once": 2,
        "duplicate payments": 3,
    }
    assert audit.verdict == f"ANOMALIES: {DUPLICATES}"
    assert audit_payments(invoice="D").violations == []


def test_a_repeat_of_a_repeat_counts_against_the_payment_that_began_it(user):
    invoices = {number: Invoice.objects.create(number=number, amount=10) for number in "AB"}
    ids = [
        Payment.objects.create(
            invoice=invoices[number], user=user, idempotency_key=key, amount=10, strategy="naive",
            request_started_at=STARTED_AT,
        ).pk
        for number, key in (("A", "k1"), ("A", "k2"), ("B", "k2"))
    ]  # fmt: skip

    # The second repeats the first's invoice, the third the second's key: both trace to the first.
    (violation,) = audit_payments().violations
    assert violation.count == 2
    assert (
        violation.first
        == violation.worst
        == {
            "payment_id": ids[0],
            "invoice": "A",
            "idempotency_key": "k1",
            "payments": 3,
            "duplicate_ids": ids[1:],
        }
    )


@pytest.fixture
def logged_in(client, user):
    client.force_login(user)
    return client


def post(client, *, strategy: str = "naive", **form):
    return client.post(f"{URL}?strategy={strategy}", form)


@pytest.mark.django_db
def test_the_endpoint_answers_the_payment_then_409_with_the_reason(logged_in, invoice):
    paid = post(logged_in, invoice=LAB_INVOICE, key=LAB_KEY)
    refused = post(logged_in, invoice=LAB_INVOICE, key=LAB_KEY, strategy="locking")

    payment = Payment.objects.get()
    assert (paid.status_code, paid.content.decode()) == (
        200,
        f"Invoice {LAB_INVOICE} paid: {INVOICE_AMOUNT} charged as payment {payment.pk}.\n",
    )
    assert REPLAYED_HEADER not in paid
    assert (refused.status_code, refused["Content-Type"]) == (409, "text/plain")
    assert refused.content.decode() == f"{ALREADY_PAID}\n"


@pytest.mark.django_db
@pytest.mark.parametrize("first_key", [LAB_KEY, "LAB-PAYMENT-0"], ids=["paid", "refused"])
def test_the_endpoint_replays_the_first_answer_to_the_same_form(logged_in, invoice, first_key):
    # Paid with LAB_KEY itself, or with another form first, so that LAB_KEY's answer is a 409.
    post(logged_in, invoice=LAB_INVOICE, key=first_key, strategy="idempotency_key")
    first = post(logged_in, invoice=LAB_INVOICE, key=LAB_KEY, strategy="idempotency_key")
    again = post(logged_in, invoice=LAB_INVOICE, key=LAB_KEY, strategy="idempotency_key")

    assert first.status_code == (200 if first_key == LAB_KEY else 409)
    assert (again.status_code, again.content) == (first.status_code, first.content)
    assert again[REPLAYED_HEADER] == "true"
    assert Payment.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "form", "status", "reason"),
    [
        ("strategy=fast", {"invoice": LAB_INVOICE, "key": LAB_KEY}, 400, STRATEGY_ERROR),
        ("", {"key": LAB_KEY}, 400, INVOICE_ERROR),
        ("", {"invoice": "two words", "key": LAB_KEY}, 400, INVOICE_ERROR),
        ("", {"invoice": "x" * 41, "key": LAB_KEY}, 400, INVOICE_ERROR),
        ("", {"invoice": [LAB_INVOICE] * 2, "key": LAB_KEY}, 400, "invoice was given 2 times; send it once."),
        ("", {"invoice": LAB_INVOICE}, 400, KEY_ERROR),
        ("", {"invoice": LAB_INVOICE, "key": "a key"}, 400, KEY_ERROR),
        ("", {"invoice": LAB_INVOICE, "key": "k" * 65}, 400, KEY_ERROR),
        ("", {"invoice": LAB_INVOICE, "key": [LAB_KEY] * 2}, 400, "key was given 2 times; send it once."),
        ("", {"invoice": "NOPE", "key": LAB_KEY}, 404, "There is no invoice 'NOPE'."),
        ("strategy=idempotency_key", {"invoice": "NOPE", "key": LAB_KEY}, 404, "seed_scenario payment"),
    ],
)
def test_bad_input_gets_a_reason_and_changes_nothing(
    logged_in, invoice, query, form, status, reason, database_unchanged
):
    with database_unchanged():
        response = logged_in.post(f"{URL}?{query}", form)
    assert response.status_code == status
    assert reason in response.content.decode()


@pytest.mark.django_db
def test_the_endpoint_refuses_a_key_sent_again_for_another_invoice_with_422(
    logged_in, invoice, database_unchanged
):
    Invoice.objects.create(number="OTHER-INVOICE", amount=7)
    post(logged_in, invoice=LAB_INVOICE, key=LAB_KEY, strategy="idempotency_key")
    with database_unchanged():
        response = post(logged_in, invoice="OTHER-INVOICE", key=LAB_KEY, strategy="idempotency_key")
    assert response.status_code == 422
    assert "send a new key for a new payment" in response.content.decode()


@pytest.mark.django_db
def test_anonymous_and_get_requests_are_refused(client, invoice, database_unchanged):
    with database_unchanged():
        assert post(client, invoice=LAB_INVOICE, key=LAB_KEY).status_code == 403
        assert client.get(URL).status_code == 405


@pytest.mark.django_db
def test_seed_and_reset_commands(user, capsys):
    call_command("seed_scenario", "payment")
    assert "Created invoice LAB-INVOICE: 100 to pay, unpaid" in capsys.readouterr().out
    pay_lab_invoice(user, strategy=Strategy.IDEMPOTENCY_KEY)

    call_command("reset_scenario", "payment", "--no-input")

    assert (Payment.objects.count(), IdempotencyKey.objects.count()) == (0, 0)
    assert Invoice.objects.get(number=LAB_INVOICE).paid_at is None
    out = capsys.readouterr().out
    assert "Reset 1 invoice(s) to unpaid: 1 payment(s) and 1 idempotency key(s) cleared." in out

    pay_lab_invoice(user, strategy=Strategy.NAIVE)
    call_command("seed_scenario", "payment")
    assert "Reset invoice LAB-INVOICE: 100 to pay, unpaid; 1 payment(s)" in capsys.readouterr().out
    assert Invoice.objects.get(number=LAB_INVOICE).paid_at is None


@pytest.mark.django_db
def test_seeding_with_a_limit_is_refused_and_changes_nothing(invoice, database_unchanged):
    with (
        database_unchanged(),
        pytest.raises(CommandError, match="The payment scenario has nothing to size; drop --limit."),
    ):
        call_command("seed_scenario", "payment", "--limit", "3")


@pytest.mark.django_db
def test_audit_transactions_proves_the_payment_invariant(user, invoice, capsys):
    call_command("audit_transactions", "--scenario", "payment", "--fail-on-anomaly")
    assert "Verdict: OK, the invariant holds." in capsys.readouterr().out

    ids = [
        Payment.objects.create(
            invoice=invoice,
            user=user,
            idempotency_key=LAB_KEY,
            amount=INVOICE_AMOUNT,
            strategy="naive",
            request_started_at=STARTED_AT,
        ).pk
        for _ in range(3)
    ]
    call_command("audit_transactions", "--scenario", "payment", "--format", "json")
    document = valid(json.loads(capsys.readouterr().out), kind="scenario-audit")
    assert document["verdict"] == f"ANOMALIES: {DUPLICATES}"
    assert document["figures"]["duplicate payments"] == 2
    (violation,) = document["violations"]
    assert violation["first"]["duplicate_ids"] == ids[1:]

    with pytest.raises(CommandError, match="The payment scenario breaks its invariant") as failed:
        call_command("audit_transactions", "--scenario", "payment", "--fail-on-anomaly")
    assert failed.value.returncode == 1
    assert DUPLICATES in capsys.readouterr().out


@pytest.mark.django_db
def test_reset_without_confirmation_changes_nothing(invoice, user, monkeypatch, database_unchanged):
    pay_lab_invoice(user, strategy=Strategy.NAIVE)
    monkeypatch.setattr("builtins.input", lambda prompt: "no")
    with database_unchanged(), pytest.raises(CommandError, match="Reset cancelled; nothing was changed."):
        call_command("reset_scenario", "payment")
