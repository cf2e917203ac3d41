from django.contrib.auth.models import User
from django.db import models

from races.models import RaceRecord
from scenarios.limits import Limit

MAX_NAME_LENGTH = 40
MAX_PLACES = 1_000_000


class Activity(models.Model):
    """Something members join, with ``max_participants`` places (karrot's pickup date)."""

    name = models.CharField(max_length=MAX_NAME_LENGTH, unique=True)
    max_participants = models.PositiveIntegerField(default=1)
    # Places not yet taken: the conditional_update strategy's counter, put back on reset.
    places_left = models.PositiveIntegerField(default=1)

    class Meta:
        verbose_name_plural = "activities"

    def __str__(self) -> str:
        return f"Activity {self.name} ({self.max_participants} place(s))"


class Participant(RaceRecord):
    """One place taken in an activity: the rows the checker counts against its places."""

    activity = models.ForeignKey(Activity, models.CASCADE, related_name="participants")
    # karrot also makes (activity, user) unique; the lab does not: it fires every request from one
    # login, and the race is over how many places are taken, not by whom.
    user = models.ForeignKey(User, models.CASCADE, related_name="+")

    def __str__(self) -> str:
        return f"Place in {self.activity_id} for user {self.user_id} ({self.strategy})"


# An activity's places: ``max_participants`` of them, ``places_left`` free, each taken a Participant.
PLACES = Limit(model=Activity, key="name", limit="max_participants", left="places_left", taken="participants")
