"""Numbers and lists on the command line, numbers in ASCII digits only, for every command.

argparse's ``type=int`` and ``type=float`` read digits of any script: ``--limit ٣`` is 3 and
``--race-window-timeout ٠.٥`` is 0.5, while the endpoints take ``0-9`` alone. One rule for both.
"""

import argparse
from contextlib import suppress

from racelab.loadgen.drivers import DriverName


def ascii_int(value: str) -> int:
    """``type=`` for a whole-number option, refused in argparse's own words otherwise."""
    if value.isascii():
        with suppress(ValueError):
            return int(value)
    raise argparse.ArgumentTypeError(_invalid(value, kind="int"))


def ascii_float(value: str) -> float:
    """``type=`` for a decimal option, refused in argparse's own words otherwise."""
    if value.isascii():
        with suppress(ValueError):
            return float(value)
    raise argparse.ArgumentTypeError(_invalid(value, kind="float"))


def _invalid(value: str, *, kind: str) -> str:
    hint = "" if value.isascii() else " (write numbers in ASCII digits, 0-9)"
    return f"invalid {kind} value: {value!r}{hint}"


def parse_levels(value: str) -> tuple[int, ...]:
    """-c as argparse reads it: one number, or a comma-separated list of levels."""
    try:
        return tuple(ascii_int(part) for part in value.split(","))
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a number or a comma-separated list of numbers in ASCII digits, like 2,5,10"
        ) from None


def parse_drivers(value: str) -> tuple[DriverName, ...]:
    """--driver as argparse reads it: one driver, or a comma-separated list of distinct ones."""
    names = value.split(",")
    if not set(names) <= {driver.value for driver in DriverName} or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a driver or a comma-separated list of distinct drivers "
            f"({', '.join(DriverName)})"
        )
    return tuple(DriverName(name) for name in names)
