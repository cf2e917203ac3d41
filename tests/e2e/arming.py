"""The race window armed by a process of the test's own, as ``splatter --race-window`` arms it,
and driven from the test while the server holds requests: what the barrier and the account look
like then, and the window let go the moment the test says, rather than by its timeout.

A plain module, imported by the end-to-end tests that hold requests on purpose (a worker killed
while its requests are held, the order of a write and its hold).
"""

import json
import select
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

from labserver.lab import PROJECT_DIR, Lab
from tests.helpers import LAB_USER

# Far beyond any answer of the arming process: one that says nothing for this long has hung.
ANSWER_SECONDS = 120

# Each line on its stdin asks for the state; "release" disarms, then closes the window the held
# requests wait in, as its last party would; EOF disarms.
SCRIPT = """
import dataclasses, json, sys
from accounts.models import Account
from racelab.racewindow.barrier import RaceWindow, armed, hold
from racelab.racewindow.park_points import parse
from racelab.racewindow.statements import resource

account = Account.objects.get(user__username={username!r})
window = RaceWindow(parties={parties}, timeout={timeout}, at={at!r})


def state(barrier):
    held = barrier.stats().held
    account.refresh_from_db()
    ledger_rows = account.transactions.count()
    # Read after the account: a window still open now was open while the account was read.
    closed = barrier.stats()
    return dict(held=held, windows=closed.windows, timeouts=closed.timeouts,
                balance=account.current, ledger_rows=ledger_rows)


release = False
with armed(parties=window.parties, timeout=window.timeout, at=window.at) as barrier:
    print("armed", flush=True)
    for line in sys.stdin:
        if line.strip() == "release":
            release = True
            break
        print(json.dumps(state(barrier)), flush=True)
if release:
    # Disarmed first, so no request that starts from now on is held; then one more arrival, a
    # window of one, closes the open window whatever its parties: its requests go on at once.
    point = parse(window.at)[0]
    hold(window=dataclasses.replace(window, parties=1), resource=resource(point=point, params=None))
    print("released", flush=True)
"""


@dataclass(frozen=True, kw_only=True)
class HeldState:
    """What the arming process read, in this order: the requests held so far; the account's
    balance and ledger rows; then the windows closed (all of them, and by the timeout)."""

    held: int
    balance: int
    ledger_rows: int
    windows: int
    timeouts: int


@dataclass(frozen=True)
class ArmedWindow:
    process: subprocess.Popen

    def state(self) -> HeldState:
        self._say("state")
        return HeldState(**json.loads(self._read_line()))

    def release(self) -> None:
        """Disarm, then let every request held in the open window go on at once."""
        self._say("release")
        assert self._read_line() == "released", self._stderr()

    def _say(self, line: str) -> None:
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def _read_line(self) -> str:
        ready, _, _ = select.select([self.process.stdout], [], [], ANSWER_SECONDS)
        assert ready, "the arming process said nothing: has it hung?"
        line = self.process.stdout.readline().strip()
        assert line, self._stderr()
        return line

    def _stderr(self) -> str:
        return self.process.stderr.read() if self.process.poll() is not None else ""


@contextmanager
def armed_window(
    lab_env: Lab,
    *,
    parties: int,
    timeout: float,
    at: str | None,
    username: str = LAB_USER,
    env: dict[str, str] | None = None,
) -> Iterator[ArmedWindow]:
    """The window armed for the lab database from the lab's settings (``env`` added, a backend
    say), watching ``username``'s account. ``release`` needs ``at`` to be a write park point:
    a held write waits at its table's barrier, whatever it wrote, where a read waits at its row's."""
    process = subprocess.Popen(
        [
            sys.executable, str(PROJECT_DIR / "manage.py"), "shell", "--verbosity", "0",
            "--command", SCRIPT.format(username=username, parties=parties, timeout=timeout, at=at),
        ],
        cwd=PROJECT_DIR, env={**lab_env.env, **(env or {})},
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    window = ArmedWindow(process)
    try:
        assert window._read_line() == "armed"
        yield window
    finally:
        with suppress(BrokenPipeError):
            process.stdin.close()
        try:
            process.wait(timeout=ANSWER_SECONDS)
        except subprocess.TimeoutExpired:  # pragma: no cover
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()
