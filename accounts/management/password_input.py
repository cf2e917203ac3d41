"""Read a password the way Django's createsuperuser does: environment with --no-input, else a prompt."""

import getpass
import os
import sys

from django.core.management import CommandError

PASSWORD_ENV_VAR = "BANK_PASSWORD"


def read_password(*, no_input: bool, confirm: bool) -> str:
    password = os.environ.get(PASSWORD_ENV_VAR, "")
    if password:
        return password
    if no_input or not sys.stdin.isatty():
        raise CommandError(
            f"No password: set the {PASSWORD_ENV_VAR} environment variable "
            "(passwords are never taken from the command line, where ps would show them)."
        )
    password = getpass.getpass("Password: ")
    if confirm and password != getpass.getpass("Password (again): "):
        raise CommandError("The two passwords did not match; nothing was changed.")
    if not password:
        raise CommandError("The password must not be empty; nothing was changed.")
    return password
