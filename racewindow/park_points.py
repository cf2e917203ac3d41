"""Where a held request waits: a park point names a table, a kind of statement and an occurrence.

``accounts_account`` is the first read of that table (the default, the bank's balance);
``accounts_account:write`` the first write; ``vouchers_usage:read:2`` the second read. Several
points, comma-separated, hold a request at whichever it reaches first, once.
"""

import re
from dataclasses import dataclass
from functools import cached_property

READ, WRITE, ANY = "read", "write", "any"
KINDS = (READ, WRITE, ANY)
DEFAULT = "accounts_account"
_TABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
# ASCII digits: isdigit() passes a superscript (²) that int() refuses, int() reads Arabic digits.
_OCCURRENCE = re.compile(r"[0-9]+")
_WRITE_VERBS = ("INSERT", "UPDATE", "DELETE", "REPLACE")
_TRANSACTION_START = re.compile(r"\s*(?:START\s+TRANSACTION|BEGIN)\s*;", re.IGNORECASE)
_WRITE_IN_WITH = re.compile(r"\bAS\s*\(\s*(?:INSERT|UPDATE|DELETE)\b", re.IGNORECASE)


@dataclass(frozen=True)
class ParkPoint:
    table: str
    kind: str = READ
    occurrence: int = 1

    def matches(self, *, sql: str, kind: str) -> bool:
        """Whether a statement of ``kind`` is one this point counts (it names the table)."""
        return (self.kind == ANY or self.kind == kind) and self.names_table(sql)

    def names_table(self, sql: str) -> bool:
        return self._pattern.search(sql) is not None

    @cached_property
    def _pattern(self) -> re.Pattern:
        return re.compile(rf"\b{self.table}\b")


def parse(value: str) -> tuple[ParkPoint, ...]:
    """``table[:read|write|any[:occurrence]]``, comma-separated; ValueError saying what is wrong."""
    points = []
    for item in value.split(","):
        parts = item.strip().split(":")
        table, kind, occurrence = parts[0], *(parts[1:] + [READ, "1"][len(parts) - 1 :])[:2]
        if (
            len(parts) > 3
            or not _TABLE.fullmatch(table)
            or kind not in KINDS
            or not _OCCURRENCE.fullmatch(occurrence)
        ):
            raise ValueError(
                f"{item.strip()!r} is not a park point: write table[:read|write|any[:occurrence]], "
                "e.g. accounts_account or accounts_account:write:1"
            )
        if not 1 <= int(occurrence) <= 1_000:
            raise ValueError(f"the occurrence in {item.strip()!r} must be from 1 to 1000")
        points.append(ParkPoint(table=table, kind=kind, occurrence=int(occurrence)))
    return tuple(points)


def statement_kind(sql: str) -> str:
    """READ or WRITE: a WITH whose query writes (PostgreSQL's UPDATE ... RETURNING in a CTE) writes;
    a locking read (SELECT ... FOR UPDATE) reads; a batch that opens a transaction (MariaDB's
    ``START TRANSACTION; UPDATE ...; COMMIT`` in one query) is the kind of the statement after it."""
    opened = _TRANSACTION_START.match(sql)
    if opened:
        sql = sql[opened.end() :]
    verb = sql.lstrip()[:7].upper()
    if verb.startswith(_WRITE_VERBS):
        return WRITE
    if verb.startswith("WITH") and _WRITE_IN_WITH.search(sql):
        return WRITE
    return READ
