from django.core.management.base import BaseCommand, CommandError

from accounts.provisioning import ProvisioningError, reset_accounts
from racelab.management.arguments import ascii_int
from racelab.management.confirmation import add_no_input_argument, confirm
from racelab.management.database_errors import reports_database_errors


class Command(BaseCommand):
    help = (
        "Return accounts to a known opening balance and delete their ledger; their runs stay on the "
        "report pages, out of the checker's count."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--balance",
            type=ascii_int,
            help="Opening balance to set (default: each account's own recorded opening balance).",
        )
        parser.add_argument("--username", help="Only this user's account (default: all accounts).")
        add_no_input_argument(parser)

    @reports_database_errors
    def handle(self, *, balance, username, interactive, **options):
        scope = f"{username}'s account" if username else "every account"
        if interactive:
            confirm(
                warning=f"This resets {scope} and deletes its ledger.",
                cancelled="Reset cancelled; nothing was changed.",
            )
        try:
            reset = reset_accounts(opening=balance, username=username)
        except ProvisioningError as error:
            raise CommandError(f"{error} Nothing was changed.") from error
        target = f"to {balance}" if balance is not None else "to their opening balance"
        self.stdout.write(self.style.SUCCESS(f"Reset {reset} account(s) {target}; ledger cleared."))
