"""WSGI entry point served by Gunicorn (see gunicorn.conf.py)."""

import os

from django.core.wsgi import get_wsgi_application

from races.charset import utf8_only

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bank.settings")

application = utf8_only(get_wsgi_application())
