"""The capacity checker: no activity has more participants than places, proved from their rows."""

from scenarios.audit import ScenarioAudit, violated
from scenarios.capacity.models import PLACES
from scenarios.limits import Counted

INVARIANT = "participants per activity at most its places"
OVERFULL = "overfull activities"


def audit_activities(*, name: str | None = None) -> ScenarioAudit:
    """Count each activity's participant rows against its places (one statement), then fetch
    examples only for the activities that broke it."""
    activities = PLACES.counted(name)
    overfull = [activity for activity in activities if activity.beyond > 0]
    beyond = sum(activity.beyond for activity in overfull)
    figures = [
        ("activities", len(activities)),
        ("places", sum(activity.limit for activity in activities)),
        ("participants", sum(activity.taken for activity in activities)),
        ("activities over their places", len(overfull)),
        ("participants beyond the places", beyond),
    ]
    violations = violated(
        OVERFULL,
        broken=overfull,
        count=beyond,
        explanation="participants recorded beyond an activity's places: concurrent joins all counted "
        "a free place before any of them took it",
        worst=lambda activity: (activity.beyond, -activity.pk),
        example=_example,
    )
    return ScenarioAudit(scenario="capacity", invariant=INVARIANT, figures=figures, violations=violations)


def _example(activity: Counted) -> dict:
    return {
        "activity": activity.name,
        "max_participants": activity.limit,
        "participants": activity.taken,
        "participant_ids_beyond_places": PLACES.ids_beyond(activity),
    }
