from django.contrib.auth.models import User
from django.db import models

from races.models import RaceRecord
from scenarios.limits import Limit

MAX_CODE_LENGTH = 40
MAX_USES = 1_000_000


class Voucher(models.Model):
    """A discount code that may be used ``limit`` times in all (1: single use)."""

    code = models.CharField(max_length=MAX_CODE_LENGTH, unique=True)
    limit = models.PositiveIntegerField(default=1)
    # Uses left: the conditional_update strategy's counter, put back to ``limit`` on reset.
    remaining = models.PositiveIntegerField(default=1)

    def __str__(self) -> str:
        return f"Voucher {self.code} ({self.limit} use(s))"


class VoucherUsage(RaceRecord):
    """One use of a voucher: the rows the checker counts against the voucher's limit."""

    voucher = models.ForeignKey(Voucher, models.CASCADE, related_name="usages")
    user = models.ForeignKey(User, models.CASCADE, related_name="+")
    # Which of the voucher's uses this is, set by the unique_slot strategy only: the unique
    # constraint below then refuses a second row for the same use. Left NULL by the others, and
    # NULLs never collide in a unique index (SQLite, PostgreSQL and MariaDB alike).
    slot = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["voucher", "slot"], name="voucher_usage_one_per_slot")]

    def __str__(self) -> str:
        return f"Use of {self.voucher_id} by user {self.user_id} ({self.strategy})"


# A voucher's uses: ``limit`` of them, ``remaining`` left, each taken a VoucherUsage row.
USES = Limit(model=Voucher, key="code", limit="limit", left="remaining", taken="usages")
