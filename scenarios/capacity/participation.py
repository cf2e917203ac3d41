"""Join an activity: karrot's count-then-insert bug, and three ways to make it correct.

The naive strategy is the shape of karrot-backend #409: the join endpoint's ``IsNotFull``
permission asks ``collectors.count() >= max_collectors``, then the serializer adds the collector,
with no lock and no transaction between them, so concurrent joins all see a free place and all
take it.
"""

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from races.refusals import Refused, found
from races.requested import Requested
from races.serializable import MAX_ATTEMPTS, retried, serializable_transaction
from scenarios.capacity.models import PLACES, Activity, Participant


class Strategy(enum.StrEnum):
    NAIVE = "naive"
    LOCKING = "locking"
    SERIALIZABLE = "serializable"
    CONDITIONAL_UPDATE = "conditional_update"


SAFE_STRATEGIES = tuple(strategy for strategy in Strategy if strategy is not Strategy.NAIVE)


@dataclass(frozen=True, kw_only=True)
class Participation:
    activity_id: int
    participant_id: int
    # How many places the activity had taken once this one was, this one included.
    place: int
    max_participants: int


def join(
    *, user: AbstractBaseUser, activity: str, strategy: Strategy, request_started_at: datetime
) -> Participation:
    """Add ``user`` to the activity named ``activity`` with ``strategy``: one Participant row, or
    ``Refused`` when its places are taken (``NotFound`` for an unknown name)."""
    request = _JoinRequest(user=user, name=activity, strategy=strategy, request_started_at=request_started_at)
    return _IMPLEMENTATIONS[strategy](request)


@dataclass(frozen=True, kw_only=True)
class _JoinRequest(Requested):
    user: AbstractBaseUser
    name: str

    def activity(self, *, for_update: bool = False) -> Activity:
        return found(
            Activity, name=self.name, for_update=for_update, missing=f"There is no activity {self.name!r}."
        )

    def full(self, activity: Activity, *, taken: int) -> Refused:
        return Refused(
            f"Activity {activity.name} is full: {taken} of {activity.max_participants} place(s) taken; "
            "you were not added."
        )

    def count_then_add(self, activity: Activity) -> Participation:
        # karrot's IsNotFull, then collectors.add(user).
        return self.record(activity, place=PLACES.next_one(activity, refuse=self.full))

    def record(self, activity: Activity, *, place: int) -> Participation:
        participant = Participant.objects.create(activity=activity, user_id=self.user.pk, **self.recorded)
        return Participation(
            activity_id=activity.pk,
            participant_id=participant.pk,
            place=place,
            max_participants=activity.max_participants,
        )


def _naive(request: _JoinRequest) -> Participation:
    # Check, then act: the count and the INSERT are separate statements, outside any transaction.
    return request.count_then_add(request.activity())


def _locking(request: _JoinRequest) -> Participation:
    # #409 doubted a row lock could help when the join inserts a new row; it can, on the parent:
    # every join of an activity locks its row first, so its places are counted one join at a time.
    with transaction.atomic():
        return request.count_then_add(request.activity(for_update=True))


def _serializable(request: _JoinRequest) -> Participation:
    # The naive count-then-insert, made correct by the database alone, as #409 found: SERIALIZABLE
    # on PostgreSQL (concurrent joins that counted the same places fail to serialize) and MariaDB
    # (the count becomes a locking read, and the inserts deadlock); SQLite's IMMEDIATE
    # transactions are serial already. A failure rolls the whole attempt back, so it is retried.
    def attempt() -> Participation:
        with serializable_transaction():
            return request.count_then_add(request.activity())

    return retried(
        attempt,
        what="a serializable join",
        gave_up=f"Activity {request.name}: the database refused to serialize this join {MAX_ATTEMPTS} "
        "times in a row; you were not added, try again.",
    )


def _conditional_update(request: _JoinRequest) -> Participation:
    # Take a place from the counter only if one is left, in one UPDATE: the database decides.
    with transaction.atomic():
        activity = request.activity()
        return request.record(activity, place=PLACES.take_one_left(activity, refuse=request.full))


_IMPLEMENTATIONS: dict[Strategy, Callable[[_JoinRequest], Participation]] = {
    Strategy.NAIVE: _naive,
    Strategy.LOCKING: _locking,
    Strategy.SERIALIZABLE: _serializable,
    Strategy.CONDITIONAL_UPDATE: _conditional_update,
}
