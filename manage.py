#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bank.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as error:
        # Settings read from the environment (DATABASE_URL, ...) are checked as they load, before
        # any command runs, and say what to fix: that sentence is the news, not the traceback
        # through Django's loader (still there with --traceback, as for a CommandError).
        if "--traceback" in sys.argv:
            raise
        sys.exit(f"ImproperlyConfigured: {error}")


if __name__ == "__main__":
    main()
