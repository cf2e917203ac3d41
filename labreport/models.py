from django.contrib.auth.models import User
from django.db import models

from accounts.models import Run


class RecordedRequest(models.Model):
    """One request of a lab run, stamped on the server's clock by RequestTimingMiddleware."""

    run_token = models.CharField(max_length=64)
    user = models.ForeignKey(User, models.CASCADE, related_name="+")
    # Set when splatter files the run, with the ledger row the request wrote, copied because the
    # next reset deletes the ledger.
    run = models.ForeignKey(Run, models.CASCADE, null=True, related_name="recorded_requests")
    worker = models.IntegerField(help_text="The pid of the Gunicorn worker that served it.")
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=200)
    status = models.PositiveSmallIntegerField()
    arrived_at = models.DateTimeField(
        help_text="When the whole request was in: the ledger's request_started_at."
    )
    read_at = models.DateTimeField(null=True, help_text="When its read of the account returned.")
    written_at = models.DateTimeField(null=True, help_text="When its write of the account returned.")
    answered_at = models.DateTimeField(help_text="When its answer was ready to send.")
    ledger_id = models.BigIntegerField(null=True)
    balance_before = models.IntegerField(null=True)
    balance_after = models.IntegerField(null=True)

    class Meta:
        indexes = [models.Index(fields=["run_token", "user"], name="recorded_request_run")]

    def __str__(self) -> str:
        return f"{self.method} {self.path} -> {self.status} (worker {self.worker})"
