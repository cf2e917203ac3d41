"""fill_ledger: a large ledger the audit accepts, appended to on a second call, all or nothing."""

from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from accounts.audit import audit_accounts
from accounts.ledger_fill import BATCH_ROWS, LedgerFillError, fill_ledger
from accounts.models import Account, Transaction
from accounts.withdrawals import Strategy
from tests.helpers import database_snapshot

pytestmark = pytest.mark.django_db


def test_rows_are_shared_out_and_the_audit_agrees_with_them():
    rows = 2 * BATCH_ROWS + 3  # more than one batch each, and not a multiple of the accounts

    filled = fill_ledger(rows=rows, accounts=2, amount=2, strategy=Strategy.LOCKING)

    assert [account.rows for account in filled] == [BATCH_ROWS + 2, BATCH_ROWS + 1]
    assert Transaction.objects.count() == rows
    assert set(Transaction.objects.values_list("strategy", flat=True).distinct()) == {"locking"}
    audits = audit_accounts()
    assert [a.username for a in audits] == ["ledger-01", "ledger-02"]
    for audit, account in zip(audits, filled, strict=True):
        assert audit.verdict == "OK"
        assert audit.ledger_rows == account.rows
        assert audit.withdrawn == audit.decrease == 2 * account.rows
        assert audit.final == account.balance_after == Account.objects.get(pk=account.account_id).current


def test_a_second_fill_continues_each_history():
    fill_ledger(rows=100, accounts=2)

    second = fill_ledger(rows=100, accounts=2)

    assert [a.balance_before for a in second] == [1_000_000 - 50, 1_000_000 - 50]
    assert all(audit.verdict == "OK" and audit.ledger_rows == 100 for audit in audit_accounts())


def test_the_ledger_users_cannot_log_in():
    fill_ledger(rows=10, accounts=2, prefix="demo-ledger")

    assert not any(
        user.has_usable_password() for user in User.objects.filter(username__startswith="demo-ledger")
    )


def test_a_share_an_account_cannot_cover_is_refused_and_nothing_is_written():
    fill_ledger(rows=10, accounts=2)
    Account.objects.filter(user__username="ledger-02").update(minimum=999_990)
    before = database_snapshot()

    with pytest.raises(LedgerFillError, match=r"ledger-02\) holds 999995, only 5 above its minimum"):
        fill_ledger(rows=20, accounts=2)

    assert database_snapshot() == before


def test_the_command_reports_what_it_added():
    output = StringIO()

    call_command("fill_ledger", "--rows", "30", "--accounts", "3", "--verbosity", "2", stdout=output)

    assert "Added 30 ledger rows over 3 account(s)" in output.getvalue()
    assert "ledger-03" in output.getvalue()


def test_the_command_refuses_an_account_it_cannot_fill():
    call_command("fill_ledger", "--rows", "2", "--accounts", "1", "--amount", "400000", stdout=StringIO())

    with pytest.raises(CommandError, match="Nothing was written"):
        call_command("fill_ledger", "--rows", "2", "--accounts", "1", "--amount", "400000", stdout=StringIO())
