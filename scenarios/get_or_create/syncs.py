"""Sync a remote repository by its full name: readthedocs.org's ``get_or_create`` on a field
without a unique constraint, and two ways to make it one row per name.

The naive strategy is the shape of readthedocs.org #7727: ``RemoteRepository.objects.get_or_create(
full_name=..., account=...)`` with nothing unique about the pair. Django says so of the method:
it is atomic only where the database enforces the uniqueness of its keyword arguments. Concurrent
syncs all miss the ``get()``, all insert, and from then on every ``get()`` of that name raises
``MultipleObjectsReturned``: the site answers 500 for it until someone deletes the duplicates.
"""

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser

from races.requested import Requested
from races.serializable import MAX_ATTEMPTS, retried, serializable_transaction
from scenarios.get_or_create.models import RemoteRepository, UniqueRemoteRepository


class Strategy(enum.StrEnum):
    NAIVE = "naive"
    UNIQUE_CONSTRAINT = "unique_constraint"
    SERIALIZABLE = "serializable"


SAFE_STRATEGIES = tuple(strategy for strategy in Strategy if strategy is not Strategy.NAIVE)


@dataclass(frozen=True, kw_only=True)
class SyncedRepository:
    repository_id: int
    # False: the row was there already (another request's, when they raced).
    created: bool


def sync_repository(
    *, user: AbstractBaseUser, full_name: str, strategy: Strategy, request_started_at: datetime
) -> SyncedRepository:
    """The row of the repository ``full_name``, found or created (by ``user``) with ``strategy``.

    ``naive`` raises ``MultipleObjectsReturned`` once a race has left two rows of the name: that
    is the bug, and it is left unhandled so the server answers 500 as readthedocs.org's did.
    """
    order = _Order(user=user, full_name=full_name, strategy=strategy, request_started_at=request_started_at)
    return _IMPLEMENTATIONS[strategy](order)


@dataclass(frozen=True, kw_only=True)
class _Order(Requested):
    user: AbstractBaseUser
    full_name: str

    def new_row(self) -> dict:
        """What a created row records besides its name."""
        return {"synced_by_id": self.user.pk, **self.recorded}


def _naive(order: _Order) -> SyncedRepository:
    # get() then INSERT, two statements, and no constraint to refuse the second row.
    repository, created = RemoteRepository.objects.get_or_create(
        full_name=order.full_name, defaults=order.new_row()
    )
    return SyncedRepository(repository_id=repository.pk, created=created)


def _unique_constraint(order: _Order) -> SyncedRepository:
    # The same call on the table with the constraint: the losers' INSERTs fail with an
    # IntegrityError, which get_or_create catches to get() the winner's row instead. On MariaDB
    # they can also deadlock in InnoDB's duplicate-key check (over a row a reset deleted and
    # purge has not removed yet): rolled back whole, retried, they find the winner's row.
    def attempt() -> SyncedRepository:
        repository, created = UniqueRemoteRepository.objects.get_or_create(
            full_name=order.full_name, defaults=order.new_row()
        )
        return SyncedRepository(repository_id=repository.pk, created=created)

    return _retried(attempt, order=order)


def _serializable(order: _Order) -> SyncedRepository:
    # No constraint, the database's isolation alone: two SERIALIZABLE transactions that both
    # found no row cannot both commit their INSERT. PostgreSQL fails one (SQLSTATE 40001),
    # MariaDB's share-locking reads deadlock on the INSERTs and it rolls one back, and SQLite's
    # IMMEDIATE transactions run one at a time; the retry finds the winner's row. The oldest row
    # rather than get(): duplicates the naive strategy left must not make this one answer 500.
    def attempt() -> SyncedRepository:
        with serializable_transaction():
            repository = RemoteRepository.objects.filter(full_name=order.full_name).order_by("pk").first()
            if repository is not None:
                return SyncedRepository(repository_id=repository.pk, created=False)
            repository = RemoteRepository.objects.create(full_name=order.full_name, **order.new_row())
            return SyncedRepository(repository_id=repository.pk, created=True)

    return _retried(attempt, order=order)


def _retried(attempt: Callable[[], SyncedRepository], *, order: _Order) -> SyncedRepository:
    # Concurrent syncs kept winning the race until the retries ran out: refused, nothing created.
    return retried(
        attempt,
        what=f"a {order.strategy} sync",
        gave_up=f"Conflict: the database refused to serialize the sync of {order.full_name} "
        f"{MAX_ATTEMPTS} times in a row; nothing was created, try again.",
    )


_IMPLEMENTATIONS: dict[Strategy, Callable[[_Order], SyncedRepository]] = {
    Strategy.NAIVE: _naive,
    Strategy.UNIQUE_CONSTRAINT: _unique_constraint,
    Strategy.SERIALIZABLE: _serializable,
}
