from django.contrib.auth.models import User
from django.db import models

from accounts.models import Account


class LabRun(models.Model):
    """One splatter run on one account, kept through later resets: what the driver saw, the audit
    at the end of the run, and (through its recorded requests) when each request did what."""

    # Sent by the driver with every request of the run (X-Lab-Run); several accounts' runs of one
    # splatter invocation (--users) share it, told apart by user.
    token = models.CharField(max_length=64, db_index=True)
    account = models.ForeignKey(Account, models.CASCADE, related_name="lab_runs")
    driver = models.CharField(max_length=20)
    scenario = models.CharField(max_length=30, default="withdrawal")
    strategy = models.CharField(max_length=20)
    concurrency = models.IntegerField()
    amount = models.IntegerField()
    requests = models.IntegerField()
    ok = models.IntegerField()
    refused = models.IntegerField()
    indeterminate = models.IntegerField()
    race_window = models.BooleanField(default=False)
    requests_per_second = models.FloatField(null=True)
    # The audit of the account as audit_transactions --format json printed it when the run ended
    # (the ledger since the account's last reset): a later reset clears the rows, not this.
    audit = models.JSONField()
    lost = models.IntegerField(help_text="Lost withdrawals in the audit at the end of the run.")
    verdict = models.TextField()
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return (
            f"Run {self.pk}: {self.driver}/{self.strategy} -c {self.concurrency} on account {self.account_id}"
        )


class RecordedRequest(models.Model):
    """One request of a lab run, stamped on the server's clock by RequestTimingMiddleware."""

    run_token = models.CharField(max_length=64)
    user = models.ForeignKey(User, models.CASCADE, related_name="+")
    # Set when splatter files the run, with the ledger row the request wrote, copied because the
    # next reset deletes the ledger.
    run = models.ForeignKey(LabRun, models.CASCADE, null=True, related_name="recorded_requests")
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
