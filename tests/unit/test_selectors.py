import pytest
from django.contrib.auth.models import User

from accounts.models import Account
from accounts.selectors import account_for_user, balance_for_user
from tests.helpers import PASSWORD

pytestmark = pytest.mark.django_db


def test_the_users_account(account, make_account):
    make_account(username="bob")

    assert account_for_user(user=account.user) == account


def test_the_first_of_several_accounts(account):
    Account.objects.create(user=account.user, opening=1, current=1)

    assert account_for_user(user=account.user) == account


def test_none_without_an_account(account):
    assert account_for_user(user=User.objects.create_user(username="bob", password=PASSWORD)) is None


def test_the_balance_of_the_same_first_account(account):
    Account.objects.create(user=account.user, opening=1, current=1, minimum=-5, version=3)
    account.version = 2
    account.save()

    assert balance_for_user(user=account.user) == (account.pk, account.current, account.minimum, 2)


def test_no_balance_without_an_account(account):
    assert balance_for_user(user=User.objects.create_user(username="bob", password=PASSWORD)) is None
