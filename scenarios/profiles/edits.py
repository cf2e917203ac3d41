"""Edit one field of a profile: Django REST framework's partial update that writes the whole
row back, and three ways to make it correct.

The naive strategy is the shape of DRF's ``ModelSerializer.update()``, which PR #2622 proposed
to change: it sets the PATCHed attributes on the instance it loaded and calls
``instance.save()``, and Django's ``save()`` writes every column. Two PATCHes of different
fields that both load the profile before either saves each write the other's field back as
they read it: the last save wins, and the other PATCH, answered 200, is gone.
"""

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.db import DatabaseError, transaction
from django.db.models import F

from races.refusals import NotFound, Refused, found
from races.requested import Requested
from scenarios.profiles.models import Profile, ProfileEdit, ProfileField


class Strategy(enum.StrEnum):
    NAIVE = "naive"
    UPDATE_FIELDS = "update_fields"
    UPDATE = "update"
    VERSION = "version"


SAFE_STRATEGIES = tuple(strategy for strategy in Strategy if strategy is not Strategy.NAIVE)


@dataclass(frozen=True, kw_only=True)
class AcceptedEdit:
    handle: str
    field: ProfileField
    value: str
    edit_id: int


def edit_profile(
    *, handle: str, field: ProfileField, value: str, strategy: Strategy, request_started_at: datetime
) -> AcceptedEdit:
    """Set ``field`` of the profile ``handle`` to ``value`` with ``strategy``: one ProfileEdit
    row, or ``Refused`` when the version strategy finds the profile changed since it read it
    (``NotFound`` for an unknown handle)."""
    change = _Change(
        handle=handle, field=field, value=value, strategy=strategy, request_started_at=request_started_at
    )
    return _IMPLEMENTATIONS[strategy](change)


@dataclass(frozen=True, kw_only=True)
class _Change(Requested):
    handle: str
    field: ProfileField
    value: str

    @property
    def missing(self) -> str:
        return f"There is no profile {self.handle!r}."

    def profile(self) -> Profile:
        return found(Profile, handle=self.handle, missing=self.missing)

    def record(self, *, profile_id: int) -> AcceptedEdit:
        edit = ProfileEdit.objects.create(
            profile_id=profile_id, field=self.field, value=self.value, **self.recorded
        )
        return AcceptedEdit(handle=self.handle, field=self.field, value=self.value, edit_id=edit.pk)


def _naive(change: _Change) -> AcceptedEdit:
    # DRF's update(): set the one attribute, then save() writes every column as this request
    # read it, the one a concurrent PATCH has just changed included. Autocommit, as a plain view.
    profile = change.profile()
    setattr(profile, change.field, change.value)
    profile.save()
    return change.record(profile_id=profile.pk)


def _update_fields(change: _Change) -> AcceptedEdit:
    # PR #2622's fix: the UPDATE names the PATCHed column only, so what a concurrent PATCH wrote
    # to another column stays. The read stays outside the transaction: it decides nothing.
    profile = change.profile()
    setattr(profile, change.field, change.value)
    try:
        with transaction.atomic():
            profile.save(update_fields=[change.field])
            return change.record(profile_id=profile.pk)
    except DatabaseError:
        # save(update_fields=...) raises when it updates no row: deleted since it was read.
        if Profile.objects.filter(pk=profile.pk).exists():
            raise
        raise NotFound(change.missing) from None


def _update(change: _Change) -> AcceptedEdit:
    # No instance to go stale: one UPDATE of the one column, with no read before it.
    with transaction.atomic():
        if not Profile.objects.filter(handle=change.handle).update(**{change.field: change.value}):
            raise NotFound(change.missing)
        # Ours until COMMIT (the UPDATE holds the row): the id the edit row points at.
        profile_id = Profile.objects.filter(handle=change.handle).values_list("pk", flat=True).get()
        return change.record(profile_id=profile_id)


def _version(change: _Change) -> AcceptedEdit:
    # Optimistic: read the version without a lock, then write the one column only if the version
    # is still the one read, bumping it in the same UPDATE. 0 rows: someone wrote in between.
    profile = change.profile()
    with transaction.atomic():
        written = Profile.objects.filter(pk=profile.pk, version=profile.version).update(
            **{change.field: change.value}, version=F("version") + 1
        )
        if not written:
            raise Refused(
                f"Profile {change.handle} changed since this request read it (version {profile.version}); "
                "nothing was saved: reload it and send your change again."
            )
        return change.record(profile_id=profile.pk)


_IMPLEMENTATIONS: dict[Strategy, Callable[[_Change], AcceptedEdit]] = {
    Strategy.NAIVE: _naive,
    Strategy.UPDATE_FIELDS: _update_fields,
    Strategy.UPDATE: _update,
    Strategy.VERSION: _version,
}
