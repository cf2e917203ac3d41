"""The skips CI expects, per database, each with its reason: under ``CI=true`` any other skip, or
an expected one that ran instead, fails the run, so a regression cannot hide as a skip.

A test that does not apply to a database skips on the database's vendor, with the reason pinned
here. When a change adds or removes such a skip, change this list with it.
"""

import os

import pytest

# By vendor (Django's connection.vendor): test node id -> the skip's reason, exactly as pytest
# reports it.
EXPECTED = {
    "sqlite": {},
    "postgresql": {},
    "mysql": {},
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
