"""Put the capacity scenario's data into a known state: its activity, with none of its places taken."""

from django.db import transaction

from scenarios.capacity.models import MAX_PLACES, PLACES, Activity
from scenarios.definition import ProvisioningError

LAB_ACTIVITY = "LAB-ACTIVITY"
DEFAULT_PLACES = 1


@transaction.atomic
def seed_activity(*, name: str = LAB_ACTIVITY, limit: int | None = None) -> str:
    """Create the activity or set its places (``limit``, default 1), and clear its participants;
    says what it did."""
    places = DEFAULT_PLACES if limit is None else limit
    if not 1 <= places <= MAX_PLACES:
        raise ProvisioningError(f"An activity's places must be from 1 to {MAX_PLACES}, not {places}.")
    created, cleared = PLACES.seed(name, places)
    action = "Created" if created else "Reset"
    return f"{action} activity {name}: {places} place(s), {cleared} participant(s) cleared."


def lab_activity_exists() -> bool:
    return Activity.objects.filter(name=LAB_ACTIVITY).exists()


@transaction.atomic
def reset_activities() -> str:
    """Every activity back to all its places free, its participants deleted; says what it did."""
    count, cleared = PLACES.reset()
    return f"Reset {count} activit{'y' if count == 1 else 'ies'}: {cleared} participant(s) cleared."
