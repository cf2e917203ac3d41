"""Numbers on the command line, in ASCII digits only, for every command of the lab.

argparse's ``type=int`` and ``type=float`` read digits of any script: ``--limit ٣`` is 3 and
``--race-window-timeout ٠.٥`` is 0.5, while the endpoints take ``0-9`` alone. One rule for both.
"""

import argparse
from contextlib import suppress


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
