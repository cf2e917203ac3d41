import pytest
from django.contrib.auth.models import User

from accounts.models import DEFAULT_OPENING_BALANCE, Account, Run, Transaction
from accounts.withdrawals import Strategy

pytestmark = pytest.mark.django_db


def test_a_new_account_opens_at_the_default_balance_with_no_minimum_and_version_zero():
    account = Account.objects.create()
    account.refresh_from_db()

    assert DEFAULT_OPENING_BALANCE == 1_000_000
    assert (account.opening, account.current, account.minimum, account.version) == (
        DEFAULT_OPENING_BALANCE,
        DEFAULT_OPENING_BALANCE,
        0,
        0,
    )


def test_account_str_names_its_owner_and_balance(account):
    assert str(account) == f"Account {account.pk} (alice): 1000"


def test_account_str_without_owner(make_account):
    account = make_account(username=None, opening=5)

    assert str(account) == f"Account {account.pk} (no owner): 5"


def test_deleting_the_user_keeps_the_account_and_its_ledger(account, add_row):
    add_row(account, 1000, 999)

    User.objects.filter(username="alice").delete()

    account.refresh_from_db()
    assert account.user is None
    assert account.current == 1000
    assert account.transactions.count() == 1


def test_deleting_an_account_deletes_its_ledger_and_runs(account, add_row, add_run):
    other = Account.objects.create(opening=7, current=7)
    add_row(account, 1000, 999)
    add_row(other, 7, 6)
    add_run(account, ok=1)
    add_run(other, ok=1)

    account.delete()

    assert list(Transaction.objects.values_list("holder_id", flat=True)) == [other.pk]
    assert list(Run.objects.values_list("account_id", flat=True)) == [other.pk]


def test_transaction_str_shows_amount_account_and_balances(account, add_row):
    row = add_row(account, 1000, 995)

    assert str(row) == f"-5 on account {account.pk}: 1000 -> 995"


def test_run_str_shows_the_outcome_counts(account, add_run):
    run = add_run(account, ok=3, refused=2, indeterminate=1)

    assert str(run) == (
        f"Run {run.pk}: ab/{Strategy.NAIVE} -c 3 on account {account.pk}: 3 ok, 2 refused, 1 indeterminate"
    )


def test_ledger_rows_are_reachable_from_the_account(account, add_row):
    first = add_row(account, 1000, 999)
    second = add_row(account, 999, 998)

    assert list(account.transactions.order_by("pk")) == [first, second]
