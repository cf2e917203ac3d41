"""The lab report page in a real browser: after real naive runs through the real Gunicorn, the
run's page shows what audit_transactions shows, one bar per request, and the lost updates marked;
an anonymous visitor is sent to log in, and another user's run is not found.

Headless Chromium from Debian's packages (tests/browser.py). LAB_REPORT_SCREENSHOT=FILE.png saves
the deterministic run's page there: that is how docs/lab-report.png is made.
"""

import os
import re
from collections import Counter
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait

from labserver.lab import lab
from tests.browser import PAGE_LOAD_TIMEOUT, headless_chromium
from tests.helpers import LAB_PASSWORD, LAB_USER, audit, seed, splatter
from tests.lab_database import dumped

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("needs_ab")]

RUN_PAGE = re.compile(
    r"^Timeline and audit of \w+ on account \d+: (?P<url>http://\S+/lab/runs/(?P<id>\d+)/)$", re.M
)
# Race mode (docs/race-mode.md): each burst of K withdrawals all read the balance before any writes.
RACE_MODE = {"RACE_WINDOW": "armed", "DJANGO_DEBUG": "1"}
K = 5
# Generous: a window closes as soon as all K have read; only a slow machine ever waits this out.
RACE_WINDOW_TIMEOUT = "5"


@pytest.fixture(scope="module")
def race_lab(tmp_path_factory, lab_template):
    with lab(workdir=tmp_path_factory.mktemp("report-lab"), template=lab_template) as prepared:
        yield prepared


def log_in(browser, server, *, next_url: str, username: str = LAB_USER) -> None:
    """The blog's login form, filled in and sent by the browser, then on to ``next_url``."""
    browser.get(f"{server.url}/auth/login/?next={next_url.removeprefix(server.url)}")
    browser.find_element(By.ID, "id_username").send_keys(username)
    browser.find_element(By.ID, "id_password").send_keys(LAB_PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    # click() returns once the form is sent, not once the next page has loaded.
    WebDriverWait(browser, PAGE_LOAD_TIMEOUT).until(lambda driver: "/auth/login/" not in driver.current_url)


def run_page(output: str) -> str:
    (match,) = RUN_PAGE.finditer(output)
    return match["url"]


def ledger(lab_env) -> list[dict]:
    return [{"id": row["pk"], **row["fields"]} for row in dumped(lab_env, "accounts.transaction")]


def check_page_against_the_ledger(browser, lab_env, *, refused: int) -> dict:
    """The page's lost count is the checker's, one bar per ledger row and refused request, and
    every request that read a balance another one also read is drawn lost, its group joined."""
    account = audit(lab_env)
    rows = ledger(lab_env)
    reads = Counter(row["balance_before"] for row in rows)
    assert browser.find_element(By.ID, "lost-withdrawals").text == str(account["lost_withdrawals"])
    bars = browser.find_elements(By.CSS_SELECTOR, "svg rect.bar")
    assert len(bars) == len(rows) + refused
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg rect.bar.refused")) == refused
    # The bars marked lost are exactly the ledger rows that share the balance they read.
    lost_bars = browser.find_elements(By.CSS_SELECTOR, "svg rect.bar.lost")
    assert {int(bar.get_attribute("data-ledger-id")) for bar in lost_bars} == {
        row["id"] for row in rows if reads[row["balance_before"]] > 1
    }
    assert len(lost_bars) == sum(count for count in reads.values() if count > 1)
    groups = sum(1 for count in reads.values() if count > 1)
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg .lost-link")) == groups
    return account


def test_a_deterministic_naive_run_is_drawn_as_the_checker_proves_it(race_lab, tmp_path):
    # 3 to spend, 1 a time: bursts of K read 3, 2, 1, 0 (each burst loses K-1; naive lets 0 go
    # to -1), and the fifth burst, reading -1, is refused whole.
    seed(race_lab, balance=3)
    with race_lab.serve(workers=8, env=RACE_MODE) as server:
        result = splatter(
            race_lab, server, "--driver", "burst", "-n", str(5 * K), "-c", str(K), "--race-window",
            "--race-window-timeout", RACE_WINDOW_TIMEOUT,
        )  # fmt: skip
        url = run_page(result.stdout)
        with headless_chromium(window_size=(1280, 2000)) as browser:
            log_in(browser, server, next_url=url)
            assert browser.current_url == url

            account = check_page_against_the_ledger(browser, race_lab, refused=K)

            assert (account["ledger_rows"], account["lost_withdrawals"], account["final"]) == (
                4 * K,
                4 * (K - 1),
                -1,
            )
            assert len(browser.find_elements(By.CSS_SELECTOR, "svg .lost-link")) == 4
            verdict = browser.find_element(By.ID, "verdict").text
            assert verdict == f"Verdict: {account['verdict']}"
            assert "overdrafts" in verdict
            screenshot = Path(os.environ.get("LAB_REPORT_SCREENSHOT") or tmp_path / "lab-report.png")
            assert browser.save_screenshot(str(screenshot))
    assert screenshot.read_bytes().startswith(b"\x89PNG")
    assert "Traceback" not in server.log()


def test_the_blogs_ab_run_is_drawn_as_the_checker_proves_it(lab_env, lab_server):
    result = splatter(lab_env, lab_server, "--driver", "ab", "-n", "100", "-c", "10")
    url = run_page(result.stdout)

    with headless_chromium() as browser:
        log_in(browser, lab_server, next_url=url)
        check_page_against_the_ledger(browser, lab_env, refused=0)
        # The list of runs links to it, with the same verdict.
        browser.get(f"{lab_server.url}/lab/")
        (row,) = browser.find_elements(By.CSS_SELECTOR, "#runs tbody tr")
        assert row.find_element(By.TAG_NAME, "a").get_attribute("href") == url
        assert audit(lab_env)["verdict"] in row.text


def test_anonymous_visitors_log_in_first_and_other_users_runs_are_not_found(lab_env, lab_server):
    result = splatter(lab_env, lab_server, "--driver", "burst", "-n", "4", "-c", "2")
    url = run_page(result.stdout)
    seed(lab_env, username="eve")

    with headless_chromium() as browser:
        browser.get(url)
        assert browser.current_url == f"{lab_server.url}/auth/login/?next=/lab/runs/{url.split('/')[-2]}/"
        assert browser.find_elements(By.ID, "id_username")

        log_in(browser, lab_server, next_url=url, username="eve")
        assert "Not Found" in browser.find_element(By.TAG_NAME, "body").text
        assert not browser.find_elements(By.CSS_SELECTOR, "svg rect.bar")
        browser.get(f"{lab_server.url}/lab/")
        assert not browser.find_elements(By.CSS_SELECTOR, "#runs")
