"""Numbers on the lab's command lines are read in ASCII digits alone, as its endpoints read them
(racelab/management/arguments.py): argparse's ``type=int`` would read ``--limit ٣`` as 3. Any
other digit is a CommandError that says so, and nothing changed."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from accounts.provisioning import seed_account
from labserver.lab import LOOPBACK
from scenarios.vouchers.models import Voucher
from tests.helpers import database_snapshot

pytestmark = pytest.mark.usefixtures("fast_password_hasher")

PASSWORD = "correct horse battery staple"
NOT_ASCII = "(write numbers in ASCII digits, 0-9)"
SPLATTER = ["splatter", "--no-input", "--username", "alice", "--url", f"http://{LOOPBACK}:1"]


@pytest.fixture
def unchanged(db, monkeypatch):
    monkeypatch.setenv("BANK_PASSWORD", PASSWORD)
    seed_account(username="alice", password=PASSWORD, opening=1_000, minimum=0)
    before = database_snapshot()
    yield
    assert database_snapshot() == before


def refusal(*args: str) -> str:
    with pytest.raises(CommandError) as error:
        call_command(*args, stdout=StringIO(), stderr=StringIO())
    return str(error.value)


# '٣' and '١٠' are Arabic-Indic 3 and 10, '３' fullwidth 3: int() reads them all. '²' it refuses.
@pytest.mark.parametrize(
    ("args", "option", "value"),
    [
        (["seed_scenario", "voucher"], "--limit", "٣"),
        (["seed_scenario", "capacity"], "--limit", "３"),
        (["seed_scenario", "voucher"], "--limit", "²"),
        (["seed_account", "--no-input", "--username", "alice"], "--balance", "١٠"),
        (["seed_account", "--no-input", "--username", "alice"], "--minimum", "٣"),
        (["reset_balances", "--no-input", "--username", "alice"], "--balance", "١٠"),
        (["fill_ledger"], "--rows", "٣"),
        (["fill_ledger"], "--accounts", "٣"),
        (["fill_ledger"], "--amount", "٣"),
        (SPLATTER, "--requests", "٣"),
        (SPLATTER, "--amount", "٣"),
        (SPLATTER, "--users", "٣"),
        (SPLATTER, "--trials", "٣"),
        (SPLATTER, "--locust-workers", "٣"),
        (SPLATTER, "--expect-workers", "٣"),
    ],
)
def test_a_whole_number_in_other_digits_is_refused(args, option, value, unchanged):
    shown = "-n/--requests" if option == "--requests" else option

    message = refusal(*args, option, value)

    assert message == f"Error: argument {shown}: invalid int value: {value!r} {NOT_ASCII}"


def test_a_decimal_in_other_digits_is_refused(unchanged):
    message = refusal(*SPLATTER, "--race-window", "--race-window-timeout", "٠.٥")

    assert message == f"Error: argument --race-window-timeout: invalid float value: '٠.٥' {NOT_ASCII}"


def test_concurrency_levels_in_other_digits_are_refused(unchanged):
    message = refusal(*SPLATTER, "--trials", "2", "-c", "٢,٣")

    assert message == (
        "Error: argument -c/--concurrency: '٢,٣' is not a number or a comma-separated list of numbers "
        "in ASCII digits, like 2,5,10"
    )


def test_a_locust_master_port_in_other_digits_is_refused(unchanged):
    bind = f"{LOOPBACK}:٥٥٥٧"

    message = refusal(*SPLATTER, "--driver", "locust", "--expect-workers", "1", "--locust-bind", bind)

    assert message == f"--locust-bind {bind!r}: the port must be a number, like 0.0.0.0:5557."


def test_ascii_digits_are_read(db):
    call_command("seed_scenario", "voucher", "--limit", "3", stdout=StringIO())

    assert Voucher.objects.get().limit == 3
