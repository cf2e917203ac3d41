"""splatter's burst, race-window and trials options: refused with a sentence, before anything is
sent or changed (the load itself is covered end to end in tests/e2e)."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from labserver.lab import free_port

pytestmark = [pytest.mark.database_independent, pytest.mark.django_db]


def splatter(*args: str) -> str:
    out = StringIO()
    call_command("splatter", "--username", "alice", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--driver", "ab,burst"), "Several drivers can only be compared in trials: add --trials N"),
        (("-c", "2,5"), "A list of -c levels needs --trials N"),
        (("--format", "json"), "--format json and --plot summarise trials: add --trials N."),
        (("--plot", "sweep.png"), "--format json and --plot summarise trials"),
        (("--driver", "ab", "--history", "h.json"), "--history records the burst driver's requests"),
        (("--trials", "0"), "--trials must be from 1 to 10000, not 0."),
        (("--trials", "3", "-n", "5"), "-n does not apply with --trials"),
        (("--trials", "3", "--no-record"), "--trials audits every trial, so it cannot be combined"),
        (("--trials", "3", "--history", "h.json"), "--history saves a single run"),
        (("--trials", "3", "--plot", "sweep.jpg"), "--plot writes a PNG: give a file name ending in .png"),
        (("--trials", "3", "-c", "2,1001"), "Each -c level must be from 1 to 1000, not 1001."),
        (("--driver", "ab", "--users", "2", "-c", "2"), "ab sends a single session cookie"),
        (("--driver", "burst", "--users", "3", "-c", "2"), r"--users \(3\) must be at most -c \(2\)"),
        (("--driver", "burst", "--users", "0"), "--users must be from 1 to 100, not 0."),
        (("--race-window", "--race-window-timeout", "0"), "--race-window-timeout must be above 0"),
        (("--race-window-timeout", "11"), "at most 10.0 seconds, not 11.0."),
        (("--strategy", "all", "--race-window"), "--race-window with --strategy all needs --trials N."),
        (
            ("--race-window-at", "accounts_account"),
            "--race-window-at says where --race-window holds requests: add --race-window.",
        ),
        (
            ("--race-window", "--race-window-at", "accounts_account:soon"),
            "--race-window-at: 'accounts_account:soon' is not a park point",
        ),
        (("--driver", "curl"), "'curl' is not a driver or a comma-separated list of distinct drivers"),
        (
            ("--driver", "burst,burst", "--trials", "2"),
            "is not a driver or a comma-separated list of distinct",
        ),
        (("-c", "2,x"), "'2,x' is not a number or a comma-separated list of numbers"),
        (
            ("--driver", "burst", "--history", "/no-such-folder/h.json"),
            "--history /no-such-folder/h.json: the folder /no-such-folder does not exist",
        ),
        (
            ("--trials", "2", "--plot", "/no-such-folder/sweep.png"),
            "--plot /no-such-folder/sweep.png: the folder /no-such-folder does not exist",
        ),
        (
            ("--strategy", "all", "--driver", "burst", "--users", "2", "-c", "2"),
            "--strategy all compares the strategies on one account: drop --users.",
        ),
    ],
)
def test_bad_options_are_refused_before_anything_is_sent(
    splatter_password, account, lab_port, args, message, database_unchanged
):
    with database_unchanged(), pytest.raises(CommandError, match=message):
        splatter("--url", lab_port.url, *args, "--no-input")
    assert lab_port.arrivals() == []


def test_trials_ask_before_resetting(splatter_password, account, lab_port, monkeypatch, database_unchanged):
    prompts = []

    def answer(prompt: str) -> str:
        prompts.append(prompt)
        return "no"

    monkeypatch.setattr("builtins.input", answer)
    with database_unchanged(), pytest.raises(CommandError, match="Cancelled; nothing was sent or changed."):
        splatter("--url", lab_port.url, "--trials", "2", "--driver", "burst")
    assert lab_port.arrivals() == []
    assert prompts == [
        "--trials resets alice's account before each trial. Type 'yes' to continue, or 'no' to cancel: "
    ]


def test_an_unreachable_server_is_a_clear_error_for_the_burst_driver(
    splatter_password, account, database_unchanged
):
    with (
        database_unchanged(),
        pytest.raises(CommandError, match="Cannot reach the server at http://127.0.0.1:"),
    ):
        splatter("--driver", "burst", "--url", f"http://127.0.0.1:{free_port()}", "--no-input")


def test_missing_sibling_users_are_named(splatter_password, account, database_unchanged):
    with database_unchanged(), pytest.raises(CommandError, match="There is no user named 'alice-2'"):
        splatter("--driver", "burst", "--users", "2", "-c", "2", "--no-input")


def test_the_withdrawal_scenario_refuses_a_user_without_an_account(
    splatter_password, account, make_account, database_unchanged
):
    # alice's account makes the scenario seeded; bob has none to withdraw from.
    make_account(username="bob").delete()
    with database_unchanged(), pytest.raises(CommandError, match="User 'bob' has no account: create it with"):
        splatter("--scenario", "withdrawal", "--username", "bob", "--driver", "burst", "--no-input")
