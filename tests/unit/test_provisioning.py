import re

import pytest
from django.contrib.auth.models import User

from accounts.models import Account, Transaction
from accounts.provisioning import (
    MAX_BALANCE,
    USERNAME_RULE,
    ProvisioningError,
    SeededAccount,
    reset_accounts,
    seed_account,
    validate_balances,
    validate_username,
)

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("opening", "minimum"), [(0, 0), (10, 0), (10, 10), (MAX_BALANCE, MAX_BALANCE)])
def test_validate_balances_accepts(opening, minimum):
    validate_balances(opening=opening, minimum=minimum)


@pytest.mark.parametrize(
    ("opening", "minimum", "message"),
    [
        (-1, 0, "opening balance must be from 0 to 2000000000, not -1"),
        (MAX_BALANCE + 1, 0, "not 2000000001"),
        (10, -1, "minimum must be from 0 to the opening balance (10), not -1"),
        (10, 11, "minimum must be from 0 to the opening balance (10), not 11"),
    ],
)
def test_validate_balances_refuses(opening, minimum, message):
    with pytest.raises(ProvisioningError, match=re.escape(message)):
        validate_balances(opening=opening, minimum=minimum)


def test_seed_account_creates_user_and_account():
    seeded = seed_account(username="alice", password="s3cret", opening=500, minimum=10)

    user = User.objects.get(username="alice")
    account = Account.objects.get(user=user)
    assert seeded == SeededAccount(
        username="alice",
        account_id=account.pk,
        opening=500,
        minimum=10,
        user_created=True,
        account_created=True,
    )
    assert (account.opening, account.current, account.minimum, account.version) == (500, 500, 10, 0)
    assert user.check_password("s3cret")


def test_seed_account_twice_updates_the_same_user_and_account_and_keeps_the_ledger(add_row):
    first = seed_account(username="alice", password="old", opening=500, minimum=0)
    account = Account.objects.get(pk=first.account_id)
    add_row(account, 500, 499)
    Account.objects.filter(pk=account.pk).update(current=499)

    second = seed_account(username="alice", password="new", opening=800, minimum=50)

    assert (second.account_id, second.user_created, second.account_created) == (
        first.account_id,
        False,
        False,
    )
    assert User.objects.count() == 1
    assert Account.objects.count() == 1
    account.refresh_from_db()
    assert (account.opening, account.current, account.minimum) == (800, 800, 50)
    assert User.objects.get(username="alice").check_password("new")
    assert Transaction.objects.count() == 1


def test_seed_account_gives_an_existing_user_without_account_one(make_account):
    User.objects.create_user(username="bob", password="x")

    seeded = seed_account(username="bob", password="y", opening=3, minimum=0)

    assert (seeded.user_created, seeded.account_created) == (False, True)
    assert Account.objects.get(user__username="bob").current == 3


def test_seed_account_updates_the_first_of_several_accounts(make_account):
    first = make_account(username="alice", opening=1)
    second = Account.objects.create(user=first.user, opening=2, current=2)

    seeded = seed_account(username="alice", password="pw", opening=9, minimum=0)

    assert seeded.account_id == first.pk
    second.refresh_from_db()
    assert second.current == 2


@pytest.mark.parametrize(
    ("username", "password", "opening", "minimum", "message"),
    [
        ("alice", "pw", -1, 0, "opening balance"),
        ("alice", "pw", 10, 11, "minimum"),
        ("alice", "pw", 10, -1, "minimum"),
        ("", "pw", 10, 0, "username must not be empty"),
        ("alice", "", 10, 0, "password must not be empty"),
    ],
)
def test_seed_account_refuses_and_changes_nothing(
    make_account, username, password, opening, minimum, message, database_unchanged
):
    make_account(username="alice", opening=100)

    with database_unchanged(), pytest.raises(ProvisioningError, match=message):
        seed_account(username=username, password=password, opening=opening, minimum=minimum)


@pytest.mark.parametrize(
    "username", ["alice", "u" * 150, "first.last@example.org", "a+b-c_d", "zoë", "ユーザー", "007"]
)
def test_validate_username_accepts_what_django_accepts(username):
    assert validate_username(username=username) == username


def test_validate_username_normalises_as_create_user_does():
    # The login form NFKC-normalises what it is given: "ﬁ" (one ligature) logs in as "fi".
    assert validate_username(username="ﬁnance") == "finance"


