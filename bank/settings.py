"""Settings for the bank race-condition lab.

Everything a user may want to change comes from the environment:

- ``DATABASE_URL``: SQLite file ``db.sqlite3`` by default; ``postgres://...`` or ``mysql://...``.
- ``DJANGO_DEBUG``: ``1`` turns DEBUG on (never the default, Gunicorn serves this project).
- ``DJANGO_SECRET_KEY``: else a key generated once into ``.secret_key`` (mode 0600, git-ignored).
- ``DJANGO_ALLOWED_HOSTS``: comma-separated hosts added to the loopback defaults.
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from bank.secret_key import load_or_create_secret_key

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = os.environ.get("DJANGO_DEBUG", "") == "1"

# Deterministic race mode, lab only (docs/race-mode.md): RACE_WINDOW=K holds each withdrawal after
# it reads the balance until K on its account have read it (or RACE_WINDOW_TIMEOUT seconds pass
# with no new one); RACE_WINDOW=armed holds them only while `splatter --race-window` arms it.
# Refused at start-up with DEBUG off unless ALLOW_RACE_WINDOW_WITHOUT_DEBUG=1.
RACE_WINDOW = os.environ.get("RACE_WINDOW", "off")
RACE_WINDOW_TIMEOUT = os.environ.get("RACE_WINDOW_TIMEOUT", "0.5")
ALLOW_RACE_WINDOW_WITHOUT_DEBUG = os.environ.get("ALLOW_RACE_WINDOW_WITHOUT_DEBUG", "") == "1"

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or load_or_create_secret_key(
    path=Path(os.environ.get("DJANGO_SECRET_KEY_FILE", BASE_DIR / ".secret_key"))
)

ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"] + [
    host for host in os.environ.get("DJANGO_ALLOWED_HOSTS", "").split(",") if host
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "accounts",
    "experiment",
]

MIDDLEWARE = [
    # First, so the ledger's request_started_at is taken before any other work.
    "accounts.middleware.RequestStartMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "bank.urls"
WSGI_APPLICATION = "bank.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# The three databases the lab runs on, by the engine dj_database_url gives their URL schemes.
SUPPORTED_DATABASE_ENGINES = (
    "django.db.backends.sqlite3",
    "django.db.backends.postgresql",
    "django.db.backends.mysql",
)
DATABASE_URL_FORMS = (
    "sqlite:///path/to/file.sqlite3, postgres://user:password@host:5432/name "
    "or mysql://user:password@host:3306/name"
)


def _database_from_url(url: str) -> dict:
    """DATABASE_URL as a DATABASES entry, or ImproperlyConfigured with a sentence a user can act on.

    Raised here, before any command runs: manage.py prints it without a traceback. The URL is
    never repeated, only its scheme: it may hold a password.
    """
    scheme, separator, _ = url.partition("://")
    # Persistent connections: opening one per request makes PostgreSQL several times slower.
    # Health checks let a worker recover by itself after the database restarts.
    try:
        database = dj_database_url.parse(url, conn_max_age=600, conn_health_checks=True)
    except dj_database_url.ParseError:
        problem = "it is not a valid URL (a special character in the password must be %-quoted)"
    except ValueError:  # UnknownSchemeError
        problem = f"its scheme is {scheme!r}" if separator else "it is not a URL"
    else:
        if database["ENGINE"] in SUPPORTED_DATABASE_ENGINES:
            return database
        problem = f"its scheme {scheme!r} names a database the lab does not run on"
    raise ImproperlyConfigured(
        f"DATABASE_URL must name a database the lab runs on, with the scheme sqlite, postgres or "
        f"mysql, MariaDB's too ({DATABASE_URL_FORMS}), but {problem}. Fix it, or unset it to use db.sqlite3."
    )


DATABASES = {
    "default": _database_from_url(os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers run beside the writer; the busy timeout makes writers queue instead of
    # failing; IMMEDIATE takes the write lock at BEGIN, so a read-then-write atomic block cannot
    # fail with "database is locked" when it upgrades (SQLite ignores select_for_update).
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
elif DATABASES["default"]["ENGINE"] == "django.db.backends.mysql":
    # InnoDB's own default (REPEATABLE READ) still loses updates; say READ COMMITTED explicitly.
    DATABASES["default"]["OPTIONS"] = {
        "isolation_level": "read committed",
        "charset": "utf8mb4",
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = []

# Argon2 first, as Django's documentation recommends: memory-hard, and about half the time of
# PBKDF2's million iterations here, which every splatter login pays. The others still verify
# older hashes, which Django upgrades at the next login.
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "withdraw"
LOGOUT_REDIRECT_URL = "login"

# A loopback lab: no TLS, so no Secure cookies or HSTS (see docs/safety.md, "manage.py check --deploy").
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

# With DEBUG off, a 500's traceback goes nowhere unless a handler takes it: send it to stderr,
# which Gunicorn writes to its error log.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "{asctime} {levelname} {name} {message}", "style": "{"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "django": {"handlers": ["stderr"], "level": "WARNING"},
        "accounts": {"handlers": ["stderr"], "level": "INFO"},
    },
}
