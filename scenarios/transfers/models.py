from django.db import models

from races.models import RaceRecord

MAX_NAME_LENGTH = 40
MAX_TRANSFER_AMOUNT = 1_000


class Wallet(models.Model):
    """Money that transfers move from wallet to wallet, never creating or destroying any."""

    name = models.CharField(max_length=MAX_NAME_LENGTH, unique=True)
    balance = models.IntegerField()
    # What it held before any transfer: where the checker starts counting, and what a reset puts back.
    opening_balance = models.IntegerField()

    def __str__(self) -> str:
        return f"Wallet {self.name} ({self.balance})"


class Transfer(RaceRecord):
    """One accepted transfer, written in the transaction that moved its money: the rows the
    checker adds up against each wallet's balance."""

    source = models.ForeignKey(Wallet, models.CASCADE, related_name="sent")
    destination = models.ForeignKey(Wallet, models.CASCADE, related_name="received")
    amount = models.PositiveIntegerField()

    def __str__(self) -> str:
        return f"Transfer of {self.amount} from {self.source_id} to {self.destination_id} ({self.strategy})"
