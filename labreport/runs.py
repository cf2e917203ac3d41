"""File a finished lab run: the audit as it stands, and the run's recorded requests tied to it."""

import secrets
from dataclasses import dataclass
from datetime import datetime

from accounts.audit import audit_account, audit_document
from accounts.models import Account, Transaction
from labreport.models import LabRun, RecordedRequest

# Rows per UPDATE when the ledger's figures are copied onto the recorded requests.
COPY_BATCH = 500


def new_run_token() -> str:
    """What the driver sends as X-Lab-Run with every request of one run."""
    return secrets.token_urlsafe(16)


@dataclass(frozen=True, kw_only=True)
class RunSummary:
    """What the driver saw of one account's part of a run."""

    token: str
    driver: str
    strategy: str
    concurrency: int
    amount: int
    requests: int
    ok: int
    refused: int
    indeterminate: int
    race_window: bool
    requests_per_second: float | None
    started_at: datetime
    finished_at: datetime


def file_lab_run(*, account: Account, summary: RunSummary) -> LabRun:
    """Keep the run with the account's audit now, and attach the requests the server recorded.

    Each recorded request that wrote a ledger row gets a copy of its id and balances, matched on
    the time the server stamped both with (request_started_at): the next reset deletes the
    ledger, the timeline of this run must outlive it.
    """
    account.refresh_from_db()
    audit = audit_account(account=account)
    run = LabRun.objects.create(
        token=summary.token,
        account=account,
        driver=summary.driver,
        strategy=summary.strategy,
        concurrency=summary.concurrency,
        amount=summary.amount,
        requests=summary.requests,
        ok=summary.ok,
        refused=summary.refused,
        indeterminate=summary.indeterminate,
        race_window=summary.race_window,
        requests_per_second=summary.requests_per_second,
        audit=audit_document(audit),
        lost=audit.lost_withdrawals,
        verdict=audit.verdict,
        started_at=summary.started_at,
        finished_at=summary.finished_at,
    )
    _attach_requests(run=run, account=account)
    return run


def _attach_requests(*, run: LabRun, account: Account) -> None:
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
