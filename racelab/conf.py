"""racelab's settings: each is read from the project's settings module, or else from the
environment of the same name, so that a server started with ``RACE_WINDOW=armed`` is in race
mode without a line of settings for it."""

import os
import re

from django.conf import settings
from django.http.request import HttpHeaders
from django.shortcuts import resolve_url
from django.urls import NoReverseMatch

from racelab.loadgen.login import DEFAULT_COOKIE_NAMES, CookieNames, LoginForm

# What a header's or a cookie's name may be made of (an RFC 9110 token).
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def setting(name: str, default: str = "") -> str:
    """``settings.NAME`` when the project sets it (to anything but None), else ``$NAME``, else
    ``default``; as text, as the environment gives it."""
    value = getattr(settings, name, None)
    if value is None:
        value = os.environ.get(name, default)
    return str(value)


def login_form() -> LoginForm:
    """The project's login form: at ``settings.LOGIN_URL`` (a URL name or a path), with Django's
    field names. ValueError when it names a URL the project does not have."""
    try:
        return LoginForm(path=resolve_url(settings.LOGIN_URL))
    except NoReverseMatch as error:
        raise ValueError(
            f"settings.LOGIN_URL {settings.LOGIN_URL!r} names no URL of this project: give the login "
            "form with --login-url PATH."
        ) from error


def cookie_names() -> CookieNames:
    """The names the project's CSRF check and sessions go by, as a client sends them:
    settings.CSRF_COOKIE_NAME, the header settings.CSRF_HEADER_NAME names (a request.META key:
    HTTP_X_CSRFTOKEN is the header X-CSRFToken, as Django's docs say), SESSION_COOKIE_NAME, and
    whether CSRF_USE_SESSIONS keeps the secret in the session. ValueError when one of them is not a
    name a client can send."""
    meta_key = settings.CSRF_HEADER_NAME
    header = HttpHeaders.parse_header_name(meta_key) if meta_key.startswith(HttpHeaders.HTTP_PREFIX) else None
    if header is None or not _TOKEN.fullmatch(header) or meta_key != meta_key.upper():
        raise ValueError(
            f"settings.CSRF_HEADER_NAME {meta_key!r} is not the request.META key of a header a client "
            "can send: give HTTP_ and the header's name, like Django's default HTTP_X_CSRFTOKEN."
        )
    if header.lower() == DEFAULT_COOKIE_NAMES.csrf_header.lower():
        # Header names are case-insensitive: the spelling Django's docs and JavaScript use.
        header = DEFAULT_COOKIE_NAMES.csrf_header
    for name in ("CSRF_COOKIE_NAME", "SESSION_COOKIE_NAME"):
        value = getattr(settings, name)
        if not isinstance(value, str) or not _TOKEN.fullmatch(value):
            raise ValueError(f"settings.{name} {value!r} is not a cookie name a client can send.")
    return CookieNames(
        csrf_cookie=settings.CSRF_COOKIE_NAME,
        csrf_header=header,
        session_cookie=settings.SESSION_COOKIE_NAME,
        csrf_use_sessions=bool(settings.CSRF_USE_SESSIONS),
    )
