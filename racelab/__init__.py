"""racelab: find, reproduce and prove fixed a race condition in a Django project.

The Django app ``racelab`` (add it to INSTALLED_APPS) with the race window's middleware
(``racelab.middleware.RaceWindowMiddleware``), held at the SQL level (``racelab.racewindow``),
and the load drivers that fire at a server (``racelab.loadgen``: ab, the burst, Locust).
"""
