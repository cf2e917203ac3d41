"""File a finished run: the audit as it stands, and the run's recorded requests tied to it."""

from datetime import datetime

from accounts.audit import AccountAudit, audit_document
from accounts.models import Run, Transaction
from labreport.models import RecordedRequest

# Rows per UPDATE when the ledger's figures are copied onto the recorded requests.
COPY_BATCH = 500


def file_run(*, run: Run, audit: AccountAudit) -> None:
    """Keep the account's audit when the run ended with the run, and attach the requests the
    server recorded.

    Each recorded request that wrote a ledger row gets a copy of its id and balances, matched on
    the time the server stamped both with (request_started_at): the next reset deletes the
    ledger, the timeline of this run must outlive it.
    """
    run.audit = audit_document(audit)
    run.lost = audit.lost_withdrawals
    run.verdict = audit.verdict
    run.save(update_fields=["audit", "lost", "verdict"])
    _attach_requests(run=run)


def _attach_requests(*, run: Run) -> None:
    account = run.account
    recorded = RecordedRequest.objects.filter(run_token=run.token, user_id=account.user_id, run__isnull=True)
    if not recorded.update(run=run):
        return
    requests = list(run.recorded_requests.only("id", "arrived_at", "status").order_by("arrived_at"))
    ledger = Transaction.objects.filter(
        holder=account,
        request_started_at__gte=requests[0].arrived_at,
        request_started_at__lte=requests[-1].arrived_at,
    ).values_list("request_started_at", "id", "balance_before", "balance")
    rows_by_arrival: dict[datetime, list[tuple]] = {}
    for started_at, *row in ledger.order_by("id"):
        rows_by_arrival.setdefault(started_at, []).append(row)
    matched = []
    for request in requests:
        rows = rows_by_arrival.get(request.arrived_at) if 200 <= request.status < 300 else None
        if rows:
            # Two requests stamped in the same microsecond share a key: hand their rows out in turn.
            request.ledger_id, request.balance_before, request.balance_after = rows.pop(0)
            matched.append(request)
    RecordedRequest.objects.bulk_update(
        matched, ["ledger_id", "balance_before", "balance_after"], batch_size=COPY_BATCH
    )
