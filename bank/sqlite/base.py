"""Django's SQLite backend, with write transactions that queue for the write lock instead of polling.

SQLite lets one writer in at a time. A connection that finds the write lock taken calls SQLite's
busy handler, which sleeps 1, 2, 5, 10 ms... between tries, however soon the lock is free again:
with several Gunicorn workers, a transaction of a fraction of a millisecond then waits several.
Here every transaction Django opens first takes an exclusive ``flock`` on a file beside the
database: waiters block in the kernel, and the next one starts the moment the last one ends.
They wait inside BEGIN's execution, innermost of the connection's execute wrappers, where SQLite's
own wait for the write lock would be: whatever wraps the statements (the race window counting the
requests blocked on a held one, a timing panel) sees BEGIN waiting.

The file lock only orders the queue; SQLite's own lock still decides who writes, so a writer that
does not queue (an autocommit statement, another program) is as safe as before, only not queued.
"""

import fcntl
import os

from django.db.backends.sqlite3 import base


class DatabaseWrapper(base.DatabaseWrapper):
    _writer_queue: int | None = None

    def _start_transaction_under_autocommit(self):
        # Appended last, this wrapper runs innermost: right around the driver's BEGIN.
        with self.execute_wrapper(self._queued):
            try:
                super()._start_transaction_under_autocommit()
            except BaseException:
                self._leave_writer_queue()
                raise

    def _queued(self, execute, sql, params, many, context):
        self._join_writer_queue()
        return execute(sql, params, many, context)

    def _commit(self):
        try:
            super()._commit()
        finally:
            self._leave_writer_queue()

    def _rollback(self):
        try:
            super()._rollback()
        finally:
            self._leave_writer_queue()

    def _close(self):
        try:
            super()._close()
        finally:
            if self._writer_queue is not None:
                os.close(self._writer_queue)  # releases the lock too
                self._writer_queue = None

    def _join_writer_queue(self) -> None:
        if self.is_in_memory_db():
            return
        if self._writer_queue is None:
            path = f"{self.settings_dict['NAME']}-writers"
            self._writer_queue = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        # Unbounded, unlike SQLite's busy timeout: a holder that never lets go (a shell left in
        # an atomic block, a stopped process) stalls the writers until Gunicorn's worker timeout
        # (30 s) ends them, where SQLite alone would fail them with "database is locked" after 20 s.
        fcntl.flock(self._writer_queue, fcntl.LOCK_EX)

    def _leave_writer_queue(self) -> None:
        if self._writer_queue is not None:
            fcntl.flock(self._writer_queue, fcntl.LOCK_UN)
