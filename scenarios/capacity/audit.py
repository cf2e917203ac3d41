"""The capacity checker: no activity has more participants than places, proved from their rows."""

from django.db.models import Count

from races.violations import Violation
from scenarios.audit import ScenarioAudit
from scenarios.capacity.models import Activity, Participant

INVARIANT = "participants per activity at most its places"
OVERFULL = "overfull activities"


def audit_activities(*, name: str | None = None) -> ScenarioAudit:
    """Count each activity's participant rows against its places (one statement), then fetch
    examples only for the activities that broke it."""
    activities = Activity.objects.all() if name is None else Activity.objects.filter(name=name)
    counted = activities.annotate(taken=Count("participants")).values_list(
        "pk", "name", "max_participants", "taken"
    )
    rows = list(counted.order_by("pk"))
    overfull = [(pk, activity, places, taken) for pk, activity, places, taken in rows if taken > places]
    beyond = sum(taken - places for _, _, places, taken in overfull)
    figures = [
        ("activities", len(rows)),
        ("places", sum(places for _, _, places, _ in rows)),
        ("participants", sum(taken for *_, taken in rows)),
        ("activities over their places", len(overfull)),
        ("participants beyond the places", beyond),
    ]
    violations = []
    if overfull:
        worst = max(overfull, key=lambda row: (row[3] - row[2], -row[0]))
        violations.append(
            Violation(
                kind=OVERFULL,
                count=beyond,
                explanation="participants recorded beyond an activity's places: concurrent joins all "
                "counted a free place before any of them took it",
                first=_example(overfull[0]),
                worst=_example(worst),
            )
        )
    return ScenarioAudit(scenario="capacity", invariant=INVARIANT, figures=figures, violations=violations)


def _example(row: tuple[int, str, int, int]) -> dict:
    pk, name, places, taken = row
    beyond = (
        Participant.objects.filter(activity_id=pk).order_by("pk").values_list("pk", flat=True)[places:][:5]
    )
    return {
        "activity": name,
        "max_participants": places,
        "participants": taken,
        "participant_ids_beyond_places": list(beyond),
    }
