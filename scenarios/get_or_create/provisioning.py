"""Put the get_or_create scenario's data into a known state: no repository rows at all, so the
next sync of a name is the one that creates it. There is nothing to create beforehand."""

from django.db import transaction

from scenarios.get_or_create.models import RemoteRepository, UniqueRemoteRepository

LAB_REPOSITORY = "lab/repository"


def seed_repositories() -> str:
    """Clear every repository row; says what it did."""
    cleared = _clear()
    return f"Ready: no repository rows ({cleared} cleared); the next sync of {LAB_REPOSITORY} creates it."


def reset_repositories() -> str:
    """Delete every repository row, in both tables; says what it did."""
    return f"Reset: {_clear()} repository row(s) cleared."


def is_seeded() -> bool:
    # What the race is for is the row nobody has created yet: no data is needed first.
    return True


@transaction.atomic
def _clear() -> int:
    unconstrained, _ = RemoteRepository.objects.all().delete()
    constrained, _ = UniqueRemoteRepository.objects.all().delete()
    return unconstrained + constrained
