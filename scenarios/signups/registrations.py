"""Register an email address: Django REST framework's check-then-insert, and two ways to make it
answer the loser of a race with a reason instead of a 500.

The naive strategy is the shape of encode/django-rest-framework #3876: ``UniqueValidator`` asks
whether the address is taken (``queryset.filter(email=value).exists()``), then the serializer's
``create()`` inserts it. The unique constraint keeps the table right, but two requests that both
pass the check both insert, and the second INSERT's ``IntegrityError``, which nothing catches,
becomes a 500 for a request that deserved a 409.
"""

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction

from races.refusals import Refused
from races.requested import Requested
from races.serializable import MAX_ATTEMPTS, retried, serializable_transaction
from scenarios.signups.models import Signup


class Strategy(enum.StrEnum):
    NAIVE = "naive"
    CONSTRAINT = "constraint"
    SERIALIZABLE = "serializable"


SAFE_STRATEGIES = tuple(strategy for strategy in Strategy if strategy is not Strategy.NAIVE)


@dataclass(frozen=True, kw_only=True)
class Registration:
    signup_id: int
    email: str


def register(
    *, user: AbstractBaseUser, email: str, strategy: Strategy, request_started_at: datetime
) -> Registration:
    """Sign ``email`` (a valid address: forms.py checks it) up with ``strategy``: one Signup row,
    or ``Refused`` when the address has one. Addresses are compared lower-cased:
    one signup per mailbox, whatever case it is typed in."""
    application = _Application(
        user=user, email=email.lower(), strategy=strategy, request_started_at=request_started_at
    )
    return _IMPLEMENTATIONS[strategy](application)


@dataclass(frozen=True, kw_only=True)
class _Application(Requested):
    user: AbstractBaseUser
    email: str

    def taken(self) -> bool:
        # UniqueValidator's query.
        return Signup.objects.filter(email=self.email).exists()

    def already_registered(self) -> Refused:
        return Refused(
            f"already registered: {self.email} has signed up before; this signup was not recorded. "
            "Sign in with it, or register another address."
        )

    def lost_race(self) -> Refused:
        return Refused(
            f"already registered: a concurrent request registered {self.email} first; this signup "
            "was not recorded. Sign in with it, or register another address."
        )

    def record(self) -> Registration:
        signup = Signup.objects.create(email=self.email, user_id=self.user.pk, **self.recorded)
        return Registration(signup_id=signup.pk, email=signup.email)


def _naive(application: _Application) -> Registration:
    # Check, then insert, as UniqueValidator and create() do. Requests that all check before any
    # of them inserts all insert; the unique index refuses every one but the first, and the
    # IntegrityError is left to propagate as DRF leaves it: the server answers 500. That 500 is
    # the bug this scenario reproduces.
    if application.taken():
        raise application.already_registered()
    return application.record()


def _constraint(application: _Application) -> Registration:
    # The same check, for the usual refusal; the unique index referees the race, and its refusal
    # becomes a 409, as DRF's maintainers advise (#3876, #5760). The atomic block (a savepoint
    # inside a transaction) keeps a surrounding transaction usable after the failed INSERT.
    if application.taken():
        raise application.already_registered()
    try:
        # On MariaDB the losers' INSERTs can also deadlock in InnoDB's duplicate-key check (over
        # a row a reset deleted and purge has not removed yet): rolled back whole and retried.
        return _retried(application, lambda: _recorded(application))
    except IntegrityError:
        # Only a row for this address means a lost race; any other integrity error is a bug.
        if not application.taken():
            raise
        raise application.lost_race() from None


def _recorded(application: _Application) -> Registration:
    with transaction.atomic():
        return application.record()


def _serializable(application: _Application) -> Registration:
    # The naive check-then-insert, made correct by the database: at SERIALIZABLE the check's
    # "not taken" must still hold at COMMIT, so of two transactions that checked the same
    # address one fails (PostgreSQL: 40001; MariaDB: a deadlock on the gap locks its check took)
    # and its retry sees the address taken. SQLite's IMMEDIATE transactions are serial already.
    # durable=True: no outer transaction is retried with us half done.
    def attempt() -> Registration:
        with serializable_transaction():
            if application.taken():
                raise application.already_registered()
            return application.record()

    try:
        return _retried(application, attempt)
    except IntegrityError:
        # PostgreSQL may report this very conflict as a unique violation instead of a
        # serialization failure (a corner case its manual names under "Serialization Failure
        # Handling"): when it was this address that collided, the race is lost all the same.
        if not application.taken():
            raise
        raise application.lost_race() from None


def _retried(application: _Application, attempt: Callable[[], Registration]) -> Registration:
    return retried(
        attempt,
        what=f"the signup of {application.email}",
        gave_up=f"Conflict: the database refused to serialize the signup of {application.email} "
        f"{MAX_ATTEMPTS} times in a row; nothing was recorded, try again.",
    )


_IMPLEMENTATIONS: dict[Strategy, Callable[[_Application], Registration]] = {
    Strategy.NAIVE: _naive,
    Strategy.CONSTRAINT: _constraint,
    Strategy.SERIALIZABLE: _serializable,
}
