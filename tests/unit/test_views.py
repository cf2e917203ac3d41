import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.forms import AMOUNT_ERROR, STRATEGY_ERROR
from accounts.models import Account, Transaction
from accounts.views import NO_ACCOUNT
from accounts.withdrawals import MAX_WITHDRAWAL_AMOUNT, Strategy
from races.views import NOT_LOGGED_IN
from tests.helpers import ALL_STRATEGY_PARAMS, PASSWORD, SAFE_STRATEGY_PARAMS

URL = reverse("withdraw")


@pytest.fixture
def logged_in(client, account) -> Client:
    client.force_login(account.user)
    return client


def post(client: Client, *, strategy: str | None = None, **form):
    url = URL if strategy is None else f"{URL}?strategy={strategy}"
    return client.post(url, form)


def assert_text(response, status: int, body: str) -> None:
    assert (response.status_code, response["Content-Type"], response.content.decode()) == (
        status,
        "text/plain",
        body,
    )


def balance(account: Account) -> int:
    account.refresh_from_db()
    return account.current


@pytest.mark.django_db
def test_url_is_the_documented_one():
    assert URL == "/accounts/withdraw/"


@pytest.mark.django_db
def test_get_answers_the_balance_as_plain_text(logged_in, account):
    assert_text(logged_in.get(URL), 200, "1000")


@pytest.mark.django_db
def test_get_changes_nothing(logged_in, database_unchanged):
    with database_unchanged():
        assert logged_in.get(URL).status_code == 200


@pytest.mark.django_db
def test_post_withdraws_one_by_default_with_naive_and_answers_the_new_balance(logged_in, account):
    assert_text(post(logged_in), 200, "999")

    assert balance(account) == 999
    (row,) = Transaction.objects.all()
    assert (row.holder_id, row.amount, row.balance_before, row.balance, row.strategy) == (
        account.pk,
        1,
        1000,
        999,
        Strategy.NAIVE,
    )


@pytest.mark.django_db
def test_post_withdraws_the_amount_field(logged_in, account):
    assert_text(post(logged_in, amount="250"), 200, "750")
    assert_text(post(logged_in, amount=str(750)), 200, "0")

    assert balance(account) == 0
    assert list(Transaction.objects.order_by("pk").values_list("amount", flat=True)) == [250, 750]


@pytest.mark.django_db
def test_post_accepts_the_largest_amount(logged_in, make_account):
    rich = make_account(username="rich", opening=MAX_WITHDRAWAL_AMOUNT)
    logged_in.force_login(rich.user)

    assert_text(post(logged_in, strategy="locking", amount=str(MAX_WITHDRAWAL_AMOUNT)), 200, "0")


@pytest.mark.parametrize("strategy", ALL_STRATEGY_PARAMS)
def test_post_with_each_strategy_writes_balance_and_ledger_row(logged_in, account, strategy):
    before_request = timezone.now()

    assert_text(post(logged_in, strategy=strategy, amount="3"), 200, "997")

    assert balance(account) == 997
    (row,) = Transaction.objects.all()
    assert (row.holder_id, row.amount, row.balance_before, row.balance, row.strategy) == (
        account.pk,
        3,
        1000,
        997,
        strategy.value,
    )
    # The middleware's timestamp, taken while the request was being handled.
    assert before_request <= row.request_started_at <= timezone.now()
    assert row.request_started_at <= row.created_at


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["get", "post"])
def test_anonymous_is_refused_with_a_reason(client, account, method, database_unchanged):
    with database_unchanged():
        response = getattr(client, method)(URL)

    assert_text(response, 403, NOT_LOGGED_IN)
    assert "/auth/login/" in NOT_LOGGED_IN


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["get", "post"])
def test_user_without_account_gets_404(client, account, method, database_unchanged):
    client.force_login(User.objects.create_user(username="bob", password=PASSWORD))

    with database_unchanged():
        response = getattr(client, method)(URL, {"amount": "1"} if method == "post" else None)

    assert_text(response, 404, NO_ACCOUNT)
    assert balance(account) == 1000


@pytest.mark.django_db
def test_post_without_csrf_token_is_refused(account, database_unchanged):
    client = Client(enforce_csrf_checks=True)
    client.force_login(account.user)

    with database_unchanged():
        response = client.post(URL, {"amount": "1"})

    assert response.status_code == 403
    assert b"CSRF verification failed" in response.content


