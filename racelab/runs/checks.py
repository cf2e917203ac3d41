"""The verdict of a run: a count of violations the project's own data shows once the run is over.

``--check SQL`` is a query whose single number is that count (``SELECT count(*) FROM shop_order
WHERE ...``, ``SELECT 5 - value FROM counter_counter``); ``--check module:function`` names a
function of the project that returns it. Either runs inside a transaction that is rolled back, so
a check can read but never change what the run left.
"""

import importlib
from collections.abc import Callable
from dataclasses import dataclass

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
        return bool(colon) and module.replace(".", "").isidentifier() and function.isidentifier()

    def violations(self, *, using: str = "default") -> int:
        """Run the check on database ``using`` and return its count of violations."""
        with transaction.atomic(using=using):
            try:
                value = self._function()() if self.is_function else self._query(using=using)
            finally:
                transaction.set_rollback(True, using=using)
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
        except (ImportError, AttributeError) as error:
            raise CheckError(f"--check {self.text!r}: cannot import it ({error}).") from error
        if not callable(function):
            raise CheckError(f"--check {self.text!r} is not a function.")
        return function
