"""Put the profile scenario's data into a known state: its profile as it was before any edit,
with no edit recorded."""

from django.db import transaction

from scenarios.profiles.models import Profile, ProfileEdit, ProfileField

LAB_PROFILE = "lab-profile"
# What a profile shows before any edit, and what a clobbered field is written back to.
STARTING_VALUES = {ProfileField.DISPLAY_NAME: "Lab Profile", ProfileField.CITY: "Nowhere"}
# What the lab's two PATCHes set, one field each.
LAB_EDITS = {ProfileField.DISPLAY_NAME: "Ada Lovelace", ProfileField.CITY: "London"}


def _starting_state() -> str:
    return ", ".join(f"{field} {value!r}" for field, value in STARTING_VALUES.items()) + ", version 0"


@transaction.atomic
def seed_profile() -> str:
    """Create the profile or put it back to its starting values, and clear its edits; says what
    it did."""
    profile, created = Profile.objects.update_or_create(
        handle=LAB_PROFILE, defaults={**STARTING_VALUES, "version": 0}
    )
    cleared, _ = profile.edits.all().delete()
    action = "Created" if created else "Reset"
    return f"{action} profile {LAB_PROFILE}: {_starting_state()}; {cleared} accepted edit(s) cleared."


def lab_profile_exists() -> bool:
    return Profile.objects.filter(handle=LAB_PROFILE).exists()


@transaction.atomic
def reset_profiles() -> str:
    """Every profile back to the starting values, every edit deleted; says what it did."""
    cleared, _ = ProfileEdit.objects.all().delete()
    count = Profile.objects.update(**STARTING_VALUES, version=0)
    return f"Reset {count} profile(s) to {_starting_state()}: {cleared} accepted edit(s) cleared."
