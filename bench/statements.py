"""Every statement one request sends to the database, as the database receives it: the budget.

    .venv/bin/python -m bench.statements --database sqlite
    .venv/bin/python -m bench.statements --database postgres
    .venv/bin/python -m bench.statements --database mysql

Django's query log (``CaptureQueriesContext``) misses what the driver sends by itself: BEGIN and
COMMIT on PostgreSQL, ``SET autocommit`` on MariaDB, the connection health check (a ``SELECT 1``
or a ping) that ``CONN_HEALTH_CHECKS`` runs once per request. Here each driver reports what goes
over its connection: SQLite's trace callback, libpq's protocol trace, and MySQLdb's own calls.
Each entry is one exchange with the server, a round trip (SQLite's are calls in-process): one
statement, or a MariaDB batch of several sent as one query, listed joined by `` + `` (as is
PostgreSQL's data-modifying ``WITH``, one statement that writes two tables).
tests/unit/test_statement_budgets.py pins these figures.
"""

import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from tabulate import tabulate

from bench.harness import argument_parser, bench_lab, setup_django

CASES = ["GET (balance)", "naive", "atomic_update", "locking", "optimistic", "serializable"]


@contextmanager
def statements_sent(connection) -> Iterator[list[str]]:
    """The statements (SQL text, or what the driver did, such as ``ping``) sent over the
    connection while the block runs. Open the connection first."""
    sent: list[str] = []
    driver = connection.connection
    if connection.vendor == "sqlite":
        driver.set_trace_callback(sent.append)
        try:
            yield sent
        finally:
            driver.set_trace_callback(None)
    elif connection.vendor == "postgresql":
        with _libpq_trace(driver.pgconn, into=sent):
            yield sent
    else:
        with _mysqldb_calls(driver, into=sent):
            yield sent


@contextmanager
def _libpq_trace(pgconn, *, into: list[str]) -> Iterator[None]:
    from psycopg import pq

    with tempfile.TemporaryFile() as trace:
        pgconn.trace(trace.fileno())
        pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        try:
            yield
        finally:
            pgconn.untrace()
            trace.seek(0)
            into.extend(_frontend_statements(trace.read().decode()))


def _frontend_statements(trace: str) -> Iterator[str]:
    """One entry per round trip the client started: a simple Query, or an extended-protocol
    exchange that a Sync ends (named by its Parse's text, or its prepared statement's name)."""
    messages: list[str] = []
    for line in trace.splitlines():
        if line.startswith(("F\t", "B\t")):
            messages.append(line)
        elif messages:  # a statement's text runs over several lines
            messages[-1] += " " + line
    pending = ""
    for message in messages:
        direction, _, kind, *rest = message.split("\t")
        if direction != "F":
            continue
        text = rest[0].strip() if rest else ""
        if kind == "Query":
            yield text.split('"', 1)[1].rsplit('"', 1)[0]
        elif kind == "Parse":
            pending = text.split('" "', 1)[1].rsplit('"', 1)[0]
        elif kind == "Bind" and not pending:
            pending = "EXECUTE prepared " + text.split('"')[3]
        elif kind == "Sync":
            yield pending
            pending = ""


@contextmanager
def _mysqldb_calls(driver, *, into: list[str]) -> Iterator[None]:
    """MySQLdb's calls that reach the server, recorded by shadowing them on the instance."""
    originals = {
        name: getattr(driver, name) for name in ("query", "autocommit", "commit", "rollback", "ping")
    }

    def record(name, original):
        def call(*args):
            if name == "query":
                into.append(args[0].decode() if isinstance(args[0], bytes) else args[0])
            elif name != "autocommit" or driver.get_autocommit() != bool(args[0]):
                # autocommit() sends nothing when the mode is already the one asked for.
                into.append(f"{name}({', '.join(map(str, args))})".replace("()", ""))
            return original(*args)

        return call

    for name, original in originals.items():
        setattr(driver, name, record(name, original))
    try:
        yield
    finally:
        # MySQLdb's connection refuses delattr(): put the class's own methods back in their place.
        for name, original in originals.items():
            setattr(driver, name, original)


def describe(statement: str) -> str:
    """A statement as its kind and table (``SELECT django_session``, ``UPDATE accounts_account``),
    or whole if it names none (``BEGIN``, ``SELECT 1``, ``ping``): short enough to compare and print.
    Several statements sent as one (a MariaDB batch) are each described, joined by `` + ``."""
    if ";" in statement.rstrip("; \n"):
        return " + ".join(describe(part) for part in statement.split(";") if part.strip())
    words = re.sub(r"[\"`]", "", statement).split()
    kind = words[0].upper() if words else ""
    table_after = {"SELECT": "FROM", "UPDATE": "UPDATE", "INSERT": "INTO", "DELETE": "FROM"}.get(kind)
    uppercase = [word.upper().strip("(") for word in words]
    if kind == "WITH":  # data-modifying CTEs: every write it holds, as one statement
        written = (
            f"{word} {words[i + 1 + (word == 'INSERT')]}"
            for i, word in enumerate(uppercase)
            if word in ("UPDATE", "INSERT") and uppercase[i - 1] != "FOR"
        )
        return " + ".join(written)
    if table_after not in uppercase:
        return " ".join(words[:5])
    return f"{kind} {words[uppercase.index(table_after) + 1]}"


def request_statements(client, case: str, *, connection) -> list[str]:
    """What one request of ``case`` sends, after what Django's WSGI handler does between two
    requests (close_old_connections(), which re-arms the health check); the test client skips it."""
    connection.close_if_unusable_or_obsolete()
    connection.ensure_connection()
    with statements_sent(connection) as sent:
        if case == CASES[0]:
            response = client.get("/accounts/withdraw/")
        else:
            response = client.post(f"/accounts/withdraw/?strategy={case}", {"amount": 1})
    if response.status_code != 200:
        raise AssertionError(f"{case}: {response.status_code} {response.content!r}")
    return [describe(statement) for statement in sent]


def main() -> None:
    args = argument_parser(__doc__).parse_args()
    with bench_lab(args.database) as lab_env:
        setup_django(lab_env)
        from django.contrib.auth.models import User
        from django.db import connection
        from django.test import Client

        from accounts.models import Account

        user = User.objects.create_user(username="statements")
        Account.objects.create(user=user)
        client = Client(HTTP_HOST="127.0.0.1")
        client.force_login(user)
        rows = []
        for case in CASES:
            request_statements(client, case, connection=connection)  # warm: prepared statements
            sent = request_statements(client, case, connection=connection)
            rows.append((case, len(sent), "; ".join(sent)))
        connection.close()
    print(f"database {args.database}: statements per request, as the database receives them\n")
    print(tabulate(rows, headers=["case", "round trips", "in order"], tablefmt="github"))


if __name__ == "__main__":
    main()
