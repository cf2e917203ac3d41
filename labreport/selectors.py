"""What the lab report page reads: the runs a user may see, and a run's recorded requests."""

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import F, QuerySet

from accounts.models import Run
from labreport.timeline import TimedRequest


def runs_visible_to(*, user: AbstractBaseUser) -> QuerySet[Run]:
    """Staff see every filed run; anyone else the filed runs on their own accounts."""
    runs = Run.objects.filter(audit__isnull=False).select_related("account__user")
    return runs if user.is_staff else runs.filter(account__user=user)


def timed_requests(*, run: Run) -> list[TimedRequest]:
    """The run's requests in arrival order, as the timeline draws them."""
    rows = run.recorded_requests.order_by("arrived_at", "id").values(*_TIMED_FIELDS, request_id=F("id"))
    return [TimedRequest(**row) for row in rows]


_TIMED_FIELDS = (
    "worker",
    "arrived_at",
    "read_at",
    "written_at",
    "answered_at",
    "status",
    "ledger_id",
    "balance_before",
    "balance_after",
)


def latest_run(*, account_id: int) -> Run | None:
    """The account's most recent lab run, if it has one."""
    return (
        Run.objects.filter(account_id=account_id, audit__isnull=False)
        .defer("audit")
        .order_by("-started_at", "-id")
        .first()
    )
