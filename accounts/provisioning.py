"""Services that put users and accounts into a known state."""

from dataclasses import dataclass

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.models import Account
from accounts.selectors import account_for_user

# Balances are 32-bit integers on every backend.
MAX_BALANCE = 2_000_000_000

USERNAME_MAX_LENGTH = User._meta.get_field("username").max_length
# What Django's own UnicodeUsernameValidator accepts, said so a user knows what to type instead.
USERNAME_RULE = (
    f"at most {USERNAME_MAX_LENGTH} letters, digits and @ . + - _ "
    "(no spaces, slashes or line breaks), as Django's own user forms accept"
)
# Long enough to recognise a username in a message, short enough not to flood the terminal.
USERNAME_SHOWN_CHARACTERS = 40


class ProvisioningError(ValueError):
    pass


@dataclass(frozen=True)
class SeededAccount:
    username: str
    account_id: int
    opening: int
    minimum: int
    user_created: bool
    account_created: bool


def validate_balances(*, opening: int, minimum: int) -> None:
    if not 0 <= opening <= MAX_BALANCE:
        raise ProvisioningError(f"The opening balance must be from 0 to {MAX_BALANCE}, not {opening}.")
    if not 0 <= minimum <= opening:
        raise ProvisioningError(
            f"The minimum must be from 0 to the opening balance ({opening}), not {minimum}."
        )


def validate_username(*, username: str) -> str:
    """The username as Django stores it, or ProvisioningError if the User model cannot hold it.

    Checked as ``createsuperuser`` checks it, by the field's own validators and max_length:
    SQLite would store a 5000-character name silently, PostgreSQL and MariaDB fail with a
    DataError. Normalised (NFKC) as ``create_user`` does, since the login form normalises what
    it is given: a name stored otherwise could never log in.
    """
    if not username:
        raise ProvisioningError("The username must not be empty.")
    normalized = User.normalize_username(username)
    try:
        User._meta.get_field("username").clean(normalized, None)
    except ValidationError as error:
        raise ProvisioningError(
            f"The username {_shown(username)} cannot be used: {' '.join(error.messages)} "
            f"A username is {USERNAME_RULE}."
        ) from error
    return normalized


def _shown(username: str) -> str:
    """``username`` quoted for a message, its start only if it is long."""
    if len(username) <= USERNAME_SHOWN_CHARACTERS:
        return repr(username)
    return f"{username[:USERNAME_SHOWN_CHARACTERS]!r}... ({len(username)} characters)"


@transaction.atomic
def seed_account(*, username: str, password: str, opening: int, minimum: int) -> SeededAccount:
    """Create or update ``username`` with ``password`` and one account at ``opening``.

    Idempotent: a second call updates the same user and account and clears nothing else.
    """
    validate_balances(opening=opening, minimum=minimum)
    username = validate_username(username=username)
    if not password:
        raise ProvisioningError("The password must not be empty.")
    user, user_created = User.objects.get_or_create(username=username)
    user.set_password(password)
    user.save()
    account = account_for_user(user=user)
    account_created = account is None
    if account_created:
        account = Account(user=user)
    account.opening = account.current = opening
    account.minimum = minimum
    account.save()
    return SeededAccount(
        username=username,
        account_id=account.pk,
        opening=opening,
        minimum=minimum,
        user_created=user_created,
        account_created=account_created,
    )


@transaction.atomic
def reset_accounts(*, opening: int | None, username: str | None = None) -> int:
    """Put accounts back to an opening balance, delete their ledger, and take their runs out of
    the checker's count (the report pages keep them).

    ``opening=None`` keeps each account's own recorded opening balance. Returns how many
    accounts were reset; an unknown ``username`` is an error, so nothing is silently skipped.
    """
    accounts = Account.objects.select_for_update().order_by("pk")
    if username is not None:
        if not User.objects.filter(username=username).exists():
            raise ProvisioningError(f"There is no user named {username!r}.")
        accounts = accounts.filter(user__username=username)
        if not accounts.exists():
            raise ProvisioningError(f"User {username!r} has no account; seed one with seed_account.")
    reset = 0
    for account in accounts:
        if opening is not None:
            validate_balances(opening=opening, minimum=account.minimum)
            account.opening = opening
        account.current = account.opening
        account.version = 0
        account.save(update_fields=["opening", "current", "version"])
        account.transactions.all().delete()
        account.runs.filter(since_reset=True).update(since_reset=False)
        reset += 1
    return reset
