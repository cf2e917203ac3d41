"""Run calls at once, each on its own thread and database connection, as concurrent requests run."""

import threading
from collections.abc import Callable

JOIN_SECONDS = 60


def run_concurrently(calls: list[Callable[[], object]]) -> list[object]:
    """What each call returned, or the exception it raised, in the order they finished; fails if
    any is still running after JOIN_SECONDS (a deadlock, or a barrier that never opened)."""
    from django.db import connection

    results, lock = [], threading.Lock()

    def one(call: Callable[[], object]) -> None:
        try:
            result = call()
        except BaseException as error:  # returned, so the test's assertions show it
            result = error
        finally:
            connection.close()
        with lock:
            results.append(result)

    threads = [threading.Thread(target=one, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=JOIN_SECONDS)
    assert not any(thread.is_alive() for thread in threads), "a call is stuck: deadlock?"
    return results
