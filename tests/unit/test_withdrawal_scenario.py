"""The bank's withdrawal as an entry of the catalogue: its data is the balance of every account a
user owns, put back by seed and reset, judged by the bank's checker added up."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from accounts.audit import AnomalyKind, audit_account
from accounts.models import Account, Run
from accounts.provisioning import reset_accounts
from scenarios.catalogue import SCENARIOS
from scenarios.definition import ProvisioningError
from scenarios.withdrawals.scenario import WITHDRAWAL, audit_withdrawals, seed_withdrawals

pytestmark = pytest.mark.django_db


def test_the_withdrawal_is_the_catalogues_first_entry():
    assert next(iter(SCENARIOS.values())) is WITHDRAWAL
    assert (WITHDRAWAL.path, WITHDRAWAL.park_point, WITHDRAWAL.forms) == (
        "/accounts/withdraw/",
        "accounts_account",
        ({"amount": "1"},),
    )
    # The conditional UPDATE reads only to word a refusal: an armed window may hold none of it.
    assert not WITHDRAWAL.always_held("atomic_update") and WITHDRAWAL.always_held("locking")


def test_seeding_puts_every_owned_account_back_and_leaves_an_unowned_one(make_account, add_row, add_run):
    alice, bob = make_account(username="alice"), make_account(username="bob", opening=500)
    unowned = make_account(username=None, opening=70, current=3)
    for account in (alice, bob):
        add_row(account, account.opening, account.opening - 1)
        add_run(account, ok=1)

    assert (
        seed_withdrawals(limit=40) == "2 account(s) reset to an opening balance of 40, their ledgers cleared."
    )

    balances = dict(Account.objects.values_list("pk", "current"))
    assert balances == {alice.pk: 40, bob.pk: 40, unowned.pk: 3}
    assert not Run.objects.filter(since_reset=True).exists() and Run.objects.count() == 2
    assert WITHDRAWAL.is_seeded()


def test_a_limit_below_an_accounts_minimum_changes_no_account(make_account, add_row, database_unchanged):
    make_account(username="alice", opening=100)
    strict = make_account(username="bob", opening=100, minimum=50)
    add_row(strict, 100, 99)

    with database_unchanged(), pytest.raises(ProvisioningError, match="minimum"):
        seed_withdrawals(limit=10)


def test_without_an_owned_account_there_is_nothing_to_race_for(make_account, database_unchanged):
    make_account(username=None)
    assert not WITHDRAWAL.is_seeded()

    with database_unchanged(), pytest.raises(CommandError, match="create one with seed_account. Nothing was"):
        call_command("reset_scenario", "withdrawal", "--no-input", stdout=StringIO())


def test_the_audit_adds_up_every_owned_accounts_anomalies(make_account, add_row):
    for username in ("alice", "bob"):
        account = make_account(username=username, opening=10, current=9)
        # Two withdrawals that read the same balance: one lost.
        add_row(account, 10, 9)
        add_row(account, 10, 9)
    unowned = make_account(username=None, opening=10, current=9)
    add_row(unowned, 10, 9)
    add_row(unowned, 10, 9)

    audit = audit_withdrawals()

    figures = dict(audit.figures)
    assert (figures["accounts"], figures["ledger rows"], figures["lost withdrawals"]) == (2, 4, 2)
    counts = {violation.kind: violation.count for violation in audit.violations}
    assert counts[AnomalyKind.LOST_WITHDRAWALS] == 2 and counts[AnomalyKind.LOST_UPDATES] == 2


def test_the_checker_counts_the_runs_since_the_last_reset_only(account, add_row, add_run):
    add_run(account, ok=5)
    reset_accounts(opening=None, username="alice")
    add_row(account, 1000, 999)
    account.current = 999
    account.save()
    add_run(account, ok=1)

    audit = audit_account(account=account)

    assert (audit.client.runs, audit.client.ok) == (1, 1)
    assert audit.verdict == "OK"
