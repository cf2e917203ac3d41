from django.contrib.auth.models import User
from django.db import models

from races.models import RaceRecord

DEFAULT_OPENING_BALANCE = 1_000_000


class Account(models.Model):
    """A bank account; field names are the blog's, so its snippets still read true."""

    user = models.ForeignKey(User, models.SET_NULL, null=True, blank=True)
    minimum = models.IntegerField(default=0)
    current = models.IntegerField(default=DEFAULT_OPENING_BALANCE)
    # What the audit measures the ledger against; set by seed_account and reset_balances.
    opening = models.IntegerField(default=DEFAULT_OPENING_BALANCE)
    # Bumped by the optimistic strategy only; the others leave it alone.
    version = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        owner = self.user.username if self.user else "no owner"
        return f"Account {self.pk} ({owner}): {self.current}"

    def make_withdrawl(self, value=1):
        """The blog's method, its name and its bug kept: ``current`` was read when the account was
        loaded, so two requests that loaded it at once both save the same new balance. Its guard,
        ``current >= minimum``, lets the balance go one withdrawal below the minimum."""
        if self.current >= self.minimum:
            self.current -= value
            self.save()
        return self.current


class Transaction(RaceRecord):
    """One ledger row per successful withdrawal: the history the audit checks."""

    holder = models.ForeignKey(Account, models.CASCADE, related_name="transactions")
    amount = models.IntegerField()
    balance_before = models.IntegerField(help_text="The balance the withdrawal read.")
    balance = models.IntegerField(help_text="The balance the withdrawal wrote.")

    class Meta:
        # What the audit reads: each account's balances read and written. The id makes them
        # covering for its anomaly queries (GROUP BY the balance with MIN(id)): PostgreSQL then
        # answers from the index alone, already in group order. (SQLite and InnoDB put the
        # primary key in every index anyway.)
        indexes = [
            models.Index(fields=["holder", "balance_before", "id"], name="ledger_holder_read"),
            models.Index(fields=["holder", "balance", "id"], name="ledger_holder_written"),
        ]

    def __str__(self) -> str:
        return f"-{self.amount} on account {self.holder_id}: {self.balance_before} -> {self.balance}"


class Run(models.Model):
    """One splatter run on one account: what the load driver saw, and the account's audit when
    the run ended. The checker reconciles the ledger against the runs since the account's last
    reset; the report pages keep every run, with its recorded requests, through later resets.

    ok: a 2xx answer (the withdrawal happened); refused: a 4xx answer (it did not);
    indeterminate: a timeout, a reset connection or a 5xx (it may or may not have happened).
    """

    account = models.ForeignKey(Account, models.CASCADE, related_name="runs")
    # Sent by the driver with every request of the run (X-Lab-Run), for the server to stamp
    # them; several accounts' runs of one splatter invocation (--users) share it.
    token = models.CharField(max_length=64, db_index=True)
    driver = models.CharField(max_length=20)
    strategy = models.CharField(max_length=20)
    amount = models.IntegerField()
    concurrency = models.IntegerField()
    requests = models.IntegerField()
    ok = models.IntegerField()
    refused = models.IntegerField()
    indeterminate = models.IntegerField()
    race_window = models.BooleanField(default=False)
    requests_per_second = models.FloatField(null=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    since_reset = models.BooleanField(
        default=True,
        help_text="Its withdrawals are in the account's ledger: until the account's next reset, "
        "the checker reconciles the ledger against it.",
    )
    # The account's audit as audit_transactions --format json printed it when the run ended (the
    # ledger since the account's last reset); None until the run is filed.
    audit = models.JSONField(null=True)
    lost = models.IntegerField(null=True, help_text="Lost withdrawals in the audit at the end of the run.")
    verdict = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        # The checker reads an account's runs since its reset; the report pages keep every run.
        indexes = [models.Index(fields=["account", "since_reset"], name="run_account_since_reset")]

    def __str__(self) -> str:
        return (
            f"Run {self.pk}: {self.driver}/{self.strategy} -c {self.concurrency} on account "
            f"{self.account_id}: {self.ok} ok, {self.refused} refused, {self.indeterminate} indeterminate"
        )
