"""What the voucher and capacity races share: a row that lets a limited number of rows be taken
under it (a voucher's uses, an activity's places), and the ways their strategies take one, seed
it, reset it and check it.

Counting the rows taken so far and then adding one (``next_one``, then the INSERT) is both
published bugs, django-oscar's ``is_available_to_user()`` and karrot's ``IsNotFull``, unless a lock
or the isolation lets one request count at a time; taking one from a counter of what is left,
in one conditional UPDATE (``take_one_left``), lets the database decide.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from django.db import models
from django.db.models import Count, F

# Refuses a new row under ``row`` when ``taken`` of its limit are taken: the scenario's sentence.
Refusal = Callable[..., Exception]
# How many rows taken beyond a limit an example names.
EXAMPLE_IDS = 5


class Counted(NamedTuple):
    """A row, counted: its id, its name, its limit, and how many rows are taken under it."""

    pk: int
    name: str
    limit: int
    taken: int

    @property
    def beyond(self) -> int:
        return self.taken - self.limit


@dataclass(frozen=True, kw_only=True)
class Limit:
    """Where ``model`` keeps the limit of each of its rows: the field that names a row (``key``),
    the one that sets its limit (``limit``), the counter of what is left (``left``: the
    conditional_update strategy's, put back to the limit on reset) and the related name of the
    rows taken under it (``taken``)."""

    model: type[models.Model]
    key: str
    limit: str
    left: str
    taken: str

    def next_one(self, row: models.Model, *, refuse: Refusal) -> int:
        """Which of the row's limited ones a new row would be, counted from the rows taken so far;
        ``refuse(row, taken=N)`` raised when they are all taken. Nothing stops another request
        from counting the same rows before this one's INSERT, unless the caller does."""
        taken = getattr(row, self.taken).count()
        if taken >= getattr(row, self.limit):
            raise refuse(row, taken=taken)
        return taken + 1

    def take_one_left(self, row: models.Model, *, refuse: Refusal) -> int:
        """Take one from the row's counter of what is left, only if one is left, in one UPDATE:
        which one it was, or ``refuse(row, taken=limit)`` raised. In a transaction, which the
        UPDATE's row lock makes the counter's until COMMIT."""
        limit = getattr(row, self.limit)
        took = self.model.objects.filter(pk=row.pk, **{f"{self.left}__gt": 0}).update(
            **{self.left: F(self.left) - 1}
        )
        if not took:
            raise refuse(row, taken=limit)
        # Ours until COMMIT (the UPDATE holds the row): which one this was.
        left = self.model.objects.filter(pk=row.pk).values_list(self.left, flat=True).get()
        return limit - left

    def seed(self, name: str, limit: int) -> tuple[bool, int]:
        """The row named ``name`` created, or its limit set, with all of it left and none taken:
        whether it was created, and how many rows taken under it were deleted."""
        row, created = self.model.objects.update_or_create(
            **{self.key: name}, defaults={self.limit: limit, self.left: limit}
        )
        cleared, _ = getattr(row, self.taken).all().delete()
        return created, cleared

    def reset(self) -> tuple[int, int]:
        """Every row back to all of its limit left, every row taken deleted: how many rows were
        reset, and how many taken rows deleted."""
        cleared, _ = self._taken.related_model.objects.all().delete()
        count = self.model.objects.update(**{self.left: F(self.limit)})
        return count, cleared

    def counted(self, name: str | None = None) -> list[Counted]:
        """Every row (the one named ``name``), counted in one statement, in id order."""
        rows = self.model.objects.all() if name is None else self.model.objects.filter(**{self.key: name})
        counted = rows.annotate(taken=Count(self.taken)).values_list("pk", self.key, self.limit, "taken")
        return [Counted(*row) for row in counted.order_by("pk")]

    def ids_beyond(self, row: Counted) -> list[int]:
        """The ids of the first rows taken under ``row`` beyond its limit."""
        taken = self._taken.related_model.objects.filter(**{self._taken.field.attname: row.pk})
        return list(taken.order_by("pk").values_list("pk", flat=True)[row.limit :][:EXAMPLE_IDS])

    @property
    def _taken(self) -> models.ManyToOneRel:
        return self.model._meta.get_field(self.taken)
