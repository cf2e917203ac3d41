from django.core.management.base import BaseCommand, CommandError

from accounts.models import DEFAULT_OPENING_BALANCE
from accounts.provisioning import USERNAME_RULE, ProvisioningError, seed_account, validate_username
from racelab.management.arguments import ascii_int
from racelab.management.confirmation import add_no_input_argument
from racelab.management.database_errors import reports_database_errors
from racelab.management.password_input import PASSWORD_ENV_VAR, read_password


class Command(BaseCommand):
    help = (
        "Create or update a user and their account at an opening balance. "
        f"The password comes from ${PASSWORD_ENV_VAR}, or a prompt."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--username",
            default="demo",
            help=f"The user to create or update (default: demo): {USERNAME_RULE}.",
        )
        parser.add_argument(
            "--balance",
            type=ascii_int,
            default=DEFAULT_OPENING_BALANCE,
            help=f"Opening balance (default: {DEFAULT_OPENING_BALANCE}).",
        )
        parser.add_argument(
            "--minimum", type=ascii_int, default=0, help="Lowest balance allowed (default: 0)."
        )
        add_no_input_argument(parser, help=f"Never prompt; take the password from ${PASSWORD_ENV_VAR}.")

    @reports_database_errors
    def handle(self, *, username, balance, minimum, interactive, **options):
        try:
            # Before the prompt: nobody should type a password twice for a name then refused.
            validate_username(username=username)
            password = read_password(no_input=not interactive, ask_twice=True)
            seeded = seed_account(username=username, password=password, opening=balance, minimum=minimum)
        except ProvisioningError as error:
            raise CommandError(f"{error} Nothing was changed.") from error
        verb = "Created" if seeded.account_created else "Updated"
        self.stdout.write(
            self.style.SUCCESS(
                f"{verb} account {seeded.account_id} for {seeded.username}: "
                f"opening balance {seeded.opening}, minimum {seeded.minimum}."
            )
        )
