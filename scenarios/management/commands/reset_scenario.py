from django.core.management.base import BaseCommand, CommandError

from racelab.management.confirmation import add_no_input_argument, confirm
from racelab.management.database_errors import reports_database_errors
from scenarios.catalogue import SCENARIOS
from scenarios.definition import ProvisioningError


class Command(BaseCommand):
    help = "Delete what runs recorded in a scenario (voucher: every usage), keeping its seeded data."

    def add_arguments(self, parser):
        parser.add_argument("scenario", choices=sorted(SCENARIOS), help="The scenario to reset.")
        add_no_input_argument(parser)

    @reports_database_errors
    def handle(self, *, scenario, interactive, **options):
        if interactive:
            confirm(
                warning=f"This deletes what runs recorded in the {scenario} scenario.",
                cancelled="Reset cancelled; nothing was changed.",
            )
        try:
            message = SCENARIOS[scenario].reset()
        except ProvisioningError as error:
            raise CommandError(f"{error} Nothing was changed.") from error
        self.stdout.write(self.style.SUCCESS(message))
