"""The floor: the lab's balance GET and atomic_update withdrawal as a bare WSGI function, served by
the lab's Gunicorn on the lab's database, so bench/throughput.py can show how much of a request's
cost is Django's. ``app`` is what Gunicorn's workers import (no Django); ``server`` starts it."""
