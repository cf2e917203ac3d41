"""Redeem a voucher: django-oscar's check-then-act bug, and three ways to make it correct.

The naive strategy is the shape of django-oscar #2101 (and #4580): ``is_available_to_user()``
asks whether the voucher has been used, then ``record_usage()`` writes the usage, with no lock
and no constraint between them, so concurrent checkouts all see it unused and all use it.
"""

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction

from races.refusals import Refused, found
from races.requested import Requested
from scenarios.vouchers.models import USES, Voucher, VoucherUsage


class Strategy(enum.StrEnum):
    NAIVE = "naive"
    LOCKING = "locking"
    CONDITIONAL_UPDATE = "conditional_update"
    UNIQUE_SLOT = "unique_slot"


SAFE_STRATEGIES = tuple(strategy for strategy in Strategy if strategy is not Strategy.NAIVE)


@dataclass(frozen=True, kw_only=True)
class Redemption:
    voucher_id: int
    usage_id: int
    # How many uses the voucher had when this one was recorded, this one included.
    use: int
    limit: int


def redeem(
    *, user: AbstractBaseUser, code: str, strategy: Strategy, request_started_at: datetime
) -> Redemption:
    """Use the voucher ``code`` once for ``user`` with ``strategy``: one VoucherUsage row, or
    ``Refused`` when its uses are taken (``NotFound`` for an unknown code)."""
    order = _Order(user=user, code=code, strategy=strategy, request_started_at=request_started_at)
    return _IMPLEMENTATIONS[strategy](order)


@dataclass(frozen=True, kw_only=True)
class _Order(Requested):
    user: AbstractBaseUser
    code: str

    def voucher(self, *, for_update: bool = False) -> Voucher:
        return found(
            Voucher, code=self.code, for_update=for_update, missing=f"There is no voucher {self.code!r}."
        )

    def used_up(self, voucher: Voucher, *, taken: int) -> Refused:
        return Refused(
            f"Voucher {voucher.code} is used up: {taken} of its {voucher.limit} use(s) are taken; "
            "it was not applied."
        )

    def next_use(self, voucher: Voucher) -> int:
        """Which use of the voucher this would be, counted from its usage rows (oscar's
        ``is_available_to_user()``); refused when they are all taken."""
        return USES.next_one(voucher, refuse=self.used_up)

    def record(self, voucher: Voucher, *, use: int, slot: int | None = None) -> Redemption:
        usage = VoucherUsage.objects.create(voucher=voucher, user_id=self.user.pk, slot=slot, **self.recorded)
        return Redemption(voucher_id=voucher.pk, usage_id=usage.pk, use=use, limit=voucher.limit)


def _naive(order: _Order) -> Redemption:
    # Check, then act: the count and the INSERT are separate statements, outside any transaction.
    voucher = order.voucher()
    return order.record(voucher, use=order.next_use(voucher))


def _locking(order: _Order) -> Redemption:
    # The voucher's row lock serialises its redemptions: the count is taken by one at a time.
    with transaction.atomic():
        voucher = order.voucher(for_update=True)
        return order.record(voucher, use=order.next_use(voucher))


def _conditional_update(order: _Order) -> Redemption:
    # Take a use from the counter only if one is left, in one UPDATE: the database decides.
    with transaction.atomic():
        voucher = order.voucher()
        return order.record(voucher, use=USES.take_one_left(voucher, refuse=order.used_up))


def _unique_slot(order: _Order) -> Redemption:
    # The naive check, with the database as the referee: each use takes a numbered slot, and the
    # unique constraint on (voucher, slot) refuses the second row for the same one.
    voucher = order.voucher()
    use = order.next_use(voucher)
    try:
        with transaction.atomic():
            return order.record(voucher, use=use, slot=use)
    except IntegrityError:
        if not VoucherUsage.objects.filter(voucher=voucher, slot=use).exists():
            raise
        raise Refused(
            f"Voucher {voucher.code}: a concurrent request took use {use} of {voucher.limit} "
            "first; this one was not applied. Try again."
        ) from None


_IMPLEMENTATIONS: dict[Strategy, Callable[[_Order], Redemption]] = {
    Strategy.NAIVE: _naive,
    Strategy.LOCKING: _locking,
    Strategy.CONDITIONAL_UPDATE: _conditional_update,
    Strategy.UNIQUE_SLOT: _unique_slot,
}
