from django.core.management.base import BaseCommand, CommandError

from racelab.management.arguments import ascii_int
from racelab.management.database_errors import reports_database_errors
from scenarios.catalogue import SCENARIOS
from scenarios.definition import ProvisioningError


class Command(BaseCommand):
    help = (
        "Create a scenario's data, or put it back to the start with nothing recorded. "
        "Log in as any seeded user (seed_account)."
    )

    def add_arguments(self, parser):
        parser.add_argument("scenario", choices=sorted(SCENARIOS), help="The scenario to seed.")
        sized = "; ".join(
            f"{scenario.name}: {scenario.limit_help}"
            for scenario in SCENARIOS.values()
            if scenario.limit_help
        )
        parser.add_argument("--limit", type=ascii_int, help=f"The size of what is raced for ({sized}).")

    @reports_database_errors
    def handle(self, *, scenario, limit, **options):
        chosen = SCENARIOS[scenario]
        if chosen.limit_help is None:
            if limit is not None:
                raise CommandError(f"The {scenario} scenario has nothing to size; drop --limit.")
            self.stdout.write(self.style.SUCCESS(chosen.seed()))
            return
        try:
            message = chosen.seed(limit=limit)
        except ProvisioningError as error:
            raise CommandError(f"{error} Nothing was changed.") from error
        self.stdout.write(self.style.SUCCESS(message))
