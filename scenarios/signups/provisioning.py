"""Put the signup scenario's data into a known state: the lab's address free to register.

The race is for an address nobody has registered yet, so there is nothing to create and
nothing to size: seeding frees the lab's address, and a reset frees every address.
"""

from scenarios.signups.models import Signup

LAB_EMAIL = "lab@example.com"


def seed_signups() -> str:
    """Delete the lab address's signup, if any; says what it did."""
    cleared, _ = Signup.objects.filter(email=LAB_EMAIL).delete()
    return f"{LAB_EMAIL} is free to register: {cleared} signup(s) of it cleared."


def signups_ready() -> bool:
    """Always: a run needs no data beyond the table, which the migrations create."""
    return True


def reset_signups() -> str:
    """Every signup deleted; says what it did."""
    cleared, _ = Signup.objects.all().delete()
    return f"Cleared {cleared} signup(s): every address is free to register."
