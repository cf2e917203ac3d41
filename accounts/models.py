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


class ClientRun(models.Model):
    """What a load driver saw of one run: the checker reconciles the ledger against it.

    ok: a 2xx answer (the withdrawal happened); failed: a 4xx answer (it did not);
    indeterminate: a timeout, a reset connection or a 5xx (it may or may not have happened).
    """

    account = models.ForeignKey(Account, models.CASCADE, related_name="client_runs")
    driver = models.CharField(max_length=20)
    strategy = models.CharField(max_length=20)
    amount = models.IntegerField()
    requests = models.IntegerField()
    ok = models.IntegerField()
    failed = models.IntegerField()
    indeterminate = models.IntegerField()
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()

    def __str__(self) -> str:
        return (
            f"{self.driver}/{self.strategy} on account {self.account_id}: "
            f"{self.ok} ok, {self.failed} failed, {self.indeterminate} indeterminate"
        )
