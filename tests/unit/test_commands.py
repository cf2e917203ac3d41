import json
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from accounts.audit import AnomalyKind
from accounts.models import Account, Run, Transaction
from accounts.withdrawals import MAX_WITHDRAWAL_AMOUNT
from racelab.management.password_input import PASSWORD_ENV_VAR
from tests.json_schema import valid

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.fixture
def password(monkeypatch) -> str:
    monkeypatch.setenv(PASSWORD_ENV_VAR, "from-the-environment")
    return "from-the-environment"


@pytest.fixture
def no_password(monkeypatch) -> None:
    monkeypatch.delenv(PASSWORD_ENV_VAR, raising=False)


class FakeTerminal:
    """Answers prompts as a user would, and remembers what was asked."""

    def __init__(self, *answers: str):
        self.answers = list(answers)
        self.prompts: list[str] = []

    def __call__(self, prompt: str = "") -> str:
        self.prompts.append(prompt)
        return self.answers.pop(0)


# seed_account


def test_seed_account_creates_user_and_account_from_the_environment_password(password):
    output = run("seed_account", "--username", "alice", "--balance", "500", "--minimum", "10", "--no-input")

    account = Account.objects.get(user__username="alice")
    assert output == f"Created account {account.pk} for alice: opening balance 500, minimum 10.\n"
    assert (account.opening, account.current, account.minimum) == (500, 500, 10)
    assert account.user.check_password(password)


def test_seed_account_defaults(password):
    run("seed_account", "--no-input")

    account = Account.objects.get(user__username="demo")
    assert (account.opening, account.current, account.minimum) == (1_000_000, 1_000_000, 0)


def test_seed_account_is_idempotent_and_updates_the_password(monkeypatch, password):
    run("seed_account", "--username", "alice", "--balance", "500", "--no-input")
    monkeypatch.setenv(PASSWORD_ENV_VAR, "changed")

    output = run("seed_account", "--username", "alice", "--balance", "700", "--no-input")

    assert User.objects.count() == 1
    account = Account.objects.get()
    assert output == f"Updated account {account.pk} for alice: opening balance 700, minimum 0.\n"
    assert (account.opening, account.current) == (700, 700)
    user = User.objects.get()
    assert user.check_password("changed")
    assert not user.check_password(password)


def test_seed_account_takes_the_environment_password_without_prompting(password, monkeypatch):
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("getpass.getpass", FakeTerminal())  # would fail with IndexError if asked

    run("seed_account", "--username", "bob")

    assert User.objects.get(username="bob").check_password(password)


def test_seed_account_without_password_under_no_input_is_refused(no_password, account, database_unchanged):
    with database_unchanged(), pytest.raises(CommandError, match=f"set the {PASSWORD_ENV_VAR} environment"):
        run("seed_account", "--username", "bob", "--no-input")

    assert not User.objects.filter(username="bob").exists()


def test_seed_account_without_a_terminal_does_not_prompt(no_password, monkeypatch, database_unchanged):
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    monkeypatch.setattr("getpass.getpass", FakeTerminal())  # would fail with IndexError if asked

    with database_unchanged(), pytest.raises(CommandError, match=PASSWORD_ENV_VAR):
        run("seed_account", "--username", "bob")


def test_seed_account_prompts_twice_on_a_terminal(no_password, monkeypatch):
    terminal = FakeTerminal("typed", "typed")
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("getpass.getpass", terminal)

    run("seed_account", "--username", "bob", "--balance", "3")

    assert terminal.prompts == ["Password: ", "Password (again): "]
    assert User.objects.get(username="bob").check_password("typed")


@pytest.mark.parametrize(
    ("answers", "message"),
    [(("typed", "typo"), "did not match"), (("", ""), "must not be empty")],
)
def test_seed_account_refuses_a_bad_typed_password(
    no_password, monkeypatch, answers, message, database_unchanged
):
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("getpass.getpass", FakeTerminal(*answers))

    with database_unchanged(), pytest.raises(CommandError, match=message):
        run("seed_account", "--username", "bob")


@pytest.mark.parametrize(
    "balances",
    [
        ("--balance=-1",),
        ("--balance=10", "--minimum=11"),
        ("--balance=10", "--minimum=-1"),
        ("--balance=2000000001",),
    ],
)
def test_seed_account_refuses_bad_balances_and_changes_nothing(password, balances, database_unchanged):
    run("seed_account", "--username", "alice", "--balance", "500", "--no-input")
    User.objects.filter(username="alice").update(password="unchanged-hash")

    with database_unchanged(), pytest.raises(CommandError, match="Nothing was changed.") as refused:
        run("seed_account", "--username", "alice", *balances, "--no-input")

    assert "must be from 0" in str(refused.value)


