from scenarios.definition import Scenario
from scenarios.profiles import provisioning
from scenarios.profiles.audit import audit_profiles
from scenarios.profiles.edits import Strategy
from scenarios.profiles.models import Profile

PROFILE = Scenario(
    name="profile",
    title="two PATCHes of different fields, full-row save()",
    bug="https://github.com/encode/django-rest-framework/pull/2622",
    path="/scenarios/profile/edit/",
    forms=tuple(
        {"profile": provisioning.LAB_PROFILE, field.value: value}
        for field, value in provisioning.LAB_EDITS.items()
    ),
    method="PATCH",
    strategies=tuple(Strategy),
    park_point=Profile._meta.db_table,
    never_held=(Strategy.UPDATE,),
    # All K read the same row and each writes all of it back: the last save shows its own field
    # and the other field as it was read, so the other form's accepted edit is gone: 1 field.
    naive_violations=lambda parties, audit: 1 if parties >= 2 else 0,
    recorded="every profile edit, and what the edits set on every profile",
    seed=provisioning.seed_profile,
    is_seeded=provisioning.lab_profile_exists,
    reset=provisioning.reset_profiles,
    audit=lambda: audit_profiles(handle=provisioning.LAB_PROFILE),
)