@pytest.mark.django_db
def test_post_with_csrf_token_is_accepted(account):
    client = Client(enforce_csrf_checks=True)
    client.force_login(account.user)
    client.get(reverse("login"))
    token = client.cookies["csrftoken"].value

    response = client.post(URL, {"amount": "1"}, headers={"X-CSRFToken": token})

    assert_text(response, 200, "999")


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["put", "delete", "patch"])
def test_other_methods_are_not_allowed(logged_in, method, database_unchanged):
    with database_unchanged():
        response = getattr(logged_in, method)(
            URL, "amount=1", content_type="application/x-www-form-urlencoded"
        )

    assert response.status_code == 405
    assert set(response["Allow"].split(", ")) == {"GET", "POST"}


@pytest.mark.django_db
@pytest.mark.parametrize("amount", ["0", "-1", "1.5", "x", str(10**20), "", str(MAX_WITHDRAWAL_AMOUNT + 1)])
@pytest.mark.parametrize("strategy", [None, "locking"])
def test_bad_amount_is_refused_and_changes_nothing(logged_in, amount, strategy, database_unchanged):
    with database_unchanged():
        response = post(logged_in, strategy=strategy, amount=amount)

    assert_text(response, 400, AMOUNT_ERROR + "\n")


@pytest.mark.django_db
def test_repeated_amount_field_is_refused_and_changes_nothing(logged_in, database_unchanged):
    with database_unchanged():
        response = logged_in.post(URL, {"amount": ["1", "2"]})

    assert_text(response, 400, "amount was given 2 times; send it once.\n")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("strategy=bogus", STRATEGY_ERROR),
        ("strategy=", STRATEGY_ERROR),
        ("strategy=Locking", STRATEGY_ERROR),
        ("strategy=locking&strategy=naive", "strategy was given 2 times; send it once."),
    ],
)
def test_bad_strategy_is_refused_and_changes_nothing(logged_in, query, reason, database_unchanged):
    with database_unchanged():
        response = logged_in.post(f"{URL}?{query}", {"amount": "1"})

    assert_text(response, 400, reason + "\n")


@pytest.mark.parametrize("strategy", SAFE_STRATEGY_PARAMS)
def test_safe_strategies_stop_at_the_minimum_with_409(client, make_account, strategy, database_unchanged):
    account = make_account(opening=10, minimum=0)
    client.force_login(account.user)

    answers = [post(client, strategy=strategy).content.decode() for _ in range(10)]
    with database_unchanged():
        refused = post(client, strategy=strategy)

    assert answers == [str(n) for n in range(9, -1, -1)]
    assert refused.status_code == 409
    assert refused["Content-Type"] == "text/plain"
    assert refused.content.decode().startswith("Insufficient funds: ")
    assert balance(account) == 0
    assert Transaction.objects.filter(holder=account).count() == 10


@pytest.mark.parametrize("strategy", SAFE_STRATEGY_PARAMS)
def test_safe_strategies_refuse_an_amount_larger_than_the_headroom(
    client, make_account, strategy, database_unchanged
):
    account = make_account(opening=100, minimum=40)
    client.force_login(account.user)

    with database_unchanged():
        refused = post(client, strategy=strategy, amount="61")
    accepted = post(client, strategy=strategy, amount="60")

    assert refused.status_code == 409
    assert "minimum of 40" in refused.content.decode()
    assert_text(accepted, 200, "40")


@pytest.mark.django_db
def test_naive_off_by_one_guard_lets_the_balance_reach_minimum_minus_one(
    client, make_account, database_unchanged
):
    account = make_account(opening=10, minimum=0)
    client.force_login(account.user)

    answers = [post(client).content.decode() for _ in range(11)]
    with database_unchanged():
        refused = post(client)

    assert answers[-2:] == ["0", "-1"]
    assert balance(account) == account.minimum - 1
    assert refused.status_code == 409
    assert refused.content.decode().startswith("Insufficient funds: ")
    assert Transaction.objects.filter(holder=account).count() == 11


@pytest.mark.django_db
def test_withdraws_from_the_users_first_account_only(logged_in, account):
    second = Account.objects.create(user=account.user, opening=50, current=50)

    assert_text(post(logged_in, amount="5"), 200, "995")

    second.refresh_from_db()
    assert (balance(account), second.current) == (995, 50)