@pytest.mark.parametrize(
    ("username", "message"),
    [
        ("u" * 151, "at most 150 characters (it has 151)"),
        ("u" * 5000, "at most 150 characters (it has 5000)"),
        ("alice smith", "may contain only letters, numbers, and @/./+/-/_ characters"),
        (" alice", "may contain only letters"),
        ("alice\n", "may contain only letters"),
        ("alice\nroot", "may contain only letters"),
        ("alice\tbob", "may contain only letters"),
        ("alice/bob", "may contain only letters"),
        ("../etc", "may contain only letters"),
        ("alice\x00", "may contain only letters"),
    ],
)
def test_validate_username_refuses_what_the_user_model_cannot_hold(username, message):
    with pytest.raises(
        ProvisioningError, match=rf"{re.escape(message)}.* A username is {re.escape(USERNAME_RULE)}\.$"
    ):
        validate_username(username=username)


def test_a_long_username_is_shown_by_its_start_and_length():
    start = f"The username {'u' * 40!r}... (5000 characters) cannot be used: "
    with pytest.raises(ProvisioningError, match=f"^{re.escape(start)}") as refused:
        validate_username(username="u" * 5000)

    assert "u" * 41 not in str(refused.value)


@pytest.mark.parametrize("username", ["u" * 151, "u" * 5000, "alice smith", "alice\n", "alice/bob"])
def test_seed_account_refuses_a_bad_username_and_changes_nothing(make_account, username, database_unchanged):
    make_account(username="alice", opening=100)

    with database_unchanged(), pytest.raises(ProvisioningError, match="cannot be used"):
        seed_account(username=username, password="pw", opening=10, minimum=0)


def test_seed_account_stores_the_normalised_username():
    seeded = seed_account(username="ﬁnance", password="pw", opening=10, minimum=0)

    assert seeded.username == "finance"
    assert User.objects.get(pk=Account.objects.get(pk=seeded.account_id).user_id).username == "finance"


@pytest.fixture
def two_dirty_accounts(make_account, add_row, add_run):
    alice = make_account(username="alice", opening=100, minimum=10)
    bob = make_account(username="bob", opening=200, minimum=0)
    for account in (alice, bob):
        add_row(account, account.opening, account.opening - 1)
        add_run(account, ok=1)
    Account.objects.update(current=5, version=3)
    return alice, bob


def state(account: Account) -> tuple:
    account.refresh_from_db()
    return (
        account.opening,
        account.current,
        account.version,
        account.transactions.count(),
        account.runs.filter(since_reset=True).count(),
    )


def test_reset_every_account_to_its_own_opening_balance(two_dirty_accounts):
    alice, bob = two_dirty_accounts

    assert reset_accounts(opening=None) == 2

    assert state(alice) == (100, 100, 0, 0, 0)
    assert state(bob) == (200, 200, 0, 0, 0)


def test_reset_to_a_new_opening_balance(two_dirty_accounts):
    alice, bob = two_dirty_accounts

    assert reset_accounts(opening=50) == 2

    assert state(alice) == (50, 50, 0, 0, 0)
    assert state(bob) == (50, 50, 0, 0, 0)


def test_reset_one_user_leaves_the_others_alone(two_dirty_accounts):
    alice, bob = two_dirty_accounts

    assert reset_accounts(opening=None, username="bob") == 1

    assert state(bob) == (200, 200, 0, 0, 0)
    assert state(alice) == (100, 5, 3, 1, 1)


def test_reset_with_no_accounts_resets_none():
    assert reset_accounts(opening=None) == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"opening": None, "username": "nobody"}, "There is no user named 'nobody'."),
        ({"opening": None, "username": "carol"}, "User 'carol' has no account; seed one with seed_account."),
        ({"opening": -1, "username": "bob"}, "opening balance must be from 0"),
        ({"opening": MAX_BALANCE + 1}, "opening balance must be from 0"),
    ],
)
def test_reset_refuses_and_changes_nothing(two_dirty_accounts, kwargs, message, database_unchanged):
    User.objects.create_user(username="carol", password="x")

    with database_unchanged(), pytest.raises(ProvisioningError, match=message):
        reset_accounts(**kwargs)


def test_reset_is_all_or_nothing(make_account, add_row, database_unchanged):
    # The first account (minimum 0) could take 5 and is reset first; the second (minimum 10)
    # cannot, and the first one's reset and deleted ledger must be rolled back with it.
    first = make_account(username="bob", opening=200, minimum=0)
    second = make_account(username="alice", opening=100, minimum=10)
    add_row(first, 200, 199)
    add_row(second, 100, 99)
    Account.objects.update(current=7)

    with database_unchanged(), pytest.raises(ProvisioningError, match=r"opening balance \(5\), not 10"):
        reset_accounts(opening=5)

    assert state(first) == (200, 7, 0, 1, 0)
