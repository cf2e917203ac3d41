from django.db import models


class RaceRecord(models.Model):
    """A row a race's request writes (a ledger row, a voucher's use, a transfer...): which strategy
    wrote it, and when the request it answers began. The checkers and the timeline read these."""

    strategy = models.CharField(max_length=20)
    request_started_at = models.DateTimeField(
        help_text="When the server began handling the request, not when the row was inserted."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True
