"""racelab's settings: each is read from the project's settings module, or else from the
environment of the same name, so that a server started with ``RACE_WINDOW=armed`` is in race
mode without a line of settings for it."""

import os

from django.conf import settings
from django.shortcuts import resolve_url
from django.urls import NoReverseMatch

from racelab.loadgen.login import LoginForm


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
