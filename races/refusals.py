"""Why a race's service did nothing, raised with a reason the client is shown: every endpoint
answers ``NotFound`` with a 404 and ``Refused`` with a 409 (races/views.py), as Django answers
``Http404`` and ``PermissionDenied`` in one place."""

from typing import TypeVar

from django.db import models

M = TypeVar("M", bound=models.Model)


class NotFound(Exception):
    """What the request names does not exist; nothing changed. The message says what."""


class Refused(Exception):
    """The request was not carried out and nothing changed; the message says why."""


def found(model: type[M], *, missing: str, for_update: bool = False, **lookup) -> M:
    """The first row of ``model`` that matches ``lookup`` (locked until the end of the
    surrounding transaction with ``for_update``), or ``NotFound(missing)``."""
    rows = model.objects.select_for_update() if for_update else model.objects
    row = rows.filter(**lookup).first()
    if row is None:
        raise NotFound(missing)
    return row
