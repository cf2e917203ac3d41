"""Ask before a destructive command goes on, the way Django's ``flush`` does."""

from django.core.management import CommandError

CONFIRMATION = "yes"


def add_no_input_argument(parser, *, help: str = "Do not ask for confirmation.") -> None:
    """``--no-input`` (and Django's own spelling, ``--noinput``), as ``flush`` takes it."""
    parser.add_argument("--no-input", "--noinput", action="store_false", dest="interactive", help=help)


def confirm(*, warning: str, cancelled: str) -> None:
    """Say ``warning``, then return if the user types ``yes``; otherwise raise CommandError(cancelled).

    Anything else cancels, and so do an empty standard input (EOF: a script, a pipe or
    ``< /dev/null``, where nobody can answer) and Ctrl-C: the command stops with ``cancelled``,
    a sentence, not a traceback.
    """
    try:
        answer = input(f"{warning} Type '{CONFIRMATION}' to continue, or 'no' to cancel: ")
    except (EOFError, KeyboardInterrupt):
        # input() leaves the cursor after the prompt; end the line before the message.
        print()
        raise CommandError(cancelled) from None
    if answer != CONFIRMATION:
        raise CommandError(cancelled)
