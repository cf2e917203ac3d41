from django.db import models

from races.models import RaceRecord

MAX_HANDLE_LENGTH = 40
MAX_TEXT_LENGTH = 100


class ProfileField(models.TextChoices):
    """The fields a PATCH may set, one per request."""

    DISPLAY_NAME = "display_name"
    CITY = "city"


class Profile(models.Model):
    """A user's public profile, edited one field at a time."""

    handle = models.CharField(max_length=MAX_HANDLE_LENGTH, unique=True)
    display_name = models.CharField(max_length=MAX_TEXT_LENGTH)
    city = models.CharField(max_length=MAX_TEXT_LENGTH)
    # Bumped by each write of the version strategy, which writes only if it is still the one it read.
    version = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"Profile {self.handle} (version {self.version})"


class ProfileEdit(RaceRecord):
    """One accepted PATCH: the rows the checker compares with the profile, field by field."""

    profile = models.ForeignKey(Profile, models.CASCADE, related_name="edits")
    field = models.CharField(max_length=20, choices=ProfileField.choices)
    value = models.CharField(max_length=MAX_TEXT_LENGTH)

    def __str__(self) -> str:
        return f"Edit of {self.profile_id}: {self.field} = {self.value!r} ({self.strategy})"