def test_seed_account_refuses_a_non_integer_balance(password, database_unchanged):
    with database_unchanged(), pytest.raises(CommandError, match="invalid int value"):
        run("seed_account", "--balance", "lots", "--no-input")


# reset_balances


@pytest.fixture
def dirty(make_account, add_row, add_run):
    alice = make_account(username="alice", opening=100)
    bob = make_account(username="bob", opening=200)
    for account in (alice, bob):
        add_row(account, account.opening, account.opening - 1)
        add_run(account, ok=1)
    Account.objects.update(current=1, version=4)
    return alice, bob


def balances() -> dict[str, tuple[int, int, int]]:
    return {
        a.user.username: (a.opening, a.current, a.version)
        for a in Account.objects.select_related("user").order_by("pk")
    }


def test_reset_balances_resets_every_account_and_clears_ledgers(dirty):
    output = run("reset_balances", "--no-input")

    assert output == "Reset 2 account(s) to their opening balance; ledger cleared.\n"
    assert balances() == {"alice": (100, 100, 0), "bob": (200, 200, 0)}
    assert Transaction.objects.count() == Run.objects.filter(since_reset=True).count() == 0
    # The runs stay, for the report pages, out of the checker's count.
    assert Run.objects.count() == 2


def test_reset_balances_to_a_new_balance(dirty):
    output = run("reset_balances", "--balance", "42", "--no-input")

    assert output == "Reset 2 account(s) to 42; ledger cleared.\n"
    assert balances() == {"alice": (42, 42, 0), "bob": (42, 42, 0)}


def test_reset_balances_for_one_user(dirty):
    alice, bob = dirty

    output = run("reset_balances", "--username", "bob", "--no-input")

    assert output == "Reset 1 account(s) to their opening balance; ledger cleared.\n"
    assert balances() == {"alice": (100, 1, 4), "bob": (200, 200, 0)}
    assert list(Transaction.objects.values_list("holder_id", flat=True)) == [alice.pk]
    assert list(Run.objects.filter(since_reset=True).values_list("account_id", flat=True)) == [alice.pk]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--username", "nobody"), "There is no user named 'nobody'. Nothing was changed."),
        (("--balance=-5",), "Nothing was changed."),
        (("--balance", "50"), r"minimum must be from 0 to the opening balance \(50\), not 60"),
    ],
)
def test_reset_balances_refuses_and_changes_nothing(dirty, args, message, database_unchanged):
    Account.objects.filter(user__username="bob").update(minimum=60)

    with database_unchanged(), pytest.raises(CommandError, match=message):
        run("reset_balances", *args, "--no-input")


@pytest.mark.parametrize("answer", ["no", "", "y", "YES", "yes "])
def test_reset_balances_refused_at_the_prompt_changes_nothing(dirty, monkeypatch, answer, database_unchanged):
    terminal = FakeTerminal(answer)
    monkeypatch.setattr("builtins.input", terminal)

    with database_unchanged(), pytest.raises(CommandError, match="Reset cancelled; nothing was changed."):
        run("reset_balances", "--username", "bob")

    assert len(terminal.prompts) == 1
    assert "bob's account" in terminal.prompts[0]
    assert "Type 'yes' to continue" in terminal.prompts[0]


def test_reset_balances_confirmed_at_the_prompt(dirty, monkeypatch):
    terminal = FakeTerminal("yes")
    monkeypatch.setattr("builtins.input", terminal)

    run("reset_balances")

    assert "every account" in terminal.prompts[0]
    assert balances() == {"alice": (100, 100, 0), "bob": (200, 200, 0)}


# audit_transactions


@pytest.fixture
def clean(make_account, add_row, add_run) -> Account:
    account = make_account(username="alice", opening=100)
    add_row(account, 100, 99)
    add_row(account, 99, 98)
    add_run(account, ok=2, refused=1)
    Account.objects.filter(pk=account.pk).update(current=98)
    return account


@pytest.fixture
def raced(make_account, add_row) -> Account:
    account = make_account(username="bob", opening=100)
    add_row(account, 100, 99)
    add_row(account, 100, 99)
    Account.objects.filter(pk=account.pk).update(current=99)
    return account


def test_audit_table_for_a_clean_account(clean, database_unchanged):
    with database_unchanged():
        output = run("audit_transactions")

    assert f"Account {clean.pk}" in output
    for label, value in [
        ("user", "alice"),
        ("opening balance", "100"),
        ("final balance", "98"),
        ("ledger rows", "2"),
        ("lost withdrawals", "0"),
        ("strategies", "naive (2)"),
        ("client: ok / refused / indeterminate", "2 / 1 / 0"),
        ("client: allowed final balance", "[98, 98]"),
    ]:
        assert _table_value(output, label) == value
    assert output.rstrip().endswith("Verdict: OK, the ledger and the balance agree.")


