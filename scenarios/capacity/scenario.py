from scenarios.capacity import provisioning
from scenarios.capacity.audit import audit_activities
from scenarios.capacity.models import Participant
from scenarios.capacity.participation import Strategy
from scenarios.definition import Scenario

CAPACITY = Scenario(
    name="capacity",
    title="at most N participants, count then insert",
    bug="https://github.com/karrot-dev/karrot-backend/issues/409",
    path="/scenarios/capacity/join/",
    forms=({"activity": provisioning.LAB_ACTIVITY},),
    strategies=tuple(Strategy),
    park_point=Participant._meta.db_table,
    never_held=(Strategy.CONDITIONAL_UPDATE,),
    # All K count no place taken, and all K take one: K - places beyond them (K-1 for one place).
    naive_violations=lambda parties, audit: max(0, parties - dict(audit.figures)["places"]),
    limit_help=f"how many places the activity has (default {provisioning.DEFAULT_PLACES})",
    recorded="every participant",
    seed=provisioning.seed_activity,
    is_seeded=provisioning.lab_activity_exists,
    reset=provisioning.reset_activities,
    audit=lambda: audit_activities(name=provisioning.LAB_ACTIVITY),
)
