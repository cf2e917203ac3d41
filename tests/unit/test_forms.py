import re

import pytest
from django.http import QueryDict

from accounts.forms import (
    AMOUNT_ERROR,
    DEFAULT_AMOUNT,
    STRATEGY_ERROR,
    WithdrawalRequest,
    parse_withdrawal_request,
)
from accounts.withdrawals import MAX_WITHDRAWAL_AMOUNT, Strategy
from races.forms import BadForm

pytestmark = pytest.mark.database_independent


def parse(query: str = "", body: str = "") -> WithdrawalRequest:
    return parse_withdrawal_request(query=QueryDict(query), body=QueryDict(body))


def test_defaults_are_naive_and_one():
    assert DEFAULT_AMOUNT == 1
    assert parse() == WithdrawalRequest(amount=1, strategy=Strategy.NAIVE)


@pytest.mark.parametrize("strategy", list(Strategy), ids=str)
def test_each_strategy_is_accepted_by_name(strategy):
    assert parse(query=f"strategy={strategy.value}").strategy is strategy


@pytest.mark.parametrize(
    ("field", "amount"),
    [("1", 1), ("42", 42), (str(MAX_WITHDRAWAL_AMOUNT), MAX_WITHDRAWAL_AMOUNT), ("007", 7), (" 5 ", 5)],
)
def test_amount_in_range_is_accepted(field, amount):
    assert parse(body=f"amount={field.replace(' ', '+')}").amount == amount


@pytest.mark.parametrize(
    "field",
    [
        "0",
        "-1",
        "1.5",
        "x",
        "",
        "+",
        "+5",
        "1e3",
        "0x10",
        "1_000",
        "\uff15",  # FULLWIDTH DIGIT FIVE: int() would take it, the form must not.
        str(MAX_WITHDRAWAL_AMOUNT + 1),
        str(10**20),
        "9" * 17,
    ],
)
def test_amount_out_of_range_or_not_a_whole_number_is_refused(field):
    with pytest.raises(BadForm, match=f"^{re.escape(AMOUNT_ERROR)}$"):
        parse_withdrawal_request(query=QueryDict(""), body=_body(amount=[field]))

    assert str(MAX_WITHDRAWAL_AMOUNT) in AMOUNT_ERROR


@pytest.mark.parametrize("value", ["bogus", "", "NAIVE", "naive "])
def test_unknown_strategy_is_refused_with_the_list_of_names(value):
    with pytest.raises(BadForm, match=f"^{re.escape(STRATEGY_ERROR)}$"):
        parse_withdrawal_request(query=_body(strategy=[value]), body=QueryDict(""))

    for strategy in Strategy:
        assert strategy.value in STRATEGY_ERROR


def test_repeated_amount_is_refused_even_if_both_are_valid():
    with pytest.raises(BadForm, match="amount was given 2 times; send it once."):
        parse_withdrawal_request(query=QueryDict(""), body=_body(amount=["1", "1"]))


def test_repeated_strategy_is_refused():
    with pytest.raises(BadForm, match="strategy was given 2 times; send it once."):
        parse(query="strategy=locking&strategy=naive")


def test_amount_in_the_query_string_is_ignored():
    assert parse(query="strategy=locking&amount=7").amount == DEFAULT_AMOUNT


def test_bad_request_is_a_value_error():
    assert issubclass(BadForm, ValueError)


def _body(**fields: list[str]) -> QueryDict:
    body = QueryDict("", mutable=True)
    for name, values in fields.items():
        body.setlist(name, values)
    return body
