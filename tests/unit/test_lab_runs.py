"""Filing a lab run: the audit as it stood, and the recorded requests tied to their ledger rows."""

import pytest
from django.utils import timezone

from accounts.audit import audit_account, audit_document
from accounts.models import Transaction
from accounts.provisioning import reset_accounts
from labreport.models import RecordedRequest
from labreport.selectors import latest_run, runs_visible_to, timed_requests


@pytest.mark.django_db
def test_a_filed_run_keeps_the_audit_and_its_figures(account, make_lab_run):
    run = make_lab_run(account, reads=[1000, 999, 999, 998], refused=2)

    account.refresh_from_db()
    assert run.audit == audit_document(audit_account(account=account))
    assert (run.lost, run.ok, run.refused, run.requests) == (1, 4, 2, 6)
    assert run.verdict.startswith("ANOMALIES: lost withdrawals, lost updates")


@pytest.mark.django_db
def test_each_ok_request_gets_its_own_ledger_row_and_refused_ones_none(account, make_lab_run):
    run = make_lab_run(account, reads=[1000, 999, 999], refused=2)

    rows = {row.request_started_at: row for row in Transaction.objects.all()}
    recorded = list(run.recorded_requests.order_by("arrived_at"))
    assert len(recorded) == 5
    for request in recorded:
        if request.status == 200:
            row = rows[request.arrived_at]
            assert (request.ledger_id, request.balance_before, request.balance_after) == (
                row.pk,
                row.balance_before,
                row.balance,
            )
        else:
            assert (request.ledger_id, request.balance_before, request.balance_after) == (None, None, None)
    assert len({request.ledger_id for request in recorded if request.ledger_id}) == 3


@pytest.mark.django_db
def test_the_run_outlives_the_reset_that_deletes_its_ledger(account, make_lab_run):
    run = make_lab_run(account, reads=[1000, 1000])

    reset_accounts(opening=None, username=account.user.username)

    assert not Transaction.objects.exists()
    requests = timed_requests(run=run)
    assert [request.balance_before for request in requests] == [1000, 1000]
    assert all(request.ledger_id for request in requests)
    assert run.audit["lost_withdrawals"] == 1


@pytest.mark.django_db
def test_another_users_requests_with_the_same_token_stay_out(account, make_account, make_lab_run):
    other = make_account(username="mallory")
    RecordedRequest.objects.create(
        run_token="lab-run-token",
        user=other.user,
        worker=1,
        method="POST",
        path="/accounts/withdraw/",
        status=200,
        arrived_at=timezone.now(),
        answered_at=timezone.now(),
    )

    run = make_lab_run(account, reads=[1000])

    assert run.recorded_requests.count() == 1
    assert RecordedRequest.objects.filter(run__isnull=True, user=other.user).count() == 1


@pytest.mark.django_db
def test_who_sees_which_run(account, make_account, make_lab_run, django_user_model):
    mine = make_lab_run(account, reads=[1000])
    other = make_account(username="bob")
    theirs = make_lab_run(other, reads=[1000])
    staff = django_user_model.objects.create_user(username="staff", is_staff=True)

    assert list(runs_visible_to(user=account.user)) == [mine]
    assert list(runs_visible_to(user=other.user)) == [theirs]
    assert set(runs_visible_to(user=staff)) == {mine, theirs}
    assert latest_run(account_id=account.pk) == mine
