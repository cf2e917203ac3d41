"""Where the secrets a load needs come from: the environment, never a command line ``ps`` shows."""

import os
from collections.abc import Mapping

PASSWORD_ENV_VAR = "RACELAB_PASSWORD"
# The lab's demo named it after the bank before racelab was a package of its own; still read.
PASSWORD_ENV_ALIAS = "BANK_PASSWORD"
# A session cookie's value to send instead of logging in (a user of a site with single sign-on).
SESSION_ENV_VAR = "RACELAB_SESSION_COOKIE"


def password_from_environment(environ: Mapping[str, str] = os.environ) -> str:
    """$RACELAB_PASSWORD, else $BANK_PASSWORD, else ""."""
    return environ.get(PASSWORD_ENV_VAR, "") or environ.get(PASSWORD_ENV_ALIAS, "")


def without_secrets(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` less every variable this module reads, for a process that must not see them."""
    secrets = {PASSWORD_ENV_VAR, PASSWORD_ENV_ALIAS, SESSION_ENV_VAR}
    return {name: value for name, value in environ.items() if name not in secrets}
