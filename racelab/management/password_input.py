"""Read a password the way Django's createsuperuser does: environment with --no-input, else a prompt."""

import getpass
import sys

from django.core.management import CommandError

from racelab.loadgen.credentials import PASSWORD_ENV_VAR, password_from_environment

__all__ = ["PASSWORD_ENV_VAR", "read_password"]


def read_password(*, no_input: bool, ask_twice: bool) -> str:
    password = password_from_environment()
    if password:
        return password
    if no_input or not sys.stdin.isatty():
        raise CommandError(
            f"No password: set the {PASSWORD_ENV_VAR} environment variable "
            "(passwords are never taken from the command line, where ps would show them)."
        )
    try:
        password = getpass.getpass("Password: ")
        again = getpass.getpass("Password (again): ") if ask_twice else password
    except (EOFError, KeyboardInterrupt):
        # Ctrl-D or Ctrl-C at the prompt: the user chose not to give one. getpass has already
        # put the terminal's echo back; end the prompt's line before the message.
        print(file=sys.stderr)
        raise CommandError("No password was typed; nothing was changed.") from None
    if password != again:
        raise CommandError("The two passwords did not match; nothing was changed.")
    if not password:
        raise CommandError("The password must not be empty; nothing was changed.")
    return password
