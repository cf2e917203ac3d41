"""The lab's settings without the request-timing middleware: the baseline bench/request_timing.py
measures the middleware's cost against."""

from bank.settings import *  # noqa: F403

MIDDLEWARE = [name for name in MIDDLEWARE if name != "labreport.middleware.RequestTimingMiddleware"]  # noqa: F405
