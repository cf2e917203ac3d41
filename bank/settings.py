"""Settings for the bank race-condition lab.

Everything a user may want to change comes from the environment:

- ``DATABASE_URL``: SQLite file ``db.sqlite3`` by default; ``postgres://...`` or ``mysql://...``.
- ``DJANGO_DEBUG``: ``1`` turns DEBUG on (never the default, Gunicorn serves this project).
- ``DJANGO_SECRET_KEY``: else a key generated once into ``.secret_key`` (mode 0600, git-ignored).
- ``DJANGO_ALLOWED_HOSTS``: comma-separated hosts added to the loopback defaults.
"""

import os
from pathlib import Path

from bank.database_url import database_from_url
from bank.secret_key import load_or_create_secret_key

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = os.environ.get("DJANGO_DEBUG", "") == "1"

# Deterministic race mode, lab only (docs/race-mode.md): RACE_WINDOW=K holds each state-changing
# request at its park point (RACE_WINDOW_AT; by default right after its first read of
# accounts_account, the balance) until K that read the same row have reached it (or
# RACE_WINDOW_TIMEOUT seconds pass with no new one); RACE_WINDOW=armed holds them only while
# `splatter --race-window` arms it. Refused at start-up with DEBUG off unless
# ALLOW_RACE_WINDOW_WITHOUT_DEBUG=1.
RACE_WINDOW = os.environ.get("RACE_WINDOW", "off")
RACE_WINDOW_TIMEOUT = os.environ.get("RACE_WINDOW_TIMEOUT", "0.5")
RACE_WINDOW_AT = os.environ.get("RACE_WINDOW_AT", "accounts_account")
ALLOW_RACE_WINDOW_WITHOUT_DEBUG = os.environ.get("ALLOW_RACE_WINDOW_WITHOUT_DEBUG", "") == "1"
# Where the barrier lives: empty or "file" for files on this host (servers of one machine), or a
# Redis URL (redis://host:port/db, rediss://...) that servers on several hosts and the process
# that arms the window (splatter --race-window) all share.
RACE_WINDOW_BACKEND = os.environ.get("RACE_WINDOW_BACKEND", "")

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
    "labreport",
    "racelab",
    "races",
    "scenarios",
    "scenarios.vouchers",
    "scenarios.capacity",
    "scenarios.get_or_create",
    "scenarios.signups",
    "scenarios.payments",
    "scenarios.profiles",
    "scenarios.transfers",
]

MIDDLEWARE = [
    # First, so the ledger's request_started_at is taken before any other work.
    "accounts.middleware.RequestStartMiddleware",
    # Outside the timing middleware, so a recorded read is stamped before the barrier holds it.
    "racelab.middleware.RaceWindowMiddleware",
    # Second, around everything else: stamps a lab run's requests (X-Lab-Run) when they answer.
    "labreport.middleware.RequestTimingMiddleware",
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

# Persistent connections (opening one per request makes PostgreSQL several times slower) with
# health checks (a worker recovers by itself after the database restarts): bank/database_url.py.
DATABASES = {
    "default": database_from_url(os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
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
        # The retries of transactions the database refused to serialize, whoever sent them.
        "races.serializable": {"handlers": ["stderr"], "level": "INFO"},
    },
}
