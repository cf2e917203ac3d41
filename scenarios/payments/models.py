from django.contrib.auth.models import User
from django.db import models

from races.models import RaceRecord

MAX_NUMBER_LENGTH = 40
# Room for a UUID (36), which is what Stripe and the IETF draft suggest a client sends.
MAX_KEY_LENGTH = 64


class Invoice(models.Model):
    """Something to pay, once: ``paid_at`` is set by the payment that settles it."""

    number = models.CharField(max_length=MAX_NUMBER_LENGTH, unique=True)
    amount = models.PositiveIntegerField()
    paid_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        state = "paid" if self.paid_at else "unpaid"
        return f"Invoice {self.number} ({self.amount}, {state})"


class Payment(RaceRecord):
    """One charge: the rows the checker counts per invoice and per idempotency key."""

    invoice = models.ForeignKey(Invoice, models.CASCADE, related_name="payments")
    user = models.ForeignKey(User, models.CASCADE, related_name="+")
    # The key the submitted form carried, recorded by every strategy. Not unique: the naive and
    # locking strategies charge without taking it, and the checker must see each charge it names.
    idempotency_key = models.CharField(max_length=MAX_KEY_LENGTH)
    amount = models.PositiveIntegerField()

    def __str__(self) -> str:
        return f"Payment of {self.amount} on invoice {self.invoice_id} ({self.strategy})"


class IdempotencyKey(models.Model):
    """A key the idempotency_key strategy took, with the answer its first request got: every
    later request with the same key gets that answer again, and nothing is charged twice."""

    user = models.ForeignKey(User, models.CASCADE, related_name="+")
    key = models.CharField(max_length=MAX_KEY_LENGTH)
    # What the key was first sent for: the same key sent for another invoice is refused. A number,
    # not a foreign key: on MariaDB a foreign key check share-locks the invoice's row, and two
    # requests holding that lock would deadlock when each then marks the invoice paid.
    invoice_number = models.CharField(max_length=MAX_NUMBER_LENGTH)
    # The first answer: the payment made, or why none was. Both empty only inside the transaction
    # that took the key, which fills one before COMMIT; the key is inserted first so that a second
    # request with it waits on the unique index below until then.
    payment = models.OneToOneField(Payment, models.CASCADE, null=True, blank=True, related_name="+")
    refusal = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        # Scoped to the user, as Stripe scopes keys to an account: two users' forms that carry
        # the same key are two payments, and neither is shown the other's answer.
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="idempotency_key_once_per_user")]

    def __str__(self) -> str:
        return f"Idempotency key {self.key} of user {self.user_id}"
