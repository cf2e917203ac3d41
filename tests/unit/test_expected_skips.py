"""The pinned skip list (tests/expected_skips.py) in a real pytest run of its own: a skip it does
not list, a listed skip for another reason, and a listed test that ran each fail the run."""

import os
import subprocess
import sys
import textwrap

import pytest

from labserver.lab import PROJECT_DIR

pytestmark = pytest.mark.database_independent

CONFTEST = """
from tests.expected_skips import ExpectedSkips

def pytest_configure(config):
    config.pluginmanager.register(ExpectedSkips({expected!r}), "expected-skips")
"""
TESTS = """
import pytest

def test_skipped_as_expected():
    pytest.skip("no such thing here")

def test_skipped_for_another_reason():
    pytest.skip("something else")

def test_skipped_unexpectedly():
    pytest.skip("surprise")

def test_expected_to_skip_but_runs():
    pass

def test_runs():
    pass
"""


def run_pinned(tmp_path, expected: dict[str, str]) -> subprocess.CompletedProcess:
    (tmp_path / "conftest.py").write_text(textwrap.dedent(CONFTEST.format(expected=expected)))
    (tmp_path / "test_pinned.py").write_text(TESTS)
    env = {name: value for name, value in os.environ.items() if name != "DJANGO_SETTINGS_MODULE"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:django", "-p", "no:cacheprovider", "-q", str(tmp_path)],
        cwd=tmp_path, env={**env, "PYTHONPATH": str(PROJECT_DIR)},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_every_surprise_is_listed_and_fails_the_run(tmp_path):
    result = run_pinned(
        tmp_path,
        {
            "test_pinned.py::test_skipped_as_expected": "no such thing here",
            "test_pinned.py::test_skipped_for_another_reason": "nothing to do",
            "test_pinned.py::test_expected_to_skip_but_runs": "never here",
        },
    )

    assert result.returncode == pytest.ExitCode.TESTS_FAILED, result.stdout
    surprises = result.stdout.split("skips CI does not expect (tests/expected_skips.py)")[1].splitlines()
    assert [line for line in surprises if line.startswith(("unexpected", "expected"))] == [
        "unexpected skip: test_pinned.py::test_skipped_for_another_reason: something else "
        "(expected: nothing to do)",
        "unexpected skip: test_pinned.py::test_skipped_unexpectedly: surprise",
        "expected to skip, but it ran: test_pinned.py::test_expected_to_skip_but_runs (never here)",
    ]


def test_a_run_whose_skips_are_all_listed_passes(tmp_path):
    result = run_pinned(
        tmp_path,
        {
            "test_pinned.py::test_skipped_as_expected": "no such thing here",
            "test_pinned.py::test_skipped_for_another_reason": "something else",
            "test_pinned.py::test_skipped_unexpectedly": "surprise",
        },
    )

    assert result.returncode == pytest.ExitCode.OK, result.stdout
    assert "2 passed, 3 skipped" in result.stdout
    assert "does not expect" not in result.stdout
