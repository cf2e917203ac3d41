from scenarios.definition import Scenario
from scenarios.signups import provisioning
from scenarios.signups.audit import audit_signups
from scenarios.signups.models import Signup
from scenarios.signups.registrations import Strategy

SIGNUP = Scenario(
    name="signup",
    title="unique signup, check then insert",
    bug="https://github.com/encode/django-rest-framework/issues/3876",
    path="/scenarios/signup/register/",
    forms=({"email": provisioning.LAB_EMAIL},),
    strategies=tuple(Strategy),
    park_point=Signup._meta.db_table,
    # All K find the address free and all K insert: the unique index keeps one row and refuses
    # the other K-1 with an IntegrityError nothing catches, K-1 answers of 500.
    naive_violations=lambda parties, audit: parties - 1,
    recorded="every signup",
    seed=provisioning.seed_signups,
    is_seeded=provisioning.signups_ready,
    reset=provisioning.reset_signups,
    audit=audit_signups,
)
