from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from accounts.models import Account


def account_for_user(*, user: AbstractBaseUser, for_update: bool = False) -> Account | None:
    """The user's account (the first, should an admin have given them several), or None.

    ``for_update`` locks its row until the end of the surrounding transaction.
    """
    return _accounts_of_user_in_order(user=user, for_update=for_update).first()


def balance_for_user(*, user: AbstractBaseUser, for_update: bool = False) -> tuple[int, int, int, int] | None:
    """(id, balance, minimum, version) of the same account as ``account_for_user``, or None:
    the values a withdrawal decides on, without a model instance built only to read them."""
    return (
        _accounts_of_user_in_order(user=user, for_update=for_update)
        .values_list("pk", "current", "minimum", "version")
        .first()
    )


def _accounts_of_user_in_order(*, user: AbstractBaseUser, for_update: bool) -> QuerySet:
    accounts = Account.objects.select_for_update() if for_update else Account.objects
    return accounts.filter(user=user).order_by("pk")
