"""The verdict of a run: a count of violations the project's own data shows once the run is over.

``--check SQL`` is a query whose single number is that count (``SELECT count(*) FROM shop_order
WHERE ...``, ``SELECT 5 - value FROM counter_counter``); ``--check module:function`` names a
function of the project that returns it. Either runs inside a transaction that is rolled back, so
a check can read but never change what the run left.
"""

import importlib
from collections.abc import Callable
from dataclasses import dataclass

import sqlparse
from django.db import DatabaseError, connections, transaction

CALLABLE_SPEC = "module:function"


class CheckError(ValueError):
    """The check cannot give a verdict; the message says why and what to do."""


@dataclass(frozen=True)
class Check:
    """``--check`` as given: SQL, or a ``module:function`` of the project."""

    text: str

    @property
    def is_function(self) -> bool:
        module, colon, function = self.text.partition(":")
        return (
            bool(colon) and all(part.isidentifier() for part in module.split(".")) and function.isidentifier()
        )

    def violations(self, *, using: str = "default") -> int:
        """Run the check on database ``using``, read-only, and return its count of violations."""
        if not self.is_function:
            self._check_one_select()
        try:
            with transaction.atomic(using=using):
                _read_only(using=using)
                try:
                    value = self._call() if self.is_function else self._query(using=using)
                finally:
                    transaction.set_rollback(True, using=using)
        finally:
            _writable_again(using=using)
        try:
            count = int(value)
            whole = count == value
        except (TypeError, ValueError, OverflowError):
            whole = False
        if not whole or count < 0:
            raise CheckError(
                f"--check {self.text!r} gave {value!r}: it must give a whole number of violations, 0 or more."
            )
        return count

    def _check_one_select(self) -> None:
        statements = [statement for statement in sqlparse.split(self.text) if statement.strip(" ;\n\t")]
        if len(statements) != 1 or sqlparse.parse(statements[0])[0].get_type() != "SELECT":
            raise CheckError(
                f"--check {self.text!r} must be one SELECT (or WITH ... SELECT) statement: a check "
                "reads what the run left and changes nothing."
            )

    def _call(self) -> object:
        function = self._function()
        try:
            return function()
        except Exception as error:
            raise CheckError(f"--check {self.text!r} raised {type(error).__name__}: {error}") from error

    def _query(self, *, using: str) -> object:
        try:
            with connections[using].cursor() as cursor:
                cursor.execute(self.text)
                rows = cursor.fetchmany(2) if cursor.description else []
        except DatabaseError as error:
            detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise CheckError(f"--check: the database refused the query ({detail}).") from error
        if len(rows) != 1 or len(rows[0]) != 1:
            raise CheckError(
                f"--check {self.text!r} must answer one row of one number (the count of violations), "
                f"not {len(rows)} row(s)."
            )
        return rows[0][0]

    def _function(self) -> Callable[[], object]:
        module_name, _, function_name = self.text.partition(":")
        try:
            function = getattr(importlib.import_module(module_name), function_name)
        except Exception as error:
            raise CheckError(
                f"--check {self.text!r}: cannot import it ({type(error).__name__}: {error})."
            ) from error
        if not callable(function):
            raise CheckError(f"--check {self.text!r} is not a function.")
        return function


def _read_only(*, using: str) -> None:
    """The check's transaction read-only, so not even a function it calls can write: on
    PostgreSQL and MariaDB for this transaction alone (before its first query), on SQLite for the
    connection, until ``_writable_again``."""
    connection = connections[using]
    # Inside a caller's transaction (a test's), its access mode is the caller's to keep: the
    # rollback still undoes whatever the check wrote.
    outermost = len(connection.atomic_blocks) == 1
    with connection.cursor() as cursor:
        if connection.vendor in ("postgresql", "mysql") and outermost:
            cursor.execute("SET TRANSACTION READ ONLY")
        elif connection.vendor == "sqlite":
            cursor.execute("PRAGMA query_only = ON")


def _writable_again(*, using: str) -> None:
    """After the check's transaction has ended: SQLite's pragma outlives it."""
    connection = connections[using]
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA query_only = OFF")
