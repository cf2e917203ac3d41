"""The lab's authenticated balance GET and its atomic_update withdrawal, with no Django: raw SQL
through the driver Django uses, on the lab's database, with the lab's SECRET_KEY.

Django's figure divided by this one is how much of the stack's limit the lab reaches, so the floor
does the database work Django's path does, statement for statement, and nothing else:

- every request: the unexpired session row by the ``sessionid`` cookie, its signature checked as
  ``django.core.signing`` does, then the user row (``is_active``, and the session's password hash
  as ``django.contrib.auth.get_user`` checks it);
- GET: the user's first account's balance;
- POST: the conditional debit and its ledger row, together or not at all, as atomic_update
  sends them: SQLite, in one IMMEDIATE transaction, ``UPDATE ... RETURNING`` then the INSERT;
  PostgreSQL, one statement (the UPDATE in a WITH, the INSERT taking its row); MariaDB, one batch
  (START TRANSACTION, the UPDATE, the ledger row copying the balance with ``INSERT ... RETURNING``,
  COMMIT). The statements are the lab's own (accounts/statements.py, which imports nothing).

What it leaves out is what Django adds: request and response objects, URL routing, the other
middleware (CSRF too: the floor only ever serves the benchmark, on loopback), model instances,
the ORM, connection health checks. Each Gunicorn worker opens one connection at its first request
(after the fork) and keeps it, as CONN_MAX_AGE does; a database error drops it. On PostgreSQL the
floor uses psycopg's own defaults (server-side binding, statements prepared after 5 uses), the
driver's fastest ordinary use, where Django binds on the client.

    gunicorn -c gunicorn.conf.py 'bench.floor.app:from_environment()'
"""

import base64
import hashlib
import hmac
import json
import os
import re
import sqlite3
import zlib
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from accounts.statements import DEBIT, DEBIT_AND_RECORD, DEBIT_RETURNING, INSERT_LEDGER_ROW, RECORD_DEBIT

PROJECT_DIR = Path(__file__).resolve().parent.parent.parent
WITHDRAW_PATH = "/accounts/withdraw/"
SESSION_COOKIE = "sessionid"
# The salts Django's db session store and AbstractBaseUser.get_session_auth_hash sign with.
SESSION_SALT = "django.contrib.sessions.SessionStore"
SESSION_AUTH_HASH_SALT = "django.contrib.auth.models.AbstractBaseUser.get_session_auth_hash"
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"
# accounts/forms.py's rules for the amount form field.
DEFAULT_AMOUNT = 1
MAX_WITHDRAWAL_AMOUNT = 1_000_000
_DIGITS = re.compile(r"[0-9]{1,16}")
LEDGER_STRATEGY = "atomic_update"

_SESSION = "SELECT session_data FROM django_session WHERE session_key = %s AND expire_date > %s"
_USER = "SELECT password, is_active FROM auth_user WHERE id = %s"
_BALANCE = "SELECT current FROM accounts_account WHERE user_id = %s ORDER BY id LIMIT 1"


class Database:
    """One persistent connection and the floor's statements on it. SQLite's flavour is the base:
    the PRAGMAs and IMMEDIATE transactions of bank/settings.py, timestamps as Django writes them."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._cursor = None

    def connect(self):
        connection = sqlite3.connect(urlsplit(self.url).path[1:], timeout=20, isolation_level=None)
        for pragma in ("foreign_keys = ON", "journal_mode = WAL", "synchronous = NORMAL"):
            connection.execute(f"PRAGMA {pragma}")
        return connection.cursor()

    def execute(self, sql: str, params: tuple):
        if self._cursor is None:
            self._cursor = self.connect()
        self._cursor.execute(self.placeholders(sql), params)
        return self._cursor

    @staticmethod
    def placeholders(sql: str) -> str:
        return sql.replace("%s", "?")

    def now(self) -> object:
        """The current time as Django's backend adapts it: naive UTC text."""
        return str(datetime.now(UTC).replace(tzinfo=None))

    def close(self) -> None:
        if self._cursor is not None:
            self._cursor.connection.close()
            self._cursor = None

    def session_data(self, session_key: str) -> str | None:
        row = self.execute(_SESSION, (session_key, self.now())).fetchone()
        return None if row is None else row[0]

    def user(self, user_id: int) -> tuple[str, bool] | None:
        """The user's password hash and whether they are active."""
        return self.execute(_USER, (user_id,)).fetchone()

    def balance(self, user_id: int) -> int | None:
        row = self.execute(_BALANCE, (user_id,)).fetchone()
        return None if row is None else row[0]

    def withdraw(self, *, user_id: int, amount: int, started_at: object) -> int | None:
        """The balance left, or None when nothing was taken (no account, or not enough in it)."""
        self.execute("BEGIN IMMEDIATE", ())
        try:
            debited = self.execute(DEBIT_RETURNING, (amount, user_id, amount)).fetchone()
            if debited is not None:
                account_id, after = debited
                row = (account_id, amount, after + amount, after, LEDGER_STRATEGY, started_at, self.now())
                self.execute(INSERT_LEDGER_ROW, row)
        except BaseException:
            self.execute("ROLLBACK", ())
            raise
        self.execute("COMMIT", ())
        return None if debited is None else debited[1]