def test_audit_table_lists_each_anomaly_with_its_examples(raced):
    output = run("audit_transactions", "--username", "bob")

    first, second = Transaction.objects.order_by("pk").values_list("pk", flat=True)
    assert _table_value(output, "lost withdrawals") == "1"
    assert _table_value(output, "lost updates") == "1"
    assert _anomaly_table(output) == {
        AnomalyKind.LOST_WITHDRAWALS: [
            "1",
            "the ledger records 2 withdrawn, but the balance fell by only 1",
            "",
            "",
        ],
        AnomalyKind.LOST_UPDATES: [
            "1",
            "successful withdrawals that read a balance another one had already read "
            "(each overwrote the other's write)",
            f"balance_before=100, withdrawals=2, ledger_ids=[{first}, {second}]",
            f"balance_before=100, withdrawals=2, ledger_ids=[{first}, {second}]",
        ],
        AnomalyKind.DUPLICATE_BALANCES: [
            "1",
            "withdrawals that wrote a balance another one had already written",
            f"balance=99, withdrawals=2, ledger_ids=[{first}, {second}]",
            f"balance=99, withdrawals=2, ledger_ids=[{first}, {second}]",
        ],
    }
    assert output.rstrip().endswith("Verdict: ANOMALIES: lost withdrawals, lost updates, duplicate balances")


def test_audit_table_for_an_account_without_owner_or_client_runs(make_account):
    make_account(username=None)

    output = run("audit_transactions")

    assert _table_value(output, "user") == "(no owner)"
    assert _table_value(output, "strategies") == "-"
    assert "client:" not in output


def test_audit_json_has_every_field_and_the_verdict(clean, raced):
    audits = valid(json.loads(run("audit_transactions", "--format", "json")), kind="account-audits")

    assert [a["account_id"] for a in audits] == [clean.pk, raced.pk]
    ok, bad = audits
    assert ok["verdict"] == "OK"
    assert ok["anomalies"] == []
    assert ok["client"] == {
        "runs": 1,
        "ok": 2,
        "refused": 1,
        "indeterminate": 0,
        "lowest_final": 98,
        "highest_final": 98,
    }
    assert ok["by_strategy"] == [
        {"strategy": "naive", "ledger_rows": 2, "withdrawn": 2, "lost_updates": 0, "overdrafts": 0}
    ]
    assert bad["verdict"] == "ANOMALIES: lost withdrawals, lost updates, duplicate balances"
    assert (bad["lost_withdrawals"], bad["lost_updates"], bad["client"]) == (1, 1, None)
    assert [a["kind"] for a in bad["anomalies"]] == [
        AnomalyKind.LOST_WITHDRAWALS,
        AnomalyKind.LOST_UPDATES,
        AnomalyKind.DUPLICATE_BALANCES,
    ]
    assert bad["anomalies"][1]["worst"]["balance_before"] == 100


def test_audit_json_for_one_user(clean, raced):
    audits = valid(
        json.loads(run("audit_transactions", "--format", "json", "--username", "alice")),
        kind="account-audits",
    )

    assert [a["username"] for a in audits] == ["alice"]


def test_audit_json_with_no_accounts_is_an_empty_list():
    assert valid(json.loads(run("audit_transactions", "--format", "json")), kind="account-audits") == []


def test_fail_on_anomaly_passes_a_clean_history(clean):
    output = run("audit_transactions", "--fail-on-anomaly")

    assert "Verdict: OK" in output


def test_fail_on_anomaly_exits_1_when_any_account_shows_one(clean, raced):
    out = StringIO()

    with pytest.raises(CommandError, match=r"^1 of 2 account\(s\) show anomalies\.$") as failed:
        call_command("audit_transactions", "--fail-on-anomaly", stdout=out)

    assert failed.value.returncode == 1
    assert "Verdict: ANOMALIES" in out.getvalue()


def test_anomaly_without_fail_on_anomaly_does_not_fail(raced):
    assert "Verdict: ANOMALIES" in run("audit_transactions")


@pytest.mark.parametrize("username", ["nobody", "carol"])
def test_audit_unknown_user_or_user_without_account_is_an_error(clean, username):
    User.objects.create_user(username="carol", password="x")

    with pytest.raises(CommandError, match=f"User '{username}' has no account"):
        run("audit_transactions", "--username", username)


