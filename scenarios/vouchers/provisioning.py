"""Put the voucher scenario's data into a known state: its voucher, with none of its uses taken."""

from django.db import transaction

from scenarios.definition import ProvisioningError
from scenarios.vouchers.models import MAX_USES, USES, Voucher

LAB_VOUCHER = "LAB-VOUCHER"
DEFAULT_LIMIT = 1


@transaction.atomic
def seed_voucher(*, code: str = LAB_VOUCHER, limit: int | None = None) -> str:
    """Create the voucher or set its limit (default 1), and clear its uses; says what it did."""
    limit = DEFAULT_LIMIT if limit is None else limit
    if not 1 <= limit <= MAX_USES:
        raise ProvisioningError(f"A voucher's limit must be from 1 to {MAX_USES} uses, not {limit}.")
    created, cleared = USES.seed(code, limit)
    action = "Created" if created else "Reset"
    return f"{action} voucher {code}: {limit} use(s), {cleared} recorded use(s) cleared."


def lab_voucher_exists() -> bool:
    return Voucher.objects.filter(code=LAB_VOUCHER).exists()


@transaction.atomic
def reset_vouchers() -> str:
    """Every voucher back to all its uses left, its usage rows deleted; says what it did."""
    count, cleared = USES.reset()
    return f"Reset {count} voucher(s): {cleared} recorded use(s) cleared."
