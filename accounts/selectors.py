from django.contrib.auth.models import AbstractBaseUser

from accounts.models import Account


def account_for_user(*, user: AbstractBaseUser, for_update: bool = False) -> Account | None:
    """The user's account (the first, should an admin have given them several), or None.

    ``for_update`` locks its row until the end of the surrounding transaction.
    """
    accounts = Account.objects.select_for_update() if for_update else Account.objects
    return accounts.filter(user=user).order_by("pk").first()
