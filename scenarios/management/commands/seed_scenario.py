from django.core.management.base import BaseCommand, CommandError

from accounts.management.database_errors import reports_database_errors
from scenarios.catalogue import SCENARIOS
from scenarios.vouchers.provisioning import DEFAULT_LIMIT, VoucherProvisioningError


class Command(BaseCommand):
    help = (
        "Create a scenario's data, or put it back to the start: for voucher, the voucher LAB-VOUCHER "
        "with --limit uses (default 1) and none taken. Log in as any seeded user (seed_account)."
    )

    def add_arguments(self, parser):
        parser.add_argument("scenario", choices=sorted(SCENARIOS), help="The scenario to seed.")
        parser.add_argument(
            "--limit",
            type=int,
            default=DEFAULT_LIMIT,
            help=f"voucher: how many uses it allows (default {DEFAULT_LIMIT}).",
        )

    @reports_database_errors
    def handle(self, *, scenario, limit, **options):
        try:
            message = SCENARIOS[scenario].seed(limit=limit)
        except VoucherProvisioningError as error:
            raise CommandError(f"{error} Nothing was changed.") from error
        self.stdout.write(self.style.SUCCESS(message))
