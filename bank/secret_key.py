"""Load the SECRET_KEY from the environment, or from a private file generated on first use."""

import os
import secrets
from pathlib import Path


def load_or_create_secret_key(*, path: Path) -> str:
    """Return the key stored at ``path``, creating it (mode 0600) if it does not exist yet.

    Several Gunicorn workers import the settings at the same moment on first start, so the
    key is written to a private temporary file and published with ``os.link``, which fails
    if another process won: every process then reads the one complete key.
    """
    if not path.exists():
        temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_urlsafe(50))
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
        finally:
            temporary.unlink()
    return path.read_text().strip()
