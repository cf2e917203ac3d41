from django.contrib.auth.models import AbstractBaseUser

from accounts.models import Account


def account_for_user(*, user: AbstractBaseUser) -> Account | None:
    """The user's account (the first, should an admin have given them several), or None."""
    return Account.objects.filter(user=user).order_by("pk").first()
