"""The skips CI expects, per database, each with its reason: under ``CI=true`` any other skip, or
an expected one that ran instead, fails the run, so a regression cannot hide as a skip.

A test that does not apply to a database skips on the database's vendor, with the reason pinned
here. When a change adds or removes such a skip, change this list with it.
"""

import os

import pytest

# By vendor (Django's connection.vendor): test node id -> the skip's reason, exactly as pytest
# reports it.
RESTART = "tests/e2e/test_faults.py::test_a_postgresql_restart_mid_run_loses_nothing"
RESTARTS_POSTGRESQL = "restarts a PostgreSQL server: runs with the PostgreSQL tests"
TRANSFERS = "tests/unit/test_transfers.py"
RING_DEADLOCKS = f"{TRANSFERS}::test_naive_deadlocks_exactly_one_transfer_of_a_ring_held_together"
HELD_PAIR = f"{TRANSFERS}::test_the_endpoint_answers_both_transfers_of_a_held_pair"
QUEUE_AT_BEGIN = f"{TRANSFERS}::test_on_sqlite_the_naive_transfers_queue_at_begin_and_cannot_deadlock"
TRANSFERS_CONCURRENT = "this database runs transfers concurrently; the deadlock test covers it"
TRANSFERS_QUEUED = "SQLite's transactions take the write lock at BEGIN: transfers run one at a time"
WITHDRAWALS = "tests/unit/test_withdrawals.py"
SIGNUPS = "tests/unit/test_signups.py"
SIGNUPS_CASE_INSENSITIVE = "MariaDB's unique index already compares addresses case-insensitively"
LOCK_WAITS_REFUSED = (
    "tests/unit/test_race_window.py::"
    "test_a_database_user_that_may_not_see_lock_waits_is_not_counted_and_told_once"
)
NO_PRIVILEGE_TO_LACK = "MariaDB alone guards its lock waits with a privilege"

EXPECTED = {
    "sqlite": {
        f"{RESTART}[atomic_update]": RESTARTS_POSTGRESQL,
        f"{RESTART}[locking]": RESTARTS_POSTGRESQL,
        "tests/e2e/test_scenarios.py::test_naive_breaks_the_invariant_exactly_as_predicted_in_every_trial"
        "[transfer]": "transfer: the naive race cannot break the invariant on sqlite",
        "tests/hardening/test_command_input.py::test_a_value_too_long_for_its_column_is_one_clear_sentence": (
            "SQLite stores a value longer than its column: nothing to refuse"
        ),
        f"{RING_DEADLOCKS}[2]": TRANSFERS_QUEUED,
        f"{RING_DEADLOCKS}[5]": TRANSFERS_QUEUED,
        f"{HELD_PAIR}[naive-statuses0]": TRANSFERS_QUEUED,
        LOCK_WAITS_REFUSED: NO_PRIVILEGE_TO_LACK,
        f"{WITHDRAWALS}::test_serializable_gives_up_after_its_last_attempt_and_withdraws_nothing": (
            "SQLite runs serializable withdrawals one at a time: none can fail to serialize"
        ),
        **{
            f"{WITHDRAWALS}::test_what_wraps_the_write_sees_it_end_once_committed[{strategy}]": (
                "SQLite writes the balance and the ledger row as two statements of one transaction"
            )
            for strategy in ("atomic_update", "optimistic")
        },
    },
    "postgresql": {
        QUEUE_AT_BEGIN: TRANSFERS_CONCURRENT,
        LOCK_WAITS_REFUSED: NO_PRIVILEGE_TO_LACK,
    },
    "mysql": {
        f"{RESTART}[atomic_update]": RESTARTS_POSTGRESQL,
        f"{RESTART}[locking]": RESTARTS_POSTGRESQL,
        QUEUE_AT_BEGIN: TRANSFERS_CONCURRENT,
        f"{SIGNUPS}::test_audit_transactions_proves_the_signup_invariant_broken": SIGNUPS_CASE_INSENSITIVE,
        f"{SIGNUPS}::test_the_checker_finds_an_address_signed_up_twice_and_nothing_on_clean_rows": (
            SIGNUPS_CASE_INSENSITIVE
        ),
    },
}


def vendor_of(database_url: str) -> str:
    if database_url.startswith(("postgres:", "postgresql:")):
        return "postgresql"
    if database_url.startswith(("mysql:", "mariadb:")):
        return "mysql"
    return "sqlite"


class ExpectedSkips:
    """A pytest plugin: records what each test did (skipped, with its reason, or ran) and fails
    the session on any surprise against ``expected``."""

    def __init__(self, expected: dict[str, str]) -> None:
        self.expected = expected
        self.skipped: dict[str, str] = {}
        self.ran: set[str] = set()

    def pytest_runtest_logreport(self, report) -> None:
        if report.skipped and not hasattr(report, "wasxfail"):
            _path, _line, reason = report.longrepr
            self.skipped[report.nodeid] = reason.removeprefix("Skipped: ")
        elif report.when == "call":
            self.ran.add(report.nodeid)

    def pytest_sessionfinish(self, session) -> None:
        if self.surprises() and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter) -> None:
        surprises = self.surprises()
        if surprises:
            terminalreporter.section("skips CI does not expect (tests/expected_skips.py)", red=True)
            for line in surprises:
                terminalreporter.line(line)

    def surprises(self) -> list[str]:
        """A line per skip that is not expected (or not for that reason), and per expected skip
        that ran instead."""
        lines = [
            f"unexpected skip: {nodeid}: {reason}"
            + (f" (expected: {self.expected[nodeid]})" if nodeid in self.expected else "")
            for nodeid, reason in sorted(self.skipped.items())
            if self.expected.get(nodeid) != reason
        ]
        lines += [
            f"expected to skip, but it ran: {nodeid} ({self.expected[nodeid]})"
            for nodeid in sorted(self.ran & self.expected.keys())
        ]
        return lines


def expected_here() -> dict[str, str]:
    return EXPECTED[vendor_of(os.environ.get("DATABASE_URL", ""))]
