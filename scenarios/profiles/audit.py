"""The profile checker: every accepted PATCH's field is visible, proved from the edit rows.

For each profile and field, the value of the latest accepted edit (the highest id; the safe
strategies write it in the transaction that set the field) must be the profile's value. A field
whose latest edit is not visible was clobbered: written back by a save that had read it before.
"""

from django.db.models import Max, Q

from scenarios.audit import ScenarioAudit, violated
from scenarios.profiles.models import Profile, ProfileEdit

INVARIANT = "each field shows its latest accepted edit"
CLOBBERED = "clobbered fields"
EXAMPLE_IDS = 5


def audit_profiles(*, handle: str | None = None) -> ScenarioAudit:
    """Find each edited field's latest edit (one statement) and compare it with the profile, then
    walk the edits of the clobbered fields only, to say how many each one misses."""
    profiles = Profile.objects.all() if handle is None else Profile.objects.filter(handle=handle)
    edits = ProfileEdit.objects.filter(profile__in=profiles)
    latest_ids = edits.values("profile", "field").annotate(latest=Max("pk")).values("latest")
    latest = list(ProfileEdit.objects.filter(pk__in=latest_ids).select_related("profile").order_by("pk"))
    clobbered = [edit for edit in latest if getattr(edit.profile, edit.field) != edit.value]
    figures = [
        ("profiles", profiles.count()),
        ("accepted edits", edits.count()),
        ("fields edited", len(latest)),
        ("fields clobbered", len(clobbered)),
    ]
    examples = _examples(clobbered)
    violations = violated(
        CLOBBERED,
        broken=clobbered,
        count=len(clobbered),
        explanation="fields whose latest accepted edit the profile does not show: a concurrent save() "
        "of another field wrote this one back as it had read it",
        worst=lambda edit: (examples[edit.pk]["edits_missed"], -edit.pk),
        example=lambda edit: examples[edit.pk],
    )
    return ScenarioAudit(scenario="profile", invariant=INVARIANT, figures=figures, violations=violations)


def _examples(clobbered: list[ProfileEdit]) -> dict[int, dict]:
    """Each clobbered field's example, by its latest edit's id: the accepted edits it misses are
    those after the last one whose value the profile shows (all of them if it shows none)."""
    if not clobbered:
        return {}
    fields = Q()
    for edit in clobbered:
        fields |= Q(profile_id=edit.profile_id, field=edit.field)
    history: dict[tuple[int, str], list[tuple[int, str]]] = {}
    for pk, profile_id, field, value in (
        ProfileEdit.objects.filter(fields).order_by("pk").values_list("pk", "profile_id", "field", "value")
    ):
        history.setdefault((profile_id, field), []).append((pk, value))
    examples = {}
    for edit in clobbered:
        shown = getattr(edit.profile, edit.field)
        edits = history[(edit.profile_id, edit.field)]
        shown_at = [index for index, (_, value) in enumerate(edits) if value == shown]
        missed = edits[shown_at[-1] + 1 :] if shown_at else edits
        examples[edit.pk] = {
            "profile": edit.profile.handle,
            "field": edit.field,
            "profile_value": shown,
            "latest_edit_value": edit.value,
            "edits_missed": len(missed),
            "missed_edit_ids": [pk for pk, _ in missed[-EXAMPLE_IDS:]],
        }
    return examples