def _table_value(output: str, label: str) -> str:
    """The value beside ``label`` in tabulate's simple_outline table."""
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip("│ ").split("│")]
        if len(cells) == 2 and cells[0] == label:
            return cells[1]
    raise AssertionError(f"no row {label!r} in:\n{output}")


def _anomaly_table(output: str) -> dict[str, list[str]]:
    """The anomaly table's rows by kind, each wrapped cell joined back into one line."""
    rows: dict[str, list[str]] = {}
    lines = output[output.index("│ anomaly ") :].splitlines()[2:]
    fragments: list[list[str]] = []
    for line in lines:
        if line.startswith("│"):
            fragments.append([cell.strip() for cell in line.strip("│").split("│")])
            continue
        kind, *cells = (" ".join(part for part in column if part) for column in zip(*fragments, strict=True))
        rows[kind] = cells
        fragments = []
        if line.startswith("└"):
            return rows
    raise AssertionError(f"unterminated anomaly table in:\n{output}")


# splatter: argument validation only (the real load path is covered by the end-to-end tests)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-n", "0"), "-n must be from 1 to 100000, not 0."),
        (("-n", "100001"), "-n must be from 1 to 100000, not 100001."),
        (("-n", "10", "-c", "0"), r"-c must be from 1 to -n \(10\) and at most 1000, not 0."),
        (("-n", "10", "-c", "11"), r"-c must be from 1 to -n \(10\) and at most 1000, not 11."),
        (("-n", "5000", "-c", "1001"), r"-c must be from 1 to -n \(5000\) and at most 1000, not 1001."),
        (("--amount", "0"), f"--amount must be from 1 to {MAX_WITHDRAWAL_AMOUNT}, not 0."),
        (("--amount", str(MAX_WITHDRAWAL_AMOUNT + 1)), f"not {MAX_WITHDRAWAL_AMOUNT + 1}."),
        (("--strategy", "all", "--no-record"), "cannot be combined with --no-record"),
        (("--strategy", "bogus"), "'bogus' is not a strategy of the withdrawal: use one of naive, "),
        (("--scenario", "voucher", "--strategy", "atomic_update"), "not a strategy of the voucher scenario"),
        (
            ("--scenario", "voucher", "--amount", "5"),
            "--amount is for the withdrawal without --scenario; the voucher scenario",
        ),
        (
            ("--scenario", "voucher", "--trials", "2", "--plot", "p.png"),
            r"--plot draws the withdrawal trials' lost updates \(without --scenario\); drop it.",
        ),
        (
            ("--scenario", "withdrawal", "--driver", "burst", "--users", "2", "-c", "4"),
            "The withdrawal scenario races on one account, its window on that account's row: drop --users",
        ),
        (("--scenario", "voucher", "--history", "h.json"), "--history records the burst driver's requests"),
        (
            ("--scenario", "profile", "--driver", "ab", "-n", "10", "-c", "1"),
            "The profile scenario sends 2 different forms at -c 1, and ab one form per process",
        ),
        (
            ("--scenario", "transfer", "--driver", "burst", "--trials", "2", "-c", "6", "--race-window"),
            r"Race mode holds at most 5 requests of the transfer scenario together \(docs/scenarios.md",
        ),
        (("--scenario", "lottery"), "invalid choice: 'lottery'"),
        (("--scenario", "voucher"), "has no data to race for: run `manage.py seed_scenario voucher` first"),
        (("-n", "many"), "invalid int value: 'many'"),
        (("--url", "http://10.0.0.1:8001"), "10.0.0.1 is not a loopback address"),
        (("--url", "http://example.com"), "example.com is not a loopback address"),
        (("--url", "http://127.0.0.1:8001/accounts/"), "has a path or query"),
        (("--url", "ftp://127.0.0.1"), "is not a valid base URL"),
        (("--url", "http://127.0.0.1:99999"), "is not a valid URL"),
    ],
)
def test_splatter_refuses_bad_arguments_before_sending_anything(
    password, account, args, message, database_unchanged
):
    with database_unchanged(), pytest.raises(CommandError, match=message):
        run("splatter", "--username", "alice", *args, "--no-input")


def test_splatter_without_password_is_refused(no_password, account, database_unchanged):
    with database_unchanged(), pytest.raises(CommandError, match=PASSWORD_ENV_VAR):
        run("splatter", "--username", "alice", "--no-input")


def test_splatter_all_strategies_refused_at_the_prompt(password, account, monkeypatch, database_unchanged):
    terminal = FakeTerminal("no")
    monkeypatch.setattr("builtins.input", terminal)

    with database_unchanged(), pytest.raises(CommandError, match="Cancelled; nothing was sent or changed."):
        run("splatter", "--username", "alice", "--strategy", "all")

    assert "resets alice's account before each strategy" in terminal.prompts[0]