class PostgresDatabase(Database):
    def withdraw(self, *, user_id: int, amount: int, started_at: object) -> int | None:
        """One statement, atomic by itself, as the lab sends it."""
        row = (amount, user_id, amount, amount, amount, LEDGER_STRATEGY, started_at, self.now())
        debited = self.execute(DEBIT_AND_RECORD, row).fetchone()
        return None if debited is None else debited[1]

    def connect(self):
        import psycopg

        # Without the URL's query: it carries Django's OPTIONS (server_side_binding,
        # prepare_threshold), which libpq does not know; the floor keeps psycopg's defaults.
        return psycopg.connect(urlsplit(self.url)._replace(query="").geturl(), autocommit=True).cursor()

    @staticmethod
    def placeholders(sql: str) -> str:
        return sql

    def now(self) -> object:
        return datetime.now(UTC)


class MySQLDatabase(Database):
    """MariaDB at READ COMMITTED, as bank/settings.py asks; it has no UPDATE ... RETURNING."""

    def withdraw(self, *, user_id: int, amount: int, started_at: object) -> int | None:
        """One batch, as the lab sends it: the transaction, the debit, its ledger row and COMMIT."""
        record = (amount, amount, LEDGER_STRATEGY, started_at, self.now(), user_id)
        batch = f"START TRANSACTION; {DEBIT}; {RECORD_DEBIT}; COMMIT"
        cursor = self.execute(batch, (amount, user_id, amount, *record))
        try:
            cursor.nextset()
            cursor.nextset()
            debited = cursor.fetchone()
            cursor.nextset()
        except BaseException:
            self.execute("ROLLBACK", ())
            raise
        return None if debited is None else debited[1]

    def connect(self):
        import MySQLdb

        url = urlsplit(self.url)
        connection = MySQLdb.connect(
            host=url.hostname or "127.0.0.1",
            port=url.port or 3306,
            user=unquote(url.username or "root"),
            password=unquote(url.password or ""),
            database=url.path[1:],
            charset="utf8mb4",
            autocommit=True,
        )
        connection.query("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        return connection.cursor()

    @staticmethod
    def placeholders(sql: str) -> str:
        return sql


DATABASES = {"sqlite": Database, "postgres": PostgresDatabase, "postgresql": PostgresDatabase}
DATABASES |= {"mysql": MySQLDatabase}


def open_database(url: str) -> Database:
    """The database a DATABASE_URL names (sqlite, postgres or mysql); connected at first use."""
    scheme = urlsplit(url).scheme
    if scheme not in DATABASES:
        raise ValueError(f"DATABASE_URL's scheme must be sqlite, postgres or mysql, not {scheme!r}.")
    return DATABASES[scheme](url)


class Floor:
    """The WSGI application: GET the balance or POST a withdrawal at /accounts/withdraw/."""

    def __init__(self, *, database: Database, secret_key: str) -> None:
        self.database = database
        # The keys Django's salted_hmac derives from SECRET_KEY, derived once.
        self._session_key = hashlib.sha256(f"{SESSION_SALT}signer{secret_key}".encode()).digest()
        self._auth_hash_key = hashlib.sha256(f"{SESSION_AUTH_HASH_SALT}{secret_key}".encode()).digest()

    def __call__(self, environ: dict, start_response) -> list[bytes]:
        if environ.get("PATH_INFO") != WITHDRAW_PATH:
            return _answer(start_response, "404 Not Found", "Only /accounts/withdraw/ is served here.")
        method = environ["REQUEST_METHOD"]
        if method not in ("GET", "POST"):
            return _answer(start_response, "405 Method Not Allowed", "GET or POST.")
        body = (
            environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)) if method == "POST" else b""
        )
        started_at = self.database.now()
        try:
            return self._serve(
                start_response,
                method=method,
                body=body,
                cookies=environ.get("HTTP_COOKIE", ""),
                started_at=started_at,
            )
        except Exception:
            self.database.close()  # a broken connection or transaction is not reused
            raise

    def _serve(
        self, start_response, *, method: str, body: bytes, cookies: str, started_at: object
    ) -> list[bytes]:
        user_id = self._user_id(cookies)
        if user_id is None:
            return _answer(start_response, "403 Forbidden", "Log in first.")
        if method == "GET":
            balance = self.database.balance(user_id)
            if balance is None:
                return _answer(start_response, "404 Not Found", "You have no account.")
            return _answer(start_response, "200 OK", str(balance))
        amount = _amount(body)
        if amount is None:
            return _answer(start_response, "400 Bad Request", "Bad amount.")
        balance = self.database.withdraw(user_id=user_id, amount=amount, started_at=started_at)
        if balance is None:
            return _answer(start_response, "409 Conflict", "Insufficient funds.")
        return _answer(start_response, "200 OK", str(balance))

    def _user_id(self, cookies: str) -> int | None:
        """The logged-in user's id, as Django's session and authentication middleware find it."""
        session_key = _cookie(cookies, SESSION_COOKIE)
        session_data = session_key and self.database.session_data(session_key)
        session = session_data and self._unsign(session_data)
        if (
            not session
            or "_auth_user_id" not in session
            or session.get("_auth_user_backend") != MODEL_BACKEND
        ):
            return None
        user_id = int(session["_auth_user_id"])
        user = self.database.user(user_id)
        if user is None or not user[1]:
            return None
        password_hash = hmac.new(self._auth_hash_key, user[0].encode(), hashlib.sha256).hexdigest()
        return user_id if hmac.compare_digest(session.get("_auth_user_hash", ""), password_hash) else None

    def _unsign(self, session_data: str) -> dict | None:
        """``signing.loads(session_data, salt=SESSION_SALT)``: the JSON under a timestamped HMAC."""
        signed, _, signature = session_data.rpartition(":")
        expected = hmac.new(self._session_key, signed.encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(signature.encode(), base64.urlsafe_b64encode(expected).rstrip(b"=")):
            return None
        payload = signed.rpartition(":")[0]  # drop the timestamp
        compressed = payload.startswith(".")
        payload = payload.removeprefix(".")
        data = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        return json.loads((zlib.decompress(data) if compressed else data).decode("latin-1"))


def from_environment() -> Floor:
    """The floor on the lab server's database and key, read as bank/settings.py reads them:
    DATABASE_URL, and DJANGO_SECRET_KEY or the file DJANGO_SECRET_KEY_FILE names."""
    database_url = os.environ.get("DATABASE_URL") or f"sqlite:///{PROJECT_DIR / 'db.sqlite3'}"
    key_file = Path(os.environ.get("DJANGO_SECRET_KEY_FILE", PROJECT_DIR / ".secret_key"))
    secret_key = os.environ.get("DJANGO_SECRET_KEY") or key_file.read_text().strip()
    return Floor(database=open_database(database_url), secret_key=secret_key)


def _cookie(header: str, name: str) -> str | None:
    for cookie in header.split(";"):
        key, _, value = cookie.strip().partition("=")
        if key == name:
            return value
    return None


def _amount(body: bytes) -> int | None:
    """The ``amount`` form field (default 1), or None unless a whole number in range."""
    given = parse_qs(body.decode("latin-1"), keep_blank_values=True).get("amount", [str(DEFAULT_AMOUNT)])
    text = given[0].strip() if len(given) == 1 else ""
    if not _DIGITS.fullmatch(text) or not 1 <= int(text) <= MAX_WITHDRAWAL_AMOUNT:
        return None
    return int(text)


def _answer(start_response, status: str, text: str) -> list[bytes]:
    body = text.encode()
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
