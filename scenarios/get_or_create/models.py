"""A remote repository as readthedocs.org syncs it from GitHub or Bitbucket, looked up by its full
name. Twice over: the same row on a table without a unique constraint (readthedocs' in #7727) and
on one with it, so the same ``get_or_create`` can race on both."""

from django.contrib.auth.models import User
from django.db import models

from races.models import RaceRecord

MAX_FULL_NAME_LENGTH = 100


class RemoteRepositoryBase(RaceRecord):
    full_name = models.CharField(max_length=MAX_FULL_NAME_LENGTH)
    synced_by = models.ForeignKey(User, models.CASCADE, related_name="+")

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"Repository {self.full_name} (row {self.pk}, {self.strategy})"


class RemoteRepository(RemoteRepositoryBase):
    """Looked up by name, but nothing in the database says a name is one row: the naive and
    serializable strategies' table."""

    class Meta:
        indexes = [models.Index(fields=["full_name"], name="remote_repository_full_name")]


class UniqueRemoteRepository(RemoteRepositoryBase):
    """The same row under the constraint ``get_or_create`` needs: the unique_constraint strategy's table."""

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["full_name"], name="unique_remote_repository_full_name")
        ]
