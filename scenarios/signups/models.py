from django.contrib.auth.models import User
from django.db import models

from races.models import RaceRecord

# The longest address RFC 5321 lets through (a 254-character path), as Django's EmailField.
MAX_EMAIL_LENGTH = 254


class Signup(RaceRecord):
    """One address registered: the rows the checker counts, one per address at most."""

    # Stored lower-cased by the service, so the unique index compares addresses as the invariant
    # does, on every database (a unique index on Lower("email") would be skipped on MariaDB).
    email = models.EmailField(max_length=MAX_EMAIL_LENGTH, unique=True)
    # The lab user who sent it. A signup belongs to its address, not to that login, so it stays
    # (without one) when the user is deleted.
    user = models.ForeignKey(User, models.SET_NULL, null=True, blank=True, related_name="+")

    def __str__(self) -> str:
        return f"Signup of {self.email} ({self.strategy})"
