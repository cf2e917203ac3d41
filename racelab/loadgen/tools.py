"""Run the external binaries (curl, ab) with argument lists, timeouts and clear failures."""

import shutil
import subprocess

from racelab.loadgen.errors import LoadError, ToolMissing

DEBIAN_PACKAGES = {"curl": "curl", "ab": "apache2-utils"}


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ToolMissing(
            f"{name} is not installed: install the Debian package {DEBIAN_PACKAGES[name]} "
            f"(apt-get install {DEBIAN_PACKAGES[name]})."
        )
    return path


def run_tool(argv: list[str], *, timeout: float, stdin: str | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as error:
        raise LoadError(f"{argv[0]} did not finish within {timeout:.0f} s and was stopped.") from error
