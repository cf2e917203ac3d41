"""Where a held request waits: a park point names a table, a kind of statement and an occurrence.

``shop_product`` is the first read of that table; ``shop_product:write`` the first write;
``shop_order:read:2`` the second read. Several points, comma-separated, hold a request at
whichever it reaches first, once. There is no default: the project (``RACE_WINDOW_AT``) or
whoever arms the window names them.
"""

import logging
import re
from dataclasses import dataclass
from functools import cache, lru_cache

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.tokens import Tokenizer, TokenType

READ, WRITE, ANY = "read", "write", "any"
KINDS = (READ, WRITE, ANY)
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

    def matches(self, *, sql: str, kind: str, vendor: str | None = None) -> bool:
        """Whether a statement of ``kind`` is one this point counts (it names the table)."""
        return (self.kind == ANY or self.kind == kind) and self.names_table(sql, vendor=vendor)

    def names_table(self, sql: str, *, vendor: str | None = None) -> bool:
        """Whether the statement reads or writes the table (``vendor``: Django's name for the
        database, whose SQL dialect it is; None reads standard SQL)."""
        return self.table in statement_tables(sql, dialect=_DIALECTS.get(vendor or ""))


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
                "e.g. shop_product or shop_product:write:1"
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


_NAME_TOKENS = (TokenType.VAR, TokenType.IDENTIFIER)
# Django's connection.vendor -> sqlglot's dialect.
_DIALECTS = {"postgresql": "postgres", "mysql": "mysql", "sqlite": "sqlite"}


@lru_cache(maxsize=4096)
def statement_tables(sql: str, *, dialect: str | None = None) -> frozenset[str]:
    """The tables a statement (or a batch of them) reads or writes, as sqlglot parses it: not a
    column, an alias, a CTE or a string literal that happens to share a table's name.

    What sqlglot cannot parse (a ParseError, or a statement it keeps as an opaque command, such as
    MariaDB's REPLACE) names every identifier in it: more than its tables, never fewer. Django's
    statements repeat, so each text is parsed once per process.
    """
    # Django's placeholder; ? is a parameter in every dialect sqlglot reads.
    text = sql.replace("%s", "?")
    try:
        trees = [tree for tree in sqlglot.parse(text, dialect=dialect) if tree is not None]
    except sqlglot.errors.SqlglotError:
        trees = []
    if not trees or any(isinstance(tree, exp.Command) for tree in trees):
        return _identifiers(text, dialect=dialect)
    common_tables = {cte.alias_or_name for tree in trees for cte in tree.find_all(exp.CTE)}
    return frozenset(table.name for tree in trees for table in tree.find_all(exp.Table)) - common_tables


def _identifiers(text: str, *, dialect: str | None) -> frozenset[str]:
    try:
        tokens = _every_token_tokenizer(dialect)().tokenize(text)
    except sqlglot.errors.SqlglotError:
        return frozenset()
    return frozenset(
        token.text for token in tokens if token.token_type in (TokenType.VAR, TokenType.IDENTIFIER)
    )


@cache
def _every_token_tokenizer(dialect: str | None) -> type[Tokenizer]:
    """The dialect's tokenizer, without the commands it would read the rest of as one string."""
    return type("EveryToken", (Dialect.get_or_raise(dialect).tokenizer_class,), {"COMMANDS": set()})


class _UnsupportedSyntaxFilter(logging.Filter):
    """sqlglot warns of each statement it keeps as an opaque command (SAVEPOINT, REPLACE): one line
    per statement text in every server log in race mode, about a case handled above."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "contains unsupported syntax" not in record.getMessage()


logging.getLogger("sqlglot").addFilter(_UnsupportedSyntaxFilter())
