"""Bad input to the lab report's pages, through the real Gunicorn: a clear 400, nothing changed."""

import re
from urllib.parse import quote

import pytest

from racelab.loadgen.login import SessionCookies
from tests.hardening.lab_http import request
from tests.helpers import lab_snapshot, log_in_lab_user, splatter

pytestmark = pytest.mark.e2e

RUN_PAGE = re.compile(r"^Timeline and audit of \w+ on account \d+: http://\S+(?P<path>/lab/runs/\d+/)$", re.M)


@pytest.fixture(scope="module")
def run_page(module_lab, module_server) -> str:
    """The page of a short run of the lab user's: two requests, one window of the timeline."""
    result = splatter(module_lab, module_server, "--driver", "burst", "-n", "2", "-c", "1")
    return RUN_PAGE.search(result.stdout).group("path")


@pytest.fixture(scope="module")
def session(module_server, tmp_path_factory) -> SessionCookies:
    return log_in_lab_user(module_server, tmp_path_factory.mktemp("login"))


# Each passes str.isdigit(): int() refuses the first three, and reads the others as 1, the run's
# one window.
@pytest.mark.parametrize("window", ["²", "1²", "¹", "١", "１", "𝟏"])
def test_a_window_in_digits_other_than_ascii_is_refused(module_lab, module_server, session, run_page, window):
    before = lab_snapshot(module_lab)

    reply = request(module_server.url, "GET", f"{run_page}?window={quote(window)}", session=session)

    assert (reply.status, reply.text) == (400, "window must be 'all' or a number from 1 to 1.\n")
    assert lab_snapshot(module_lab) == before


def test_the_one_window_in_ascii_digits_is_shown(module_server, session, run_page):
    reply = request(module_server.url, "GET", f"{run_page}?window=1", session=session)

    assert reply.status == 200
